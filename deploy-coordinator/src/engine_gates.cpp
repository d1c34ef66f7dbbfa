// The engine's side of the metric gates: the model asks for a query, a check worker runs it
// against Prometheus (never the loop thread: a query may take seconds), and the sample goes
// back to the model on the loop. A failed gate's hold is put from a worker too, as a monitor's
// halt would be.

#include "core/log.hpp"
#include "engine.hpp"

namespace hoist::deploy_coordinator {

namespace {
constexpr std::string_view kLog = "deploy-coordinator";
}

Result<GateConfig> Engine::gatesFor(const StartRequest& request) const {
    GateConfig gates = request.gates.empty() ? options_.gates : request.gates;
    if (!request.gates.empty()) {
        if (gates.prometheus.empty()) gates.prometheus = options_.gates.prometheus;
        if (request.gates.error_grace_ms < 0) gates.error_grace_ms = options_.gates.error_grace_ms;
        if (request.gates.on_fail.empty()) gates.on_fail = options_.gates.on_fail;
    }
    HOIST_TRY(gates.validate());
    return gates;
}

void Engine::dispatchGates(Output& out) {
    if (!active_ || (out.gate_queries.empty() && out.gate_holds.empty())) return;
    std::string dep = active_->d.id;
    for (const auto& q : out.gate_queries) {
        auto deliver = [this, dep, gate = q.gate,
                        name = active_->gates.gates[q.gate].name](GateSample sample) {
            rollout_metrics_.gateEvaluated(name, sample.value ? "sampled" : "error");
            post([this, dep, gate, sample = std::move(sample)] {
                if (!active_ || active_->d.id != dep) return;
                Output next;
                active_->onGateSample(gate, sample, nowMs(), next);
                apply(next);
            });
        };
        // Stopping: no worker runs it (and a sample delivered here, under the engine's lock,
        // could not be posted). A restart asks the gates again.
        if (!check_pool_) continue;
        check_pool_->post(
            [deliver, prometheus = q.prometheus, query = q.query](http::Client& client) {
                deliver(evaluateGate(client, prometheus, query));
            });
    }
    for (const auto& h : out.gate_holds) {
        rollout_metrics_.gateEvaluated(h.source.substr(5), "failed");
        auto put = [this, h] {
            auto held = halt(h.source, h.reason, "coordinator");
            if (!held)
                log::error(kLog, "cannot put the hold of a failed gate",
                           {{"source", h.source}, {"error", held.error().describe()}});
        };
        if (check_pool_) check_pool_->post([put](http::Client&) { put(); });
    }
}

}  // namespace hoist::deploy_coordinator
