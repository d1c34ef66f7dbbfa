#pragma once

#include <functional>
#include <ostream>
#include <string>

#include <CLI/CLI.hpp>

#include "core/cli.hpp"
#include "core/error.hpp"
#include "pkgmgr/layout.hpp"

namespace hoist::pkgmgr {

/// Shared state of one `pkgmgr` invocation. Each area registers its verbs on `app` and sets
/// `action` from the chosen subcommand's callback; runCli runs it after parsing.
struct Cli {
    CLI::App app{"pkgmgr: the hoist node package manager", "pkgmgr"};
    std::string root;
    bool json = false;
    hoist::cli::LogOptions log;
    std::ostream& out;
    std::ostream& err;
    std::function<int()> action;

    Cli(std::ostream& o, std::ostream& e) : out(o), err(e) {}

    /// --root, else $HOIST_ROOT, else /opt/hoist.
    NodeLayout layout() const;
    /// layout(), for verbs that only read or change an existing node: NotFound "no hoist node
    /// root at X" when the folder holds none of store/, generations/ or node.json, so a
    /// mistyped --root is named and nothing is created there.
    Result<NodeLayout> existingLayout() const;
    /// Prints "pkgmgr: <message>" on err and returns the error's exit code.
    int fail(const Error& error) const;
};

// One function per area; each lives in its folder under src/.
void addStoreCommands(Cli& cli);  // pack add fetch list info remove verify
void addSetCommands(
    Cli& cli);  // check stage activate active generations rollback gc recover keygen release
void addPublishCommands(Cli& cli);  // publish
void addNodeCommands(Cli& cli);     // serve

}  // namespace hoist::pkgmgr
