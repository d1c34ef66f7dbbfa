#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace hoist::pkgmgr {

/// Runs `pkgmgr` with argv (argv[0] included): results to out, logs and errors to err.
/// Returns the process exit code (0 success, codes from hoist::exitCode otherwise).
int runCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace hoist::pkgmgr
