#include "core/cli.hpp"

#include <charconv>

#include "core/error.hpp"
#include "core/log.hpp"

namespace hoist::cli {

CLI::Validator wholeNumber(long long min, long long max) {
    auto describe = [min, max] {
        if (max == std::numeric_limits<long long>::max())
            return "a whole number of at least " + std::to_string(min);
        return "a whole number from " + std::to_string(min) + " to " + std::to_string(max);
    };
    return CLI::Validator(
        [min, max, describe](std::string& input) -> std::string {
            long long value = 0;
            const char* end = input.data() + input.size();
            auto [ptr, ec] = std::from_chars(input.data(), end, value);
            if (ec != std::errc() || ptr != end || value < min || value > max)
                return "must be " + describe() + ", not '" + input + "'";
            return {};
        },
        min == 0 && max == std::numeric_limits<long long>::max() ? "NONNEGATIVE" : "INT");
}

void addLogOptions(CLI::App& app, LogOptions& options) {
    app.add_option("--log-level", options.level, "debug, info, warn or error")
        ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
    app.add_option("--log-format", options.format, "text or json")
        ->check(CLI::IsMember({"text", "json"}));
}

std::optional<int> parse(CLI::App& app, const std::vector<std::string>& args,
                         std::string_view program, std::ostream& out, std::ostream& err) {
    // CLI11 takes a vector in reverse order, without argv[0].
    if (app.get_name().empty()) app.name(std::string(program));
    app.set_version_flag("--version", std::string(program) + " " + HOIST_VERSION,
                         "print the version and exit");
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    if (!reversed.empty()) reversed.pop_back();
    try {
        app.parse(reversed);
    } catch (const CLI::CallForVersion& e) {
        out << e.what() << "\n";
        return 0;
    } catch (const CLI::CallForHelp&) {
        // Help for the deepest subcommand named: `pkgmgr stage --help` shows stage's.
        const CLI::App* chosen = &app;
        while (!chosen->get_subcommands().empty()) chosen = chosen->get_subcommands().front();
        out << chosen->help();
        return 0;
    } catch (const CLI::CallForAllHelp&) {
        out << app.help("", CLI::AppFormatMode::All);
        return 0;
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) {
            out << app.help();
            return 0;
        }
        err << program << ": " << e.what() << "\n";
        err << "run '" << program << " --help' for usage\n";
        return exitCode(Errc::Invalid);
    }
    return std::nullopt;
}

int run(const std::function<int()>& action, const LogOptions& options, std::string_view program,
        std::ostream& err) {
    log::Level level = log::Level::Info;
    log::Format format = log::Format::Text;
    log::parseLevel(options.level, level);
    log::parseFormat(options.format, format);
    log::configure(level, format);
    if (!action) {
        err << program << ": no command given; run '" << program << " --help'\n";
        return exitCode(Errc::Invalid);
    }
    try {
        return action();
    } catch (const std::exception& e) {
        err << program << ": internal error: " << e.what() << "\n";
        return exitCode(Errc::Internal);
    }
}

}  // namespace hoist::cli
