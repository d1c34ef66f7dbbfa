// The rollout model's metric gates: between two waves of the forward rollout, each gate's
// query is sampled (by the engine, off its loop) until the gate has held for its `for` time,
// failed its comparison, or kept erroring past the grace. Pure, like the rest of the model.

#include <algorithm>
#include <charconv>

#include "core/strings.hpp"
#include "rollout.hpp"

namespace hoist::deploy_coordinator {

using NS = NodeStep;
using DS = DeploymentState;

namespace {

// A sample as people read it: 6 significant digits (25.37, not 25.369999999999997).
std::string number(double value) {
    char buffer[64];
    auto [end, ec] =
        std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::general, 6);
    return ec == std::errc{} ? std::string(buffer, end) : std::string("NaN");
}

std::string seconds(std::int64_t ms) {
    return ms % 1000 == 0 ? std::to_string(ms / 1000) + "s" : std::to_string(ms) + "ms";
}

// Samples of a gate with a `for` time come this often: a few within it, at most every 5 s.
std::int64_t sampleInterval(const GateSpec& gate) {
    return std::clamp<std::int64_t>(gate.for_ms / 6, 1000, 5000);
}

}  // namespace

bool Rollout::forwardBusy() const {
    for (int rank = 0; rank < 3; ++rank)
        if (countIn(rank, isForwardInFlight) > 0) return true;
    for (auto i : timed_)
        if (slots[i].row.state == NS::staged && slots[i].offered_ms.has_value()) return true;
    return false;
}

bool Rollout::gatesAllowNextWave(std::int64_t now, Output& out) {
    // One wave at a time: the next starts only after this one settled and the gates passed.
    if (forwardBusy()) return false;
    std::int64_t finished = count(NS::done) + count(NS::failed);
    if (finished <= gated_finished_) return true;
    if (gate_run_.failed) {
        if (!gate_run_.hold_seen) return false;
        // Its hold landed and an admin cleared it: the admin's word lets the next wave go.
        event(out, "coordinator", "gate overridden", "",
              "gate '" + gates.gates[gate_run_.index].name +
                  "': its hold was cleared, so the next wave starts",
              now);
        gate_run_ = {};
        gated_finished_ = finished;
        return true;
    }
    if (gate_run_.index >= gates.gates.size()) {
        gate_run_ = {};
        gated_finished_ = finished;
        return true;
    }
    if (!gate_run_.querying && now >= gate_run_.next_at) {
        if (gate_run_.index == 0 && gate_run_.ok_since < 0 && gate_run_.error_since < 0 &&
            gate_run_.last.empty())
            event(out, "coordinator", "gates", "",
                  detail::concat("evaluating ", gates.gates.size(), " gate",
                                 gates.gates.size() == 1 ? "" : "s", " after ", finished, " node",
                                 finished == 1 ? "" : "s", " finished"),
                  now);
        gate_run_.querying = true;
        const auto& gate = gates.gates[gate_run_.index];
        out.gate_queries.push_back({gate_run_.index, gates.prometheus, gate.query});
    }
    return false;
}

void Rollout::onGateSample(std::size_t index, const GateSample& sample, std::int64_t now,
                           Output& out) {
    if (!gate_run_.querying || index != gate_run_.index || index >= gates.gates.size()) return;
    gate_run_.querying = false;
    if (d.state != DS::rolling) return;
    const auto& gate = gates.gates[index];
    auto interval = sampleInterval(gate);
    if (!sample.assume_pass && !sample.value) {
        if (gate_run_.error_since < 0) gate_run_.error_since = now;
        gate_run_.ok_since = -1;
        gate_run_.last =
            "query failing for " + seconds(now - gate_run_.error_since) + ": " + sample.error;
        if (now - gate_run_.error_since >= gates.error_grace_ms)
            return failGate(gate,
                            "its query failed for " + seconds(now - gate_run_.error_since) +
                                " (grace " + seconds(gates.error_grace_ms) + "): " + sample.error,
                            now, out);
        gate_run_.next_at = now + interval;
        computeWaitingOn(false, "");
        return;
    }
    gate_run_.error_since = -1;
    double value = sample.value.value_or(0);
    if (!sample.assume_pass && !gate.holds(value))
        return failGate(gate,
                        detail::concat(gate.query, " is ", number(value), ", not ", gate.op, " ",
                                       number(gate.threshold)),
                        now, out);
    if (gate_run_.ok_since < 0) gate_run_.ok_since = now;
    gate_run_.last = sample.assume_pass ? "assumed to hold" : "value " + number(value);
    if (gate.for_ms > 0)
        gate_run_.last +=
            ", held " + seconds(now - gate_run_.ok_since) + " of " + seconds(gate.for_ms);
    if (now - gate_run_.ok_since >= gate.for_ms) {
        event(out, "coordinator", "gate passed", "",
              "gate '" + gate.name + "' (" + gate.text() + "): " + gate_run_.last, now);
        gate_run_.index++;
        gate_run_.ok_since = -1;
        gate_run_.next_at = now;
        gate_run_.last.clear();
    } else {
        gate_run_.next_at = now + interval;
    }
    computeWaitingOn(false, "");
}

void Rollout::failGate(const GateSpec& gate, const std::string& why, std::int64_t now,
                       Output& out) {
    gate_run_.failed = true;
    gate_run_.last = why;
    std::string reason = "gate '" + gate.name + "' failed: " + why;
    event(out, "coordinator", "gate failed", "", reason, now);
    if (gates.on_fail == "revert") {
        d.message = "auto-revert: " + reason;
        gate_run_ = {};
        setState(DeploymentEvent::budget_spent_auto, "coordinator", d.message, now, out);
        return;
    }
    out.gate_holds.push_back({"gate/" + gate.name, reason});
    computeWaitingOn(false, "");
}

std::string Rollout::gateWaiting() const {
    if (gates.empty() || d.state != DS::rolling) return "";
    if (count(NS::done) + count(NS::failed) <= gated_finished_ ||
        gate_run_.index >= gates.gates.size())
        return "";
    const auto& gate = gates.gates[gate_run_.index];
    if (gate_run_.failed)
        return "gate '" + gate.name + "' failed: " + gate_run_.last + "; its hold gate/" +
               gate.name + " stops the next wave (clear it with cluster resume --source gate/" +
               gate.name + ")";
    std::string text = "gate '" + gate.name + "' (" + gate.text() + ") before the next wave";
    if (gate_run_.last.empty()) return text + ": evaluating";
    return text + ": " + gate_run_.last;
}

}  // namespace hoist::deploy_coordinator
