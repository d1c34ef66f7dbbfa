#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/error.hpp"
#include "core/http_client.hpp"
#include "core/metrics.hpp"
#include "deploy_coordinator/state.hpp"
#include "holds.hpp"
#include "pkgmgr/release.hpp"
#include "pkgmgr/wire.hpp"
#include "worker_pool.hpp"

namespace hoist::deploy_coordinator {

struct EngineOptions {
    /// Where releases are fetched from: <repo>/releases/<version>.json (+ .json.sig).
    std::string repo_url;
    std::vector<std::string> trusted_keys;  ///< PEM public keys
    bool allow_unsigned = false;
    /// This coordinator's URL as nodes reach it (report_to in restarts).
    std::string advertise_url;
    /// Bearer token presented to node endpoints (empty: none).
    std::string node_token;
    std::string provisioner_url;
    std::string provisioner_token;
    size_t workers = 32;
    size_t check_workers = 4;
    std::chrono::milliseconds poll_after{3000};
    std::chrono::milliseconds down_after{30000};
    std::chrono::milliseconds sweep_interval{5000};
    std::chrono::milliseconds stage_timeout{600000};
};

/// What POST /v1/deployments asks for.
struct StartRequest {
    std::string version;
    std::string max_parallel = "1";
    std::int64_t max_failures = 0;
    bool auto_revert = false;
    std::int64_t min_healthy_ms = 0;
    std::int64_t node_deadline_ms = 600000;
    std::int64_t progress_deadline_ms = 1800000;
    std::string actor = "admin";
};

/// What a hold keeps beyond its source and reason, and what the audit log adds.
struct HoldDetails {
    std::string alerts_json = "[]";
    /// Appended to the audit line (a warning about the body, the body kept).
    std::string audit_note;
    /// Added to the reply as "warning" when not empty.
    std::string warning;
};

/// The rollout engine, the node registry and the halt holds. One thread runs the event loop
/// (pings, task results and timers in, node actions out through a bounded WorkerPool); HTTP
/// handlers call the public functions from any thread.
class Engine {
public:
    static Result<std::unique_ptr<Engine>> create(State& state, EngineOptions options);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    void start();
    void stop();

    // Registry
    Result<std::string> registerNode(NodeRecord node);
    Result<void> onPing(const pkgmgr::StatusPing& ping);
    std::string nodesJson();
    /// NotFound for an unknown node.
    Result<NodeRecord> node(const std::string& id);
    Result<void> markRemoved(const std::string& id, const std::string& actor);
    /// GET /v1/nodes/{node}/desired: what a pull node should do now, as
    /// {"action": "none"|"stage"|"restart", "deployment", "release", "generation", "held"}.
    /// `generation` is the node's current generation when it says so. A new action is handed
    /// out only while no hold stands, and only after the state saying it started is committed;
    /// an action already handed out is answered again (the node's own checks keep it from
    /// acting twice). NotFound for an unknown node, Conflict for a push node. Thread-safe.
    Result<std::string> desired(const std::string& id, std::optional<std::int64_t> generation);

    // Deployments
    Result<std::string> startDeployment(const StartRequest& request);
    Result<std::string> deploymentJson(const std::string& id, bool with_nodes, int events);
    Result<std::string> deploymentsJson(int limit);
    /// pause, resume, abort, rollback. Conflict when the state does not allow it.
    Result<std::string> command(const std::string& id, const std::string& verb,
                                std::optional<std::int64_t> max_failures, const std::string& actor);
    Result<std::string> planJson(const std::string& version, const std::string& max_parallel);
    Result<std::string> eventsJson(int limit);

    // Holds
    /// Puts (or renews) the hold `source`. Answered only once no node action can start. A
    /// renewal that changes nothing (a monitor repeating itself) writes nothing.
    Result<std::string> halt(const std::string& source, const std::string& reason,
                             const std::string& by, const HoldDetails& details = {});
    /// A monitor's "resolved" for `source`: recorded on the hold and in the audit log; the hold
    /// stands until an admin clears it. Recorded in the audit log even when no such hold stands.
    Result<std::string> resolveHold(const std::string& source, const std::string& by,
                                    const std::string& audit_note);
    /// Clears one hold (source) or all; NotFound when that source holds nothing.
    Result<std::string> clearHolds(std::optional<std::string> source, const std::string& actor);
    std::string holdsJson();
    /// Halted naming the holds, or ok.
    Result<void> requireNoHold(std::string_view what);
    /// True while a deployment may act on nodes (the dead man's switch watches only then).
    bool acting();
    /// The cluster's current release: the version of the newest deployment that finished
    /// (done), else the release most registered nodes report; empty when neither is known.
    /// New nodes bootstrap to it.
    Result<std::string> currentRelease();
    /// Records an audit event in its own transaction.
    Result<void> recordEvent(Event event);

