#include "deploy_coordinator/states.hpp"

#include <algorithm>
#include <array>

namespace hoist::deploy_coordinator {

namespace {

using DS = DeploymentState;
using DE = DeploymentEvent;
using NS = NodeStep;
using NE = NodeEvent;

template <typename T>
struct Named {
    T value;
    std::string_view name;
};

constexpr std::array kDeploymentStates{
    Named<DS>{DS::staging, "staging"},     Named<DS>{DS::rolling, "rolling"},
    Named<DS>{DS::paused, "paused"},       Named<DS>{DS::held, "held"},
    Named<DS>{DS::reverting, "reverting"}, Named<DS>{DS::done, "done"},
    Named<DS>{DS::failed, "failed"},       Named<DS>{DS::aborted, "aborted"},
    Named<DS>{DS::reverted, "reverted"},   Named<DS>{DS::rolled_back, "rolled_back"},
};

constexpr std::array kNodeSteps{
    Named<NS>{NS::pending, "pending"},     Named<NS>{NS::staging, "staging"},
    Named<NS>{NS::staged, "staged"},       Named<NS>{NS::restarting, "restarting"},
    Named<NS>{NS::restarted, "restarted"}, Named<NS>{NS::settling, "settling"},
    Named<NS>{NS::done, "done"},           Named<NS>{NS::failed, "failed"},
    Named<NS>{NS::skipped, "skipped"},     Named<NS>{NS::revert_pending, "revert_pending"},
    Named<NS>{NS::reverting, "reverting"}, Named<NS>{NS::revert_sent, "revert_sent"},
    Named<NS>{NS::reverted, "reverted"},   Named<NS>{NS::revert_failed, "revert_failed"},
};

constexpr std::array kNodeStatuses{
    Named<NodeStatus>{NodeStatus::up, "up"},
    Named<NodeStatus>{NodeStatus::down, "down"},
    Named<NodeStatus>{NodeStatus::removed, "removed"},
};

constexpr std::array kNodeModes{
    Named<NodeMode>{NodeMode::push, "push"},
    Named<NodeMode>{NodeMode::pull, "pull"},
};

constexpr std::array kDeploymentEvents{
    Named<DE>{DE::all_staged, "all_staged"},
    Named<DE>{DE::pause, "pause"},
    Named<DE>{DE::resume_staging, "resume_staging"},
    Named<DE>{DE::resume_rolling, "resume_rolling"},
    Named<DE>{DE::budget_spent, "budget_spent"},
    Named<DE>{DE::budget_spent_auto, "budget_spent_auto"},
    Named<DE>{DE::all_finished, "all_finished"},
    Named<DE>{DE::progress_deadline, "progress_deadline"},
    Named<DE>{DE::abort, "abort"},
    Named<DE>{DE::rollback, "rollback"},
    Named<DE>{DE::revert_finished, "revert_finished"},
    Named<DE>{DE::rollback_finished, "rollback_finished"},
};

constexpr std::array kNodeEvents{
    Named<NE>{NE::stage_sent, "stage_sent"},
    Named<NE>{NE::stage_deferred, "stage_deferred"},
    Named<NE>{NE::stage_lost, "stage_lost"},
    Named<NE>{NE::staged, "staged"},
    Named<NE>{NE::stage_failed, "stage_failed"},
    Named<NE>{NE::restart_sent, "restart_sent"},
    Named<NE>{NE::restart_deferred, "restart_deferred"},
    Named<NE>{NE::restart_busy, "restart_busy"},
    Named<NE>{NE::restart_accepted, "restart_accepted"},
    Named<NE>{NE::restart_refused, "restart_refused"},
    Named<NE>{NE::healthy, "healthy"},
    Named<NE>{NE::settled, "settled"},
    Named<NE>{NE::unhealthy, "unhealthy"},
    Named<NE>{NE::deadline, "deadline"},
    Named<NE>{NE::revert_due, "revert_due"},
};

// The deployment's life: staging -> rolling -> done, with the admin's pause, resume, abort
// and rollback, the failure budget and the progress deadline.
constexpr Transition<DS, DE> kDeploymentTable[] = {
    {DS::staging, DE::all_staged, DS::rolling},
    {DS::staging, DE::pause, DS::paused},
    {DS::rolling, DE::pause, DS::paused},
    {DS::paused, DE::resume_staging, DS::staging},
    {DS::paused, DE::resume_rolling, DS::rolling},
    {DS::held, DE::resume_staging, DS::staging},
    {DS::held, DE::resume_rolling, DS::rolling},
    {DS::staging, DE::budget_spent, DS::held},
    {DS::rolling, DE::budget_spent, DS::held},
    {DS::staging, DE::budget_spent_auto, DS::reverting},
    {DS::rolling, DE::budget_spent_auto, DS::reverting},
    {DS::rolling, DE::all_finished, DS::done},
    {DS::staging, DE::progress_deadline, DS::failed},
    {DS::rolling, DE::progress_deadline, DS::failed},
    {DS::reverting, DE::progress_deadline, DS::failed},
    {DS::staging, DE::abort, DS::aborted},
    {DS::rolling, DE::abort, DS::aborted},
    {DS::paused, DE::abort, DS::aborted},
    {DS::held, DE::abort, DS::aborted},
    {DS::reverting, DE::abort, DS::aborted},
    {DS::staging, DE::rollback, DS::reverting},
    {DS::rolling, DE::rollback, DS::reverting},
    {DS::paused, DE::rollback, DS::reverting},
    {DS::held, DE::rollback, DS::reverting},
    {DS::reverting, DE::revert_finished, DS::reverted},
    {DS::reverting, DE::rollback_finished, DS::rolled_back},
};

// One node's part: stage, restart, health, settle; and back again when the deployment
// reverts. A forward step and its revert twin take the same event to their own next step.
constexpr Transition<NS, NE> kNodeTable[] = {
    {NS::pending, NE::stage_sent, NS::staging},
    {NS::pending, NE::deadline, NS::failed},  // a pull node never asked for its stage
    {NS::pending, NE::revert_due, NS::skipped},
    {NS::staging, NE::stage_deferred, NS::pending},
    {NS::staging, NE::stage_lost, NS::pending},
    {NS::staging, NE::staged, NS::staged},
    {NS::staging, NE::stage_failed, NS::failed},
    {NS::staged, NE::restart_sent, NS::restarting},
    {NS::staged, NE::deadline, NS::failed},  // a pull node never asked for its restart
    {NS::staged, NE::revert_due, NS::skipped},
    {NS::restarting, NE::restart_deferred, NS::staged},
    {NS::restarting, NE::restart_busy, NS::staged},
    {NS::restarting, NE::restart_accepted, NS::restarted},
    {NS::restarting, NE::restart_refused, NS::failed},
    {NS::restarting, NE::deadline, NS::failed},
    {NS::restarted, NE::healthy, NS::settling},
    {NS::restarted, NE::unhealthy, NS::failed},
    {NS::restarted, NE::deadline, NS::failed},
    {NS::settling, NE::settled, NS::done},
    {NS::settling, NE::unhealthy, NS::failed},
    {NS::settling, NE::deadline, NS::failed},
    {NS::done, NE::revert_due, NS::revert_pending},
    {NS::revert_pending, NE::restart_sent, NS::reverting},
    {NS::revert_pending, NE::deadline, NS::revert_failed},
    {NS::reverting, NE::restart_deferred, NS::revert_pending},
    {NS::reverting, NE::restart_busy, NS::revert_pending},
    {NS::reverting, NE::restart_accepted, NS::revert_sent},
    {NS::reverting, NE::restart_refused, NS::revert_failed},
    {NS::reverting, NE::deadline, NS::revert_failed},
    {NS::revert_sent, NE::healthy, NS::reverted},
    {NS::revert_sent, NE::unhealthy, NS::revert_failed},
    {NS::revert_sent, NE::deadline, NS::revert_failed},
};

template <typename T, size_t N>
std::string_view nameOf(const std::array<Named<T>, N>& names, T value) {
    for (const auto& n : names)
        if (n.value == value) return n.name;
    return "unknown";
}

template <typename T, size_t N>
std::optional<T> valueOf(const std::array<Named<T>, N>& names, std::string_view text) {
    for (const auto& n : names)
        if (n.name == text) return n.value;
    return std::nullopt;
}

template <typename T, size_t N>
constexpr std::array<T, N> valuesOf(const std::array<Named<T>, N>& names) {
    std::array<T, N> values{};
    for (size_t i = 0; i < N; ++i) values[i] = names[i].value;
    return values;
}

constexpr auto kAllDeploymentStates = valuesOf(kDeploymentStates);
constexpr auto kAllNodeSteps = valuesOf(kNodeSteps);
constexpr auto kAllDeploymentEvents = valuesOf(kDeploymentEvents);
constexpr auto kAllNodeEvents = valuesOf(kNodeEvents);

template <typename S, typename E, size_t N>
std::optional<S> lookup(const Transition<S, E> (&table)[N], S from, E event) {
    for (const auto& t : table)
        if (t.from == from && t.event == event) return t.to;
    return std::nullopt;
}

}  // namespace

std::string_view toString(DeploymentState state) {
    return nameOf(kDeploymentStates, state);
}
std::string_view toString(NodeStep step) {
    return nameOf(kNodeSteps, step);
}
std::string_view toString(DeploymentEvent event) {
    return nameOf(kDeploymentEvents, event);
}
std::string_view toString(NodeEvent event) {
    return nameOf(kNodeEvents, event);
}
std::optional<DeploymentState> parseDeploymentState(std::string_view text) {
    return valueOf(kDeploymentStates, text);
}
std::optional<NodeStep> parseNodeStep(std::string_view text) {
    return valueOf(kNodeSteps, text);
}
std::string_view toString(NodeStatus status) {
    return nameOf(kNodeStatuses, status);
}
std::string_view toString(NodeMode mode) {
    return nameOf(kNodeModes, mode);
}
std::optional<NodeStatus> parseNodeStatus(std::string_view text) {
    return valueOf(kNodeStatuses, text);
}
std::optional<NodeMode> parseNodeMode(std::string_view text) {
    return valueOf(kNodeModes, text);
}

std::span<const DeploymentState> allDeploymentStates() {
    return kAllDeploymentStates;
}
std::span<const NodeStep> allNodeSteps() {
    return kAllNodeSteps;
}
std::span<const DeploymentEvent> allDeploymentEvents() {
    return kAllDeploymentEvents;
}
std::span<const NodeEvent> allNodeEvents() {
    return kAllNodeEvents;
}

std::span<const Transition<DeploymentState, DeploymentEvent>> deploymentTransitions() {
    return kDeploymentTable;
}
std::span<const Transition<NodeStep, NodeEvent>> nodeTransitions() {
    return kNodeTable;
}

std::optional<DeploymentState> next(DeploymentState from, DeploymentEvent event) {
    return lookup(kDeploymentTable, from, event);
}
std::optional<NodeStep> next(NodeStep from, NodeEvent event) {
    return lookup(kNodeTable, from, event);
}

bool isActive(DeploymentState s) {
    return s == DS::staging || s == DS::rolling || s == DS::paused || s == DS::held ||
           s == DS::reverting;
}
bool isFinished(DeploymentState s) {
    return !isActive(s);
}
bool isForwardInFlight(NodeStep s) {
    return s == NS::restarting || s == NS::restarted || s == NS::settling;
}
bool isRevertInFlight(NodeStep s) {
    return s == NS::reverting || s == NS::revert_sent;
}
bool isForwardTerminal(NodeStep s) {
    return s == NS::done || s == NS::failed || s == NS::skipped;
}
bool isRestartUnconfirmed(NodeStep s) {
    return s == NS::restarting || s == NS::reverting;
}
bool isSwapping(NodeStep s) {
    return s == NS::restarting || s == NS::restarted || isRevertInFlight(s);
}

}  // namespace hoist::deploy_coordinator
