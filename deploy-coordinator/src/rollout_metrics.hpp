#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

#include "core/metrics.hpp"
#include "deploy_coordinator/states.hpp"

namespace hoist::deploy_coordinator {

/// What the rollout did, for /metrics: swap outcomes and durations by result, stage durations
/// by result and gate evaluations. Every series exists from the start at 0. Thread-safe.
class RolloutMetrics {
public:
    RolloutMetrics();

    /// A node finished its swap (done, failed, reverted, revert_failed) `seconds` after the
    /// restart was sent (stop to healthy for done).
    void swapFinished(NodeStep result, double seconds);
    /// A stage request came back ("staged" or "failed") after `seconds`.
    void stageFinished(std::string_view result, double seconds);
    /// A metric gate query came back ("sampled" or "error"), or a gate failed ("failed").
    void gateEvaluated(std::string_view gate, std::string_view result);

    /// Copies the series into the server's registry.
    void publish(metrics::Registry& into) const { into.merge(registry_); }

private:
    metrics::Registry registry_;
};

}  // namespace hoist::deploy_coordinator
