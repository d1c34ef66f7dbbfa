#include "provisioner/service_client.hpp"

namespace hoist::provisioner {

namespace {

constexpr std::string_view kCtx = "provisioner reply";

}  // namespace

Result<NodeRecord> nodeFromJson(const json::Value& v) {
    if (!v.IsObject()) return fail(Errc::Invalid, kCtx, ": a node must be an object");
    NodeRecord n;
    HOIST_ASSIGN(n.id, json::getString(v, "id", kCtx));
    HOIST_ASSIGN(n.role, json::getString(v, "role", kCtx));
    HOIST_ASSIGN(n.backend, json::getString(v, "backend", kCtx));
    HOIST_ASSIGN(n.state, json::getString(v, "state", kCtx));
    HOIST_ASSIGN(n.address, json::getString(v, "address", kCtx));
    HOIST_ASSIGN(n.release, json::getString(v, "release", kCtx));
    HOIST_ASSIGN(n.request_key, json::getString(v, "request", kCtx));
    HOIST_ASSIGN(n.created_at, json::getString(v, "created_at", kCtx));
    HOIST_ASSIGN(n.updated_at, json::getString(v, "updated_at", kCtx));
    HOIST_ASSIGN(n.message, json::getString(v, "message", kCtx));
    return n;
}

ServiceClient::ServiceClient(std::string base_url, std::string token)
    : base_url_(std::move(base_url)), token_(std::move(token)) {}

Result<json::Document> ServiceClient::call(const std::string& method, const std::string& path,
                                           const std::string& body, int* status) {
    std::lock_guard lock(mutex_);
    http::Request request;
    request.method = method;
    request.url = http::joinUrl(base_url_, path);
    request.headers = {http::bearer(token_), {"Content-Type", "application/json"}};
    request.body = body;
    // A launch may retry EC2 for a while; give it room.
    request.timeout = std::chrono::seconds(120);
    HOIST_ASSIGN(auto reply, http_.send(request));
    if (status) *status = static_cast<int>(reply.status);
    auto doc = json::parseObject(reply.body, kCtx);
    if (!reply.ok()) {
        std::string message = reply.body.substr(0, 200);
        if (doc) {
            if (auto e = json::optString(*doc, "error", kCtx); e && *e) message = **e;
        }
        return fail(errcFromHttpStatus(reply.status), "provisioner: ", method, " ", path, ": ",
                    message);
    }
    return doc;
}

Result<AddResult> ServiceClient::add(const AddRequest& request) {
    json::Writer w;
    w.beginObject().field("role", request.role).field("count", request.count);
    if (!request.idempotency_key.empty()) w.field("idempotency_key", request.idempotency_key);
    if (!request.release.empty()) w.field("release", request.release);
    w.endObject();
    HOIST_ASSIGN(auto doc, call("POST", "/v1/nodes", w.str()));
    AddResult out;
    HOIST_ASSIGN(out.idempotency_key, json::getString(doc, "idempotency_key", kCtx));
    HOIST_ASSIGN(out.created, json::getBool(doc, "created", kCtx));
    HOIST_ASSIGN(auto nodes, json::getArray(doc, "nodes", kCtx));
    for (const auto& n : nodes->GetArray()) {
        HOIST_ASSIGN(auto node, nodeFromJson(n));
        out.nodes.push_back(std::move(node));
    }
    return out;
}

Result<std::vector<NodeRecord>> ServiceClient::list(bool include_terminated) {
    HOIST_ASSIGN(auto doc, call("GET", include_terminated ? "/v1/nodes?all=1" : "/v1/nodes", ""));
    HOIST_ASSIGN(auto nodes, json::getArray(doc, "nodes", kCtx));
    std::vector<NodeRecord> out;
    for (const auto& n : nodes->GetArray()) {
        HOIST_ASSIGN(auto node, nodeFromJson(n));
        out.push_back(std::move(node));
    }
    return out;
}

Result<NodeRecord> ServiceClient::remove(const std::string& id) {
    HOIST_ASSIGN(auto doc, call("DELETE", "/v1/nodes/" + http::urlEncode(id), ""));
    return nodeFromJson(doc);
}

}  // namespace hoist::provisioner
