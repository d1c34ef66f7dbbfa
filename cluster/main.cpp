#include <iostream>
#include <string>
#include <vector>

#include "cluster/cli.hpp"

int main(int argc, char** argv) {
    return hoist::cluster::runCli(std::vector<std::string>(argv, argv + argc), std::cout,
                                  std::cerr);
}
