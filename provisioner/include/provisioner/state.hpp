#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace hoist::provisioner {

/// A node the provisioner made. Its id is the backend's instance id (an EC2 instance id, or
/// "<role>-<token>-<n>" for the local backend).
struct NodeRecord {
    std::string id;
    std::string role;
    std::string backend;
    std::string state;  ///< pending, running, terminating, terminated, failed
    std::string address;
    std::string release;
    std::string request_key;
    std::string created_at;
    std::string updated_at;
    std::string message;
    std::int64_t pid = 0;  ///< local backend: the node's boot process
};

/// One POST /v1/nodes, keyed by its idempotency key, written before the backend is called so a
/// repeat (or a restart) re-issues the same launch with the same ClientToken.
struct RequestRecord {
    std::string key;
    std::string role;
    int count = 0;
    std::string release;
    std::string client_token;
    std::string state;  ///< pending, done, failed
    std::string error;
    std::string created_at;
    std::vector<std::string> node_ids;
};

/// The provisioner's own SQLite database (WAL, synchronous=FULL, schema version in
/// PRAGMA user_version). Thread-safe (one connection behind a mutex).
class StateStore {
public:
    static constexpr int kSchemaVersion = 1;
    /// Opens or creates the database; Invalid when its schema is newer than this build's.
    static Result<std::unique_ptr<StateStore>> open(const std::filesystem::path& file);
    ~StateStore();
    StateStore(const StateStore&) = delete;
    StateStore& operator=(const StateStore&) = delete;

    Result<std::optional<RequestRecord>> findRequest(const std::string& key);
    Result<void> putRequest(const RequestRecord& request);
    /// Stores the request and its nodes in one transaction.
    Result<void> putLaunch(const RequestRecord& request, const std::vector<NodeRecord>& nodes);
    Result<void> putNode(const NodeRecord& node);
    Result<std::optional<NodeRecord>> findNode(const std::string& id);
    /// Every node, oldest first; terminated ones only when asked.
    Result<std::vector<NodeRecord>> nodes(bool include_terminated);

private:
    StateStore() = default;
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::mutex mutex_;
};

}  // namespace hoist::provisioner
