#pragma once

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/daemon.hpp"
#include "core/error.hpp"
#include "core/http_server.hpp"
#include "core/json.hpp"
#include "provisioner/backend.hpp"
#include "provisioner/state.hpp"

namespace hoist::provisioner {

struct ServiceOptions {
    std::vector<std::string> roles{"master", "agent"};
    int max_count = 20;
    /// Used when a request names no release.
    std::string default_release;
};

/// POST /v1/nodes body: {"role", "count", "idempotency_key", "release"}.
struct AddRequest {
    std::string role;
    int count = 1;
    std::string idempotency_key;  ///< empty: a fresh one (no de-duplication)
    std::string release;          ///< empty: ServiceOptions::default_release

    /// Invalid for unknown fields, wrong types, a missing role.
    static Result<AddRequest> fromJson(std::string_view body);
};

struct AddResult {
    bool created = false;  ///< false when the key was seen before and its nodes are returned
    std::string idempotency_key;
    std::vector<NodeRecord> nodes;
};

/// Writes a node as {"id","role","backend","state","address","release","request",
/// "created_at","updated_at","message"}.
void writeNode(json::Writer& w, const NodeRecord& node);

/// The provisioner: validates requests, records them before calling the backend, replays
/// repeated idempotency keys. Holds (halts) are enforced by the coordinator, which calls this
/// service only when no hold stands. Thread-safe (one operation at a time).
class Service {
public:
    Service(StateStore& store, Backend& backend, ServiceOptions options);

    /// Launches `count` nodes of `role`, or returns the nodes of an earlier request with the
    /// same key. Conflict when the key was used for a different role, count or release;
    /// Invalid for an unknown role or a count out of range; the backend's error otherwise (the
    /// request is kept as failed and the same key tries again).
    Result<AddResult> add(const AddRequest& request);
    /// Nodes (refreshed from the backend; stored states when it cannot be reached).
    Result<std::vector<NodeRecord>> list(bool include_terminated);
    /// NotFound for an unknown id.
    Result<NodeRecord> get(const std::string& id);
    /// Decommissions a node; a terminated node is returned as it is. NotFound for an unknown id.
    Result<NodeRecord> remove(const std::string& id);

    /// Registers the routes of DESIGN.md; `token` guards POST and DELETE (a reload is seen).
    void addRoutes(http::Server& server, daemon::Secret token);

    /// Sets the provisioner's gauges (nodes by state) and copies its counters (backend calls,
    /// errors and retries, by operation) into `registry` before a /metrics render.
    void collectMetrics(metrics::Registry& registry);

private:
    /// Counts one backend call of `op` ("launch", "refresh", "terminate") and its result.
    void countCall(std::string_view op, bool ok);

    StateStore& store_;
    metrics::Registry metrics_;
    Backend& backend_;
    ServiceOptions options_;
    std::mutex mutex_;
};

}  // namespace hoist::provisioner
