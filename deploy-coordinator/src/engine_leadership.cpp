// The engine's side of running as one of several replicas: a standby engine holds nothing
// until it wins the election, then loads the state like a restart does.
#include "core/log.hpp"
#include "engine.hpp"

namespace hoist::deploy_coordinator {

Result<void> Engine::lead() {
    if (!standby_) return fail(Errc::Invalid, "this engine already leads");
    {
        std::lock_guard hold_lock(holds_mutex_);
        std::lock_guard lock(mutex_);
        std::lock_guard data_lock(holds_data_mutex_);
        nodes_.clear();
        node_dirty_.clear();
        active_.reset();
        lingering_.clear();
        pending_events_.clear();
        inbox_.clear();
        outgoing_.clear();
        holds_.clear();
    }
    {
        std::lock_guard hold_lock(holds_mutex_);
        std::lock_guard lock(mutex_);
        std::lock_guard data_lock(holds_data_mutex_);
        HOIST_TRY(load());
        standby_ = false;
        wake_ = true;
    }
    wake_cv_.notify_one();
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
    } else if (had) {
        gate_.lower();
        std::lock_guard lock(mutex_);
        if (active_) active_->last_progress_ms = nowMs();
        wake_ = true;
    }
    wake_cv_.notify_one();
    return ok();
}

}  // namespace hoist::deploy_coordinator
