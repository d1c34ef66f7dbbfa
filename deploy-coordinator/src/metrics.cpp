#include "engine.hpp"

#include <map>

namespace hoist::deploy_coordinator {

void Engine::collectMetrics(metrics::Registry& r) {
    r.describe("hoist_coordinator_nodes", "gauge", "registered nodes by status");
    r.describe("hoist_coordinator_holds", "gauge", "standing halt holds");
    r.describe("hoist_coordinator_deployment_nodes", "gauge",
               "nodes of the running deployment by state");
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
    std::map<std::string, double> by_status{{"up", 0}, {"down", 0}, {"removed", 0}};
    std::map<std::string, double> by_state;
    double holds = 0;
    {
        std::lock_guard lock(mutex_);
        for (const auto& [_, n] : nodes_) by_status[n.status]++;
        if (active_)
            for (const auto& s : active_->slots) by_state[std::string(toString(s.row.state))]++;
        std::lock_guard data_lock(holds_data_mutex_);
        holds = static_cast<double>(holds_.size());
    }
    for (const auto& [k, v] : by_status)
        r.set("hoist_coordinator_nodes", "status=\"" + k + "\"", v);
    for (const auto& [k, v] : by_state)
        r.set("hoist_coordinator_deployment_nodes", "state=\"" + k + "\"", v);
    r.set("hoist_coordinator_holds", "", holds);
    r.set("hoist_coordinator_pings_total", "", static_cast<double>(pings_.load()));
    r.set("hoist_coordinator_stale_pings_total", "", static_cast<double>(stale_pings_.load()));
    r.set("hoist_coordinator_node_actions_total", "", static_cast<double>(actions_sent_.load()));
    r.set("hoist_coordinator_node_actions_deferred_total", "",
          static_cast<double>(actions_deferred_.load()));
    if (pool_) r.set("hoist_coordinator_queued_tasks", "", static_cast<double>(pool_->queued()));
}

}  // namespace hoist::deploy_coordinator
