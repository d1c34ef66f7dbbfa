#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

namespace hoist::deploy_coordinator {

/// The gate every node action passes through right before it is sent. A halt raises it and
/// then waits for the sends already past the gate, so that once the halt has been answered
/// no node action starts. Thread-safe (sequentially consistent atomics: either a sender sees
/// the gate raised, or the halt sees the sender in flight).
class ActionGate {
public:
    /// True while a hold stands.
    bool raised() const { return raised_.load(); }

    /// A worker about to send a node action: false (and nothing to undo) when a hold stands;
    /// true means the caller must call endSend() once the request has been answered.
    bool beginSend();
    void endSend();

    /// Raises the gate and waits up to `max_wait` for the sends past it to finish.
    void raise(std::chrono::milliseconds max_wait);
    void lower() { raised_.store(false); }

private:
    std::atomic<bool> raised_{false};
    std::atomic<int> sending_{0};
    std::mutex mutex_;
    std::condition_variable idle_;
};

}  // namespace hoist::deploy_coordinator
