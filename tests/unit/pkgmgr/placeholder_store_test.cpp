#include <gtest/gtest.h>

#include "pkgmgr/cli.hpp"
#include <sstream>

TEST(PkgmgrCli, HelpExitsZero) {
    std::ostringstream out, err;
    EXPECT_EQ(hoist::pkgmgr::runCli({"pkgmgr", "--help"}, out, err), 0);
    EXPECT_NE(out.str().find("pkgmgr"), std::string::npos);
}
