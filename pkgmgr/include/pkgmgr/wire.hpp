#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "pkgmgr/journal.hpp"
#include "pkgmgr/package.hpp"

/// The messages between a node (`pkgmgr serve`, the restart helper) and the deploy coordinator
/// (DESIGN.md "Node endpoint", "Status ping", "Pull mode"): one struct per message, used on both
/// sides, so that what is sent and what is read cannot drift apart.
///
/// Every fromJson takes the text of one message and:
/// - ignores fields it does not know (a newer peer may add some), except the requests a node
///   carries out (stage, restart, rollback): acting on part of a command is worse than refusing
///   it, so those refuse an unknown field by name;
/// - refuses a missing or mistyped required field with a message naming the message and the
///   field(s): "GET /v1/node: fields 'id', 'healthy' are required".
/// Every toJson writes all fields in a fixed order. All functions are pure and thread-safe.
///
/// The coordinator's leadership epoch ("epoch", see pkgmgr/epoch.hpp) is optional in every
/// command and pull answer: absent or 0 means the coordinator does not fence (one from before
/// fencing, or a single coordinator that never claimed a term), and toJson leaves it out then,
/// so such a coordinator's commands still read on nodes from before fencing. A coordinator
/// that does send an epoch needs nodes that know the field: upgrade nodes first.
namespace hoist::pkgmgr {

/// POSTed to <coordinator>/v1/nodes/<node>/status (queued in the outbox first):
/// {"node", "deployment", "seq", "state", "from_generation", "to_generation", "release",
///  "message", "time"}. Required: node, seq, state (a known state, see status.hpp).
struct StatusPing {
    std::string node;
    std::string deployment;
    std::int64_t seq = 0;
    std::string state;
    std::int64_t from_generation = 0;
    std::int64_t to_generation = 0;
    std::string release;
    std::string message;
    std::string time;  ///< RFC 3339 UTC

    static Result<StatusPing> fromJson(std::string_view text);
    std::string toJson() const;
};

/// POST <coordinator>/v1/nodes/register: {"id", "role", "address", "release", "generation"}
/// and "mode": "pull" for a pull node (push, the default, is not written: coordinators before
/// pull mode refused the field). Required: id, role, address. The reply is the coordinator's
/// record of the node (as in GET /v1/nodes), which a node does not need to read. The node's own
/// secret travels beside it in the Hoist-Node-Secret header (pkgmgr::nodeSecret), as on its
/// status pings and desired-state asks.
struct Registration {
    std::string id;
    std::string role;
    std::string address;  ///< where the coordinator reaches the node's endpoint
    std::string release;
    std::int64_t generation = 0;  ///< 0: none
    std::string mode = "push";    ///< "push" or "pull"

    static Result<Registration> fromJson(std::string_view text);
    std::string toJson() const;
};

/// GET /v1/node's "service".
struct ServiceView {
    std::string manager;
    bool running = false;
    std::int64_t pid = 0;  ///< 0: not running (null on the wire)
    std::string detail;
};

/// GET /v1/node's "transaction": the journal's operation and state while one is under way.
struct TransactionSummary {
    std::string operation;
    std::string state;
    /// Set (and the others empty) when the journal does not read: restarts wait for recover.
    std::string damaged;
};

/// GET /v1/node: {"id", "role", "address", "release", "generation" (null: none),
///  "service": {"manager", "running", "pid" (null: none), "detail"}, "healthy",
///  "transaction": {"operation", "state"}, {"damaged": why} or null, "epoch"}.
/// Required: id, role, release, generation, healthy.
struct NodeView {
    std::string id;
    std::string role;
    std::string address;
    std::string release;
    std::int64_t generation = 0;  ///< 0: none
    ServiceView service;
    bool healthy = false;  ///< one health probe, right now, passed
    std::optional<TransactionSummary> transaction;
    /// The highest coordinator epoch this node has seen (0: none); "epoch", optional.
    std::int64_t epoch = 0;

