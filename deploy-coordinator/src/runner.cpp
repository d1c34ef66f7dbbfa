#include "runner.hpp"

namespace hoist::deploy_coordinator {

void Runner::post(Command command, Lane lane) {
    {
        std::lock_guard lock(mutex_);
        if (lane == Lane::priority) {
            priority_.push_back(std::move(command));
            priority_waiting_.fetch_add(1);
        } else {
            normal_.push_back(std::move(command));
        }
    }
    cv_.notify_one();
}

void Runner::wake() {
    {
        std::lock_guard lock(mutex_);
        woken_ = true;
    }
    cv_.notify_one();
}

bool Runner::wait(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout,
                 [this] { return stopping_ || woken_ || !priority_.empty() || !normal_.empty(); });
    woken_ = false;
    return !stopping_;
}

void Runner::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    cv_.notify_all();
}

std::optional<Runner::Command> Runner::takePriority() {
    std::lock_guard lock(mutex_);
    if (priority_.empty()) return std::nullopt;
    auto command = std::move(priority_.front());
    priority_.pop_front();
    priority_waiting_.fetch_sub(1);
    return command;
}

std::optional<Runner::Command> Runner::takeNormal() {
    std::lock_guard lock(mutex_);
    if (normal_.empty()) return std::nullopt;
    auto command = std::move(normal_.front());
    normal_.pop_front();
    return command;
}

std::size_t Runner::queued() const {
    std::lock_guard lock(mutex_);
    return priority_.size() + normal_.size();
}

}  // namespace hoist::deploy_coordinator
