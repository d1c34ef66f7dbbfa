#include "provisioner/service.hpp"

#include <algorithm>
#include <map>
#include <regex>

#include "core/crypto.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"
#include "pkgmgr/package.hpp"

namespace hoist::provisioner {

namespace {

constexpr std::string_view kComponent = "provisioner";
constexpr std::string_view kCtx = "POST /v1/nodes";

bool validKey(std::string_view key) {
    if (key.empty() || key.size() > 128) return false;
    return std::all_of(key.begin(), key.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
               c == ':';
    });
}

std::string nodesJson(const std::vector<NodeRecord>& nodes) {
    json::Writer w;
    w.beginObject().key("nodes").beginArray();
    for (const auto& n : nodes) writeNode(w, n);
    w.endArray().endObject();
    return w.str();
}

}  // namespace

Result<AddRequest> AddRequest::fromJson(std::string_view body) {
    HOIST_ASSIGN(auto doc, json::parseObject(body, kCtx));
    HOIST_TRY(json::rejectUnknown(doc, {"role", "count", "idempotency_key", "release"}, kCtx));
    AddRequest out;
    HOIST_ASSIGN(out.role, json::getString(doc, "role", kCtx));
    HOIST_ASSIGN(auto count, json::optInt(doc, "count", kCtx));
    if (count) {
        if (*count < 1 || *count > 1000)
            return fail(Errc::Invalid, kCtx, ": field 'count' must be between 1 and 1000, got ",
                        *count);
        out.count = static_cast<int>(*count);
    }
    HOIST_ASSIGN(auto key, json::optString(doc, "idempotency_key", kCtx));
    if (key) out.idempotency_key = *key;
    HOIST_ASSIGN(auto release, json::optString(doc, "release", kCtx));
    if (release) out.release = *release;
    return out;
}

void writeNode(json::Writer& w, const NodeRecord& n) {
    w.beginObject()
        .field("id", n.id)
        .field("role", n.role)
        .field("backend", n.backend)
        .field("state", n.state)
        .field("address", n.address)
        .field("release", n.release)
        .field("request", n.request_key)
        .field("created_at", n.created_at)
        .field("updated_at", n.updated_at)
        .field("message", n.message)
        .endObject();
}

constexpr std::string_view kBackendOps[] = {"launch", "refresh", "terminate"};
constexpr std::string_view kNodeStates[] = {"pending", "running", "terminating", "terminated",
                                            "failed"};

Service::Service(StateStore& store, Backend& backend, ServiceOptions options)
    : store_(store), backend_(backend), options_(std::move(options)) {
    metrics_.describe("hoist_provisioner_backend_calls_total", "counter",
                      "backend calls by operation");
    metrics_.describe("hoist_provisioner_backend_errors_total", "counter",
                      "backend calls that failed, by operation");
    metrics_.describe("hoist_provisioner_backend_retries_total", "counter",
                      "retried attempts inside backend calls, by operation");
    for (auto op : kBackendOps) {
        auto labels = metrics::label("operation", op);
        metrics_.declare("hoist_provisioner_backend_calls_total", labels);
        metrics_.declare("hoist_provisioner_backend_errors_total", labels);
        metrics_.declare("hoist_provisioner_backend_retries_total", labels);
    }
}

void Service::countCall(std::string_view op, bool ok) {
    auto labels = metrics::label("operation", op);
    metrics_.add("hoist_provisioner_backend_calls_total", labels);
    if (!ok) metrics_.add("hoist_provisioner_backend_errors_total", labels);
    metrics_.add("hoist_provisioner_backend_retries_total", labels,
                 static_cast<double>(std::max(0, backend_.lastAttempts() - 1)));
}

void Service::collectMetrics(metrics::Registry& registry) {
    registry.describe("hoist_provisioner_nodes", "gauge",
                      "nodes by stored state (as of the last listing or change)");
    registry.merge(metrics_);
    // A backend call (seconds, with retries) holds the lock: the last figures stay until then.
    std::unique_lock lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock()) return;
    std::map<std::string, double> by_state;
    for (auto state : kNodeStates) by_state[std::string(state)] = 0;
    if (auto nodes = store_.nodes(true))
        for (const auto& n : *nodes) by_state[n.state]++;
    lock.unlock();
    std::vector<std::pair<std::string, double>> series;
    for (const auto& [state, n] : by_state) series.emplace_back(metrics::label("state", state), n);
    registry.replace("hoist_provisioner_nodes", series);
}

