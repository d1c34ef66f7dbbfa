#include "rollout_metrics.hpp"

#include <string>

namespace hoist::deploy_coordinator {

namespace {
constexpr std::string_view kSwaps = "hoist_coordinator_node_swaps_total";
constexpr std::string_view kSwapSeconds = "hoist_coordinator_node_swap_duration_seconds";
constexpr std::string_view kStageSeconds = "hoist_coordinator_stage_duration_seconds";
constexpr std::string_view kGates = "hoist_coordinator_gate_evaluations_total";
constexpr NodeStep kSwapResults[] = {NodeStep::done, NodeStep::failed, NodeStep::reverted,
                                     NodeStep::revert_failed};
}  // namespace

RolloutMetrics::RolloutMetrics() {
    registry_.describe(kSwaps, "counter", "node swaps finished, by result");
    registry_.describeHistogram(kSwapSeconds,
                                "a node's swap from the restart sent to its result (done: "
                                "healthy for min_healthy_ms), by result",
                                metrics::stepBuckets());
    registry_.describeHistogram(kStageSeconds, "stage requests from sent to answered, by result",
                                metrics::stepBuckets());
    registry_.describe(kGates, "counter",
                       "metric gate queries by gate and result (sampled: a value came back; error: "
                       "the query failed) and gate failures (failed)");
    for (auto result : kSwapResults) {
        auto labels = metrics::label("result", toString(result));
        registry_.declare(kSwaps, labels);
        registry_.declare(kSwapSeconds, labels);
    }
    for (std::string_view result : {"staged", "failed"})
        registry_.declare(kStageSeconds, metrics::label("result", result));
}

void RolloutMetrics::swapFinished(NodeStep result, double seconds) {
    auto labels = metrics::label("result", toString(result));
    registry_.add(kSwaps, labels);
    registry_.observe(kSwapSeconds, labels, seconds);
}

void RolloutMetrics::stageFinished(std::string_view result, double seconds) {
    registry_.observe(kStageSeconds, metrics::label("result", result), seconds);
}

void RolloutMetrics::gateEvaluated(std::string_view gate, std::string_view result) {
    auto gate_label = metrics::label("gate", gate);
    for (std::string_view r : {"sampled", "error", "failed"})
        registry_.declare(kGates, gate_label + "," + metrics::label("result", r));
    registry_.add(kGates, gate_label + "," + metrics::label("result", result));
}

}  // namespace hoist::deploy_coordinator
