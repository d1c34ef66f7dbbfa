#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/http_client.hpp"
#include "provisioner/service.hpp"
#include "provisioner/state.hpp"

namespace hoist::provisioner {

/// Parses a node as the service writes it (writeNode). Invalid for a malformed one.
Result<NodeRecord> nodeFromJson(const json::Value& value);

/// A client of the provisioner's HTTP API, for the coordinator. Refusals come back as errors
/// with the service's message and the code of its status (400 Invalid, 401 Unauthorized,
/// 404 NotFound, 409 Conflict, 5xx Network). Thread-safe (calls are serialised).
class ServiceClient {
public:
    ServiceClient(std::string base_url, std::string token);

    /// POST /v1/nodes. Pass an idempotency key and repeat the call with it after a failure.
    Result<AddResult> add(const AddRequest& request);
    /// GET /v1/nodes (?all=1).
    Result<std::vector<NodeRecord>> list(bool include_terminated = false);
    /// DELETE /v1/nodes/{id}: the node, terminating or terminated.
    Result<NodeRecord> remove(const std::string& id);

private:
    Result<json::Document> call(const std::string& method, const std::string& path,
                                const std::string& body, int* status = nullptr);
    std::string base_url_;
    std::string token_;
    std::mutex mutex_;
    http::Client http_;
};

}  // namespace hoist::provisioner