Result<AddResult> Service::add(const AddRequest& request) {
    if (std::find(options_.roles.begin(), options_.roles.end(), request.role) ==
        options_.roles.end()) {
        std::string hint = strings::didYouMean(request.role, options_.roles);
        return fail(Errc::Invalid, "unknown role '", request.role,
                    "' (roles: ", strings::join(options_.roles, ", "), ")",
                    hint.empty() ? "" : "; did you mean '" + hint + "'?");
    }
    if (request.count < 1 || request.count > options_.max_count)
        return fail(Errc::Invalid, "count must be between 1 and ", options_.max_count, ", got ",
                    request.count);
    std::string release = request.release.empty() ? options_.default_release : request.release;
    if (release.empty())
        return fail(Errc::Invalid,
                    "field 'release' is required (the provisioner has no --release default)");
    // The release names a file in the repository (releases/<release>.json) and goes into the
    // new node's bootstrap: a release version, never a path.
    if (auto valid = pkgmgr::validateVersion(release); !valid)
        return std::unexpected(withContext(valid.error(), "field 'release'"));
    std::string key =
        request.idempotency_key.empty() ? "auto-" + crypto::randomHex(12) : request.idempotency_key;
    if (!validKey(key))
        return fail(Errc::Invalid, "idempotency key '", key,
                    "' must be 1 to 128 characters of [A-Za-z0-9._:-]");

    std::lock_guard lock(mutex_);
    HOIST_ASSIGN(auto existing, store_.findRequest(key));
    RequestRecord record;
    if (existing) {
        if (existing->role != request.role || existing->count != request.count ||
            existing->release != release)
            return fail(Errc::Conflict, "idempotency key '", key, "' was used for role ",
                        existing->role, ", count ", existing->count, ", release ",
                        existing->release, "; this request asks for role ", request.role,
                        ", count ", request.count, ", release ", release);
        if (existing->state == "done") {
            AddResult result{false, key, {}};
            for (const auto& id : existing->node_ids) {
                HOIST_ASSIGN(auto node, store_.findNode(id));
                if (node) result.nodes.push_back(*node);
            }
            return result;
        }
        // A launch that failed or was cut short by a crash: the same ClientToken again, so
        // nodes that did start are not started twice.
        record = *existing;
    } else {
        record.key = key;
        record.role = request.role;
        record.count = request.count;
        record.release = release;
        record.client_token = "hoist-" + crypto::sha256Hex(key).substr(0, 40);
        record.state = "pending";
        record.created_at = log::nowRfc3339();
        HOIST_TRY(store_.putRequest(record));
    }

    log::info(kComponent, "launching nodes",
              {{"role", record.role},
               {"count", record.count},
               {"release", record.release},
               {"key", key},
               {"backend", backend_.name()}});
    LaunchSpec spec{record.role, record.count, record.release, record.client_token, key};
    auto launched = backend_.launch(spec);
    countCall("launch", launched.has_value());
    if (!launched) {
        record.state = "failed";
        record.error = launched.error().message;
        if (auto saved = store_.putRequest(record); !saved)
            log::error(kComponent, "cannot record failed request",
                       {{"error", saved.error().message}});
        return std::unexpected(launched.error());
    }
    std::string now = log::nowRfc3339();
    record.state = "done";
    record.error.clear();
    record.node_ids.clear();
    for (auto& node : *launched) {
        node.role = record.role;
        node.backend = backend_.name();
        node.release = record.release;
        node.request_key = key;
        node.created_at = now;
        node.updated_at = now;
        record.node_ids.push_back(node.id);
    }
    HOIST_TRY(store_.putLaunch(record, *launched));
    return AddResult{true, key, std::move(*launched)};
}

