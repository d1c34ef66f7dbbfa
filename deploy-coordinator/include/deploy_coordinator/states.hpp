#pragma once

#include <optional>
#include <ostream>
#include <span>
#include <string_view>

namespace hoist::deploy_coordinator {

/// A deployment's state. The string forms (toString/parse) are what the state file and the
/// API carry; they never change.
enum class DeploymentState {
    staging,
    rolling,
    paused,
    held,  ///< the failure budget is spent
    reverting,
    done,
    failed,
    aborted,
    reverted,     ///< auto-revert finished
    rolled_back,  ///< an admin's rollback finished
};

/// One node's step in one deployment.
enum class NodeStep {
    pending,
    staging,
    staged,
    restarting,  ///< persisted before the restart is sent
    restarted,   ///< the node accepted it
    settling,    ///< healthy, waiting min_healthy_ms
    done,
    failed,
    skipped,  ///< already on the version, or left out by a revert
    revert_pending,
    reverting,    ///< persisted before the revert restart is sent
    revert_sent,  ///< the node accepted it
    reverted,
    revert_failed,
};

/// A node's standing in the registry (NodeRecord::status carries its string form).
enum class NodeStatus {
    up,
    down,     ///< stopped answering (a pull node: stopped asking)
    removed,  ///< decommissioned
};

/// How a node gets its actions (NodeRecord::mode carries its string form).
enum class NodeMode {
    push,  ///< the coordinator sends it stage and restart requests
    pull,  ///< it asks for its desired state and applies it itself
};

/// What moves a deployment from one state to the next.
enum class DeploymentEvent {
    all_staged,         ///< no node is pending or staging any more
    pause,              ///< admin
    resume_staging,     ///< admin, with nodes still to stage
    resume_rolling,     ///< admin, every node staged
    budget_spent,       ///< more than max_failures nodes failed, no auto-revert
    budget_spent_auto,  ///< the same with auto_revert
    all_finished,       ///< every node done, failed or skipped
    progress_deadline,  ///< no node finished within progress_deadline_ms
    abort,              ///< admin
    rollback,           ///< admin, on a deployment still acting (one that ended gets its own)
    revert_finished,    ///< auto-revert: every node to go back is back (or failed to)
    rollback_finished,  ///< the same for an admin's rollback
};

/// What moves a node from one step to the next. The same event moves a forward node and a
/// reverting node to their own next step (restart_accepted: restarting -> restarted,
/// reverting -> revert_sent).
enum class NodeEvent {
    stage_sent,        ///< a stage request sent or handed out
    stage_deferred,    ///< a hold stopped it before it left
    stage_lost,        ///< the coordinator restarted while a push stage was under way
    staged,            ///< the node built the release's set
    stage_failed,      ///< the node could not, or the stage timeout passed
    restart_sent,      ///< a restart (forward or back) committed before it leaves
    restart_deferred,  ///< a hold stopped it before it left
    restart_busy,      ///< 409: another transaction runs on the node; tried again
    restart_accepted,  ///< the node took it (202, a swap seen, or its first report)
    restart_refused,   ///< the node refused it
    healthy,           ///< the helper reported healthy on the new generation
    settled,           ///< still healthy after min_healthy_ms
    unhealthy,         ///< rolled back, failed, or not healthy after min_healthy_ms
    deadline,          ///< node deadline (or a pull offer not taken in time)
    revert_due,        ///< the deployment reverts: done nodes go back, unstarted are skipped
};

std::string_view toString(DeploymentState state);
std::string_view toString(NodeStep step);
std::string_view toString(DeploymentEvent event);
std::string_view toString(NodeEvent event);
/// nullopt for a string that names no state.
std::optional<DeploymentState> parseDeploymentState(std::string_view text);
std::optional<NodeStep> parseNodeStep(std::string_view text);
std::string_view toString(NodeStatus status);
std::string_view toString(NodeMode mode);
std::optional<NodeStatus> parseNodeStatus(std::string_view text);
std::optional<NodeMode> parseNodeMode(std::string_view text);

inline std::ostream& operator<<(std::ostream& out, DeploymentState state) {
    return out << toString(state);
}
inline std::ostream& operator<<(std::ostream& out, NodeStep step) {
    return out << toString(step);
}

/// Every deployment state and node step, in declaration order.
std::span<const DeploymentState> allDeploymentStates();
std::span<const NodeStep> allNodeSteps();
std::span<const DeploymentEvent> allDeploymentEvents();
std::span<const NodeEvent> allNodeEvents();

/// One row of a transition table.
template <typename S, typename E>
struct Transition {
    S from;
    E event;
    S to;
};

/// The tables: every allowed (from, event) -> to. A pair not in the table is not allowed.
std::span<const Transition<DeploymentState, DeploymentEvent>> deploymentTransitions();
std::span<const Transition<NodeStep, NodeEvent>> nodeTransitions();

/// The state `event` moves `from` to, nullopt when the table has no such transition.
std::optional<DeploymentState> next(DeploymentState from, DeploymentEvent event);
std::optional<NodeStep> next(NodeStep from, NodeEvent event);

/// The deployment may still act on nodes (staging, rolling, paused, held, reverting).
bool isActive(DeploymentState state);
/// The deployment has ended (done, failed, aborted, reverted, rolled_back).
bool isFinished(DeploymentState state);
/// restarting, restarted or settling.
bool isForwardInFlight(NodeStep step);
/// reverting or revert_sent.
bool isRevertInFlight(NodeStep step);
/// done, failed or skipped.
bool isForwardTerminal(NodeStep step);
/// A restart was sent or handed out and no answer has come yet (restarting, reverting).
bool isRestartUnconfirmed(NodeStep step);
/// A restart is under way on the node (restarting, restarted, reverting, revert_sent).
bool isSwapping(NodeStep step);

}  // namespace hoist::deploy_coordinator
