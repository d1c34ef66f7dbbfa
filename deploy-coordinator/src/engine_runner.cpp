#include <algorithm>
#include <thread>

#include "core/log.hpp"
#include "engine.hpp"

// The runner's loop: the one thread that changes the coordinator's state, and the step write
// it makes each turn (the concurrency model: README "Concurrency: one writer").

namespace hoist::deploy_coordinator {

namespace {
constexpr std::string_view kLog = "deploy-coordinator";
}  // namespace

namespace {
// Normal commands run per step: with the stage window and the registry share, this bounds
// what one step writes, so a halt waits for a few milliseconds of writing, not a fleet's worth.
constexpr size_t kCommandsPerStep = 256;
}  // namespace

void Engine::runPriority() {
    while (auto command = runner_.takePriority()) (*command)();
}

// The runner: the one thread that changes the coordinator's state. Each turn runs the halts
// and hold clears waiting, then up to kCommandsPerStep other commands (pings, registrations,
// admin commands, task results), checking for a halt between any two, then the timers; it
// commits what they changed as one step, answers the commands that waited for that commit, and
// only then sends the node actions the step started.
void Engine::loop() {
    while (runner_.wait(std::chrono::milliseconds(50))) {
        // An HA replica that does not lead holds no rollout state and acts on nothing (its
        // requests go to the leader); lead() fills the state, then wakes the loop. It still
        // takes halts and hold clears: a halt that reached no leader is written to the store
        // here (a write of holds only, which the store takes from any replica).
        if (standby_) {
            {
                std::lock_guard lock(mutex_);
                runPriority();
            }
            if (!runner_.priorityWaiting())
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            continue;
        }
        std::optional<PreparedStep> step;
        std::int64_t now = 0;
        {
            std::lock_guard lock(mutex_);
            runPriority();
            now = nowMs();
            for (size_t ran = 0; ran < kCommandsPerStep; ++ran) {
                auto command = runner_.takeNormal();
                if (!command) break;
                (*command)();
                if (runner_.priorityWaiting()) runPriority();
            }
            tick(now);
            step = prepareStep(now, false);
        }
        // The commit runs without the state lock (the views read meanwhile); nothing else
        // changes the state, so the step's rows stay what was prepared.
        Result<void> written = ok();
        if (step) written = state_.commit(step->write, term_);
        std::vector<std::function<void()>> to_send;
        std::vector<std::function<void(const Result<void>&)>> answers;
        {
            std::lock_guard lock(mutex_);
            if (written) {
                if (step) finishStep(now, *step);
                // Persist before acting: a node action leaves only after the state that says
                // it was started is committed.
                to_send.swap(outgoing_);
            } else {
                log::error(kLog, "cannot write the state; node actions wait",
                           {{"error", written.error().describe()}});
            }
            answers.swap(after_commit_);
        }
        for (auto& answer : answers) answer(written);
        for (auto& task : to_send) pool_->post([t = std::move(task)](http::Client&) { t(); });
        // A priority command that came during the commit runs before the next batch.
        if (runner_.priorityWaiting()) runner_.wake();
    }
}

namespace {
// Registry rows only pings touched, written per step: a bounded share, so that 30,000
// registrations or a burst of pings never make one large write.
constexpr size_t kRegistryRowsPerStep = 256;
}  // namespace

std::optional<Engine::PreparedStep> Engine::prepareStep(std::int64_t now, bool force_nodes) {
    bool have_slots = active_ && active_->anyDirty();
    bool have_lingering = std::any_of(lingering_.begin(), lingering_.end(),
                                      [](const auto& l) { return l.second->anyDirty(); });
    have_slots = have_slots || have_lingering;
    bool have_nodes = !node_dirty_.empty() || !node_progress_.empty();
    if (!have_slots && !have_nodes && pending_events_.empty() && !(active_ && active_->row_dirty))
        return std::nullopt;
    // One step, one conditional write: the deployment, the nodes it changed, the registry
    // rows their progress changed, and the audit events.
    PreparedStep step;
    auto& write = step.write;
    for (const auto& [_, l] : lingering_)
        for (auto i : l->dirtySlots()) write.nodes.push_back(l->slots[i].row);
    if (active_) {
        if (active_->row_dirty) {
            active_->d.updated_ms = now;
            write.deployment = active_->d;
        }
        for (auto i : active_->dirtySlots()) write.nodes.push_back(active_->slots[i].row);
    }
    for (const auto& id : node_progress_) step.registry_ids.push_back(id);
    for (const auto& [id, _] : node_dirty_) {
        if (!force_nodes && step.registry_ids.size() >= kRegistryRowsPerStep) break;
        if (!node_progress_.contains(id)) step.registry_ids.push_back(id);
    }
    for (const auto& id : step.registry_ids)
        if (auto it = nodes_.find(id); it != nodes_.end()) write.registry.push_back(it->second);
    write.events = pending_events_;
    if (write.empty()) return std::nullopt;
    return step;
}

void Engine::finishStep(std::int64_t now, const PreparedStep& step) {
    for (auto it = lingering_.begin(); it != lingering_.end();) {
        it->second->clearDirty();
        it = it->second->anyInFlight() ? std::next(it) : lingering_.erase(it);
    }
    if (active_) {
        active_->row_dirty = false;
        active_->clearDirty();
        if (isFinished(active_->d.state)) {
            if (active_->anyInFlight()) {
                auto id = active_->d.id;
                lingering_[id] = std::move(active_);
            }
            active_.reset();
        }
    }
    for (const auto& row : step.write.registry) {
        node_dirty_.erase(row.id);
        node_progress_.erase(row.id);
        seen_written_[row.id] = row.last_seen_ms;
    }
    last_node_flush_ms_ = now;
    // Only the events this step wrote: none is added between prepare and finish.
    pending_events_.clear();
}

Result<void> Engine::flush(std::int64_t now, bool force_nodes) {
    auto step = prepareStep(now, force_nodes);
    if (!step) return ok();
    HOIST_TRY(state_.commit(step->write, term_));
    finishStep(now, *step);
    return ok();
}

}  // namespace hoist::deploy_coordinator
