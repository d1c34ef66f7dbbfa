// The rollout model's pull nodes: what a pull node is told when it asks, and the timers that
// replace the polls and probes a push node gets (offers not taken in time, the stage timeout,
// min_healthy_ms judged by its asks). Pure, like the rest of the model (rollout.hpp).
#include "rollout.hpp"

#include <algorithm>

#include "core/strings.hpp"

namespace hoist::deploy_coordinator {

using NS = NodeStep;
using DS = DeploymentState;

PullAnswer Rollout::onAsk(Slot& slot, std::optional<std::int64_t> generation, bool held,
                          std::int64_t now, Output& out) {
    slot.last_pull_ms = now;
    slot.last_pull_generation = generation.value_or(-1);
    slot.last_heard_ms = std::max(slot.last_heard_ms, now);
    PullAnswer answer;
    if (!isActive(d.state) || held) return answer;
    auto s = slot.row.state;
    // Handed out before: the same action again. New: only what was offered, while the
    // deployment may act.
    bool again_stage = s == NS::staging;
    bool again_restart = s == NS::restarting || s == NS::restarted;
    bool again_revert = isRevertInFlight(s);
    bool offered = slot.offered_ms.has_value();
    bool new_stage = s == NS::pending && offered && d.state == DS::staging;
    bool new_restart = s == NS::staged && offered && d.state == DS::rolling;
    bool new_revert = s == NS::revert_pending && offered && d.state == DS::reverting;
    if (!(again_stage || again_restart || again_revert || new_stage || new_restart || new_revert))
        return answer;
    if (new_stage) {
        step(slot, NodeEvent::stage_sent);
        slot.row.started_ms = now;
        slot.offered_ms.reset();
        event(out, "coordinator", "stage", slot.row.node,
              "release " + d.version + ", handed out on request", now);
    } else if (new_restart || new_revert) {
        std::int64_t to = new_revert ? slot.row.from_generation : slot.row.target_generation;
        step(slot, NodeEvent::restart_sent);
        slot.row.started_ms = now;
        slot.last_heard_ms = now;
        slot.offered_ms.reset();
        event(out, "coordinator", new_revert ? "revert" : "restart", slot.row.node,
              detail::concat("to generation ", to, ", handed out on request"), now);
    }
    answer.release = d.version;
    if (new_stage || again_stage) {
        answer.kind = PullAnswer::Kind::stage;
    } else {
        answer.kind = PullAnswer::Kind::restart;
        bool revert = new_revert || again_revert;
        answer.generation = revert ? slot.row.from_generation : slot.row.target_generation;
        if (revert) answer.release = slot.row.from_release;
    }
    return answer;
}

bool Rollout::pullTimers(Slot& slot, std::int64_t now, bool held, const RolloutSettings& settings,
                         Output& out) {
    auto s = slot.row.state;
    bool stage_due = d.state == DS::staging && !held;
    if (slot.offered_ms.has_value()) {
        bool offerable = s == NS::pending || s == NS::staged || s == NS::revert_pending;
        bool takeable = !held && ((s == NS::pending && d.state == DS::staging) ||
                                  (s == NS::staged && d.state == DS::rolling) ||
                                  (s == NS::revert_pending && d.state == DS::reverting));
        std::int64_t limit = s == NS::pending ? settings.stage_timeout_ms : d.node_deadline_ms;
        if (!offerable) {
            slot.offered_ms.reset();
        } else if (!takeable) {
            slot.offered_ms = now;  // an offer nobody may take (a hold, a pause) does not age
        } else if (limit > 0 && now - *slot.offered_ms > limit) {
            // A pull node that stops asking fails like a push node that stops answering.
            bool stage = s == NS::pending;
            slot.offered_ms.reset();
            finishNode(slot, NodeEvent::deadline,
                       detail::concat("the pull node did not ask for its ",
                                      stage ? "stage" : "restart", " within ", limit, " ms"),
                       now, out);
            return true;
        }
    }
    if (s == NS::staging && stage_due && settings.stage_timeout_ms > 0 &&
        now - slot.row.started_ms > settings.stage_timeout_ms) {
        finishNode(slot, NodeEvent::stage_failed,
                   detail::concat("no staged report within the stage timeout (",
                                  settings.stage_timeout_ms, " ms)"),
                   now, out);
        return true;
    }
    if (pastNodeDeadline(slot, now, out)) return true;
    // No poll and no probe: a pull node is never called. Lost pings are made up for by its
    // next ask (it reports where it stands), and the asks after min_healthy_ms, from the
    // target generation, stand in for the health probe.
    if (s == NS::settling && now - slot.healthy_since_ms >= d.min_healthy_ms &&
        slot.last_pull_ms >= slot.healthy_since_ms + d.min_healthy_ms) {
        if (slot.last_pull_generation < 0 ||
            slot.last_pull_generation == slot.row.target_generation)
            finishNode(slot, NodeEvent::settled, "", now, out);
        else
            finishNode(
                slot, NodeEvent::unhealthy,
                detail::concat("the node runs generation ", slot.last_pull_generation, ", not ",
                               slot.row.target_generation, ", before min_healthy_ms passed"),
                now, out);
    }
    return true;
}

}  // namespace hoist::deploy_coordinator
