#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace hoist::deploy_coordinator {

/// Runs `deploy-coordinator` with argv (argv[0] included): serves the coordinator's HTTP API
/// until SIGTERM/SIGINT. Results to out, logs and errors to err; returns the exit code.
int runCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace hoist::deploy_coordinator
