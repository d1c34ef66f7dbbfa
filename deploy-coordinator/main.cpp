#include <iostream>
#include <string>
#include <vector>

#include "deploy_coordinator/cli.hpp"

int main(int argc, char** argv) {
    return hoist::deploy_coordinator::runCli(std::vector<std::string>(argv, argv + argc), std::cout,
                                             std::cerr);
}
