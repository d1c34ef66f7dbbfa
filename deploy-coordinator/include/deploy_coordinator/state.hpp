#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "deploy_coordinator/states.hpp"

namespace hoist::deploy_coordinator {

/// Milliseconds since the Unix epoch (wall clock), as stored in the state file.
std::int64_t nowMs();
/// RFC 3339 UTC with milliseconds for a nowMs() value ("" for 0).
std::string formatTime(std::int64_t ms);

/// A node the coordinator knows (registered, or seen in a ping).
struct NodeRecord {
    std::string id;
    std::string role;
    /// Base URL of its endpoint ("http://127.0.0.1:7070"); node routes are joined to it.
    std::string address;
    std::string release;
    std::int64_t generation = 0;
    /// "up", "down" (stopped answering) or "removed" (decommissioned).
    std::string status = "up";
    std::int64_t registered_ms = 0;
    std::int64_t last_seen_ms = 0;
    /// "push" (the coordinator sends it stage and restart requests) or "pull" (it asks for
    /// its desired state, GET /v1/nodes/{node}/desired, and applies it itself).
    std::string mode = "push";
    /// SHA-256 (hex) of the secret the node presented at its first registration (header
    /// Hoist-Node-Secret); registrations, pings and asks for this id then need that secret.
    /// Empty: a node from before per-node secrets (the shared node token alone serves).
    /// Never shown in any reply.
    std::string secret_hash;
    /// A pull node, in memory only (not stored): when it last asked and whether it was told
    /// to do nothing then, and the time between two asks with nothing to do between them, as
    /// measured (its pull interval; 0: not measured yet). The rehearsal predicts with it.
    std::int64_t last_ask_ms = 0;
    bool last_ask_idle = false;
    std::int64_t ask_interval_ms = 0;

    /// The status and mode, read and written through their conversions (states.hpp).
    bool is(NodeStatus s) const { return parseNodeStatus(status) == s; }
    void set(NodeStatus s) { status = toString(s); }
    bool pull() const { return parseNodeMode(mode) == NodeMode::pull; }
};

/// A standing halt hold, one per source.
struct Hold {
    std::string source;
    std::string reason;
    /// Who put it: "monitor" (halt token) or "admin".
    std::string by;
    std::int64_t since_ms = 0;
    /// A monitor's firing alerts when it put the hold (a bounded JSON array).
    std::string alerts_json = "[]";
    /// When the monitor said its alerts resolved (0: not said). The hold stands until an admin
    /// clears it; this tells the admin that clearing is safe as far as the monitor knows.
    std::int64_t resolved_ms = 0;
};

/// An SLA monitor watched by the dead man's switch (MonitorWatch).
struct MonitorRecord {
    std::string name;
    std::int64_t allowance_ms = 0;
    std::int64_t last_beat_ms = 0;
};

/// One line of the append-only audit log.
struct Event {
    std::int64_t id = 0;
    std::int64_t time_ms = 0;
    /// Who: "admin", "monitor", "node:<id>", "coordinator".
    std::string actor;
    std::string action;
    std::string deployment;
    std::string node;
    std::string detail;
};

/// A deployment's settings and progress (the row; per-node rows are DeploymentNode).
struct Deployment {
    std::string id;
    std::int64_t number = 0;
    std::string version;
    /// "upgrade", or "rollback": nodes back to the generations an earlier deployment left them
    /// on (a rollback of a deployment that has ended is its own deployment).
    std::string kind = "upgrade";
    /// rollback: the deployment it undoes ("" for a rollback to a named release).
    std::string undoes;
    /// The Idempotency-Key the request that started it carried ("" for none, schema version
    /// 7): a retry with the same key is answered with this deployment.
    std::string idempotency_key;
    /// The metric gates checked between waves, as JSON (metric_gates.hpp GateConfig); empty
    /// for none.
    std::string gates;
    /// states.hpp: the states and the transitions between them.
    DeploymentState state = DeploymentState::staging;
    /// A count ("100") or a percentage of the agents ("10%").
    std::string max_parallel = "1";
    std::int64_t max_failures = 0;
    bool auto_revert = false;
    std::int64_t min_healthy_ms = 0;
    std::int64_t node_deadline_ms = 600000;
    std::int64_t progress_deadline_ms = 1800000;
    /// The verified manifest bytes, so a restart does not depend on the repository.
    std::string release_json;
    std::string created_by;
    std::string waiting_on;
    std::string message;
    std::int64_t created_ms = 0;
    std::int64_t updated_ms = 0;
    std::int64_t finished_ms = 0;

