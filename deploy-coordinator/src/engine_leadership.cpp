// The engine's side of running as one of several replicas: a standby engine holds nothing
// until it wins the election, then loads the state like a restart does. The runner's loop
// skips its turns while the engine stands by (engine_runner.cpp), so lead() may fill the
// state under the locks the loop would take.
#include "core/log.hpp"
#include "engine.hpp"

namespace hoist::deploy_coordinator {

Result<void> Engine::lead() {
    if (!standby_) return fail(Errc::Invalid, "this engine already leads");
    {
        std::lock_guard hold_lock(holds_mutex_);
        std::lock_guard lock(mutex_);
        std::lock_guard data_lock(holds_data_mutex_);
        std::unique_lock ids_lock(ids_mutex_);
        nodes_.clear();
        node_dirty_.clear();
        node_progress_.clear();
        seen_written_.clear();
        node_checking_.clear();
        ids_.clear();
        active_.reset();
        lingering_.clear();
        pending_events_.clear();
        outgoing_.clear();
        holds_.clear();
        HOIST_TRY(load());
        standby_ = false;
    }
    runner_.wake();
    log::info("deploy-coordinator", "leading", {{"term", term_}});
    return ok();
}

Result<void> Engine::reloadHolds() {
    std::lock_guard hold_lock(holds_mutex_);
    HOIST_ASSIGN(auto fresh, state_.holds());
    bool had = false;
    {
        std::lock_guard data_lock(holds_data_mutex_);
        had = !holds_.empty();
        holds_ = fresh;
    }
    if (!fresh.empty()) {
        if (!had)
            log::warn("deploy-coordinator", "halted through the store",
                      {{"holds", static_cast<std::int64_t>(fresh.size())}});
        gate_.raise(std::chrono::milliseconds(5000));
        return ok();
    }
    if (!had) return ok();
    gate_.lower();
    // The deployment's progress clock restarts where the hold ended, as clearHolds does; on
    // the runner, the only writer of rollout state.
    return run<void>(
        "reading the holds again",
        [this]() -> Result<void> {
            if (active_) active_->last_progress_ms = nowMs();
            return ok();
        },
        Runner::Lane::priority);
}

}  // namespace hoist::deploy_coordinator
