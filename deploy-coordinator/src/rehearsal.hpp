#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "deploy_coordinator/plan.hpp"
#include "rollout.hpp"

namespace hoist::deploy_coordinator {

/// What a simulated node does wrong.
enum class FaultKind {
    health_fail,  ///< the new generation never turns healthy: the helper rolls back
    silent,       ///< the node stops answering once its restart is sent
    slow,         ///< the swap takes `ms` (instead of the node's usual time)
    stage_fail,   ///< staging the release fails
    hold,         ///< a hold stands from `ms` on (written "hold=30s", no node)
};

/// One injected fault: the nodes it applies to ('*' glob over the id) and what they do.
struct Fault {
    std::string pattern;
    FaultKind kind = FaultKind::health_fail;
    std::int64_t ms = 0;  ///< slow only
};

/// Parses "agent-3:health_fail,master-2:silent,agent-*:slow=30s,hold=2m" (durations: 500ms,
/// 30s, 2m; a hold names no node).
/// Invalid naming the item that is wrong; an empty text is no fault.
Result<std::vector<Fault>> parseFaults(std::string_view text);
std::string_view toString(FaultKind kind);

/// What the simulation assumes of one node.
struct SimNode {
    /// How long its swap (restart to healthy) takes.
    std::int64_t swap_ms = 0;
    /// swap_ms comes from the node's last finished swap (else from the stated default).
    bool recorded = false;
    /// How long its last swap that failed (the helper rolled back) took: its health deadline
    /// and the rollback, as measured. 0: none recorded.
    std::int64_t fail_ms = 0;
    /// The release rehearsed already failed on this node (the helper rolled back): predicted
    /// to fail again, as if `health_fail` were injected.
    bool failed_before = false;
    /// A pull node's time between two asks as the coordinator measured it (0: not measured;
    /// the stated default is assumed). Unused for a push node.
    std::int64_t pull_interval_ms = 0;
};

struct RehearsalSettings {
    /// A swap's duration for a node with no recorded one.
    std::int64_t default_swap_ms = 20000;
    /// How long a swap that fails its health check takes on a node with no recorded failure:
    /// the health check's default deadline (pkgmgr HealthCheck::deadline_ms).
    std::int64_t default_health_fail_ms = 60000;
    /// How long staging takes on each node.
    std::int64_t stage_ms = 5000;
    /// How long a node takes to answer a request.
    std::int64_t reply_ms = 50;
    /// How often a pull node with no measured interval asks for its desired state.
    std::int64_t default_pull_interval_ms = 10000;
    RolloutSettings rollout;
    /// A hold stands from this time on (a standing hold: 0): no new action starts, the nodes
    /// in flight finish, and the simulation ends once none is.
    std::optional<std::int64_t> hold_at_ms;
    /// The simulation stops here whatever happens.
    std::int64_t limit_ms = 7LL * 24 * 3600 * 1000;
};

/// The predicted course of a rollout. Times are milliseconds from its start.
struct Rehearsal {
    struct NodeLine {
        std::string node;
        std::string role;
        int wave = 0;  ///< 1-based; 0 for a skipped node
        std::int64_t swap_ms = 0;
        std::string swap_source;  ///< "recorded", "default" or "injected"
        std::string fault;        ///< "" or the fault's name
        /// "injected" (--inject), "recorded" (this release failed on the node before) or "".
        std::string fault_source;
        /// How long its failing swap takes (health_fail only; else 0).
        std::int64_t fail_ms = 0;
        std::int64_t start_ms = -1;  ///< restart sent (a pull node: handed out); -1: never
        std::int64_t end_ms = -1;    ///< finished; -1: never
        NodeStep step = NodeStep::pending;
        std::string message;
        /// A pull node: it acts only when it next asks.
        bool pull = false;
        /// A pull node's time between asks, and where it comes from ("recorded": measured by
        /// the coordinator; "default"). 0 and "" for a push node.
        std::int64_t pull_interval_ms = 0;
        std::string pull_interval_source;
        /// How long its actions (stage, restart) waited, offered, for the node to ask.
        std::int64_t waited_ms = 0;
    };
    struct WaveLine {
        std::string role;
        std::vector<std::string> nodes;
        std::int64_t start_ms = -1;
        std::int64_t end_ms = -1;
    };
    struct Moment {
        std::int64_t at_ms = 0;
        std::string what;
    };
    std::vector<NodeLine> nodes;
    std::vector<WaveLine> waves;
    std::vector<Moment> timeline;
    /// The metric gates between waves (assumed to hold in a rehearsal).
    GateConfig gates;
    DeploymentState outcome = DeploymentState::staging;
    std::string message;
    std::int64_t total_ms = 0;
    /// When the failure budget stopped the rollout (held) or auto-revert began.
    std::optional<std::int64_t> budget_stop_ms;
    std::optional<std::int64_t> revert_start_ms;
    /// The limit was reached before the rollout ended.
    bool cut_short = false;
    /// When a hold stopped the rollout (it bit: nodes were left to do), else nullopt.
    std::optional<std::int64_t> hold_bit_ms;
};

/// Runs `rollout` (a fresh deployment: nodes pending or skipped) against simulated nodes on a
/// simulated clock, through the same model the engine runs. Pure: touches no node, no file,
/// no clock. A push node answers the requests it is sent. A pull node (Slot::pull) is sent
/// nothing: it asks every pull interval (its first ask one interval after the start), is
/// answered through Rollout::onAsk, stages within its ask (its next ask comes an interval
/// after the stage ends), and reports by pings; what is offered waits for its next ask, and
/// an offer not taken in time fails it as the engine does. `nodes` gives each node's swap
/// time and pull interval; `waves` the plan (for the report).
Rehearsal rehearse(Rollout rollout, const std::map<std::string, SimNode>& nodes,
                   const std::vector<Fault>& faults, const std::vector<Wave>& waves,
                   const RehearsalSettings& settings);

}  // namespace hoist::deploy_coordinator
