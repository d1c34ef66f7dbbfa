#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/daemon.hpp"
#include "core/error.hpp"
#include "core/http_client.hpp"
#include "core/metrics.hpp"
#include "deploy_coordinator/plan.hpp"
#include "deploy_coordinator/state.hpp"
#include "holds.hpp"
#include "node_gateway.hpp"
#include "pkgmgr/release.hpp"
#include "pkgmgr/status.hpp"
#include "pkgmgr/wire.hpp"
#include "rollout.hpp"
#include "worker_pool.hpp"

namespace hoist::deploy_coordinator {

struct EngineOptions {
    /// Where releases are fetched from: <repo>/releases/<version>.json (+ .json.sig).
    std::string repo_url;
    std::vector<std::string> trusted_keys;  ///< PEM public keys
    bool allow_unsigned = false;
    /// This coordinator's URL as nodes reach it (report_to in restarts).
    std::string advertise_url;
    /// Bearer token presented to node endpoints (empty: none); a token file's secret is read
    /// again on SIGHUP.
    daemon::Secret node_token;
    std::string provisioner_url;
    daemon::Secret provisioner_token;
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
    /// Without a gateway, nodes are reached over HTTP.
    static Result<std::unique_ptr<Engine>> create(StateStore& state, EngineOptions options,
                                                  std::unique_ptr<NodeGateway> gateway = nullptr);
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
    /// POST /v1/rehearsals: what starting `request` would do, from the real rollout model run
    /// against simulated nodes (faults injected as `inject` says, parseFaults) on a simulated
    /// clock. Touches no node and persists nothing. Refused as startDeployment refuses a bad
    /// request or a release that changes nothing; a hold or a running deployment is noted.
    Result<std::string> rehearse(const StartRequest& request, const std::string& inject);
    Result<std::string> deploymentJson(const std::string& id, bool with_nodes, int events);
    Result<std::string> deploymentsJson(int limit);
    /// pause, resume, abort, rollback. Conflict when the state does not allow it.
    Result<std::string> command(const std::string& id, const std::string& verb,
                                std::optional<std::int64_t> max_failures, const std::string& actor);
    /// Rolls back deployment `id` (one that has ended), or, with `to`, goes back to the
    /// generations the newest deployment that brought the fleet to that release left: a new
    /// deployment of kind "rollback". NotFound, Conflict (already rolled back, another acting,
    /// nothing to do) or Halted.
    Result<std::string> rollback(const std::optional<std::string>& id,
                                 const std::optional<std::string>& to, const std::string& actor);
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
    Engine(StateStore& state, EngineOptions options, std::unique_ptr<NodeGateway> gateway);
    Result<void> load();
    Result<std::unique_ptr<Rollout>> loadRollout(const Deployment& d);
    void loop();
    void tick(std::int64_t now);
    /// Takes what the model produced: events to record, registry rows to update, node
    /// actions to send once the state is committed. Under mutex_.
    void apply(Output& out);
    /// The worker task for one node action; its outcome goes back to the model on the loop.
    std::function<void()> task(const NodeAction& action);
    void sweepNodes(std::int64_t now);
    void post(std::function<void()> deliver);
    void queueEvent(std::string actor, std::string action, std::string deployment, std::string node,
                    std::string detail);
    Result<void> flush(std::int64_t now, bool force_nodes);
    RolloutSettings settings() const;
    std::string deploymentSummary(const Deployment& d, const std::vector<DeploymentNode>& nodes,
                                  bool with_nodes, int events);
    Result<std::pair<pkgmgr::Release, std::string>> fetchRelease(const std::string& version);
    std::string holdSummary();
    /// The rollout `request` would start on the registry as it stands (no id yet). Under
    /// mutex_. Invalid or Conflict as startDeployment refuses.
    Result<std::unique_ptr<Rollout>> buildRollout(const pkgmgr::Release& release,
                                                  const StartRequest& request, std::int64_t now,
                                                  std::vector<Wave>& waves);
    /// Why `release` would change no node (every node already runs it, or the same package
    /// sets under another version); nullopt when some node changes.
    std::optional<std::string> nothingToDo(const pkgmgr::Release& release);
    Result<void> requireChange(const pkgmgr::Release& release);

    StateStore& state_;
    /// The leadership term every write is conditional on (StateStore::commit).
    std::int64_t term_ = 0;
    EngineOptions options_;
    ActionGate gate_;

    std::mutex mutex_;  // everything below
    std::condition_variable wake_cv_;
    bool wake_ = false;
    bool stopping_ = false;
    std::unordered_map<std::string, NodeRecord> nodes_;
    std::unordered_map<std::string, bool> node_dirty_;
    std::unordered_map<std::string, bool> node_checking_;
    std::unique_ptr<Rollout> active_;
    /// Deployments that ended (aborted, failed) while nodes were still swapping: their nodes'
    /// reports are still recorded, though nothing more is sent. Dropped once none is in flight.
    std::map<std::string, std::unique_ptr<Rollout>> lingering_;
    std::deque<std::function<void()>> inbox_;
    std::vector<std::function<void()>> outgoing_;
    std::vector<Event> pending_events_;
    std::int64_t last_node_flush_ms_ = 0;
    std::int64_t last_sweep_ms_ = 0;

    std::mutex holds_mutex_;       // serialises halt and clear
    std::mutex holds_data_mutex_;  // holds_ (taken after mutex_ when both are)
    std::vector<Hold> holds_;
    std::unique_ptr<WorkerPool> pool_;
    std::unique_ptr<WorkerPool> check_pool_;
    std::unique_ptr<NodeGateway> gateway_;
    std::thread thread_;

    // Counters for /metrics.
    std::atomic<std::uint64_t> pings_{0};
    std::atomic<std::uint64_t> stale_pings_{0};
    std::atomic<std::uint64_t> actions_sent_{0};
    std::atomic<std::uint64_t> actions_deferred_{0};
};

}  // namespace hoist::deploy_coordinator
