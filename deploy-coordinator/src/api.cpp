#include "api.hpp"

#include "halt_body.hpp"

#include <cctype>
#include <charconv>

#include "core/crypto.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "node_messages.hpp"

namespace hoist::deploy_coordinator {

namespace {

using http::ServerReply;
using http::ServerRequest;

/// Which token the caller presented: "admin", "monitor" or "node"; Unauthorized otherwise.
Result<std::string> caller(const ServerRequest& request, const Tokens& tokens,
                           std::initializer_list<std::string_view> allowed) {
    auto header = request.header("Authorization");
    if (!header) return fail(Errc::Unauthorized, "missing bearer token");
    std::string_view value = *header;
    if (!value.starts_with("Bearer "))
        return fail(Errc::Unauthorized, "the Authorization header is not a bearer token");
    value.remove_prefix(7);
    // Every candidate is compared, matched or not, so timing says nothing about which one.
    std::string who;
    for (auto role : allowed) {
        const std::string& token = role == "admin"     ? tokens.admin
                                   : role == "monitor" ? tokens.halt
                                                       : tokens.node;
        if (!token.empty() && crypto::constantTimeEquals(value, token) && who.empty()) who = role;
    }
    if (who.empty()) return fail(Errc::Unauthorized, "wrong bearer token for this route");
    return who;
}

Result<std::int64_t> queryInt(const ServerRequest& request, std::string_view name,
                              std::int64_t fallback) {
    auto text = request.queryParam(name);
    if (!text) return fallback;
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (ec != std::errc() || end != text->data() + text->size() || value < 0)
        return fail(Errc::Invalid, "query parameter '", name, "' must be a non-negative integer");
    return value;
}

ServerReply reply(const Result<std::string>& result, int status = 200) {
    if (!result) return ServerReply::error(result.error());
    return ServerReply::json(status, *result);
}

/// A deployment request; a rehearsal's (with `inject`) also takes "inject".
Result<StartRequest> parseStart(const std::string& body, const std::string& actor,
                                std::string* inject = nullptr) {
    std::string_view ctx = inject ? "rehearsal request" : "deployment request";
    HOIST_ASSIGN(auto doc, json::parseObject(body, ctx));
    if (inject)
        HOIST_TRY(json::rejectUnknown(
            doc,
            {"version", "max_parallel", "max_failures", "auto_revert", "min_healthy_ms",
             "node_deadline_ms", "progress_deadline_ms", "inject"},
            ctx));
    else
        HOIST_TRY(
            json::rejectUnknown(doc,
                                {"version", "max_parallel", "max_failures", "auto_revert",
                                 "min_healthy_ms", "node_deadline_ms", "progress_deadline_ms"},
                                ctx));
    if (inject) {
        HOIST_ASSIGN(auto text, json::optString(doc, "inject", ctx));
        *inject = text.value_or("");
    }
    StartRequest r;
    r.actor = actor;
    HOIST_ASSIGN(r.version, json::getString(doc, "version", ctx));
    auto mp = doc.FindMember("max_parallel");
    if (mp != doc.MemberEnd()) {
        if (mp->value.IsInt64())
            r.max_parallel = std::to_string(mp->value.GetInt64());
        else if (mp->value.IsString())
            r.max_parallel = mp->value.GetString();
        else
            return fail(Errc::Invalid, ctx,
                        ": field 'max_parallel' must be a number or a percentage string");
    }
    HOIST_ASSIGN(auto mf, json::optInt(doc, "max_failures", ctx));
    HOIST_ASSIGN(auto ar, json::optBool(doc, "auto_revert", ctx));
    HOIST_ASSIGN(auto mh, json::optInt(doc, "min_healthy_ms", ctx));
    HOIST_ASSIGN(auto nd, json::optInt(doc, "node_deadline_ms", ctx));
    HOIST_ASSIGN(auto pd, json::optInt(doc, "progress_deadline_ms", ctx));
    r.max_failures = mf.value_or(r.max_failures);
    r.auto_revert = ar.value_or(false);
    // Added to timestamps by the engine: bounded so it cannot overflow, and to what a soak
    // of one wave can sensibly ask.
    constexpr std::int64_t kMaxMinHealthyMs = 24 * 3600 * 1000;
    if (mh && (*mh < 0 || *mh > kMaxMinHealthyMs))
        return fail(Errc::Invalid, ctx, ": field 'min_healthy_ms' must be 0 to ", kMaxMinHealthyMs,
                    " (24 h), not ", *mh);
    r.min_healthy_ms = mh.value_or(r.min_healthy_ms);
    r.node_deadline_ms = nd.value_or(r.node_deadline_ms);
    r.progress_deadline_ms = pd.value_or(r.progress_deadline_ms);
    return r;
}

/// Forwards a call to the provisioner and hands its reply back as it came.
ServerReply forward(Engine& engine, const std::string& method, const std::string& path,
                    const std::string& body) {
    const auto& options = engine.options();
    if (options.provisioner_url.empty())
        return ServerReply::error(
            Error{Errc::Invalid,
                  "no provisioner configured (start the coordinator with --provisioner URL)", 0});
    thread_local http::Client client;
    http::Request request;
    request.method = method;
    request.url = http::joinUrl(options.provisioner_url, path);
    request.body = body;
    request.timeout = std::chrono::seconds(120);
    if (!options.provisioner_token.empty())
        request.headers.push_back(http::bearer(options.provisioner_token.value()));
    if (!body.empty()) request.headers.push_back({"Content-Type", "application/json"});
    auto response = client.send(request);
    if (!response) return ServerReply::error(withContext(response.error(), "provisioner"));
    return ServerReply::json(static_cast<int>(response->status), response->body);
}

}  // namespace

void registerRoutes(http::Server& server, Engine& engine, MonitorWatch& watch,
                    const Tokens& tokens) {
    Engine* e = &engine;
    MonitorWatch* mw = &watch;
    const Tokens t = tokens;

    // A body is read only from a caller holding one of the coordinator's tokens (each route
    // checks which one it wants): without one, nobody makes the server read a megabyte. Open
    // registration (no node token) leaves nodes nothing to present, so then nothing is checked.
    if (!t.node.empty())
        server.beforeBody([t](const ServerRequest& request) -> Result<void> {
            auto who = caller(request, t, {"admin", "monitor", "node"});
            if (!who) return std::unexpected(who.error());
            return ok();
        });

    auto nodeAuth = [t](const ServerRequest& request) -> Result<std::string> {
        if (t.node_client_cert && !request.client_certificate)
            return fail(Errc::Unauthorized,
                        "node routes need a TLS client certificate signed by the coordinator's "
                        "--node-client-ca");
        if (t.node.empty()) return std::string("node");
        return caller(request, t, {"node", "admin"});
    };

    server.route("POST", "/v1/nodes/register", [e, nodeAuth](const ServerRequest& request) {
        if (auto who = nodeAuth(request); !who) return ServerReply::error(who.error());
        auto node = parseRegistration(request.body);
        if (!node) return ServerReply::error(node.error());
        return reply(e->registerNode(std::move(*node)));
    });

    server.route(
        "POST", R"(/v1/nodes/([^/]+)/status)", [e, nodeAuth](const ServerRequest& request) {
            if (auto who = nodeAuth(request); !who) return ServerReply::error(who.error());
            auto ping = pkgmgr::StatusPing::fromJson(request.body);
            if (!ping) return ServerReply::error(ping.error());
            if (ping->node != request.matches.at(1))
                return ServerReply::error(400, "status ping: field 'node' ('" + ping->node +
                                                   "') differs from the node in the path ('" +
                                                   request.matches.at(1) + "')");
            if (auto applied = e->onPing(*ping); !applied)
                return ServerReply::error(applied.error());
            return ServerReply::json(200, "{\"ok\":true}");
        });

    server.route("GET", R"(/v1/nodes/([^/]+)/desired)",
                 [e, nodeAuth](const ServerRequest& request) {
                     if (auto who = nodeAuth(request); !who) return ServerReply::error(who.error());
                     std::optional<std::int64_t> generation;
                     if (request.queryParam("generation")) {
                         auto g = queryInt(request, "generation", 0);
                         if (!g) return ServerReply::error(g.error());
                         generation = *g;
                     }
                     return reply(e->desired(request.matches.at(1), generation));
                 });

    server.route("GET", "/v1/nodes", [e, t](const ServerRequest& request) {
        if (auto who = caller(request, t, {"admin", "monitor"}); !who)
            return ServerReply::error(who.error());
        return ServerReply::json(200, e->nodesJson());
    });

    server.route("POST", "/v1/deployments", [e, t](const ServerRequest& request) {
        auto who = caller(request, t, {"admin"});
        if (!who) return ServerReply::error(who.error());
        auto start = parseStart(request.body, *who);
        if (!start) return ServerReply::error(start.error());
        return reply(e->startDeployment(*start), 201);
    });

    server.route("POST", "/v1/rehearsals", [e, t](const ServerRequest& request) {
        auto who = caller(request, t, {"admin", "monitor"});
        if (!who) return ServerReply::error(who.error());
        std::string inject;
        auto start = parseStart(request.body, *who, &inject);
        if (!start) return ServerReply::error(start.error());
        return reply(e->rehearse(*start, inject));
    });

    server.route("GET", "/v1/deployments", [e, t](const ServerRequest& request) {
        if (auto who = caller(request, t, {"admin", "monitor"}); !who)
            return ServerReply::error(who.error());
        auto limit = queryInt(request, "limit", 20);
        if (!limit) return ServerReply::error(limit.error());
        return reply(e->deploymentsJson(static_cast<int>(*limit)));
    });

    server.route("GET", R"(/v1/deployments/([^/]+))", [e, t](const ServerRequest& request) {
        if (auto who = caller(request, t, {"admin", "monitor"}); !who)
            return ServerReply::error(who.error());
        auto nodes = queryInt(request, "nodes", 1);
        auto events = queryInt(request, "events", 50);
        if (!nodes) return ServerReply::error(nodes.error());
        if (!events) return ServerReply::error(events.error());
        return reply(
            e->deploymentJson(request.matches.at(1), *nodes != 0, static_cast<int>(*events)));
    });

    server.route(
        "POST", R"(/v1/deployments/([^/]+)/(pause|resume|abort|rollback))",
        [e, t](const ServerRequest& request) {
            auto who = caller(request, t, {"admin"});
            if (!who) return ServerReply::error(who.error());
            std::optional<std::int64_t> max_failures;
            if (!request.body.empty()) {
                auto doc = json::parseObject(request.body, "request");
                if (!doc) return ServerReply::error(doc.error());
                if (auto bad = json::rejectUnknown(*doc, {"max_failures"}, "request"); !bad)
                    return ServerReply::error(bad.error());
                auto mf = json::optInt(*doc, "max_failures", "request");
                if (!mf) return ServerReply::error(mf.error());
                max_failures = *mf;
            }
            return reply(
                e->command(request.matches.at(1), request.matches.at(2), max_failures, *who));
        });

    server.route("POST", "/v1/rollbacks", [e, t](const ServerRequest& request) {
        auto who = caller(request, t, {"admin"});
        if (!who) return ServerReply::error(who.error());
        constexpr std::string_view ctx = "rollback request";
        auto doc = json::parseObject(request.body, ctx);
        if (!doc) return ServerReply::error(doc.error());
        if (auto bad = json::rejectUnknown(*doc, {"to"}, ctx); !bad)
            return ServerReply::error(bad.error());
        auto to = json::getString(*doc, "to", ctx);
        if (!to) return ServerReply::error(to.error());
        return reply(e->rollback(std::nullopt, *to, *who), 201);
    });

    server.route("POST", "/v1/halt", [e, t](const ServerRequest& request) {
        auto who = caller(request, t, {"monitor", "admin"});
        if (!who) return ServerReply::error(who.error());
        // Fail safe: whatever the token holder sends halts (halt_body.hpp).
        HaltNotice notice = readHaltBody(request.body, *who);
        std::string note = notice.kind;
        if (!notice.warning.empty()) note += "; " + notice.warning;
        if (!notice.kept_body.empty()) note += "; body: " + notice.kept_body;
        if (notice.resolved) return reply(e->resolveHold(notice.source, *who, note));
        return reply(e->halt(notice.source, notice.reason, *who,
                             {notice.alerts_json, note, notice.warning}),
                     201);
    });

    // The dead man's switch: any body (Alertmanager's Watchdog notification included) is a beat.
    server.route(
        "POST", R"(/v1/monitors/([^/]+)/heartbeat)", [mw, t](const ServerRequest& request) {
            auto who = caller(request, t, {"monitor", "admin"});
            if (!who) return ServerReply::error(who.error());
            return reply(mw->beat(request.matches.at(1), request.queryParam("allowance"), *who));
        });

    server.route("GET", "/v1/monitors", [mw, t](const ServerRequest& request) {
        if (auto who = caller(request, t, {"admin", "monitor"}); !who)
            return ServerReply::error(who.error());
        return ServerReply::json(200, mw->json());
    });

    server.route("DELETE", R"(/v1/monitors/([^/]+))", [mw, t](const ServerRequest& request) {
        auto who = caller(request, t, {"admin"});
        if (!who) return ServerReply::error(who.error());
        if (auto forgot = mw->forget(request.matches.at(1), *who); !forgot)
            return ServerReply::error(forgot.error());
        return ServerReply::json(200, R"({"forgotten":true})");
    });

    server.route("GET", "/v1/halt", [e, t](const ServerRequest& request) {
        if (auto who = caller(request, t, {"admin", "monitor"}); !who)
            return ServerReply::error(who.error());
        return ServerReply::json(200, e->holdsJson());
    });

    server.route("DELETE", "/v1/halt", [e, t](const ServerRequest& request) {
        auto who = caller(request, t, {"admin"});
        if (!who) return ServerReply::error(who.error());
        return reply(e->clearHolds(std::nullopt, *who));
    });

    server.route("DELETE", R"(/v1/halt/(.+))", [e, t](const ServerRequest& request) {
        auto who = caller(request, t, {"admin"});
        if (!who) return ServerReply::error(who.error());
        return reply(e->clearHolds(request.matches.at(1), *who));
    });

    server.route("GET", "/v1/plan", [e, t](const ServerRequest& request) {
        if (auto who = caller(request, t, {"admin", "monitor"}); !who)
            return ServerReply::error(who.error());
        auto version = request.queryParam("version");
        if (!version || version->empty())
            return ServerReply::error(400, "plan: query parameter 'version' is required");
        return reply(e->planJson(*version, request.queryParam("max_parallel").value_or("1")));
    });

    server.route("GET", "/v1/events", [e, t](const ServerRequest& request) {
        if (auto who = caller(request, t, {"admin", "monitor"}); !who)
            return ServerReply::error(who.error());
        auto limit = queryInt(request, "limit", 100);
        if (!limit) return ServerReply::error(limit.error());
        return reply(e->eventsJson(static_cast<int>(*limit)));
    });

    server.route("POST", "/v1/cluster/nodes", [e, t](const ServerRequest& request) {
        auto who = caller(request, t, {"admin"});
        if (!who) return ServerReply::error(who.error());
        constexpr std::string_view ctx = "node request";
        auto doc = json::parseObject(request.body, ctx);
        if (!doc) return ServerReply::error(doc.error());
        if (auto bad = json::rejectUnknown(*doc, {"role", "count", "idempotency_key"}, ctx); !bad)
            return ServerReply::error(bad.error());
        auto role = json::getString(*doc, "role", ctx);
        auto count = json::optInt(*doc, "count", ctx);
        auto key = json::optString(*doc, "idempotency_key", ctx);
        if (!role) return ServerReply::error(role.error());
        if (!count) return ServerReply::error(count.error());
        if (!key) return ServerReply::error(key.error());
        std::int64_t n = count->value_or(1);
        if (n < 1 || n > 1000)
            return ServerReply::error(400, "node request: field 'count' must be 1 to 1000");
        if (auto held = e->requireNoHold("provisioning"); !held)
            return ServerReply::error(held.error());
        auto release = e->currentRelease();
        if (!release) return ServerReply::error(release.error());
        json::Writer w;
        w.beginObject()
            .field("role", *role)
            .field("count", n)
            .field("idempotency_key", key->value_or(crypto::randomHex(16)));
        // New nodes join on the cluster's current release; with none known yet, the
        // provisioner's own default (--release) applies.
        if (!release->empty()) w.field("release", *release);
        w.endObject();
        auto result = forward(*e, "POST", "/v1/nodes", w.str());
        (void)e->recordEvent({0, 0, *who, "provision", "", "",
                              detail::concat(n, " ", *role, " node(s): HTTP ", result.status)});
        return result;
    });

    server.route("DELETE", R"(/v1/cluster/nodes/([^/]+))", [e, t](const ServerRequest& request) {
        auto who = caller(request, t, {"admin"});
        if (!who) return ServerReply::error(who.error());
        if (auto held = e->requireNoHold("decommissioning"); !held)
            return ServerReply::error(held.error());
        const std::string& node = request.matches.at(1);
        auto result = forward(*e, "DELETE", "/v1/nodes/" + http::urlEncode(node), "");
        (void)e->recordEvent(
            {0, 0, *who, "decommission", "", node, detail::concat("HTTP ", result.status)});
        if (result.status >= 200 && result.status < 300) (void)e->markRemoved(node, *who);
        return result;
    });

    server.onMetrics([e](metrics::Registry& registry) { e->collectMetrics(registry); });
}

}  // namespace hoist::deploy_coordinator