Result<std::vector<NodeRecord>> Service::list(bool include_terminated) {
    std::lock_guard lock(mutex_);
    HOIST_ASSIGN(auto all, store_.nodes(include_terminated));
    std::vector<NodeRecord> live;
    for (const auto& n : all)
        if (n.state != "terminated") live.push_back(n);
    if (!live.empty()) {
        auto before = live;
        auto refreshed = backend_.refresh(live);
        countCall("refresh", refreshed.has_value());
        if (!refreshed) {
            log::warn(kComponent, "cannot refresh node states; showing stored ones",
                      {{"error", refreshed.error().message}});
            live = before;
        } else {
            std::string now = log::nowRfc3339();
            for (size_t i = 0; i < live.size(); ++i) {
                if (live[i].state == before[i].state && live[i].address == before[i].address &&
                    live[i].message == before[i].message)
                    continue;
                live[i].updated_at = now;
                HOIST_TRY(store_.putNode(live[i]));
            }
        }
    }
    for (auto& n : all)
        for (const auto& l : live)
            if (l.id == n.id) n = l;
    if (!include_terminated)
        std::erase_if(all, [](const NodeRecord& n) { return n.state == "terminated"; });
    return all;
}

Result<NodeRecord> Service::get(const std::string& id) {
    HOIST_ASSIGN(auto nodes, list(true));
    for (auto& n : nodes)
        if (n.id == id) return n;
    return fail(Errc::NotFound, "no node '", id, "'");
}

Result<NodeRecord> Service::remove(const std::string& id) {
    std::lock_guard lock(mutex_);
    HOIST_ASSIGN(auto found, store_.findNode(id));
    if (!found) return fail(Errc::NotFound, "no node '", id, "'");
    NodeRecord node = *found;
    if (node.state == "terminated") return node;
    log::info(kComponent, "decommissioning node", {{"node", id}, {"backend", backend_.name()}});
    auto terminated = backend_.terminate(node);
    countCall("terminate", terminated.has_value());
    HOIST_TRY(terminated);
    node.updated_at = log::nowRfc3339();
    HOIST_TRY(store_.putNode(node));
    return node;
}

void Service::addRoutes(http::Server& server, daemon::Secret token) {
    const std::string id_pattern = "/v1/nodes/([A-Za-z0-9._-]+)";
    // Every route with a body needs the token: checked before the body is read.
    server.onMetrics([this](metrics::Registry& registry) { collectMetrics(registry); });
    server.beforeBody([token](const http::ServerRequest& req) {
        return http::requireBearer(req, token.value());
    });
    server.route("POST", "/v1/nodes", [this, token](const http::ServerRequest& req) {
        if (auto auth = http::requireBearer(req, token.value()); !auth)
            return http::ServerReply::error(auth.error());
        auto parsed = AddRequest::fromJson(req.body);
        if (!parsed) return http::ServerReply::error(parsed.error());
        auto result = add(*parsed);
        if (!result) return http::ServerReply::error(result.error());
        json::Writer w;
        w.beginObject()
            .field("idempotency_key", result->idempotency_key)
            .field("created", result->created)
            .key("nodes")
            .beginArray();
        for (const auto& n : result->nodes) writeNode(w, n);
        w.endArray().endObject();
        return http::ServerReply::json(result->created ? 201 : 200, w.str());
    });
    server.route("GET", "/v1/nodes", [this](const http::ServerRequest& req) {
        bool all = req.queryParam("all").value_or("") == "1";
        auto nodes = list(all);
        if (!nodes) return http::ServerReply::error(nodes.error());
        return http::ServerReply::json(200, nodesJson(*nodes));
    });
    server.route("GET", id_pattern, [this](const http::ServerRequest& req) {
        auto node = get(req.matches.at(1));
        if (!node) return http::ServerReply::error(node.error());
        json::Writer w;
        writeNode(w, *node);
        return http::ServerReply::json(200, w.str());
    });
    server.route("DELETE", id_pattern, [this, token](const http::ServerRequest& req) {
        if (auto auth = http::requireBearer(req, token.value()); !auth)
            return http::ServerReply::error(auth.error());
        auto node = remove(req.matches.at(1));
        if (!node) return http::ServerReply::error(node.error());
        json::Writer w;
        writeNode(w, *node);
        return http::ServerReply::json(node->state == "terminated" ? 200 : 202, w.str());
    });
}

}  // namespace hoist::provisioner
