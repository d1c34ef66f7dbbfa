# Provisioner: the sigv4 verb, the EC2 client and the aws backend against fake-ec2, the local
# backend with restart-helper and pkgmgr serve.
add_executable(provisioner_integration_tests
    ${CMAKE_CURRENT_LIST_DIR}/provisioner/aws_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/provisioner/sigv4_cli_test.cpp
)
target_link_libraries(provisioner_integration_tests
    PRIVATE hoist_provisioner hoist_testing GTest::gtest_main hoist_warnings)
target_compile_definitions(provisioner_integration_tests PRIVATE
    HOIST_PROVISIONER="$<TARGET_FILE:provisioner>"
    HOIST_FAKE_EC2="$<TARGET_FILE:fake-ec2>")
add_dependencies(provisioner_integration_tests provisioner fake-ec2)
gtest_discover_tests(provisioner_integration_tests PROPERTIES LABELS integration DISCOVERY_TIMEOUT 60)

# The local backend runs the real node binaries; it reuses the node tests' fixture (a signed
# file:// repository holding the stand-in mesos).
add_executable(provisioner_local_tests
    ${CMAKE_CURRENT_LIST_DIR}/provisioner/local_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/node/node_fixture.cpp
)
target_include_directories(provisioner_local_tests PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(provisioner_local_tests
    PRIVATE hoist_node_agent hoist_pkgmgr hoist_testing GTest::gtest_main hoist_warnings)
target_compile_definitions(provisioner_local_tests PRIVATE
    HOIST_PROVISIONER="$<TARGET_FILE:provisioner>"
    RESTART_HELPER_BIN="$<TARGET_FILE:restart-helper>"
    PKGMGR_BIN="$<TARGET_FILE:pkgmgr>"
    STANDIN_MESOS_BIN="$<TARGET_FILE:standin-mesos>")
add_dependencies(provisioner_local_tests provisioner restart-helper pkgmgr standin-mesos)
gtest_discover_tests(provisioner_local_tests PROPERTIES LABELS integration DISCOVERY_TIMEOUT 60)
