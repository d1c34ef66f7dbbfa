target_sources(pkgmgr_unit_tests PRIVATE release_test.cpp node_config_test.cpp status_test.cpp)
