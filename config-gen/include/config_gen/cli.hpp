#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace hoist::config_gen {

/// Runs `config-gen` with argv (argv[0] included): results to out, logs and errors to err.
/// Returns the process exit code (0 success, hoist::exitCode of the error otherwise).
/// Not thread-safe (it configures the process-wide logger).
int runCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace hoist::config_gen
