#include "core/cli.hpp"

#include <charconv>

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"

namespace hoist::cli {

namespace {

/// Every long option name ("--json") an argument given to `app` may be: its own, and its
/// parents' where it falls through to them.
std::vector<std::string> optionNames(const CLI::App* app) {
    std::vector<std::string> names;
    for (const CLI::App* a = app; a != nullptr; a = a->get_parent()) {
        for (const CLI::Option* o : a->get_options())
            for (const auto& name : o->get_lnames()) names.push_back("--" + name);
        if (!a->get_fallthrough()) break;
    }
    return names;
}

const CLI::Option* findLong(const CLI::App* app, std::string_view name) {
    for (const CLI::App* a = app; a != nullptr; a = a->get_parent()) {
        for (const CLI::Option* o : a->get_options())
            for (const auto& n : o->get_lnames())
                if (name == n) return o;
        if (!a->get_fallthrough()) break;
    }
    return nullptr;
}

/// What a usage error is about, said plainly: a verb or a flag that does not exist (with the
/// closest one that does), or the verb missing. Empty when the arguments show neither.
std::string explain(const CLI::App& app, const std::vector<std::string>& args,
                    std::string_view program) {
    const CLI::App* at = &app;
    std::string path(program);
    bool positional_seen = false;
    for (size_t i = 1; i < args.size(); ++i) {
        const std::string& arg = args[i];
        if (arg == "--") break;
        if (arg.starts_with("--")) {
            std::string name = arg.substr(
                2, arg.find('=') == std::string::npos ? std::string::npos : arg.find('=') - 2);
            const CLI::Option* o = findLong(at, name);
            if (o == nullptr) {
                std::string hint = strings::didYouMean("--" + name, optionNames(at));
                return "'" + path + "' has no option '--" + name + "'" +
                       (hint.empty() ? "" : "; did you mean '" + hint + "'?");
            }
            if (o->get_items_expected_max() > 0 && arg.find('=') == std::string::npos) ++i;
            continue;
        }
        if (arg.starts_with("-")) continue;
        auto named = at->get_subcommands([&](const CLI::App* s) { return s->check_name(arg); });
        if (!named.empty()) {
            at = named.front();
            path += " " + arg;
            positional_seen = false;
            continue;
        }
        auto subs = at->get_subcommands(std::function<bool(const CLI::App*)>());
        bool takes_positionals = false;
        for (const CLI::Option* o : at->get_options())
            takes_positionals = takes_positionals || o->get_positional();
        if (!subs.empty() && !positional_seen && !takes_positionals) {
            std::vector<std::string> names;
            for (const CLI::App* s : subs) names.push_back(s->get_name());
            std::string hint = strings::didYouMean(arg, names);
            return "'" + path + "' has no command '" + arg + "'" +
                   (hint.empty() ? "; the commands are " + strings::join(names, ", ")
                                 : "; did you mean '" + hint + "'?");
        }
        positional_seen = true;
    }
    if (at->get_require_subcommand_min() > 0) {
        std::vector<std::string> names;
        for (const CLI::App* s : at->get_subcommands(std::function<bool(const CLI::App*)>()))
            names.push_back(s->get_name());
        return "'" + path + "' needs a command: " + strings::join(names, ", ");
    }
    return "";
}

}  // namespace

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
        std::string parents;
        while (!chosen->get_subcommands().empty()) {
            parents += (parents.empty() ? "" : " ") + chosen->get_name();
            chosen = chosen->get_subcommands().front();
        }
        // The usage line names the whole command: "Usage: pkgmgr stage [OPTIONS]".
        out << chosen->help(parents);
        return 0;
    } catch (const CLI::CallForAllHelp&) {
        out << app.help("", CLI::AppFormatMode::All);
        return 0;
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) {
            out << app.help();
            return 0;
        }
        std::string plain = explain(app, args, program);
        err << program << ": " << (plain.empty() ? std::string(e.what()) : plain) << "\n";
        err << "run '" << program << " --help' for usage\n";
        return exitCode(Errc::Invalid);
    }
    return std::nullopt;
}

void configureLogging(const LogOptions& options) {
    log::Level level = log::Level::Info;
    log::Format format = log::Format::Text;
    log::parseLevel(options.level, level);
    log::parseFormat(options.format, format);
    log::configure(level, format);
}

int run(const std::function<int()>& action, const LogOptions& options, std::string_view program,
        std::ostream& err) {
    configureLogging(options);
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
