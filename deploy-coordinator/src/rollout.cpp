#include "rollout.hpp"

#include <algorithm>

#include "core/strings.hpp"
#include "deploy_coordinator/plan.hpp"

namespace hoist::deploy_coordinator {

using NS = NodeStep;
using DS = DeploymentState;
using HS = pkgmgr::HelperStep;

void Rollout::index() {
    index_.clear();
    by_rank_ = {};
    timed_.clear();
    dirty_.clear();
    for (size_t i = 0; i < slots.size(); ++i) {
        auto& slot = slots[i];
        index_.emplace(slot.row.node, i);
        slot.rank = roleRank(slot.row.role);
        by_rank_[static_cast<size_t>(slot.rank)][static_cast<size_t>(slot.row.state)]++;
        watch(i);
        if (slot.dirty) dirty_.push_back(i);
    }
    fwd_cursor_ = 0;
    rev_cursor_ = slots.size();
    stage_cursor_ = 0;
}

Slot* Rollout::find(const std::string& node) {
    auto it = index_.find(node);
    return it == index_.end() ? nullptr : &slots[it->second];
}

void Rollout::touch(Slot& slot) {
    if (slot.dirty) return;
    slot.dirty = true;
    dirty_.push_back(static_cast<size_t>(&slot - slots.data()));
}

void Rollout::clearDirty() {
    for (auto i : dirty_) slots[i].dirty = false;
    dirty_.clear();
}

void Rollout::watch(size_t i) {
    const auto& slot = slots[i];
    if (slot.pull || isSwapping(slot.row.state) || slot.row.state == NS::settling)
        timed_.insert(i);
    else
        timed_.erase(i);
}

std::int64_t Rollout::count(NodeStep step) const {
    std::int64_t n = 0;
    for (const auto& rank : by_rank_) n += rank[static_cast<size_t>(step)];
    return n;
}

std::int64_t Rollout::countIn(int rank, bool (*pred)(NodeStep)) const {
    std::int64_t n = 0;
    for (auto step : allNodeSteps())
        if (pred(step)) n += by_rank_[static_cast<size_t>(rank)][static_cast<size_t>(step)];
    return n;
}

bool Rollout::anyInFlight() const {
    for (int rank = 0; rank < 3; ++rank)
        if (countIn(rank, [](NodeStep s) { return isSwapping(s) || s == NS::settling; }) > 0)
            return true;
    return false;
}

std::int64_t Rollout::failedCount() const {
    return count(NS::failed);
}

void Rollout::event(Output& out, std::string actor, std::string action, const std::string& node,
                    std::string detail, std::int64_t now) {
    out.events.push_back(
        {0, now, std::move(actor), std::move(action), d.id, node, std::move(detail)});
}

bool Rollout::step(Slot& slot, NodeEvent e) {
    auto to = next(slot.row.state, e);
    if (!to) return false;
    auto& counts = by_rank_[static_cast<size_t>(slot.rank)];
    counts[static_cast<size_t>(slot.row.state)]--;
    counts[static_cast<size_t>(*to)]++;
    slot.row.state = *to;
    auto i = static_cast<size_t>(&slot - slots.data());
    watch(i);
    // A slot due a restart again (a hold deferred it, the node was busy) is scanned again.
    if (*to == NS::staged) fwd_cursor_ = std::min(fwd_cursor_, i);
    if (*to == NS::pending) stage_cursor_ = std::min(stage_cursor_, i);
    if (*to == NS::revert_pending) rev_cursor_ = std::max(rev_cursor_, i + 1);
    touch(slot);
    return true;
}

void Rollout::finishNode(Slot& slot, NodeEvent e, const std::string& message, std::int64_t now,
                         Output& out) {
    if (!step(slot, e)) return;
    slot.row.finished_ms = now;
    if (!message.empty()) slot.row.message = message;
    last_progress_ms = now;
    auto state = slot.row.state;
    event(out, "coordinator", "node " + std::string(toString(state)), slot.row.node, message, now);
    if (state == NS::done)
        out.registry.push_back({slot.row.node, d.version, slot.row.target_generation});
    else if (state == NS::reverted)
        out.registry.push_back({slot.row.node, slot.row.from_release, slot.row.from_generation});
}

void Rollout::setState(DeploymentEvent e, const std::string& actor, const std::string& detail,
                       std::int64_t now, Output& out) {
    auto to = next(d.state, e);
    if (!to) return;
    d.state = *to;
    row_dirty = true;
    out.state_changed = true;
    if (isFinished(*to)) d.finished_ms = now;
    event(out, actor, "deployment " + std::string(toString(*to)), "", detail, now);
}

// ---------------------------------------------------------------------------------------------
// Actions. A push node gets a request (the slot is busy until its outcome comes back); a pull
// node gets an offer, handed out when it next asks.

void Rollout::stage(Slot& slot, std::int64_t now, Output& out) {
    if (slot.pull) {
        if (!slot.offered_ms) slot.offered_ms = now;
        return;
    }
    if (!step(slot, NodeEvent::stage_sent)) return;
    slot.busy = true;
    out.actions.push_back({NodeAction::Kind::stage, slot.row.node, 0});
}

void Rollout::restart(Slot& slot, std::int64_t generation, std::int64_t now, Output& out) {
    if (slot.pull) {
        // Offered, not sent: it counts toward max_parallel until the node takes it.
        if (!slot.offered_ms) slot.offered_ms = now;
        return;
    }
    // A restart persisted as started but never confirmed is sent again after a poll showed
    // the node never got it; it is already in its started step.
    if (!isRestartUnconfirmed(slot.row.state) && !step(slot, NodeEvent::restart_sent)) return;
    slot.busy = true;
    slot.row.started_ms = now;
    slot.last_heard_ms = now;
    touch(slot);
    bool revert = slot.row.state == NS::reverting;
    event(out, "coordinator", revert ? "revert" : "restart", slot.row.node,
          detail::concat("to generation ", generation), now);
    out.actions.push_back({NodeAction::Kind::restart, slot.row.node, generation});
}

// ---------------------------------------------------------------------------------------------
// Outcomes and reports.

void Rollout::onStage(Slot& slot, const StageOutcome& outcome, std::int64_t now, Output& out) {
    slot.busy = false;
    if (slot.row.state != NS::staging) return;
    switch (outcome.kind) {
        case StageOutcome::Kind::deferred:
            step(slot, NodeEvent::stage_deferred);
            return;
        case StageOutcome::Kind::failed:
            finishNode(slot, NodeEvent::stage_failed, "staging failed: " + outcome.message, now,
                       out);
            return;
        case StageOutcome::Kind::staged:
            if (outcome.generation <= 0) {
                finishNode(slot, NodeEvent::stage_failed, "the stage reply names no generation",
                           now, out);
                return;
            }
            slot.row.target_generation = outcome.generation;
            slot.row.node_state = toString(HS::staged);
            step(slot, NodeEvent::staged);
            last_progress_ms = now;
            return;
    }
}

void Rollout::onRestart(Slot& slot, const RestartOutcome& outcome, std::int64_t now, Output& out) {
    slot.busy = false;
    switch (outcome.kind) {
        case RestartOutcome::Kind::deferred:
            if (step(slot, NodeEvent::restart_deferred))
                event(out, "coordinator", "deferred by hold", slot.row.node, "", now);
            return;
        case RestartOutcome::Kind::accepted:
            if (isRestartUnconfirmed(slot.row.state)) {
                slot.row.restarts += 1;
                step(slot, NodeEvent::restart_accepted);
            }
            slot.last_heard_ms = now;
            return;
        case RestartOutcome::Kind::busy:
            // Another transaction runs on the node; try again shortly, a few times.
            if (++slot.busy_retries <= 10 && step(slot, NodeEvent::restart_busy)) {
                slot.retry_at_ms = now + 1000;
                return;
            }
            break;
        case RestartOutcome::Kind::lost:
            // Unknown whether it arrived: the poll asks the node before anything is resent.
            slot.last_heard_ms = 0;
            slot.row.message = "restart request failed: " + outcome.message;
            touch(slot);
            return;
        case RestartOutcome::Kind::refused:
            break;
    }
    finishNode(slot, NodeEvent::restart_refused, "restart refused: " + outcome.message, now, out);
}

void Rollout::onPoll(Slot& slot, const PollOutcome& outcome, std::int64_t now, Output& out) {
    slot.busy = false;
    if (!outcome.reachable) {
        slot.last_heard_ms = now;  // poll again after poll_after; deadlines still run
        return;
    }
    auto s = slot.row.state;
    if (!isSwapping(s)) return;
    bool revert = isRevertInFlight(s);
    std::int64_t want = revert ? slot.row.from_generation : slot.row.target_generation;
    if (outcome.under_way) {
        if (isRestartUnconfirmed(s)) {
            slot.row.restarts += 1;
            step(slot, NodeEvent::restart_accepted);
        }
        slot.row.node_state = toString(outcome.step.value_or(HS::swapping));
        slot.last_heard_ms = now;
        touch(slot);
        return;
    }
    if (outcome.view.generation == want && want > 0) {
        // The restart arrived before we stopped: count it, never send it again.
        if (isRestartUnconfirmed(s)) slot.row.restarts += 1;
        applyReport(
            slot, outcome.view.healthy ? HS::healthy : HS::failed, now,
            outcome.view.healthy ? "seen healthy by poll" : "unhealthy on the new generation", out);
        return;
    }
    if (isRestartUnconfirmed(s)) {
        // The node never got it: send it now (it is still persisted as started).
        restart(slot, want, now, out);
        return;
    }
    applyReport(slot, HS::rolled_back, now,
                detail::concat("node is on generation ", outcome.view.generation,
                               " with no swap under way"),
                out);
}

void Rollout::onProbe(Slot& slot, const std::optional<NodeView>& view, std::int64_t now,
                      Output& out) {
    slot.busy = false;
    if (slot.row.state != NS::settling) return;
    if (view && view->healthy && view->generation == slot.row.target_generation)
        finishNode(slot, NodeEvent::settled, "", now, out);
    else
        finishNode(slot, NodeEvent::unhealthy,
                   view ? "unhealthy before min_healthy_ms passed"
                        : "unreachable before min_healthy_ms passed",
                   now, out);
}

void Rollout::applyReport(Slot& slot, HS report, std::int64_t now, const std::string& message,
                          Output& out) {
    slot.row.node_state = toString(report);
    slot.last_heard_ms = now;
    touch(slot);
    auto s = slot.row.state;
    if (!isSwapping(s)) return;
    bool revert = isRevertInFlight(s);
    if (isRestartUnconfirmed(s)) {
        // A pull node took its restart when the first report of it arrives (a push node
        // when it answered 202).
        if (slot.pull) slot.row.restarts += 1;
        step(slot, NodeEvent::restart_accepted);
    }
    if (report == HS::healthy) {
        if (revert) {
            finishNode(slot, NodeEvent::healthy, message, now, out);
        } else {
            step(slot, NodeEvent::healthy);
            slot.healthy_since_ms = now;
            // A deployment that has ended sends no probe: its healthy node is done.
            if (d.min_healthy_ms <= 0 || isFinished(d.state))
                finishNode(slot, NodeEvent::settled, message, now, out);
        }
    } else if (report == HS::rolled_back || report == HS::failed) {
        finishNode(slot, NodeEvent::unhealthy,
                   message.empty() ? "the restart helper reported " + std::string(toString(report))
                                   : message,
                   now, out);
    }
}

bool Rollout::onPing(Slot& slot, const PingReport& ping, std::int64_t now, Output& out) {
    if (ping.seq <= slot.row.last_seq) return false;
    slot.row.last_seq = ping.seq;
    touch(slot);
    if (ping.state == HS::staged || ping.state == HS::staging) {
        // A pull node reports the stage it was handed; push nodes answer the request.
        if (slot.pull && slot.row.state == NS::staging && ping.state == HS::staged) {
            if (ping.to_generation <= 0) {
                finishNode(slot, NodeEvent::stage_failed, "the staged report names no generation",
                           now, out);
                return true;
            }
            slot.row.target_generation = ping.to_generation;
            if (ping.from_generation > 0) slot.row.from_generation = ping.from_generation;
            slot.row.node_state = toString(HS::staged);
            step(slot, NodeEvent::staged);
            slot.offered_ms.reset();
            slot.last_heard_ms = now;
            last_progress_ms = now;
        }
    } else if (slot.pull && slot.row.state == NS::staging && ping.state == HS::failed) {
        finishNode(slot, NodeEvent::stage_failed, "staging failed: " + ping.message, now, out);
    } else {
        applyReport(slot, ping.state, now, ping.message, out);
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// Timers and progress.

void Rollout::tick(std::int64_t now, bool held, const std::string& hold_text,
                   const RolloutSettings& settings, Output& out) {
    // A failed gate's hold has landed: once it is cleared, the next wave may go.
    if (held && gate_run_.failed) gate_run_.hold_seen = true;
    // Only the slots with timers (in flight, or pull): a sweep of the fleet would cost every
    // tick what the fleet's size is.
    std::vector<size_t> watched(timed_.begin(), timed_.end());
    for (auto i : watched) {
        auto& slot = slots[i];
        if (slot.busy) continue;
        if (slot.pull) {
            pullTimers(slot, now, held, settings, out);
            continue;
        }
        auto s = slot.row.state;
        bool swapping = isSwapping(s);
        if (pastNodeDeadline(slot, now, out)) continue;
        if (swapping && now - slot.last_heard_ms >= settings.poll_after_ms) {
            // A restart persisted but maybe never sent is only resent after the poll, and
            // never while a hold stands.
            if (isRestartUnconfirmed(s) && held) continue;
            slot.busy = true;
            out.actions.push_back({NodeAction::Kind::poll, slot.row.node, 0});
            continue;
        }
        if (s == NS::settling && now - slot.healthy_since_ms >= d.min_healthy_ms) {
            slot.busy = true;
            out.actions.push_back({NodeAction::Kind::probe, slot.row.node, 0});
        }
    }
    if (d.state == DS::staging || d.state == DS::rolling)
        advanceForward(now, held, out);
    else if (d.state == DS::reverting)
        advanceRevert(now, held, out);
    if (isActive(d.state) && d.progress_deadline_ms > 0 && !held && d.state != DS::paused &&
        d.state != DS::held && now - last_progress_ms > d.progress_deadline_ms) {
        d.message = detail::concat("no node finished within the progress deadline (",
                                   d.progress_deadline_ms, " ms)");
        setState(DeploymentEvent::progress_deadline, "coordinator", d.message, now, out);
    }
    if (isActive(d.state) && held) last_progress_ms = now;
    computeWaitingOn(held, hold_text);
}

bool Rollout::pastNodeDeadline(Slot& slot, std::int64_t now, Output& out) {
    auto s = slot.row.state;
    if (!(isSwapping(s) || s == NS::settling) || d.node_deadline_ms <= 0 ||
        now - slot.row.started_ms <= d.node_deadline_ms)
        return false;
    finishNode(
        slot, NodeEvent::deadline,
        detail::concat("no healthy report within the node deadline (", d.node_deadline_ms, " ms)"),
        now, out);
    return true;
}

void Rollout::advanceForward(std::int64_t now, bool held, Output& out) {
    std::int64_t failed = failedCount();
    if (failed > d.max_failures) {
        d.message = budgetText(failed, d.max_failures);
        if (d.auto_revert) {
            d.message = "auto-revert: " + d.message;
            setState(DeploymentEvent::budget_spent_auto, "coordinator", d.message, now, out);
        } else {
            setState(DeploymentEvent::budget_spent, "coordinator", d.message, now, out);
        }
        return;
    }
    if (held) return;
    if (d.state == DS::staging) {
        // At most stage_window stages in flight: each step's write stays small (a halt never
        // waits behind a write of the whole fleet), and a node whose stage a hold would stop
        // is still pending, not persisted as staging. The cursor skips slots already sent.
        std::int64_t room = stage_window - count(NS::staging);
        for (; room > 0 && stage_cursor_ < slots.size(); ++stage_cursor_) {
            auto& slot = slots[stage_cursor_];
            if (slot.row.state != NS::pending || slot.busy) continue;
            stage(slot, now, out);
            if (!slot.pull) --room;
        }
        if (count(NS::pending) + count(NS::staging) == 0)
            setState(DeploymentEvent::all_staged, "coordinator", "every node staged", now, out);
        return;
    }
    // Rolling: the first role rank with unfinished nodes acts; masters (and other non-agent
    // roles) one at a time, agents up to max_parallel at once.
    int rank = 3;
    for (int r = 2; r >= 0; --r)
        if (countIn(r, [](NodeStep st) { return !isForwardTerminal(st); }) > 0) rank = r;
    if (rank == 3) {
        setState(DeploymentEvent::all_finished, "coordinator", "", now, out);
        return;
    }
    if (!gates.empty() && !gatesAllowNextWave(now, out)) return;
    dispatchWave(rank, false, now, out);
}

void Rollout::dispatchWave(int rank, bool revert, std::int64_t now, Output& out) {
    const NS due = revert ? NS::revert_pending : NS::staged;
    std::int64_t limit = rank == 1 ? max_parallel : 1;
    std::int64_t in_flight = countIn(rank, revert ? isRevertInFlight : isForwardInFlight);
    // A restart offered to a pull node counts as in flight from the offer on.
    for (auto i : timed_)
        if (slots[i].rank == rank && slots[i].row.state == due && slots[i].offered_ms.has_value())
            ++in_flight;
    if (in_flight >= limit || by_rank_[static_cast<size_t>(rank)][static_cast<size_t>(due)] == 0)
        return;
    // Forward in rollout order, back in reverse; the cursor skips the slots already past
    // (rev_cursor_ counts from the end: slots at or after it are past).
    size_t& cursor = revert ? rev_cursor_ : fwd_cursor_;
    size_t start = cursor;
    size_t count = revert ? start : slots.size() - start;
    bool moved = true;
    for (size_t k = 0; k < count && in_flight < limit; ++k) {
        size_t i = revert ? start - 1 - k : start + k;
        auto& slot = slots[i];
        bool passed = slot.row.state != due && (revert ? slot.rank >= rank : slot.rank <= rank);
        if (moved && passed) cursor = revert ? i : i + 1;
        if (!passed) moved = false;
        if (slot.rank != rank || slot.row.state != due || slot.busy ||
            slot.offered_ms.has_value() || slot.retry_at_ms > now)
            continue;
        restart(slot, revert ? slot.row.from_generation : slot.row.target_generation, now, out);
        ++in_flight;
    }
}

void Rollout::advanceRevert(std::int64_t now, bool held, Output& out) {
    // Forward swaps still running finish first; then every upgraded node goes back, agents
    // first (max_parallel at once), masters last, one at a time.
    if (count(NS::staging) > 0) return;
    for (int r = 0; r < 3; ++r)
        if (countIn(r, isForwardInFlight) > 0) return;
    if (count(NS::done) + count(NS::pending) + count(NS::staged) > 0) {
        for (auto& slot : slots) {
            if (slot.row.state == NS::done || slot.row.state == NS::pending ||
                slot.row.state == NS::staged) {
                step(slot, NodeEvent::revert_due);
                slot.offered_ms.reset();
            }
        }
        rev_cursor_ = slots.size();
    }
    if (held) return;
    int rank = -1;
    for (int r = 0; r < 3; ++r)
        if (countIn(r, [](NodeStep st) {
                return st == NS::revert_pending || isRevertInFlight(st);
            }) > 0)
            rank = r;
    if (rank < 0) {
        bool auto_revert = d.message.starts_with("auto-revert");
        setState(
            auto_revert ? DeploymentEvent::revert_finished : DeploymentEvent::rollback_finished,
            "coordinator", "", now, out);
        return;
    }
    dispatchWave(rank, true, now, out);
}

}  // namespace hoist::deploy_coordinator
