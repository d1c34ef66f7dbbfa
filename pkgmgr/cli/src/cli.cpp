#include "pkgmgr/cli.hpp"

#include "cli_internal.hpp"
#include "core/cli.hpp"

namespace hoist::pkgmgr {

NodeLayout Cli::layout() const {
    return NodeLayout::at(root.empty() ? NodeLayout::defaultRoot() : fs::path(root));
}

Result<NodeLayout> Cli::existingLayout() const {
    auto layout = this->layout();
    std::error_code ec;
    for (const auto& marker : {layout.store(), layout.generations(), layout.nodeJson()})
        if (fs::exists(marker, ec)) return layout;
    return hoist::fail(
        Errc::NotFound, "no hoist node root at ", layout.root.string(),
        " (it holds no store/, generations/ or node.json): give --root or HOIST_ROOT; "
        "`pkgmgr add` or `restart-helper bootstrap` makes a new one");
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
