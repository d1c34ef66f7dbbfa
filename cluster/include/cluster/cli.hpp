#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace hoist::cluster {

/// Runs `cluster`, the admin CLI of the deploy coordinator, with argv (argv[0] included)
/// against CLUSTER_URL. Results to out (one JSON object with --json), errors and progress notes
/// to err; returns the exit code (hoist::exitCode). Progress redraws in place only when out is
/// std::cout on a terminal.
int runCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace hoist::cluster
