# repo-server and `pkgmgr publish`: the real binaries, libcurl and the real curl command.
add_executable(repo_server_integration_tests repo_server_test.cpp)
target_link_libraries(repo_server_integration_tests PRIVATE hoist_core hoist_testing GTest::gtest_main hoist_warnings)
target_compile_definitions(repo_server_integration_tests PRIVATE
    REPO_SERVER_BIN="$<TARGET_FILE:repo-server>"
    PKGMGR_BIN="$<TARGET_FILE:pkgmgr>")
add_dependencies(repo_server_integration_tests repo-server pkgmgr)
gtest_discover_tests(repo_server_integration_tests PROPERTIES LABELS integration DISCOVERY_TIMEOUT 60)
