#pragma once

#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

namespace hoist::cli {

/// Adds `--config FILE` to `app`: a TOML file whose keys are the long options of `app` (and of
/// its parent commands) without the dashes, e.g. `admin-token-file = "/etc/hoist/admin.token"`,
/// `trusted-key = ["a.pem", "b.pem"]`, `access-log = true`. Options given on the command line
/// win over the file. The file is applied while the command line is parsed, before required
/// options are checked, so a required option may come from either.
///
/// Refused, each naming the file, the line and the key: a file that cannot be read or is not
/// TOML, an unknown key (with the option it resembles, if any), a table or date value, a
/// value of the wrong type (a list for a single option, a non-boolean for a flag), and any
/// value the option's own checks refuse. The errors surface as CLI11 parse errors, which
/// hoist::cli::parse prints as one line and turns into Invalid's exit code.
///
/// `default_hint` names the packaged file in the help text ("/etc/hoist/coordinator.toml").
CLI::Option* addConfigOption(CLI::App& app, std::string_view default_hint);

}  // namespace hoist::cli
