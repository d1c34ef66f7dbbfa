#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/error.hpp"
#include "deploy_coordinator/state.hpp"
#include "deploy_coordinator/states.hpp"
#include "metric_gates.hpp"
#include "pkgmgr/status.hpp"

namespace hoist::deploy_coordinator {

/// The rollout model: one deployment, its nodes, and what happens to them when one event
/// arrives at time `now`. Pure: no I/O, no locks, no clock reads. Each function changes the
/// Rollout it is given (marking what it changed dirty) and appends to an Output the node
/// actions to take and the audit events to record. The engine persists the dirty state and
/// the events in one transaction, and only then sends the actions; the rehearsal runs the
/// same functions against simulated nodes and a simulated clock.

/// One node's part in the rollout.
struct Slot {
    DeploymentNode row;
    bool dirty = false;
    /// A request to this node is queued or running (push nodes).
    bool busy = false;
    std::int64_t last_heard_ms = 0;
    std::int64_t healthy_since_ms = 0;
    std::int64_t retry_at_ms = 0;
    int busy_retries = 0;
    /// A pull node: nothing is sent to it; its actions are offered and handed out when it asks.
    bool pull = false;
    /// When the action its step calls for (pending: stage; staged or revert_pending:
    /// restart) was offered to the pull node; nullopt: none offered (an offer at time 0, as
    /// a rehearsal's first, is one). Only in memory: after a restart the model offers again
    /// what is still due.
    std::optional<std::int64_t> offered_ms;
    /// When the pull node last asked, and the generation it said it runs (-1: not said).
    std::int64_t last_pull_ms = 0;
    std::int64_t last_pull_generation = -1;
    /// roleRank of the node's role (set by Rollout::index).
    int rank = 0;
};

/// The settings the model reads besides the deployment's own.
struct RolloutSettings {
    /// A node in flight that has not been heard from for this long is polled.
    std::int64_t poll_after_ms = 3000;
    /// A stage (push request, or pull node's build) may take this long.
    std::int64_t stage_timeout_ms = 600000;
};

/// A request the engine sends to a push node.
struct NodeAction {
    enum class Kind { stage, restart, poll, probe };
    Kind kind = Kind::stage;
    std::string node;
    /// restart: the generation to go to.
    std::int64_t generation = 0;
};

/// A node's release and generation after it finished (done: the new ones; reverted: the old).
struct RegistryUpdate {
    std::string node;
    std::string release;
    std::int64_t generation = 0;
};

/// A metric gate's query to run (off the loop); its sample comes back through onGateSample.
struct GateQuery {
    std::size_t gate = 0;
    std::string prometheus;
    std::string query;
};

/// A hold to put because a metric gate failed.
struct GateHold {
    std::string source;  ///< gate/<name>
    std::string reason;
};

/// What one event produced.
struct Output {
    std::vector<NodeAction> actions;
    std::vector<GateQuery> gate_queries;
    std::vector<GateHold> gate_holds;
    std::vector<Event> events;
    std::vector<RegistryUpdate> registry;
    /// Set when the deployment's state changed.
    bool state_changed = false;
};

/// What a stage request came back with.
struct StageOutcome {
    enum class Kind { deferred, staged, failed };
    Kind kind = Kind::failed;
    std::int64_t generation = 0;
    std::string message;
};

/// What a restart request came back with.
struct RestartOutcome {
    enum class Kind {
        deferred,  ///< a hold stopped it before it left
        accepted,  ///< 202
        busy,      ///< 409: another transaction runs
        lost,      ///< no answer: unknown whether it arrived
        refused,   ///< any other answer
    };
    Kind kind = Kind::lost;
    std::string message;
};

/// What GET /v1/node says, as far as the rollout cares.
struct NodeView {
    std::int64_t generation = 0;
    std::string release;
    bool healthy = false;
};

/// A poll's findings: GET /v1/transaction then GET /v1/node.
struct PollOutcome {
    bool reachable = false;
    /// A swap is under way, and the helper's step when known.
    bool under_way = false;
    std::optional<pkgmgr::HelperStep> step;
    NodeView view;
};

/// A status ping as the model reads it.
struct PingReport {
    std::int64_t seq = 0;
    /// The helper's step (healthy, rolled_back, failed, staged, checking, ...).
    pkgmgr::HelperStep state = pkgmgr::HelperStep::checking;
    std::int64_t from_generation = 0;
    std::int64_t to_generation = 0;
    std::string message;
};

/// What a pull node is told when it asks.
struct PullAnswer {
    enum class Kind { none, stage, restart };
    Kind kind = Kind::none;
    std::string release;
    std::int64_t generation = 0;
};

/// The deployment being rolled out and its nodes, in rollout order.
class Rollout {
public:
    Deployment d;
    std::vector<Slot> slots;
    std::int64_t max_parallel = 1;
    std::int64_t last_progress_ms = 0;
    bool row_dirty = false;
    /// Push nodes staging at once (a pull node's offered stage does not count).
    std::int64_t stage_window = 1024;
    /// Metric gates checked after each wave of the forward rollout has settled (masters
    /// included) and before the next starts. With gates, waves go one at a time: a wave of up
    /// to max_parallel nodes starts only once the one before has settled and passed.
    GateConfig gates;

    /// Builds the index and the counts; call once the slots are in place, and again after
    /// changing a slot's step by hand.
    void index();
    Slot* find(const std::string& node);
    void touch(Slot& slot);
    /// The slots changed since clearDirty(), in the order they changed.
    const std::vector<size_t>& dirtySlots() const { return dirty_; }
    bool anyDirty() const { return !dirty_.empty(); }
    void clearDirty();
    /// Moves a slot by the table; false (nothing changed) when the table has no such move.
    bool step(Slot& slot, NodeEvent event);
    /// How many nodes are at `step`.
    std::int64_t count(NodeStep step) const;
    /// A node is in flight (swapping or settling).
    bool anyInFlight() const;

