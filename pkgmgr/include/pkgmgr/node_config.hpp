#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "pkgmgr/layout.hpp"

namespace hoist::pkgmgr {

/// <root>/node.json: who this node is and whom it talks to. Written by bootstrap (or by
/// hand), read by `pkgmgr serve` and the restart helper. Unknown fields are refused.
/// {"id": "agent-3", "role": "agent", "repository": "http://...", "coordinator": "http://...",
///  "listen": "127.0.0.1:0", "service_manager": "process" | "systemd", "systemd_unit": "...",
///  "trusted_keys": ["keys/release.pub"], "allow_unsigned": false,
///  "token_file": "node.token", "coordinator_token_file": "coordinator.token",
///  "release": "1.0.0"}
/// Paths in it are relative to the root. Tokens live in files (mode 0600), never in node.json.
struct NodeConfig {
    std::string id;
    std::string role;
    std::string repository;
    std::string coordinator;
    std::string listen = "127.0.0.1:0";
    std::string service_manager = "process";
    std::string systemd_unit = "mesos.service";
    std::vector<std::string> trusted_keys;
    bool allow_unsigned = false;
    std::string token_file = "node.token";
    std::string coordinator_token_file;
    /// The release the current generation came from, when known.
    std::string release;

    static Result<NodeConfig> parse(std::string_view text);
    static Result<NodeConfig> load(const NodeLayout& layout);
    std::string toJson() const;
    Result<void> save(const NodeLayout& layout) const;

    /// The PEM text of every trusted key.
    Result<std::vector<std::string>> trustedKeyPems(const NodeLayout& layout) const;
    /// The node's own bearer token (for mutating calls to `pkgmgr serve`); empty if no file.
    Result<std::string> nodeToken(const NodeLayout& layout) const;
    /// The token to present to the coordinator; empty if none is configured.
    Result<std::string> coordinatorToken(const NodeLayout& layout) const;
};

/// The header a node presents its per-node secret in, beside the shared bearer token, on
/// registration, status pings and desired-state asks.
inline constexpr std::string_view kNodeSecretHeader = "Hoist-Node-Secret";

/// This node's secret for the coordinator, in run/coordinator.secret (64 hex characters,
/// mode 0600). The coordinator keeps only its hash from the node's first registration and
/// then takes registrations, pings and asks for this node id only with it, so that the shared
/// node token alone cannot impersonate the node. With `create`, a missing file is written
/// (random, atomically); without, a missing file gives an empty string. Io when the file
/// cannot be read or written, Corrupt when it holds something else than a secret.
Result<std::string> nodeSecret(const NodeLayout& layout, bool create);

}  // namespace hoist::pkgmgr
