# The deploy coordinator and the `cluster` CLI against a fake fleet of simulated nodes
# (tests/helpers/fake-fleet): rollout order, failure budget, halt, crash recovery.
add_executable(coordinator_integration_tests
    ${CMAKE_CURRENT_LIST_DIR}/coordinator/coordinator_test.cpp
)
target_link_libraries(coordinator_integration_tests
    PRIVATE hoist_pkgmgr hoist_testing GTest::gtest_main hoist_warnings)
target_compile_definitions(coordinator_integration_tests PRIVATE
    COORDINATOR_BIN="$<TARGET_FILE:deploy-coordinator>"
    CLUSTER_BIN="$<TARGET_FILE:cluster>"
    FAKE_FLEET_BIN="$<TARGET_FILE:fake-fleet>")
add_dependencies(coordinator_integration_tests deploy-coordinator cluster fake-fleet)
gtest_discover_tests(coordinator_integration_tests PROPERTIES LABELS integration DISCOVERY_TIMEOUT 60)
