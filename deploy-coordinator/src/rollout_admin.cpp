#include <vector>

#include "core/strings.hpp"
#include "rollout.hpp"

// The rollout model's words to people: waiting_on, the admin commands and their refusals.

namespace hoist::deploy_coordinator {

using NS = NodeStep;
using DS = DeploymentState;

std::string budgetText(std::int64_t failed, std::int64_t max_failures) {
    return detail::concat(failed, failed == 1 ? " node" : " nodes",
                          " failed, more than max_failures ", max_failures);
}

void Rollout::computeWaitingOn(bool held, const std::string& hold_text) {
    std::string waiting;
    if (held && isActive(d.state)) {
        waiting = "hold: " + hold_text;
    } else if (d.state == DS::paused) {
        waiting = "paused by an admin";
    } else if (d.state == DS::held) {
        // The count as it stands now: swaps in flight when the budget ran out may fail later.
        auto budget = budgetText(failedCount(), d.max_failures);
        if (d.message != budget) {
            d.message = budget;
            row_dirty = true;
        }
        waiting = "failure budget: " + budget;
    } else if (d.state == DS::staging) {
        auto staged =
            static_cast<std::int64_t>(slots.size()) - count(NS::pending) - count(NS::staging);
        waiting = detail::concat("staging: ", staged, " of ", slots.size(), " nodes staged");
    } else if (d.state == DS::rolling || d.state == DS::reverting) {
        std::vector<std::string> names;
        size_t count = 0;
        std::string sample_state;
        for (auto i : timed_)
            if (const auto& s = slots[i];
                isForwardInFlight(s.row.state) || isRevertInFlight(s.row.state)) {
                if (names.size() < 3) names.push_back(s.row.node);
                if (sample_state.empty()) sample_state = s.row.node_state;
                ++count;
            }
        if (count == 1)
            waiting =
                "health of " + names[0] + (sample_state.empty() ? "" : " (" + sample_state + ")");
        else if (count > 1)
            waiting = detail::concat("health of ", count, " nodes (", strings::join(names, ", "),
                                     count > names.size() ? ", ..." : "", ")");
        else
            waiting = "the next node";
        if (count == 0 && d.state == DS::rolling)
            if (auto gate = gateWaiting(); !gate.empty()) waiting = gate;
        if (count == 0) {
            std::vector<std::string> offered;
            for (auto i : timed_)
                if (const auto& s = slots[i];
                    s.offered_ms.has_value() &&
                    (s.row.state == NS::staged || s.row.state == NS::revert_pending))
                    offered.push_back(s.row.node);
            if (offered.size() == 1)
                waiting = "pull node " + offered[0] + " to ask for its restart";
            else if (!offered.empty())
                waiting = detail::concat(offered.size(), " pull nodes to ask for their restarts");
        }
    }
    if (waiting != d.waiting_on) {
        d.waiting_on = waiting;
        row_dirty = true;
    }
}

// ---------------------------------------------------------------------------------------------
// Admin commands.

Result<void> Rollout::command(const std::string& verb, std::optional<std::int64_t> max_failures,
                              const std::string& actor, std::int64_t now, Output& out) {
    auto state = std::string(toString(d.state));
    if (verb == "pause") {
        if (d.state != DS::staging && d.state != DS::rolling)
            return fail(Errc::Conflict, "deployment ", d.id, " is ", state,
                        "; only a staging or rolling deployment pauses");
        setState(DeploymentEvent::pause, actor, "", now, out);
    } else if (verb == "resume") {
        if (d.state != DS::paused && d.state != DS::held)
            return fail(Errc::Conflict, "nothing to resume: deployment ", d.id, " is ", state,
                        " (only a paused or held deployment resumes)");
        std::int64_t failed = failedCount();
        std::int64_t budget = max_failures.value_or(d.max_failures);
        if (d.state == DS::held && failed > budget)
            return fail(Errc::Conflict, "deployment ", d.id,
                        " stays held: ", budgetText(failed, budget),
                        "; raise the budget (cluster resume --max-failures ", failed,
                        "), roll it back (cluster rollback ", d.id, ") or abort it (cluster abort ",
                        d.id, ")");
        if (max_failures) {
            d.max_failures = *max_failures;
            row_dirty = true;
        }
        bool staging = count(NS::pending) + count(NS::staging) > 0;
        last_progress_ms = now;
        setState(staging ? DeploymentEvent::resume_staging : DeploymentEvent::resume_rolling, actor,
                 max_failures ? detail::concat("max_failures ", *max_failures) : "", now, out);
    } else if (verb == "abort") {
        if (!next(d.state, DeploymentEvent::abort))
            return fail(Errc::Conflict, "deployment ", d.id, " is ", state,
                        "; only a running deployment aborts");
        d.message = "aborted by " + actor;
        setState(DeploymentEvent::abort, actor, "", now, out);
    } else if (verb == "rollback") {
        if (!next(d.state, DeploymentEvent::rollback))
            return fail(Errc::Conflict, "deployment ", d.id, " is already ", state);
        d.message = "rollback requested by " + actor;
        d.finished_ms = 0;
        setState(DeploymentEvent::rollback, actor, "", now, out);
    } else {
        return fail(Errc::Invalid, "unknown deployment action '", verb,
                    "' (pause, resume, abort, rollback)");
    }
    return ok();
}

std::unexpected<Error> busyRefusal(const Deployment& d) {
    std::string head =
        detail::concat("deployment ", d.id, " of ", d.version, " is ", toString(d.state));
    switch (d.state) {
        case DS::held:
            return fail(Errc::Conflict, head, " (failure budget: ", d.waiting_on,
                        "); it does not finish by waiting: raise the budget (cluster resume "
                        "--max-failures N), roll it back (cluster rollback ",
                        d.id, ") or abort it (cluster abort ", d.id, ")");
        case DS::paused:
            return fail(Errc::Conflict, head,
                        "; it does not finish by waiting: resume it (cluster resume) or abort it "
                        "(cluster abort ",
                        d.id, ")");
        default:
            return fail(Errc::Conflict, head,
                        "; wait for it to finish (cluster status) or abort it (cluster abort ",
                        d.id, ")");
    }
}

}  // namespace hoist::deploy_coordinator
