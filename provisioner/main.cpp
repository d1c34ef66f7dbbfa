#include <iostream>
#include <string>
#include <vector>

#include "provisioner/cli.hpp"

int main(int argc, char** argv) {
    return hoist::provisioner::runCli(std::vector<std::string>(argv, argv + argc), std::cout,
                                      std::cerr);
}
