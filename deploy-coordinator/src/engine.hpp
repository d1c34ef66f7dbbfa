#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
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
#include "rollout_metrics.hpp"
#include "runner.hpp"
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
    /// How much newer a node's last_seen must be before a ping rewrites its row (status,
    /// release and generation are written whenever they change). On etcd every row write is
    /// replicated to each member, so replicas write it less often (cli.cpp).
    std::chrono::milliseconds seen_write_after{10000};
    std::chrono::milliseconds sweep_interval{5000};
    std::chrono::milliseconds stage_timeout{600000};
    /// An HA replica that does not lead yet: nothing is loaded and nothing acts until lead()
    /// (engine_leadership.cpp).
    bool standby = false;
    /// Asked right before each node action is sent (with the hold gate): false defers it (a
    /// replica whose lease renewal is overdue). Unset: always true.
    std::function<bool()> may_act;
    /// How long an HTTP handler waits for the runner to take its command before answering
    /// 503 (nothing changed).
    std::chrono::milliseconds answer_deadline{10000};
    /// Push nodes staging at once (Rollout::stage_window).
    std::int64_t stage_window = 1024;
    /// Metric gates for deployments that name none (--gate, --prometheus).
    GateConfig gates;
    /// The clock every rollout step reads (milliseconds since the epoch); unset: the system
    /// clock. A test passes a fake one and moves time on without sleeping.
    std::function<std::int64_t()> clock;
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
    /// The request's Idempotency-Key ("" for none): kept with the deployment it starts.
    std::string idempotency_key;
    /// Metric gates between waves; none named: EngineOptions::gates. A request naming gates
    /// but no Prometheus URL uses the coordinator's.
    GateConfig gates;
};

/// What a hold keeps beyond its source and reason, and what the audit log adds.
struct HoldDetails {
    std::string alerts_json = "[]";
    /// Appended to the audit line (a warning about the body, the body kept).
    std::string audit_note;
    /// Added to the reply as "warning" when not empty.
    std::string warning;
    /// When the request's header was read (ServerRequest::received), for the halt's log line;
    /// unset for a halt that came from no request.
    std::chrono::steady_clock::time_point received{};
};

/// The rollout engine, the node registry and the halt holds. One thread, the runner, is the
/// only writer of that state: pings, registrations, admin commands, halts, task results and
/// timers are commands it runs one at a time (runner.hpp), and node actions go out through a
/// bounded WorkerPool once the step that started them is committed. The public functions may
/// be called from any thread: those that change state post a command and wait for its answer
/// (Unhealthy, HTTP 503, when the runner does not take it within answer_deadline); the JSON
/// views read a consistent snapshot under the state lock.
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
    /// Registers (or re-registers) a node with no checks of who asks (as the admin token).
    Result<std::string> registerNode(NodeRecord node);
    /// What a node request came with: the admin token, and the node's own secret (header
    /// Hoist-Node-Secret; empty when none was presented).
    struct NodeCredential {
        bool admin = false;
        std::string secret;
    };
    /// Registers a node. A known id bound to a secret takes only that secret (or the admin
    /// token): Unauthorized otherwise, naming `cluster node forget`. A known id without one
    /// (a node from before per-node secrets) that is up at another address needs the admin
    /// token: Conflict otherwise. The presented secret's hash is kept (none: unbound).
    Result<std::string> registerNode(NodeRecord node, const NodeCredential& credential);
    /// Unauthorized when `id` is bound to a secret and `credential` neither presents it nor is
    /// the admin's; ok for unknown and unbound ids. Constant-time. Thread-safe.
    Result<void> checkNodeSecret(const std::string& id, const NodeCredential& credential);
    /// DELETE /v1/nodes/{id}: deletes the registry row, audited with `reason`. NotFound for an
    /// unknown node, Conflict while the running deployment includes it. Thread-safe.
    Result<void> forgetNode(const std::string& id, const std::string& actor,
                            const std::string& reason);
    Result<void> onPing(const pkgmgr::StatusPing& ping);
    std::string nodesJson();
    /// GET /v1/nodes in `format` (json or prometheus-sd). A standby engine (a follower
    /// replica) holds no registry: it reads the store's. Invalid for an unknown format.
    Result<std::string> nodesView(const std::string& format);
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
    /// rollback() for a request carrying an Idempotency-Key, kept with the deployment it starts.
    Result<std::string> rollback(const std::optional<std::string>& id,
                                 const std::optional<std::string>& to, const std::string& actor,
                                 const std::string& idempotency_key);
    /// The deployment a request with this Idempotency-Key started (its summary, as the start
    /// answered), or nullopt when none did (or the key is empty). Looks at the acting
    /// deployment and the 200 newest. Thread-safe.
    Result<std::optional<std::string>> replayIdempotent(const std::string& key);
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
    /// clearHolds() with the admin's reason for it, kept in the audit event (`cluster unhalt`).
    Result<std::string> clearHolds(std::optional<std::string> source, const std::string& actor,
                                   const std::string& reason);
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

    // HA replicas (engine_leadership.cpp)
    /// A standby engine takes over: loads the state from the store (its term is the store's)
    /// and starts acting. Invalid when not in standby.
    Result<void> lead();
    /// Reads the holds from the store again (another replica put or cleared one); serialised
    /// with halt() and clearHolds(), so a hold this replica just answered is never lost.
    Result<void> reloadHolds();
    /// Commands waiting for the runner (both lanes).
    std::size_t queuedCommands() const { return runner_.queued(); }

    void collectMetrics(metrics::Registry& registry);
    /// GET /v1/nodes?format=prometheus-sd: the nodes that are up, as Prometheus http_sd
    /// targets (metrics.cpp).
    std::string nodesPrometheusSd();
    const EngineOptions& options() const { return options_; }
    /// Sets report_to for restarts (known only once the server is bound); before start().
    void setAdvertiseUrl(std::string url) { options_.advertise_url = std::move(url); }