    static Result<NodeView> fromJson(std::string_view text);
    std::string toJson() const;
};

/// GET /v1/transaction[?operation=ID]: {"active", "transaction": journal or null, "damaged"?}.
/// Active with a journal: a swap under way; active with null: a helper launched that has not
/// journaled yet; not active with a journal: how the last one ended. Required: active, transaction.
struct TransactionView {
    bool active = false;
    std::optional<Journal> transaction;
    /// Why the journal does not read (then active, with no transaction); empty when it reads.
    std::string damaged;

    /// Whether a swap is still under way: active, and not already in an end state.
    bool underWay() const;
    /// The journal's state; "starting" while active without one; empty when idle.
    std::string step() const;

    static Result<TransactionView> fromJson(std::string_view text);
    std::string toJson() const;
};

/// POST /v1/stage: {"release": "V"} or {"packages": [PackageRef...]}, exactly one, and
/// "epoch" (optional). Refuses unknown fields (a command).
struct StageRequest {
    std::optional<std::string> release;
    std::optional<std::vector<PackageRef>> packages;
    std::int64_t epoch = 0;  ///< the sender's leadership epoch; 0: none

    static Result<StageRequest> fromJson(std::string_view text);
    std::string toJson() const;
};

/// POST /v1/stage's reply: {"generation", "release" (empty for a bare package list),
/// "packages": [PackageRef...]}. Required: all three; generation above zero.
struct StageReply {
    std::int64_t generation = 0;
    std::string release;
    std::vector<PackageRef> packages;

    static Result<StageReply> fromJson(std::string_view text);
    std::string toJson() const;
};

/// POST /v1/restart: {"generation", "deployment", "report_to", "epoch"} (all but generation
/// may be absent: no deployment, no pings, no epoch). Required: generation. Refuses unknown
/// fields (a command).
struct RestartRequest {
    std::int64_t generation = 0;
    std::string deployment;
    std::string report_to;   ///< coordinator base URL the helper pings
    std::int64_t epoch = 0;  ///< the sender's leadership epoch; 0: none

    static Result<RestartRequest> fromJson(std::string_view text);
    std::string toJson() const;
};

/// POST /v1/rollback: {"deployment", "report_to", "epoch"}, all optional, or an empty body.
/// Refuses unknown fields (a command).
struct RollbackRequest {
    std::string deployment;
    std::string report_to;
    std::int64_t epoch = 0;  ///< the sender's leadership epoch; 0: none

    static Result<RollbackRequest> fromJson(std::string_view text);
    std::string toJson() const;
};

/// 202 reply of POST /v1/restart and POST /v1/rollback: {"operation", "generation"}; poll
/// GET /v1/transaction?operation=ID. Required: both.
struct RestartReply {
    std::string operation;
    std::int64_t generation = 0;

    static Result<RestartReply> fromJson(std::string_view text);
    std::string toJson() const;
};

/// GET <coordinator>/v1/nodes/<node>/desired?generation=N (a pull node's ask):
/// {"action": "none"|"stage"|"restart", "deployment", "release", "generation", "held", "epoch"}.
/// Required: action, deployment, release, generation. An action this node does not know is
/// kept as it came: the node does nothing for it.
struct DesiredState {
    std::string action = "none";
    std::string deployment;
    std::string release;
    std::int64_t generation = 0;
    bool held = false;       ///< a hold stops the coordinator from handing out anything
    std::int64_t epoch = 0;  ///< the answering coordinator's leadership epoch; 0: none

    static Result<DesiredState> fromJson(std::string_view text);
    std::string toJson() const;
};

/// The path a pull node asks: /v1/nodes/<node, URL-encoded>/desired?generation=N.
std::string desiredPath(std::string_view node, std::int64_t generation);

/// The coordinator's refusal of a ping or ask from a node it has no record of (404). The node
/// keeps the ping and registers again; `isNotRegistered` recognises the reply.
Error notRegistered(std::string_view node);
bool isNotRegistered(long status, std::string_view body);

}  // namespace hoist::pkgmgr
