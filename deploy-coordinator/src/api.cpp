#include "api.hpp"

#include "halt_body.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "core/crypto.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "node_messages.hpp"
#include "pkgmgr/node_config.hpp"

namespace hoist::deploy_coordinator {

namespace {

using http::ServerReply;
using http::ServerRequest;

/// Which token the caller presented: "admin", "monitor" or "node"; Unauthorized otherwise.
Result<std::string> caller(const ServerRequest& request, const Tokens& tokens,
                           std::initializer_list<std::string_view> allowed) {
    std::string admin = tokens.admin.value();
    std::string halt = tokens.halt.value();
    std::string node = tokens.node.value();
    auto has = [&](std::string_view role) {
        return std::find(allowed.begin(), allowed.end(), role) != allowed.end();
    };
    return http::requireBearerRole(request,
                                   {{"admin", has("admin") ? admin : std::string_view()},
                                    {"monitor", has("monitor") ? halt : std::string_view()},
                                    {"node", has("node") ? node : std::string_view()}});
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

/// The request's metric gates: "gates" (["NAME: QUERY OP N [for D]"]), "prometheus",
/// "gate_error_grace_ms", "gate_on_fail"; fields left out come from the coordinator's flags.
Result<void> parseStartGates(const json::Value& doc, std::string_view ctx, GateConfig& gates) {
    HOIST_ASSIGN(auto texts, json::optStringArray(doc, "gates", ctx));
    HOIST_ASSIGN(auto prometheus, json::optString(doc, "prometheus", ctx));
    HOIST_ASSIGN(auto grace, json::optInt(doc, "gate_error_grace_ms", ctx));
    HOIST_ASSIGN(auto on_fail, json::optString(doc, "gate_on_fail", ctx));
    for (const auto& text : texts) {
        HOIST_ASSIGN(auto gate, GateSpec::parse(text));
        gates.gates.push_back(std::move(gate));
    }
    if (gates.gates.empty() && (prometheus || grace || on_fail))
        return fail(Errc::Invalid, ctx,
                    ": fields 'prometheus', 'gate_error_grace_ms' and 'gate_on_fail' need 'gates'");
    gates.prometheus = prometheus.value_or("");
    gates.error_grace_ms = grace.value_or(-1);
    gates.on_fail = on_fail.value_or("");
    return ok();
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
             "node_deadline_ms", "progress_deadline_ms", "inject", "gates", "prometheus",
             "gate_error_grace_ms", "gate_on_fail"},
            ctx));
    else
        HOIST_TRY(
            json::rejectUnknown(doc,
                                {"version", "max_parallel", "max_failures", "auto_revert",
                                 "min_healthy_ms", "node_deadline_ms", "progress_deadline_ms",
                                 "gates", "prometheus", "gate_error_grace_ms", "gate_on_fail"},
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
    HOIST_TRY(parseStartGates(doc, ctx, r.gates));
    return r;
}

/// The request's Idempotency-Key header: "" when absent; Invalid when it is not 1-128
/// characters of a-z A-Z 0-9 . _ : -.
Result<std::string> idempotencyKey(const ServerRequest& request) {
    auto key = request.header("Idempotency-Key");
    if (!key) return std::string();
    bool good = !key->empty() && key->size() <= 128;
    for (char c : *key)
        good = good && (std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '_' ||
                        c == ':' || c == '-');
    if (!good)
        return fail(Errc::Invalid,
                    "header 'Idempotency-Key' must be 1 to 128 characters of a-z A-Z 0-9 . _ : -");
    return std::string(*key);
}

/// A retry of a start that already happened: the deployment it started, as it was answered.
/// Conflict when the key started a deployment of another version.
std::optional<ServerReply> replayStart(Engine& engine, const std::string& key,
                                       const std::string& version) {
    auto prior = engine.replayIdempotent(key);
    if (!prior) return ServerReply::error(prior.error());
    if (!*prior) return std::nullopt;
    if (!version.empty()) {
        auto doc = json::parseObject(**prior, "deployment");
        auto v = doc ? json::getString(*doc, "version", "deployment") : Result<std::string>("");
        if (v && *v != version)
            return ServerReply::error(Error{
                Errc::Conflict,
                detail::concat("idempotency key '", key, "' already started a deployment of ", *v,
                               ", not ", version, " (use a new key for a new deployment)"),
                0});
    }
    return ServerReply::json(201, **prior);
}

/// A body a tokenless caller may send under open registration: at most this many bytes, with
/// the length declared up front (a registration or a ping is well under 1 KiB).
constexpr std::uint64_t kOpenNodeBodyLimit = 16 * 1024;

/// A node's own message: POST /v1/nodes/register or POST /v1/nodes/{node}/status.
bool isNodeMessage(const ServerRequest& request) {
    if (request.method != "POST") return false;
    std::string_view path = request.path;
    if (path == "/v1/nodes/register") return true;
    constexpr std::string_view kPrefix = "/v1/nodes/";
    constexpr std::string_view kSuffix = "/status";
    if (!path.starts_with(kPrefix) || !path.ends_with(kSuffix)) return false;
    auto node = path.substr(kPrefix.size(), path.size() - kPrefix.size() - kSuffix.size());
    return !node.empty() && node.find('/') == std::string_view::npos;
}

Result<void> withinOpenNodeLimit(const ServerRequest& request) {
    auto length = request.header("Content-Length");
    std::uint64_t declared = 0;
    if (length) {
        auto [end, ec] = std::from_chars(length->data(), length->data() + length->size(), declared);
        if (ec != std::errc() || end != length->data() + length->size()) length.reset();
    }
    if (!length || declared > kOpenNodeBodyLimit)
        return fail(Errc::Invalid,
                    "without a token, a node message must declare its length "
                    "(Content-Length, no chunked body) and be at most ",
                    kOpenNodeBodyLimit, " bytes");
    return ok();
}

/// The reason an admin gives to forget a node: ?reason=... or a JSON body {"reason": "..."}.
Result<std::string> forgetReason(const ServerRequest& request) {
    std::string reason = request.queryParam("reason").value_or("");
    if (reason.empty() && !request.body.empty()) {
        constexpr std::string_view ctx = "node forget request";
        HOIST_ASSIGN(auto doc, json::parseObject(request.body, ctx));
        HOIST_TRY(json::rejectUnknown(doc, {"reason"}, ctx));
        HOIST_ASSIGN(reason, json::getString(doc, "reason", ctx));
    }
    if (reason.empty())
        return fail(Errc::Invalid,
                    "node forget: a reason is required (?reason=TEXT or {\"reason\": TEXT})");
    if (reason.size() > 1024)
        return fail(Errc::Invalid, "node forget: the reason exceeds 1024 bytes");
    return reason;
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
    // checks which one it wants): without one, nobody makes the server read a megabyte.
    // Open registration (no node token) leaves nodes nothing to present: a caller without a
    // token may then send only a node's own messages, with a declared length of at most
    // kOpenNodeBodyLimit (a chunked body is refused before any of it is read). What such
    // callers keep buffered at once is bounded by the server's body budget.
    server.beforeBody([t](const ServerRequest& request) -> Result<void> {
        auto who = caller(request, t, {"admin", "monitor", "node"});
        if (who) return ok();
        if (!t.node.empty()) return std::unexpected(who.error());
        if (!isNodeMessage(request)) return std::unexpected(who.error());
        return withinOpenNodeLimit(request);
    });

    auto nodeAuth = [t](const ServerRequest& request) -> Result<std::string> {
        if (t.node_client_cert && !request.client_certificate)
            return fail(Errc::Unauthorized,
                        "node routes need a TLS client certificate signed by the coordinator's "
                        "--node-client-ca");
        if (t.node.empty()) {
            if (caller(request, t, {"admin"})) return std::string("admin");
            return std::string("node");
        }
        return caller(request, t, {"node", "admin"});
    };
    auto credential = [](const ServerRequest& request, const std::string& who) {
        return Engine::NodeCredential{
            who == "admin", request.header(pkgmgr::kNodeSecretHeader).value_or(std::string())};
    };

    server.route("POST", "/v1/nodes/register",
                 [e, nodeAuth, credential](const ServerRequest& request) {
                     auto who = nodeAuth(request);
                     if (!who) return ServerReply::error(who.error());
                     auto node = parseRegistration(request.body);
                     if (!node) return ServerReply::error(node.error());
                     return reply(e->registerNode(std::move(*node), credential(request, *who)));
                 });

    // `cluster node forget ID`: the registry row goes (a bogus registration, a node gone for
    // good), audited with the admin's reason (?reason=... or {"reason": "..."}).
    server.route("DELETE", R"(/v1/nodes/([^/]+))", [e, t](const ServerRequest& request) {
        auto who = caller(request, t, {"admin"});
        if (!who) return ServerReply::error(who.error());
        auto reason = forgetReason(request);
        if (!reason) return ServerReply::error(reason.error());
        const std::string& node = request.matches.at(1);
        if (auto forgot = e->forgetNode(node, *who, *reason); !forgot)
            return ServerReply::error(forgot.error());
        json::Writer w;
        w.beginObject().field("node", node).field("forgotten", true).endObject();
        return ServerReply::json(200, w.str());
    });

    server.route(
        "POST", R"(/v1/nodes/([^/]+)/status)",
        [e, nodeAuth, credential](const ServerRequest& request) {
            auto who = nodeAuth(request);
            if (!who) return ServerReply::error(who.error());
            if (auto bound = e->checkNodeSecret(request.matches.at(1), credential(request, *who));
                !bound)
                return ServerReply::error(bound.error());
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

    server.route(
        "GET", R"(/v1/nodes/([^/]+)/desired)",
        [e, nodeAuth, credential](const ServerRequest& request) {
            auto who = nodeAuth(request);
            if (!who) return ServerReply::error(who.error());
            if (auto bound = e->checkNodeSecret(request.matches.at(1), credential(request, *who));
                !bound)
                return ServerReply::error(bound.error());
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
        return reply(e->nodesView(request.queryParam("format").value_or("json")));
    });

    server.route("POST", "/v1/deployments", [e, t](const ServerRequest& request) {
        auto who = caller(request, t, {"admin"});
        if (!who) return ServerReply::error(who.error());
        auto start = parseStart(request.body, *who);
        if (!start) return ServerReply::error(start.error());
        auto key = idempotencyKey(request);
        if (!key) return ServerReply::error(key.error());
        if (auto replayed = replayStart(*e, *key, start->version)) return *replayed;
        start->idempotency_key = *key;
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
        auto key = idempotencyKey(request);
        if (!key) return ServerReply::error(key.error());
        if (auto replayed = replayStart(*e, *key, "")) return *replayed;
        return reply(e->rollback(std::nullopt, *to, *who, *key), 201);
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
                             {notice.alerts_json, note, notice.warning, request.received}),
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
        return reply(mw->view());
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
        return reply(e->clearHolds(std::nullopt, *who, request.queryParam("reason").value_or("")));
    });

    server.route("DELETE", R"(/v1/halt/(.+))", [e, t](const ServerRequest& request) {
        auto who = caller(request, t, {"admin"});
        if (!who) return ServerReply::error(who.error());
        return reply(
            e->clearHolds(request.matches.at(1), *who, request.queryParam("reason").value_or("")));
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
        auto header_key = idempotencyKey(request);
        if (!header_key) return ServerReply::error(header_key.error());
        // The header (what `cluster node add` sends) stands for the body's field.
        if (key && !*key && !header_key->empty()) *key = *header_key;
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
