# Every binary's command line through core/cli: --version, and --help at every level of
# subcommands (the chosen subcommand's own help, not the top-level one).
add_executable(cli_integration_tests ${CMAKE_CURRENT_LIST_DIR}/cli_test.cpp)
target_link_libraries(cli_integration_tests PRIVATE hoist_testing GTest::gtest_main hoist_warnings)
target_compile_definitions(cli_integration_tests PRIVATE
    PKGMGR_BIN="$<TARGET_FILE:pkgmgr>"
    RESTART_HELPER_BIN="$<TARGET_FILE:restart-helper>"
    COORDINATOR_BIN="$<TARGET_FILE:deploy-coordinator>"
    CLUSTER_BIN="$<TARGET_FILE:cluster>"
    PROVISIONER_BIN="$<TARGET_FILE:provisioner>"
    CONFIG_GEN_BIN="$<TARGET_FILE:config-gen>"
    REPO_SERVER_BIN="$<TARGET_FILE:repo-server>"
    HOIST_VERSION_TEXT="${PROJECT_VERSION}")
add_dependencies(cli_integration_tests pkgmgr restart-helper deploy-coordinator cluster provisioner
    config-gen repo-server)
gtest_discover_tests(cli_integration_tests PROPERTIES LABELS integration DISCOVERY_TIMEOUT 60)
