#pragma once

#include "api.hpp"
#include "core/http_server.hpp"
#include "event_stream.hpp"

namespace hoist::deploy_coordinator {

/// The Content-Security-Policy the page is served with: its own script and style only, no
/// inline script, requests to this origin only, never framed.
inline constexpr const char* kUiContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Registers the live status page (GET /ui, its assets under /ui/, GET / pointing there) and
/// its feed, GET /v1/events/stream (admin or monitor token; README "Live status page").
void registerUiRoutes(http::Server& server, EventHub& hub, const Tokens& tokens);

}  // namespace hoist::deploy_coordinator
