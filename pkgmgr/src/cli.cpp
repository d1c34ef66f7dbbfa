#include "pkgmgr/cli.hpp"

#include <algorithm>

#include "cli_internal.hpp"
#include "core/log.hpp"

namespace hoist::pkgmgr {

NodeLayout Cli::layout() const {
    return NodeLayout::at(root.empty() ? NodeLayout::defaultRoot() : fs::path(root));
}

int Cli::fail(const Error& error) const {
    err << "pkgmgr: " << error.describe() << "\n";
    return exitCode(error.code);
}

int runCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    Cli cli(out, err);
    auto& app = cli.app;
    app.require_subcommand(1);
    app.add_option("--root", cli.root, "node root (default: $HOIST_ROOT or /opt/hoist)");
    app.add_option("--log-level", cli.log_level, "debug, info, warn or error")
        ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
    app.add_option("--log-format", cli.log_format, "text or json")
        ->check(CLI::IsMember({"text", "json"}));
    addStoreCommands(cli);
    addSetCommands(cli);
    addPublishCommands(cli);
    addNodeCommands(cli);

    // CLI11 takes a vector in reverse order, without argv[0].
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    if (!reversed.empty()) reversed.pop_back();
    try {
        app.parse(reversed);
    } catch (const CLI::CallForHelp&) {
        out << app.help();
        return 0;
    } catch (const CLI::CallForAllHelp&) {
        out << app.help("", CLI::AppFormatMode::All);
        return 0;
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) {
            out << app.help();
            return 0;
        }
        err << "pkgmgr: " << e.what() << "\n";
        err << "run 'pkgmgr --help' for usage\n";
        return exitCode(Errc::Invalid);
    }
    log::Level level = log::Level::Info;
    log::Format format = log::Format::Text;
    log::parseLevel(cli.log_level, level);
    log::parseFormat(cli.log_format, format);
    log::configure(level, format);
    if (!cli.action) {
        err << "pkgmgr: no command given; run 'pkgmgr --help'\n";
        return exitCode(Errc::Invalid);
    }
    try {
        return cli.action();
    } catch (const std::exception& e) {
        err << "pkgmgr: internal error: " << e.what() << "\n";
        return exitCode(Errc::Internal);
    }
}

}  // namespace hoist::pkgmgr
