#include <iostream>
#include <string>
#include <vector>

#include "restart_helper/cli.hpp"

int main(int argc, char** argv) {
    return hoist::restart_helper::runCli(std::vector<std::string>(argv, argv + argc), std::cout,
                                         std::cerr);
}