    /// Timers and progress: deadlines, polls and probes due, pull offers, the next wave, the
    /// failure budget, the progress deadline and waiting_on. `held`: a hold stands (no new
    /// action starts, and time under it does not count against the progress deadline);
    /// `hold_text` names the holds for waiting_on.
    void tick(std::int64_t now, bool held, const std::string& hold_text,
              const RolloutSettings& settings, Output& out);

    void onStage(Slot& slot, const StageOutcome& outcome, std::int64_t now, Output& out);
    void onRestart(Slot& slot, const RestartOutcome& outcome, std::int64_t now, Output& out);
    void onPoll(Slot& slot, const PollOutcome& outcome, std::int64_t now, Output& out);
    /// The health probe after min_healthy_ms; nullopt when the node did not answer.
    void onProbe(Slot& slot, const std::optional<NodeView>& view, std::int64_t now, Output& out);
    /// A status ping for this deployment; false when it was a re-delivery (seq not newer).
    bool onPing(Slot& slot, const PingReport& ping, std::int64_t now, Output& out);
    /// A sample of gate `gate`'s query: the gate passes once its comparison has held for its
    /// `for` time; it fails at once when the comparison does not hold, and when its query
    /// keeps failing past the error grace. A failing gate puts the hold gate/<name> (or
    /// reverts, when the gates say so). Samples of another round are ignored.
    void onGateSample(std::size_t gate, const GateSample& sample, std::int64_t now, Output& out);
    /// What the gates wait on ("" when no gate is being evaluated).
    std::string gateWaiting() const;

    /// A pull node asks what to do (it runs `generation` when it says so). Hands out what was
    /// offered, or again what was handed out before, unless `held`.
    PullAnswer onAsk(Slot& slot, std::optional<std::int64_t> generation, bool held,
                     std::int64_t now, Output& out);

    /// pause, resume (optionally with a new max_failures), abort, rollback. Conflict naming
    /// the CLI verb that would help when the state does not allow it.
    Result<void> command(const std::string& verb, std::optional<std::int64_t> max_failures,
                         const std::string& actor, std::int64_t now, Output& out);

    /// Recomputes waiting_on (also done by tick).
    void computeWaitingOn(bool held, const std::string& hold_text);

    /// How many nodes failed forward.
    std::int64_t failedCount() const;

private:
    void finishNode(Slot& slot, NodeEvent event, const std::string& message, std::int64_t now,
                    Output& out);
    void setState(DeploymentEvent event, const std::string& actor, const std::string& detail,
                  std::int64_t now, Output& out);
    void applyReport(Slot& slot, pkgmgr::HelperStep report, std::int64_t now,
                     const std::string& message, Output& out);
    void stage(Slot& slot, std::int64_t now, Output& out);
    void restart(Slot& slot, std::int64_t generation, std::int64_t now, Output& out);
    /// Fails a swapping or settling node whose node deadline has passed (true when it did).
    bool pastNodeDeadline(Slot& slot, std::int64_t now, Output& out);
    bool pullTimers(Slot& slot, std::int64_t now, bool held, const RolloutSettings& settings,
                    Output& out);
    void advanceForward(std::int64_t now, bool held, Output& out);
    void advanceRevert(std::int64_t now, bool held, Output& out);
    void dispatchWave(int rank, bool revert, std::int64_t now, Output& out);
    /// With gates: true when the next wave may start (nothing in flight, and the gates passed
    /// since the last node finished); otherwise asks for the next query when one is due.
    bool gatesAllowNextWave(std::int64_t now, Output& out);
    void failGate(const GateSpec& gate, const std::string& why, std::int64_t now, Output& out);
    bool forwardBusy() const;
    void event(Output& out, std::string actor, std::string action, const std::string& node,
               std::string detail, std::int64_t now);

    /// The evaluation of the gates after the latest wave (times -1: not yet).
    struct GateRun {
        std::size_t index = 0;
        bool querying = false;
        std::int64_t next_at = 0;
        std::int64_t ok_since = -1;
        std::int64_t error_since = -1;
        std::string last;
        bool failed = false;
        bool hold_seen = false;
    };
    GateRun gate_run_;
    /// Nodes finished (done or failed) when the gates last passed.
    std::int64_t gated_finished_ = 0;

    std::unordered_map<std::string, size_t> index_;
    // Kept as slots move, so that one event costs what it changed, not the fleet's size.
    std::array<std::array<std::int64_t, 14>, 3> by_rank_{};  // rank, step
    std::vector<size_t> dirty_;
    /// Slots with timers to watch: swapping or settling ones, and every pull slot.
    std::set<size_t> timed_;
    /// No slot before fwd_cursor_ (after rev_cursor_) is due a forward (revert) restart.
    size_t fwd_cursor_ = 0;
    size_t rev_cursor_ = 0;
    /// No slot before stage_cursor_ is pending a stage not yet sent or offered.
    size_t stage_cursor_ = 0;
    void watch(size_t i);
    std::int64_t countIn(int rank, bool (*pred)(NodeStep)) const;
};

/// "3 nodes failed, more than max_failures 1".
std::string budgetText(std::int64_t failed, std::int64_t max_failures);

/// The refusal to start or roll back while `d` acts, naming the CLI verbs that end or move
/// it on (a held deployment never finishes by waiting).
std::unexpected<Error> busyRefusal(const Deployment& d);

}  // namespace hoist::deploy_coordinator
