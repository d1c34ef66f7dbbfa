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
    FAKE_FLEET_BIN="$<TARGET_FILE:fake-fleet>"
    ALERTMANAGER_BIN="/usr/bin/prometheus-alertmanager")
add_dependencies(coordinator_integration_tests deploy-coordinator cluster fake-fleet)
gtest_discover_tests(coordinator_integration_tests PROPERTIES LABELS integration DISCOVERY_TIMEOUT 60)

# Pull mode: the coordinator, repo-server and real `pkgmgr serve` nodes (restart helper, stand-in
# mesos), a mixed fleet of pushed-to and pulling nodes.
add_executable(coordinator_pull_tests
    ${CMAKE_CURRENT_LIST_DIR}/coordinator/pull_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/node/node_fixture.cpp
)
target_include_directories(coordinator_pull_tests PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(coordinator_pull_tests
    PRIVATE hoist_restart_helper hoist_pkgmgr hoist_testing GTest::gtest_main hoist_warnings)
target_compile_definitions(coordinator_pull_tests PRIVATE
    COORDINATOR_BIN="$<TARGET_FILE:deploy-coordinator>"
    RESTART_HELPER_BIN="$<TARGET_FILE:restart-helper>"
    PKGMGR_BIN="$<TARGET_FILE:pkgmgr>"
    STANDIN_MESOS_BIN="$<TARGET_FILE:standin-mesos>"
    REPO_SERVER_BIN="$<TARGET_FILE:repo-server>")
add_dependencies(coordinator_pull_tests deploy-coordinator restart-helper pkgmgr standin-mesos
    repo-server)
gtest_discover_tests(coordinator_pull_tests PROPERTIES LABELS integration DISCOVERY_TIMEOUT 60)

# Replicas on etcd: three real etcd members (Debian's etcd-server) and three coordinator
# replicas against the fake fleet, with the leader killed and paused and etcd's leader killed.
add_executable(coordinator_ha_tests ${CMAKE_CURRENT_LIST_DIR}/coordinator/ha_test.cpp)
target_link_libraries(coordinator_ha_tests
    PRIVATE hoist_pkgmgr hoist_testing GTest::gtest_main hoist_warnings)
target_compile_definitions(coordinator_ha_tests PRIVATE
    COORDINATOR_BIN="$<TARGET_FILE:deploy-coordinator>"
    FAKE_FLEET_BIN="$<TARGET_FILE:fake-fleet>")
add_dependencies(coordinator_ha_tests deploy-coordinator fake-fleet)
gtest_discover_tests(coordinator_ha_tests PROPERTIES LABELS slow TIMEOUT 300
    DISCOVERY_TIMEOUT 60)
# Metrics and metric gates against the real peers: promtool lints every /metrics endpoint, and
# a real Prometheus answers the gates of a real fleet's rollout (Debian `prometheus`).
add_executable(coordinator_metrics_tests
    ${CMAKE_CURRENT_LIST_DIR}/coordinator/metrics_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/node/node_fixture.cpp
)
target_include_directories(coordinator_metrics_tests PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(coordinator_metrics_tests
    PRIVATE hoist_restart_helper hoist_pkgmgr hoist_testing GTest::gtest_main hoist_warnings)
target_compile_definitions(coordinator_metrics_tests PRIVATE
    COORDINATOR_BIN="$<TARGET_FILE:deploy-coordinator>"
    RESTART_HELPER_BIN="$<TARGET_FILE:restart-helper>"
    PKGMGR_BIN="$<TARGET_FILE:pkgmgr>"
    STANDIN_MESOS_BIN="$<TARGET_FILE:standin-mesos>"
    REPO_SERVER_BIN="$<TARGET_FILE:repo-server>"
    PROVISIONER_BIN="$<TARGET_FILE:provisioner>"
    CLUSTER_BIN="$<TARGET_FILE:cluster>")
add_dependencies(coordinator_metrics_tests deploy-coordinator cluster restart-helper pkgmgr
    standin-mesos repo-server provisioner)
gtest_discover_tests(coordinator_metrics_tests PROPERTIES LABELS integration DISCOVERY_TIMEOUT 60)
# Running as a service: config files, no open doors without --insecure-no-auth, TLS and mutual
# TLS (certificates made by openssl during the test), SIGHUP reload.
add_executable(service_integration_tests
    ${CMAKE_CURRENT_LIST_DIR}/service/service_test.cpp
)
target_link_libraries(service_integration_tests
    PRIVATE hoist_testing GTest::gtest_main hoist_warnings)
target_compile_definitions(service_integration_tests PRIVATE
    COORDINATOR_BIN="$<TARGET_FILE:deploy-coordinator>"
    PKGMGR_BIN="$<TARGET_FILE:pkgmgr>"
    REPO_SERVER_BIN="$<TARGET_FILE:repo-server>"
    PROVISIONER_BIN="$<TARGET_FILE:provisioner>")
add_dependencies(service_integration_tests deploy-coordinator pkgmgr repo-server provisioner)
gtest_discover_tests(service_integration_tests PROPERTIES LABELS integration DISCOVERY_TIMEOUT 60)
