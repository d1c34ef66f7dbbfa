#include "engine.hpp"

namespace hoist::deploy_coordinator {

// A POST that starts a deployment may be retried by a client that never saw the answer (a
// timeout, a coordinator restart). The key it sends is kept in the deployment's row, in the
// same transaction that writes the deployment, so the retry is answered with that deployment
// instead of a 409 (or a second one).

std::string Engine::idempotentAnswer(const Rollout& r) {
    std::vector<DeploymentNode> rows;
    rows.reserve(r.slots.size());
    for (const auto& s : r.slots) rows.push_back(s.row);
    return deploymentSummary(r.d, rows, false, 0);
}

Result<std::optional<std::string>> Engine::replayIdempotent(const std::string& key) {
    if (key.empty()) return std::optional<std::string>();
    {
        std::lock_guard lock(mutex_);
        if (active_ && active_->d.idempotency_key == key)
            return std::optional<std::string>(idempotentAnswer(*active_));
    }
    HOIST_ASSIGN(auto recent, state_.deployments(200));
    for (const auto& d : recent)
        if (d.idempotency_key == key) {
            HOIST_ASSIGN(auto text, deploymentJson(d.id, false, 0));
            return std::optional<std::string>(std::move(text));
        }
    return std::optional<std::string>();
}

}  // namespace hoist::deploy_coordinator
