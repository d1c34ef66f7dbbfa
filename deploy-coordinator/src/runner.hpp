#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace hoist::deploy_coordinator {

/// The single writer's inbox. Every change to the coordinator's rollout state (registry,
/// deployments, holds) is a command run by one thread, the engine's loop; HTTP handlers,
/// workers and the monitor watch only post commands and wait for their answers.
///
/// Two lanes: the loop runs every priority command (halts, hold clears) before each normal
/// one, so a halt waits at most for the one command or the one bounded step write under way,
/// never for a queue of pings or a batch of task results. Thread-safe.
class Runner {
public:
    enum class Lane { priority, normal };
    using Command = std::function<void()>;

    /// Queues `command` for the loop thread.
    void post(Command command, Lane lane = Lane::normal);
    /// Wakes the loop without a command (a timer became due).
    void wake();
    /// The loop: waits up to `timeout` unless something is queued or wake() was called.
    /// False once stop() was called.
    bool wait(std::chrono::milliseconds timeout);
    void stop();

    /// True while a priority command waits (the loop checks between normal commands).
    bool priorityWaiting() const { return priority_waiting_.load() > 0; }
    /// Takes the next priority command, if any.
    std::optional<Command> takePriority();
    /// Takes the next normal command, if any.
    std::optional<Command> takeNormal();
    /// Commands waiting in either lane.
    std::size_t queued() const;

private:
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<Command> priority_;
    std::deque<Command> normal_;
    std::atomic<std::size_t> priority_waiting_{0};
    bool woken_ = false;
    bool stopping_ = false;
};

/// Where a command's answer goes: the HTTP thread waiting for it. The runner answers once;
/// a caller that gave up (its deadline passed before the runner took the command) makes the
/// runner skip the command, so a 503 means nothing changed.
template <class T>
class Answer {
public:
    /// Called by the runner before it runs the command: false when the caller gave up.
    bool take() {
        int expected = kQueued;
        return phase_.compare_exchange_strong(expected, kTaken);
    }
    void give(Result<T> value) {
        {
            std::lock_guard lock(mutex_);
            value_ = std::move(value);
        }
        cv_.notify_all();
    }
    /// Waits up to `deadline` for the runner to take the command; once taken, waits for its
    /// answer however long the runner takes (it is running, or its write is under way).
    /// nullopt when the runner did not take it in time (and never will).
    std::optional<Result<T>> wait(std::chrono::milliseconds deadline) {
        std::unique_lock lock(mutex_);
        if (!cv_.wait_for(lock, deadline, [this] { return value_.has_value(); })) {
            int expected = kQueued;
            if (phase_.compare_exchange_strong(expected, kAbandoned)) return std::nullopt;
            cv_.wait(lock, [this] { return value_.has_value(); });
        }
        return std::move(value_);
    }

private:
    static constexpr int kQueued = 0, kTaken = 1, kAbandoned = 2;
    std::atomic<int> phase_{kQueued};
    std::mutex mutex_;
    std::condition_variable cv_;
    std::optional<Result<T>> value_;
};

/// Posts `body` to `runner` on `lane` and waits for its answer. `body` gets the answer to fill
/// and returns it at once, or nullopt when it keeps the Answer to give it later (after the
/// step holding its change is committed). When the runner does not take the command within
/// `deadline`: Unhealthy (HTTP 503) naming `what` and the queue, and nothing changed.
template <class T>
Result<T> callRunner(Runner& runner, Runner::Lane lane, std::chrono::milliseconds deadline,
                     std::string_view what,
                     std::function<std::optional<Result<T>>(std::shared_ptr<Answer<T>>)> body) {
    auto answer = std::make_shared<Answer<T>>();
    runner.post(
        [answer, body = std::move(body)] {
            if (!answer->take()) return;  // the caller gave up: change nothing
            if (auto now = body(answer)) answer->give(std::move(*now));
        },
        lane);
    auto got = answer->wait(deadline);
    if (!got)
        return fail(Errc::Unhealthy, what, ": the coordinator's runner did not take it within ",
                    deadline.count(), " ms (", runner.queued(),
                    " commands queued); nothing changed, try again");
    return std::move(*got);
}

}  // namespace hoist::deploy_coordinator
