#pragma once

#include <functional>
#include <ostream>

#include <CLI/CLI.hpp>

namespace hoist::provisioner {

/// Registers `provisioner serve` (the HTTP service) on the app; sets `action` when chosen.
void addServeCommand(CLI::App& app, std::function<int()>& action, std::ostream& out,
                     std::ostream& err);

}  // namespace hoist::provisioner
