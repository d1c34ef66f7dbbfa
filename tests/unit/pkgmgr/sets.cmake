# Active sets: role rules, versions, set validation, generations, crash recovery, locking.
target_sources(pkgmgr_unit_tests PRIVATE
    sets_test.cpp
    semver_test.cpp
    generations_test.cpp
    sets_crash_test.cpp
)
