#pragma once
// The stream and page routes of a coordinator (registerUiRoutes) on a server of their own,
// bound to a loopback port, for the event stream's tests. Tokens: admin-t, halt-t, node-t.
#include <memory>

#include "api.hpp"
#include "api_ui.hpp"
#include "core/http_server.hpp"
#include "event_stream.hpp"

namespace hoist::deploy_coordinator {

struct UiServer {
    std::unique_ptr<http::Server> server;
    int port = 0;
};

inline Result<UiServer> serveUi(EventHub& hub) {
    http::ServerOptions options;
    options.access_log = false;
    HOIST_ASSIGN(auto server, http::Server::create(options));
    registerUiRoutes(*server, hub,
                     Tokens{std::string("admin-t"), std::string("halt-t"), std::string("node-t")});
    HOIST_ASSIGN(auto port, server->bind());
    return UiServer{std::move(server), port};
}

}  // namespace hoist::deploy_coordinator
