#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "core/http_client.hpp"
#include "pkgmgr/layout.hpp"
#include "pkgmgr/wire.hpp"

namespace hoist::pkgmgr {

/// A status ping waiting in <root>/outbox/ to be delivered.
struct QueuedPing {
    std::string url;  ///< <coordinator>/v1/nodes/<node>/status
    StatusPing ping;
    fs::path file;
};

/// Status pings not yet delivered (DESIGN.md "Status ping"): one file per ping,
/// outbox/<seq, 12 digits>.json = {"url", "ping"}, written atomically before the first
/// attempt and deleted once the coordinator answered 2xx. A ping the coordinator refuses
/// because it does not know the node yet (pkgmgr::isNotRegistered) stays, with every ping
/// after it, until the node has registered. `seq` grows by one per ping for the
/// node's whole life (outbox/.seq), so the coordinator can drop a re-delivered ping.
/// Safe to use from several processes: enqueue and drain each hold a flock of their own.
class Outbox {
public:
    static Result<Outbox> open(const NodeLayout& layout);

    /// The status URL of a node at a coordinator.
    static std::string statusUrl(std::string_view coordinator, std::string_view node);

    /// Gives the ping the next seq and its time (when empty), and writes it durably.
    Result<StatusPing> enqueue(StatusPing ping, const std::string& url);
    /// The queued pings, oldest (lowest seq) first. A ping file that cannot be read (a
    /// truncated write, a bad disk) is not among them: drain sets it aside.
    Result<std::vector<QueuedPing>> pending() const;
    /// Ping files drain found unreadable and renamed to outbox/<seq>.json.damaged: kept for a
    /// person to look at, never sent, reported by `restart-helper flush|status` and the
    /// node's hoist_node_pings_damaged metric.
    std::vector<fs::path> damaged() const;

    struct DrainResult {
        int delivered = 0;
        int dropped = 0;       ///< refused for good (4xx other than 408/429): logged, removed
        std::size_t left = 0;  ///< still queued (the coordinator did not take them)
        int damaged = 0;       ///< unreadable ping files set aside by this drain (damaged())
        /// The coordinator does not know this node: the pings stay until it registers.
        bool unregistered = false;
        std::string last_error;
    };
    /// Sends the queued pings in seq order, each once, stopping at the first one the
    /// coordinator did not take (transport failure, 408, 429, 5xx, "not registered"). Busy when
    /// another process drains right now. `token` (may be empty) goes in a bearer header, and the
    /// node's secret (run/coordinator.secret, when there is one) beside it.
    Result<DrainResult> drain(http::Client& client, const std::string& token,
                              std::chrono::milliseconds request_timeout);

    const fs::path& folder() const { return folder_; }

private:
    explicit Outbox(NodeLayout layout) : folder_(layout.outbox()), layout_(std::move(layout)) {}
    /// The queued pings; unreadable files are logged and skipped, or with `set_aside`
    /// renamed to <name>.damaged and counted there.
    Result<std::vector<QueuedPing>> scan(int* set_aside) const;
    fs::path folder_;
    NodeLayout layout_;
};

/// Drains an outbox from a thread of its own: at once when notified, then again with
/// exponential backoff and full jitter while pings stay queued. When the coordinator answers
/// that the node is not registered, the courier parks: it sends nothing more until resume()
/// (called once the node has registered), and stop() no longer waits for delivery. Used by the
/// restart helper (during a swap) and by `pkgmgr serve` (all the time). Thread-safe.
class PingCourier {
public:
    /// `token` returns the coordinator token (read each time: it may change on disk).
    PingCourier(NodeLayout layout, std::function<std::string()> token,
                http::RetryPolicy backoff = {.attempts = 0,
                                             .base = std::chrono::milliseconds(200),
                                             .cap = std::chrono::milliseconds(5000)},
                std::chrono::milliseconds request_timeout = std::chrono::seconds(3));
    ~PingCourier();
    PingCourier(const PingCourier&) = delete;
    PingCourier& operator=(const PingCourier&) = delete;

    /// Starts the thread (idempotent).
    void start();
    /// Asks for a drain now (ignored while parked).
    void notify();
    /// Ends a park (the node has just registered) and drains at once.
    void resume();
    /// Whether the coordinator said this node is not registered, and no resume() came since.
    bool parked();
    /// Tries to empty the outbox for up to `grace`, then stops the thread. What is left
    /// stays in the outbox for the next courier. Returns the number of pings left.
    std::size_t stop(std::chrono::milliseconds grace);

private:
    void loop();

    NodeLayout layout_;
    std::function<std::string()> token_;
    http::RetryPolicy backoff_;
    std::chrono::milliseconds request_timeout_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool notified_ = false;
    bool stopping_ = false;
    bool parked_ = false;
    std::uint64_t resumes_ = 0;  ///< resume() calls: a park answered before it does not stand
    std::chrono::steady_clock::time_point stop_deadline_{};
    std::size_t left_ = 0;
    std::thread thread_;
};

}  // namespace hoist::pkgmgr
