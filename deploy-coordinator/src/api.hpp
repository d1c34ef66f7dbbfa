#pragma once

#include <string>

#include "core/http_server.hpp"
#include "engine.hpp"
#include "monitor_watch.hpp"

namespace hoist::deploy_coordinator {

/// Bearer tokens, read from files at start. Empty node token: registration and pings are open.
struct Tokens {
    std::string admin;
    std::string halt;
    std::string node;
};

/// Registers the coordinator's /v1 routes (README.md lists them) on the server.
void registerRoutes(http::Server& server, Engine& engine, MonitorWatch& watch,
                    const Tokens& tokens);

}  // namespace hoist::deploy_coordinator
