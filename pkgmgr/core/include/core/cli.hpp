#pragma once

#include <functional>
#include <limits>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

namespace hoist::cli {

/// --log-level and --log-format, which every binary takes.
struct LogOptions {
    std::string level = "info";
    std::string format = "text";
};

void addLogOptions(CLI::App& app, LogOptions& options);
/// Sets the process's log level and format from the parsed options (run() does it; a binary
/// that runs its own action calls it after parse()).
void configureLogging(const LogOptions& options);

/// A check for a whole-number option: the value must be an integer from `min` to `max`. The
/// refusal reads "--keep: must be a whole number of at least 0, not '-1'" (CLI11's own ranges
/// print their bounds as doubles, a 310-digit number for "no upper bound").
CLI::Validator wholeNumber(long long min, long long max = std::numeric_limits<long long>::max());

/// Parses args (argv[0] included) into app, which gains --version ("<program> <version>").
/// Returns nullopt when a command should run; otherwise the exit code: 0 after printing the
/// version or the help asked for (the chosen subcommand's) on out, or Invalid's code after one
/// usage line on err ("<program>: <what>").
std::optional<int> parse(CLI::App& app, const std::vector<std::string>& args,
                         std::string_view program, std::ostream& out, std::ostream& err);

/// Configures logging, then runs the action the parse chose; no action is a usage error, and
/// an exception becomes an Internal exit with one line on err.
int run(const std::function<int()>& action, const LogOptions& log, std::string_view program,
        std::ostream& err);

}  // namespace hoist::cli