    /// True while the deployment may still act on nodes.
    bool active() const;
};

/// One node's progress in one deployment.
struct DeploymentNode {
    std::string deployment;
    std::string node;
    std::string role;
    /// Order in the rollout (masters first).
    std::int64_t ord = 0;
    /// states.hpp: the steps and the transitions between them.
    NodeStep state = NodeStep::pending;
    /// The last state a ping or poll reported ("checking", ...).
    std::string node_state;
    std::string from_release;
    std::int64_t from_generation = 0;
    std::int64_t target_generation = 0;
    std::int64_t last_seq = -1;
    /// How many restart requests the node accepted for this deployment (audit: never above 1
    /// forward, 1 more when reverted).
    std::int64_t restarts = 0;
    std::int64_t started_ms = 0;
    std::int64_t finished_ms = 0;
    std::string message;
};

/// One step's changes, written together or not at all.
struct StepWrite {
    std::optional<Deployment> deployment;
    std::vector<DeploymentNode> nodes;
    std::vector<NodeRecord> registry;
    /// Registry rows to delete (`cluster node forget`), after the registry puts.
    std::vector<std::string> forget_nodes;
    std::vector<Hold> put_holds;
    /// Sources of holds to remove; with clear_holds, every hold goes.
    std::vector<std::string> delete_holds;
    bool clear_holds = false;
    std::vector<Event> events;

    bool empty() const;
};

/// Where the coordinator keeps its state. Every change goes out as one conditional write:
/// commit() applies a StepWrite only while the store's leadership term is still the writer's,
/// so that a replicated store can refuse the writes of a coordinator that is no longer the
/// leader. State (SQLite) implements it today. Implementations are thread-safe.
class StateStore {
public:
    virtual ~StateStore() = default;
    /// Applies `write` atomically while the store's term is `term`; Conflict naming both terms
    /// otherwise, writing nothing. With durable, the write is on disk before this returns.
    virtual Result<void> commit(const StepWrite& write, std::int64_t term,
                                bool durable = false) = 0;
    /// Applies a write of holds and their audit events only (put_holds, delete_holds,
    /// clear_holds, events; Invalid when it holds anything else), on disk before it returns.
    /// Any replica may make it (no leadership term), and it is the halt's path: a store that
    /// can should not make it wait for a step's commit under way. The default is
    /// commit(write, 0, true).
    virtual Result<void> commitHolds(const StepWrite& write);
    /// After commitHolds, off the halt's path (the engine's runner calls it): whatever the
    /// store does to keep that path short (State: folds the journalled events into the audit
    /// log and checkpoints the holds file). Failures are logged, not returned. Default: nothing.
    virtual void settleHolds() {}
    /// After a hold is written (or found standing) by a replica: returns once the replica that
    /// sends node actions has the hold in force, so the halt's answer can promise that no node
    /// action starts after it. Unhealthy when that could not be confirmed in time (the hold
    /// stays written). Default (one process acts on what it wrote): at once.
    virtual Result<void> confirmHolds() { return ok(); }
    /// The current leadership term (0 until one is claimed).
    virtual Result<std::int64_t> term() = 0;
    /// Makes `term` current; Conflict when the store's term is already higher.
    virtual Result<void> claim(std::int64_t term) = 0;

    virtual Result<std::vector<NodeRecord>> nodes() = 0;
    virtual Result<std::vector<Hold>> holds() = 0;
    /// Newest first.
    virtual Result<std::vector<Deployment>> deployments(int limit = 100) = 0;
    virtual Result<std::optional<Deployment>> deployment(std::string_view id) = 0;
    virtual Result<std::vector<DeploymentNode>> deploymentNodes(std::string_view deployment) = 0;
    /// The newest `limit` events, oldest first; only one deployment's when given.
    virtual Result<std::vector<Event>> events(std::optional<std::string_view> deployment,
                                              int limit = 100) = 0;
    virtual Result<std::int64_t> nextDeploymentNumber() = 0;
    /// The dead man's switch's monitors (not rollout state: written outside commit()).
    virtual Result<std::vector<MonitorRecord>> monitors() = 0;
    /// Puts one monitor and/or removes one (`remove` not empty), with audit events, at once.
    /// Any replica may write these.
    virtual Result<void> writeMonitor(const std::optional<MonitorRecord>& put,
                                      std::string_view remove,
                                      const std::vector<Event>& events) = 0;
};

/// Where the time of the calling thread's latest State::commit went, in microseconds: waiting
/// for the store (its lock and BEGIN), running the statements, and the COMMIT (with durable,
/// the fsync). For the halt's log line; zeros before any commit on this thread.
struct CommitTiming {
    std::int64_t wait_us = 0;
    std::int64_t write_us = 0;
    std::int64_t sync_us = 0;
};
CommitTiming lastCommitTiming();

/// The coordinator's state in one SQLite file (WAL). Schema versions live in PRAGMA
/// user_version and are migrated forward on open; a newer file than this build knows is
/// refused. Every write runs inside transaction(); events are append-only (triggers refuse
/// UPDATE and DELETE). Thread-safe: one connection behind a mutex.
///
/// The holds live in a second SQLite file beside it, `<file>.holds` (WAL, every commit
/// fsynced), with its own connection and lock: commitHolds() writes there, so a halt's write
/// never waits for a step's commit on the state file, and its fsync carries only its own
/// pages. The audit events of hold changes are journalled there too and folded into the state
/// file's log by the next commit, events() or open() (exactly once: the state file keeps the
/// last sequence number folded, schema version 10). Holds of a state file from before are
/// moved to the holds file on open.
class State final : public StateStore {
public:
    /// Opens (creating when absent) the file and migrates it. Invalid when the file's schema
    /// is newer than kSchemaVersion, Io when SQLite cannot open or write it, Corrupt when the
    /// file is empty or damaged (PRAGMA quick_check) unless `init`: then the damaged file is
    /// moved aside (<file>.damaged-<n>) and an empty state begins.
    static Result<std::unique_ptr<State>> open(const std::filesystem::path& path,
                                               bool init = false);
    ~State();
    State(const State&) = delete;
    State& operator=(const State&) = delete;

