#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace hoist::restart_helper {

/// Runs `restart-helper` with argv (argv[0] included): results on out, logs and errors on err.
/// Returns the exit code: for swap, recover and bootstrap kExitHealthy (0), kExitRolledBack
/// (20) or kExitFailed (21) once a transaction ran; hoist::exitCode of the error otherwise.
int runCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace hoist::restart_helper
