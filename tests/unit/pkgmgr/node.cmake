# The node area: variable expansion, the status-ping outbox and courier, the process and
# systemd service managers, the health checker.
target_sources(pkgmgr_unit_tests PRIVATE
    node_test.cpp
)
