#include "holds.hpp"

namespace hoist::deploy_coordinator {

bool ActionGate::beginSend() {
    sending_.fetch_add(1);
    if (raised_.load()) {
        endSend();
        return false;
    }
    return true;
}

void ActionGate::endSend() {
    if (sending_.fetch_sub(1) == 1) {
        std::lock_guard lock(mutex_);
        idle_.notify_all();
    }
}

void ActionGate::raise(std::chrono::milliseconds max_wait) {
    raised_.store(true);
    std::unique_lock lock(mutex_);
    idle_.wait_for(lock, max_wait, [this] { return sending_.load() == 0; });
}

}  // namespace hoist::deploy_coordinator
