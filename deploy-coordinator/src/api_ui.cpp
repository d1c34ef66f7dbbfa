#include "api_ui.hpp"

#include <charconv>
#include <string_view>

namespace hoist::deploy_coordinator {

namespace ui {
// Generated at build time from deploy-coordinator/ui/ (tools/cmake/embed_text.cmake).
extern const std::string_view kUiIndexHtml;
extern const std::string_view kUiAppJs;
extern const std::string_view kUiAppCss;
}  // namespace ui

namespace {

using http::ServerReply;
using http::ServerRequest;

/// Who may read: the admin or a monitor (as GET /v1/events). Both tokens are compared every
/// time, so timing says nothing about which one matched.
Result<void> requireReader(const ServerRequest& request, const Tokens& tokens) {
    std::string admin = tokens.admin.value();
    std::string monitor = tokens.halt.value();
    HOIST_TRY(http::requireBearerRole(request, {{"admin", admin}, {"monitor", monitor}}));
    return ok();
}

ServerReply asset(std::string_view body, std::string content_type) {
    auto reply = ServerReply::text(200, std::string(body), std::move(content_type));
    reply.headers.push_back({"Content-Security-Policy", kUiContentSecurityPolicy});
    reply.headers.push_back({"X-Content-Type-Options", "nosniff"});
    reply.headers.push_back({"Referrer-Policy", "no-referrer"});
    reply.headers.push_back({"X-Frame-Options", "DENY"});
    reply.headers.push_back({"Cache-Control", "no-cache"});
    return reply;
}

Result<std::optional<std::int64_t>> lastEventId(const ServerRequest& request) {
    auto header = request.header("Last-Event-ID");
    if (!header || header->empty()) return std::optional<std::int64_t>{};
    std::int64_t id = 0;
    auto [end, ec] = std::from_chars(header->data(), header->data() + header->size(), id);
    if (ec != std::errc() || end != header->data() + header->size() || id < 0)
        return fail(Errc::Invalid, "Last-Event-ID '", header->substr(0, 40),
                    "' is not an audit event id (a non-negative integer)");
    return std::optional<std::int64_t>{id};
}

}  // namespace

void registerUiRoutes(http::Server& server, EventHub& hub, const Tokens& tokens) {
    EventHub* h = &hub;
    const Tokens t = tokens;

    server.route("GET", "/v1/events/stream", [h, t](const ServerRequest& request) {
        if (auto who = requireReader(request, t); !who) return ServerReply::error(who.error());
        auto last = lastEventId(request);
        if (!last) return ServerReply::error(last.error());
        return ServerReply::eventStream(
            [h, resume = *last](http::EventStream stream) { h->subscribe(stream, resume); });
    });

    // The page and its assets hold no data and need no token: everything shown comes from the
    // token-checked API, with the token the user types into the page.
    server.inlineRoute("GET", "/ui/?", [](const ServerRequest&) {
        return asset(ui::kUiIndexHtml, "text/html; charset=utf-8");
    });
    server.inlineRoute("GET", "/ui/app\\.js", [](const ServerRequest&) {
        return asset(ui::kUiAppJs, "text/javascript; charset=utf-8");
    });
    server.inlineRoute("GET", "/ui/app\\.css", [](const ServerRequest&) {
        return asset(ui::kUiAppCss, "text/css; charset=utf-8");
    });
    // Browsers ask for it on every page; nothing to send.
    server.inlineRoute("GET", "/favicon\\.ico",
                       [](const ServerRequest&) { return ServerReply::text(204, ""); });
    server.inlineRoute("GET", "/", [](const ServerRequest&) {
        auto reply = ServerReply::json(302, "{\"see\":\"/ui\"}");
        reply.headers.push_back({"Location", "/ui"});
        return reply;
    });
}

}  // namespace hoist::deploy_coordinator
