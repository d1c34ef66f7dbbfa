#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/json.hpp"
#include "deploy_coordinator/states.hpp"

namespace hoist::cluster {

// The coordinator's JSON answers as types, each read in one place (fromJson). Fields the
// coordinator adds later are ignored; a missing or mistyped field this client relies on is an
// Invalid error naming it. The shapes are deploy-coordinator/README.md's routes.

/// Node counts of a deployment, or of one role in it.
struct Counts {
    std::int64_t total = 0;
    std::int64_t done = 0;
    std::int64_t failed = 0;
    std::int64_t in_flight = 0;
    std::int64_t pending = 0;
    std::int64_t skipped = 0;
    std::int64_t reverted = 0;

    static Result<Counts> fromJson(const json::Value& v);
};

/// One node of a deployment (GET /v1/deployments/{id}, with nodes).
struct DeploymentNode {
    std::string node;
    std::string role;
    std::string state;
    std::string message;
    std::string started;
    std::string finished;

    static Result<DeploymentNode> fromJson(const json::Value& v);
    /// Its step is `step` (false for a step this client does not know).
    bool is(deploy_coordinator::NodeStep step) const;
    /// failed or revert_failed.
    bool failed() const;
};

/// GET /v1/deployments/{id} and each entry of GET /v1/deployments.
struct Deployment {
    std::string id;
    std::string version;
    std::string kind;
    std::string undoes;
    std::string state;
    std::string waiting_on;
    std::string message;
    std::string max_parallel;
    std::int64_t max_failures = 0;
    bool auto_revert = false;
    std::int64_t min_healthy_ms = 0;
    std::int64_t node_deadline_ms = 0;
    std::int64_t progress_deadline_ms = 0;
    std::string created;
    std::string finished_at;
    Counts counts;
    /// Per role, in rollout order (master, agent, then the others by name).
    std::vector<std::pair<std::string, Counts>> roles;
    /// Present when asked for (nodes=1).
    std::vector<DeploymentNode> nodes;

    static Result<Deployment> fromJson(const json::Value& v);
    /// Its state is `s` (false for a state this client does not know).
    bool is(deploy_coordinator::DeploymentState s) const;
    /// done, failed, aborted, reverted or rolled_back: it will not change again.
    bool ended() const;
    /// Held by the failure budget: it waits for an admin (resume --max-failures, rollback).
    bool heldByBudget() const;
    /// A hold (halt) stops it: waiting_on says "hold: ...".
    bool halted() const;
};

/// GET /v1/deployments.
struct DeploymentList {
    std::vector<Deployment> deployments;
    /// The deployment that may act on nodes, "" when none.
    std::string acting;

    static Result<DeploymentList> fromJson(const json::Value& v);
};

/// One hold of GET /v1/halt.
struct Hold {
    std::string source;
    std::string reason;
    std::string by;
    std::string since;
    /// When the monitor said its alerts resolved, else "".
    std::string resolved;
    std::size_t alerts = 0;

    static Result<Hold> fromJson(const json::Value& v);
};

/// GET /v1/halt.
struct HaltView {
    bool halted = false;
    std::vector<Hold> holds;

    static Result<HaltView> fromJson(const json::Value& v);
};

/// One node of GET /v1/nodes.
struct FleetNode {
    std::string node;
    std::string role;
    std::string address;
    std::string release;
    std::int64_t generation = 0;
    std::string status;
    std::string mode;
    std::string last_seen;

    static Result<FleetNode> fromJson(const json::Value& v);
};

/// GET /v1/nodes.
struct Fleet {
    std::vector<FleetNode> nodes;

    static Result<Fleet> fromJson(const json::Value& v);
};

/// One monitor of GET /v1/monitors.
struct Monitor {
    std::string name;
    std::int64_t allowance_ms = 0;
    std::string last_beat;
    bool silent = false;

    static Result<Monitor> fromJson(const json::Value& v);
};

struct Monitors {
    std::vector<Monitor> monitors;

    static Result<Monitors> fromJson(const json::Value& v);
};

/// One replica of GET /v1/cluster/coordinators (replicas on etcd only).
struct Replica {
    std::string id;
    std::string url;
    bool leader = false;
    std::int64_t epoch = 0;
    std::string last_renewal;
    /// Why this replica refused to lead (a damaged value in the store); empty when it did not.
    std::string refused;

    static Result<Replica> fromJson(const json::Value& v);
};

struct Coordinators {
    /// Empty while no replica leads (an election).
    std::string leader;
    std::int64_t epoch = 0;
    std::vector<Replica> replicas;

    static Result<Coordinators> fromJson(const json::Value& v);
};

/// One audit event of GET /v1/events (and a deployment's events).
struct AuditEvent {
    std::string time;
    std::string actor;
    std::string action;
    std::string deployment;
    std::string node;
    std::string detail;

    static Result<AuditEvent> fromJson(const json::Value& v);
};

struct AuditLog {
    std::vector<AuditEvent> events;

    static Result<AuditLog> fromJson(const json::Value& v);
};

/// Reads `text` as JSON and then as T.
template <typename T>
Result<T> parseAs(std::string_view text, std::string_view what) {
    HOIST_ASSIGN(auto doc, json::parseObject(text, what));
    return T::fromJson(doc);
}

}  // namespace hoist::cluster
