#include <algorithm>
#include <map>

#include "core/json.hpp"
#include "engine.hpp"

namespace hoist::deploy_coordinator {

namespace {

constexpr NodeStatus kNodeStatuses[] = {NodeStatus::up, NodeStatus::down, NodeStatus::removed};

bool finishesSwap(NodeStep step) {
    return step == NodeStep::done || step == NodeStep::failed || step == NodeStep::reverted ||
           step == NodeStep::revert_failed;
}

// "http://host:port/x" -> {"host:port", "http"}.
std::pair<std::string, std::string> target(const std::string& address) {
    std::string_view rest = address;
    std::string scheme = "http";
    if (auto colon = rest.find("://"); colon != std::string_view::npos) {
        scheme = std::string(rest.substr(0, colon));
        rest.remove_prefix(colon + 3);
    }
    rest = rest.substr(0, rest.find('/'));
    return {std::string(rest), scheme};
}

}  // namespace

void Engine::observeOutput(const Output& out) {
    if (!active_) return;
    for (const auto& e : out.events) {
        if (e.node.empty() || !e.action.starts_with("node ")) continue;
        auto step = parseNodeStep(std::string_view(e.action).substr(5));
        if (!step || !finishesSwap(*step)) continue;
        const Slot* slot = active_->find(e.node);
        if (slot == nullptr) continue;
        // A node that failed before a restart was accepted (a stage failure) made no swap.
        if (slot->row.started_ms <= 0 || (*step == NodeStep::failed && slot->row.restarts == 0))
            continue;
        double seconds = static_cast<double>(std::max<std::int64_t>(
                             0, slot->row.finished_ms - slot->row.started_ms)) /
                         1000.0;
        rollout_metrics_.swapFinished(*step, seconds);
    }
}

void Engine::collectMetrics(metrics::Registry& r) {
    r.describe("hoist_coordinator_nodes", "gauge", "registered nodes by status");
    r.describe("hoist_coordinator_holds", "gauge", "standing halt holds");
    r.describe("hoist_coordinator_hold_start_time_seconds", "gauge",
               "when each standing hold was put, by source (seconds since the Unix epoch)");
    r.describe("hoist_coordinator_deployment_nodes", "gauge",
               "nodes of the acting deployment by state (every state, 0 when none acts)");
    r.describe("hoist_coordinator_deployment_state", "gauge",
               "1 for the acting deployment's state, 0 for every other state");
    r.describe("hoist_coordinator_deployment_info", "gauge",
               "1 for the acting deployment, labelled with its id, version, kind, state and "
               "what it waits on (no series while none acts)");
    r.describe("hoist_coordinator_deployment_acting", "gauge", "1 while a deployment acts");
    r.describe("hoist_coordinator_failure_budget_remaining", "gauge",
               "node failures the acting deployment may still take (0 while none acts)");
    r.describe("hoist_coordinator_pings_total", "counter", "status pings received");
    r.describe("hoist_coordinator_stale_pings_total", "counter",
               "status pings ignored as re-deliveries");
    r.describe("hoist_coordinator_node_actions_total", "counter",
               "stage and restart requests sent to nodes or handed out to pull nodes");
    r.describe("hoist_coordinator_node_actions_deferred_total", "counter",
               "node actions stopped by a hold before sending");
    r.describe("hoist_coordinator_queued_tasks", "gauge",
               "outgoing node requests waiting for a worker");
    r.describe("hoist_coordinator_runner_queue", "gauge",
               "commands (pings, registrations, admin commands, task results, halts) waiting "
               "for the runner");
    r.set("hoist_coordinator_runner_queue", "", static_cast<double>(runner_.queued()));
    std::map<std::string, double> by_status;
    for (auto status : kNodeStatuses) by_status[std::string(toString(status))] = 0;
    std::map<std::string, double> by_state;
    for (auto step : allNodeSteps()) by_state[std::string(toString(step))] = 0;
    std::optional<Deployment> acting;
    std::int64_t budget_left = 0;
    std::vector<Hold> holds;
    {
        std::lock_guard lock(mutex_);
        for (const auto& [_, n] : nodes_) by_status[n.status]++;
        if (active_) {
            for (const auto& s : active_->slots) by_state[std::string(toString(s.row.state))]++;
            if (active_->d.active()) {
                acting = active_->d;
                budget_left =
                    std::max<std::int64_t>(0, active_->d.max_failures - active_->failedCount());
            }
        }
        std::lock_guard data_lock(holds_data_mutex_);
        holds = holds_;
    }
    std::vector<std::pair<std::string, double>> series;
    for (const auto& [k, v] : by_status) series.emplace_back(metrics::label("status", k), v);
    r.replace("hoist_coordinator_nodes", series);
    series.clear();
    for (const auto& [k, v] : by_state) series.emplace_back(metrics::label("state", k), v);
    r.replace("hoist_coordinator_deployment_nodes", series);
    series.clear();
    for (auto state : allDeploymentStates())
        series.emplace_back(metrics::label("state", toString(state)),
                            acting && acting->state == state ? 1.0 : 0.0);
    r.replace("hoist_coordinator_deployment_state", series);
    series.clear();
    if (acting)
        series.emplace_back(metrics::label("id", acting->id) + "," +
                                metrics::label("version", acting->version) + "," +
                                metrics::label("kind", acting->kind) + "," +
                                metrics::label("state", toString(acting->state)) + "," +
                                metrics::label("waiting_on", acting->waiting_on),
                            1.0);
    r.replace("hoist_coordinator_deployment_info", series);
    r.set("hoist_coordinator_deployment_acting", "", acting ? 1.0 : 0.0);
    r.set("hoist_coordinator_failure_budget_remaining", "", static_cast<double>(budget_left));
    series.clear();
    for (const auto& h : holds)
        series.emplace_back(metrics::label("source", h.source),
                            static_cast<double>(h.since_ms) / 1000.0);
    r.replace("hoist_coordinator_hold_start_time_seconds", series);
    r.set("hoist_coordinator_holds", "", static_cast<double>(holds.size()));
    r.set("hoist_coordinator_pings_total", "", static_cast<double>(pings_.load()));
    r.set("hoist_coordinator_stale_pings_total", "", static_cast<double>(stale_pings_.load()));
    r.set("hoist_coordinator_node_actions_total", "", static_cast<double>(actions_sent_.load()));
    r.set("hoist_coordinator_node_actions_deferred_total", "",
          static_cast<double>(actions_deferred_.load()));
    r.set("hoist_coordinator_queued_tasks", "", pool_ ? static_cast<double>(pool_->queued()) : 0.0);
    rollout_metrics_.publish(r);
}

std::string Engine::nodesPrometheusSd() {
    std::vector<NodeRecord> list;
    {
        std::lock_guard lock(mutex_);
        for (const auto& [_, n] : nodes_) list.push_back(n);
    }
    return nodesPrometheusSd(std::move(list));
}

std::string Engine::nodesPrometheusSd(std::vector<NodeRecord> all) {
    std::vector<NodeRecord> list;
    for (auto& n : all)
        if (n.is(NodeStatus::up)) list.push_back(std::move(n));
    std::sort(list.begin(), list.end(),
              [](const NodeRecord& x, const NodeRecord& y) { return x.id < y.id; });
    json::Writer w;
    w.beginArray();
    for (const auto& n : list) {
        auto [host_port, scheme] = target(n.address);
        w.beginObject().key("targets").beginArray().value(host_port).endArray();
        w.key("labels")
            .beginObject()
            .field("__scheme__", scheme)
            .field("node", n.id)
            .field("role", n.role);
        w.endObject().endObject();
    }
    w.endArray();
    return w.str();
}

}  // namespace hoist::deploy_coordinator