    void collectMetrics(metrics::Registry& registry);
    const EngineOptions& options() const { return options_; }
    /// Sets report_to for restarts (known only once the server is bound); before start().
    void setAdvertiseUrl(std::string url) { options_.advertise_url = std::move(url); }

private:
    struct Slot;
    struct Active;

    Engine(State& state, EngineOptions options);
    Result<void> load();
    void loop();
    void tick(std::int64_t now);
    void advanceForward(Active& a, std::int64_t now);
    void advanceRevert(Active& a, std::int64_t now);
    /// Restarts the due nodes of one role rank up to its limit (agents max_parallel, other
    /// roles one at a time): staged nodes forward in order, or revert_pending nodes back to
    /// their old generation, last first.
    void dispatchWave(Active& a, int rank, bool revert, std::int64_t now);
    void dispatchStage(Active& a, Slot& slot);
    void dispatchRestart(Active& a, Slot& slot, std::int64_t generation, std::int64_t now);
    void dispatchPoll(Active& a, Slot& slot);
    void dispatchProbe(Active& a, Slot& slot);
    void applyNodeState(Active& a, Slot& slot, const std::string& node_state, std::int64_t now,
                        const std::string& message);
    /// A pull node's "staged" report (the stage it was handed is built).
    void applyStaged(Active& a, Slot& slot, std::int64_t generation, std::int64_t from_generation,
                     std::int64_t now);
    /// The timers of a pull node's slot (offers, deadlines, settling); they replace the
    /// polls and probes a push node gets. Always true (the slot is handled).
    bool pullTimers(Active& a, Slot& slot, std::int64_t now, bool stage_due, bool restart_due,
                    bool revert_due);
    void finishNode(Active& a, Slot& slot, const std::string& state, const std::string& message,
                    std::int64_t now);
    void setDeploymentState(Active& a, const std::string& state, const std::string& actor,
                            const std::string& detail, std::int64_t now);
    void computeWaitingOn(Active& a, std::int64_t now);
    void sweepNodes(std::int64_t now);
    void post(std::function<void()> deliver);
    void queueEvent(std::string actor, std::string action, std::string deployment, std::string node,
                    std::string detail);
    Result<void> flush(std::int64_t now, bool force_nodes);
    std::string deploymentSummary(const Deployment& d, const std::vector<DeploymentNode>& nodes,
                                  bool with_nodes, int events);
    Result<std::pair<pkgmgr::Release, std::string>> fetchRelease(const std::string& version);
    std::string holdSummary();
    Result<std::unique_ptr<Active>> loadActive(const Deployment& d);

    State& state_;
    EngineOptions options_;
    ActionGate gate_;

    std::mutex mutex_;  // everything below
    std::condition_variable wake_cv_;
    bool wake_ = false;
    bool stopping_ = false;
    std::unordered_map<std::string, NodeRecord> nodes_;
    std::unordered_map<std::string, bool> node_dirty_;
    std::unordered_map<std::string, bool> node_checking_;
    std::vector<Hold> holds_;
    std::unique_ptr<Active> active_;
    std::deque<std::function<void()>> inbox_;
    std::vector<std::function<void(http::Client&)>> outgoing_;
    std::vector<Event> pending_events_;
    std::int64_t last_node_flush_ms_ = 0;
    std::int64_t last_sweep_ms_ = 0;

    std::mutex holds_mutex_;  // serialises halt and clear
    std::unique_ptr<WorkerPool> pool_;
    std::unique_ptr<WorkerPool> check_pool_;
    std::thread thread_;

    // Counters for /metrics.
    std::atomic<std::uint64_t> pings_{0};
    std::atomic<std::uint64_t> stale_pings_{0};
    std::atomic<std::uint64_t> actions_sent_{0};
    std::atomic<std::uint64_t> actions_deferred_{0};
};

}  // namespace hoist::deploy_coordinator
