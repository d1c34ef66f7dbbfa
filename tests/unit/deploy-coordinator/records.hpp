#pragma once

// Sample rows for the state stores' tests (SQLite and etcd keep the same records).

#include <cstdint>
#include <string>

#include "deploy_coordinator/state.hpp"

namespace hoist::deploy_coordinator {

/// Deployment d-<number> of 2.0.0, rolling, 10% at once, a budget of 2 failures, auto-revert.
inline Deployment sampleDeployment(std::int64_t number) {
    Deployment d;
    d.id = "d-" + std::to_string(number);
    d.number = number;
    d.version = "2.0.0";
    d.state = DeploymentState::rolling;
    d.max_parallel = "10%";
    d.max_failures = 2;
    d.auto_revert = true;
    d.release_json = "{\"version\":\"2.0.0\"}";
    d.created_by = "admin";
    d.created_ms = 1000 + number;
    return d;
}

/// Agent `node` of deployment d-1, restarting for the first time.
inline DeploymentNode sampleDeploymentNode(const std::string& node) {
    DeploymentNode n;
    n.deployment = "d-1";
    n.node = node;
    n.role = "agent";
    n.state = NodeStep::restarting;
    n.restarts = 1;
    return n;
}

}  // namespace hoist::deploy_coordinator
