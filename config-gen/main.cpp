#include <iostream>
#include <string>
#include <vector>

#include "config_gen/cli.hpp"

int main(int argc, char** argv) {
    return hoist::config_gen::runCli(std::vector<std::string>(argv, argv + argc), std::cout,
                                     std::cerr);
}
