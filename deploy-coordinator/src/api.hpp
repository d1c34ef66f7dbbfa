#pragma once

#include <string>

#include "core/daemon.hpp"
#include "core/http_server.hpp"
#include "engine.hpp"
#include "monitor_watch.hpp"

namespace hoist::deploy_coordinator {

/// Bearer tokens, read from files at start and again on SIGHUP. Empty node token:
/// registration and pings are open (only with --insecure-no-auth).
struct Tokens {
    daemon::Secret admin;
    daemon::Secret halt;
    daemon::Secret node;
    /// Node routes also need a client certificate the TLS server verified (--node-client-ca).
    bool node_client_cert = false;
};

/// Registers the coordinator's /v1 routes (README.md lists them) on the server.
void registerRoutes(http::Server& server, Engine& engine, MonitorWatch& watch,
                    const Tokens& tokens);

}  // namespace hoist::deploy_coordinator