    static constexpr int kSchemaVersion = 10;
    int schemaVersion();

    /// The writes a transaction may make.
    class Tx {
    public:
        Result<void> putNode(const NodeRecord& node);
        Result<void> deleteNode(std::string_view id);
        Result<void> putDeployment(const Deployment& deployment);
        Result<void> putDeploymentNode(const DeploymentNode& node);
        /// Holds are written to the holds file at once, durably, not in this transaction.
        Result<void> putHold(const Hold& hold);
        /// Removes one hold (source) or all (nullopt) from the holds file at once; returns how
        /// many went.
        Result<int> deleteHolds(std::optional<std::string_view> source);
        Result<void> appendEvent(Event event);
        Result<void> putMonitor(const MonitorRecord& monitor);
        Result<void> deleteMonitor(std::string_view name);

    private:
        friend class State;
        explicit Tx(State& state) : state_(state) {}
        State& state_;
    };

    /// Runs `body` in one BEGIN IMMEDIATE ... COMMIT; rolled back when it fails. With durable,
    /// the commit is fsynced (synchronous=FULL) before this returns.
    Result<void> transaction(const std::function<Result<void>(Tx&)>& body, bool durable = false);

    /// One transaction; the term is checked inside it against the leadership row. Hold parts
    /// go to the holds file first (commitHolds), then the rest.
    Result<void> commit(const StepWrite& write, std::int64_t term, bool durable = false) override;
    /// Writes the holds file only (see the class comment): durable, never behind a step.
    Result<void> commitHolds(const StepWrite& write) override;
    /// Folds the journal into the audit log and checkpoints the holds file, so that its WAL
    /// starts over and the next hold's fdatasync overwrites blocks the file has.
    void settleHolds() override;
    Result<std::int64_t> term() override;
    Result<void> claim(std::int64_t term) override;

    Result<std::vector<NodeRecord>> nodes() override;
    Result<std::vector<Hold>> holds() override;
    Result<std::vector<MonitorRecord>> monitors() override;
    Result<void> writeMonitor(const std::optional<MonitorRecord>& put, std::string_view remove,
                              const std::vector<Event>& events) override;
    Result<std::vector<Deployment>> deployments(int limit = 100) override;
    Result<std::optional<Deployment>> deployment(std::string_view id) override;
    Result<std::vector<DeploymentNode>> deploymentNodes(std::string_view deployment) override;
    Result<std::vector<Event>> events(std::optional<std::string_view> deployment,
                                      int limit = 100) override;
    Result<std::int64_t> nextDeploymentNumber() override;

    struct Impl;

private:
    State();
    /// Inside a transaction on the state file: appends the journalled hold events not yet
    /// folded to the audit log and records the marker; returns the new marker, which is kept
    /// in Impl once that transaction committed.
    Result<std::int64_t> foldHoldEvents();
    /// A transaction of its own that folds, when a fold is due.
    Result<void> foldPending(bool durable);
    /// On open: moves holds kept in the state file (from before the holds file) to the holds
    /// file, folds what the journal holds and prunes what was folded.
    Result<void> adoptHolds();
    std::unique_ptr<Impl> impl_;
};

}  // namespace hoist::deploy_coordinator
