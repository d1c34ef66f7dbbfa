#include <iostream>
#include <string>
#include <vector>

#include "pkgmgr/cli.hpp"

int main(int argc, char** argv) {
    return hoist::pkgmgr::runCli(std::vector<std::string>(argv, argv + argc), std::cout, std::cerr);
}
