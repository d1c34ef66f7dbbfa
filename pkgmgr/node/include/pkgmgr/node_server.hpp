#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "core/error.hpp"
#include "pkgmgr/layout.hpp"

namespace hoist::pkgmgr {

struct NodeServerOptions {
    NodeLayout layout;
    /// host:port; empty: node.json's "listen".
    std::string listen;
    /// The bearer token for mutating routes; empty: node.json's token_file.
    std::filesystem::path token_file;
    /// The restart-helper binary; empty: $HOIST_RESTART_HELPER, else "restart-helper" beside
    /// this executable, else on PATH.
    std::filesystem::path restart_helper;
    /// Role rules folder; empty: $HOIST_LAYOUTS, else the rules built in.
    std::filesystem::path layouts_dir;
    /// Packages fetched at once by stage.
    int fetch_parallel = 8;
    /// How long a package fetch keeps retrying an unreachable or failing repository
    /// (FetchOptions::retry_for).
    std::chrono::milliseconds fetch_retry_for{std::chrono::minutes(5)};
    /// Generations (besides the current one) whose packages count as in use.
    int keep = 2;
    /// How long stage, delete and restart wait for the node lock before answering 409.
    std::chrono::milliseconds lock_wait{2000};
    /// Announce this node to the coordinator (POST /v1/nodes/register) at start.
    bool register_node = true;
    /// Pull mode when above zero: register with "mode": "pull", then ask the coordinator
    /// (GET /v1/nodes/<id>/desired) this often and apply the answer the way POST /v1/stage
    /// and POST /v1/restart would. Zero: push mode (the coordinator calls this endpoint).
    std::chrono::milliseconds pull_interval{0};
    /// The address registered with the coordinator; empty: http(s)://HOST:PORT as bound.
    std::string advertise_url;
    /// Both set: serve HTTPS only. A coordinator in node.json must then be https:// too.
    std::string tls_cert;
    std::string tls_key;
    /// Mutual TLS: every caller (the coordinator) presents a certificate signed by this CA.
    std::string tls_client_ca;
};

/// `pkgmgr serve`: the node endpoint (DESIGN.md "Node endpoint"). Reads node.json, serves the
/// routes, launches the restart helper detached for restarts, delivers queued status pings in
/// the background and registers with the coordinator when one is configured; in pull mode it
/// also asks the coordinator for its desired state on a timer and applies it itself.
class NodeServer {
public:
    /// Reads node.json and the token; Invalid when there is no token (every mutating route
    /// needs one).
    static Result<std::unique_ptr<NodeServer>> create(NodeServerOptions options);
    ~NodeServer();
    NodeServer(const NodeServer&) = delete;
    NodeServer& operator=(const NodeServer&) = delete;

    /// Binds; returns the port.
    Result<int> bind();
    Result<void> writePortFile(const std::filesystem::path& path) const;
    /// Serves (and runs the background work) until stop().
    void run();
    /// SIGHUP: reads the token file and the TLS files again; on an error the old ones stay
    /// (the first error is returned). Thread-safe.
    Result<void> reload();
    /// Thread-safe.
    void stop();

private:
    NodeServer();
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace hoist::pkgmgr
