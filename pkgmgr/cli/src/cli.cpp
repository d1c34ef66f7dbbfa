#include "pkgmgr/cli.hpp"


#include "cli_internal.hpp"
#include "core/cli.hpp"

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
    hoist::cli::addLogOptions(app, cli.log);
    addStoreCommands(cli);
    addSetCommands(cli);
    addPublishCommands(cli);
    addNodeCommands(cli);

    if (auto done = hoist::cli::parse(app, args, "pkgmgr", out, err)) return *done;
    return hoist::cli::run(cli.action, cli.log, "pkgmgr", err);
}

}  // namespace hoist::pkgmgr
