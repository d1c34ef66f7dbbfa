# The store: package model, safe extraction (hostile archive corpus), store, pack, fetch, CLI.
target_sources(pkgmgr_unit_tests PRIVATE
    package_test.cpp
    hostile_archive_test.cpp
    store_test.cpp
    pack_test.cpp
    fetch_test.cpp
    cli_store_test.cpp
)