private:
    Engine(StateStore& state, EngineOptions options, std::unique_ptr<NodeGateway> gateway);
    /// EngineOptions::clock, or the system clock: what every member reads as now.
    std::int64_t nowMs() const {
        return options_.clock ? options_.clock() : deploy_coordinator::nowMs();
    }
    Result<void> load();
    Result<std::unique_ptr<Rollout>> loadRollout(const Deployment& d);
    /// The registry views of `list` (nodesJson, nodesPrometheusSd).
    static std::string nodesJson(std::vector<NodeRecord> list);
    static std::string nodesPrometheusSd(std::vector<NodeRecord> list);
    /// The summary a start answered, for a retry carrying the same Idempotency-Key. Under mutex_.
    std::string idempotentAnswer(const Rollout& r);
    void loop();
    /// Runs the priority commands waiting (halts, hold clears). On the runner, state lock held.
    void runPriority();
    /// Runs `body` on the runner with the state lock held and returns its answer (see
    /// callRunner). Before start() and after stop() there is no runner: the caller runs it,
    /// holding the state lock, and makes the commit an answer waits for.
    template <class T>
    Result<T> call(Runner::Lane lane, std::string_view what,
                   std::function<std::optional<Result<T>>(std::shared_ptr<Answer<T>>)> body) {
        if (running_.load())
            return callRunner<T>(runner_, lane, options_.answer_deadline, what, std::move(body));
        std::lock_guard lock(mutex_);
        auto answer = std::make_shared<Answer<T>>();
        (void)answer->take();
        if (auto now = body(answer)) return std::move(*now);
        auto written = flush(nowMs(), false);
        for (auto& give : after_commit_) give(written);
        after_commit_.clear();
        return std::move(*answer->wait(std::chrono::milliseconds(0)));
    }
    /// call() for a body that answers at once.
    template <class T>
    Result<T> run(std::string_view what, std::function<Result<T>()> fn,
                  Runner::Lane lane = Runner::Lane::normal) {
        return call<T>(lane, what,
                       [fn = std::move(fn)](auto) -> std::optional<Result<T>> { return fn(); });
    }
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
    /// One step's write: the deployment, the nodes it changed, the registry rows their progress
    /// changed (and a bounded share of those only pings touched), the audit events.
    struct PreparedStep {
        StepWrite write;
        std::vector<std::string> registry_ids;
    };
    /// Under mutex_, on the runner. nullopt when nothing is due.
    std::optional<PreparedStep> prepareStep(std::int64_t now, bool force_nodes);
    /// After the prepared step was committed: clears what it wrote. Under mutex_.
    void finishStep(std::int64_t now, const PreparedStep& step);
    /// prepareStep, commit, finishStep, all under the caller's hold of mutex_.
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
    /// nothingToDo() for the registry `nodes` (a follower's read of the store).
    std::optional<std::string> nothingToDo(const pkgmgr::Release& release,
                                           const std::vector<NodeRecord>& nodes);
    Result<void> requireChange(const pkgmgr::Release& release);
    /// The runner's part of startDeployment, rollback and command (state lock held).
    Result<std::string> startOnRunner(const StartRequest& request, const pkgmgr::Release& release,
                                      const std::string& manifest);
    Result<std::string> rollbackOnRunner(const std::optional<std::string>& id,
                                         const std::optional<std::string>& to,
                                         const std::string& actor,
                                         const std::string& idempotency_key,
                                         const Deployment& source,
                                         const std::vector<DeploymentNode>& rows);
    Result<std::string> commandOnRunner(const std::string& id, const std::string& verb,
                                        std::optional<std::int64_t> max_failures,
                                        const std::string& actor);
    void registerOnRunner(NodeRecord& node, bool by_admin);
    Result<void> pingOnRunner(const pkgmgr::StatusPing& ping, pkgmgr::HelperStep step);
    Result<std::string> desiredOnRunner(const std::string& id,
                                        std::optional<std::int64_t> generation);
    /// Writes a hold and its audit event through StateStore::commitHolds, on the caller's
    /// thread (holds.cpp).
    Result<void> putHold(const Hold& hold, const HoldDetails& details);
    /// Posts StateStore::settleHolds to the runner, not waiting for it.
    void settleHolds();

    StateStore& state_;
    std::atomic<bool> standby_{false};
    /// The leadership term every write is conditional on (StateStore::commit).
    std::int64_t term_ = 0;
    EngineOptions options_;
    ActionGate gate_;

    /// The single writer's inbox; its loop thread is the only one that changes what mutex_
    /// guards (readers take mutex_ for a consistent snapshot).
    Runner runner_;
    /// The runner's thread runs (between start() and stop()).
    std::atomic<bool> running_{false};
    std::mutex mutex_;  // everything below
    bool stopping_ = false;
    std::unordered_map<std::string, NodeRecord> nodes_;
    /// Registry rows to write: `node_dirty_` when due (pings: last_seen, status), in bounded
    /// shares; `node_progress_` (a finished node's release and generation) in the same step
    /// as the progress that changed them.
    std::unordered_map<std::string, bool> node_dirty_;
    std::unordered_set<std::string> node_progress_;
    /// last_seen as last written, per node: a ping rewrites the row only when last_seen is
    /// options_.seen_write_after newer (a restart counts from its own start anyway, load()).
    std::unordered_map<std::string, std::int64_t> seen_written_;
    /// Answers waiting for the step that holds their change to be committed.
    std::vector<std::function<void(const Result<void>&)>> after_commit_;
    std::unordered_map<std::string, bool> node_checking_;
    std::unique_ptr<Rollout> active_;
    /// Deployments that ended (aborted, failed) while nodes were still swapping: their nodes'
    /// reports are still recorded, though nothing more is sent. Dropped once none is in flight;
    /// rebuilt from the state file after a restart (load()).
    std::map<std::string, std::unique_ptr<Rollout>> lingering_;
    std::vector<std::function<void()>> outgoing_;
    std::vector<Event> pending_events_;
    std::int64_t last_node_flush_ms_ = 0;
    std::int64_t last_sweep_ms_ = 0;

    /// The registered node ids, for a ping answered without waiting for the runner (written
    /// by the runner only).
    std::shared_mutex ids_mutex_;
    std::unordered_set<std::string> ids_;

    std::mutex holds_mutex_;       // serialises halt and clear
    std::mutex holds_data_mutex_;  // holds_ (taken after mutex_ when both are)
    std::vector<Hold> holds_;
    std::unique_ptr<WorkerPool> pool_;
    std::unique_ptr<WorkerPool> check_pool_;
    std::unique_ptr<NodeGateway> gateway_;
    std::thread thread_;

    /// Sends the model's gate queries to the check workers and puts the holds of failed gates
    /// (engine_gates.cpp). Under mutex_.
    void dispatchGates(Output& out);
    /// The gates a deployment of `request` gets (its own, else the coordinator's). Invalid
    /// when they do not validate.
    Result<GateConfig> gatesFor(const StartRequest& request) const;
    /// Records swap results the model just produced in rollout_metrics_ (metrics.cpp). Under
    /// mutex_.
    void observeOutput(const Output& out);
    RolloutMetrics rollout_metrics_;

    // Counters for /metrics.
    std::atomic<std::uint64_t> pings_{0};
    std::atomic<std::uint64_t> stale_pings_{0};
    std::atomic<std::uint64_t> actions_sent_{0};
    std::atomic<std::uint64_t> actions_deferred_{0};
};

}  // namespace hoist::deploy_coordinator
