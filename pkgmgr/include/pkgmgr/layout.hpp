#pragma once

#include <filesystem>

#include "core/error.hpp"

namespace hoist::pkgmgr {

namespace fs = std::filesystem;

/// The node root (DESIGN.md "Node root"; layouts/node-layout.md). All paths derive from root.
struct NodeLayout {
    fs::path root;

    static NodeLayout at(const fs::path& root) { return NodeLayout{root}; }
    /// --root, else $HOIST_ROOT, else /opt/hoist.
    static fs::path defaultRoot();

    fs::path store() const { return root / "store"; }
    fs::path storeEntry(const std::string& sha256) const { return store() / sha256; }
    fs::path downloads() const { return root / "downloads"; }
    fs::path generations() const { return root / "generations"; }
    fs::path generation(long number) const { return generations() / std::to_string(number); }
    fs::path current() const { return root / "current"; }
    fs::path txn() const { return root / "txn.json"; }
    fs::path outbox() const { return root / "outbox"; }
    fs::path state() const { return root / "state"; }
    fs::path nodeJson() const { return root / "node.json"; }
    fs::path lock() const { return root / "lock"; }
    fs::path keys() const { return root / "keys"; }
    fs::path releases() const { return root / "releases"; }
    fs::path run() const { return root / "run"; }
    /// This node's secret for the coordinator (mode 0600; see nodeSecret in node_config.hpp).
    fs::path coordinatorSecret() const { return run() / "coordinator.secret"; }

    /// Creates root and every folder above (idempotent).
    Result<void> ensure() const;
};

}  // namespace hoist::pkgmgr
