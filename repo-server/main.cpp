#include <iostream>
#include <string>
#include <vector>

#include "repo_server/server.hpp"

int main(int argc, char** argv) {
    return hoist::repo_server::runCli(std::vector<std::string>(argv, argv + argc), std::cout,
                                      std::cerr);
}
