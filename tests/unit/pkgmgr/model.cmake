target_sources(pkgmgr_unit_tests PRIVATE release_test.cpp node_config_test.cpp wire_test.cpp journal_test.cpp)
