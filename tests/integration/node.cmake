# The node: restart-helper (swaps, rollbacks, crash recovery, pings, bootstrap) and
# `pkgmgr serve`, with the stand-in mesos as the service.
add_executable(node_integration_tests
    ${CMAKE_CURRENT_LIST_DIR}/node/node_fixture.cpp
    ${CMAKE_CURRENT_LIST_DIR}/node/swap_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/node/crash_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/node/pings_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/node/bootstrap_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/node/serve_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/node/fetch_outage_test.cpp
)
target_link_libraries(node_integration_tests
    PRIVATE hoist_restart_helper hoist_pkgmgr hoist_testing GTest::gtest_main hoist_warnings)
target_compile_definitions(node_integration_tests PRIVATE
    RESTART_HELPER_BIN="$<TARGET_FILE:restart-helper>"
    PKGMGR_BIN="$<TARGET_FILE:pkgmgr>"
    STANDIN_MESOS_BIN="$<TARGET_FILE:standin-mesos>"
    REPO_SERVER_BIN="$<TARGET_FILE:repo-server>")
add_dependencies(node_integration_tests restart-helper pkgmgr standin-mesos repo-server)
gtest_discover_tests(node_integration_tests PROPERTIES LABELS integration DISCOVERY_TIMEOUT 60)
