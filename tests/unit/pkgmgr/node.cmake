# The node area: variable expansion, the status-ping outbox and courier, the process and
# systemd service managers, the health checker.
target_sources(pkgmgr_unit_tests PRIVATE
    epoch_test.cpp
    node_test.cpp
)
