#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "etcd_client.hpp"
#include "etcd_state.hpp"
#include "event_stream.hpp"

namespace hoist::deploy_coordinator {

/// The live feed of an HA follower. A follower commits no steps, so its EventHub hears of none
/// through ObservedStore; this watches what the leader writes to etcd instead and hands it to
/// the hub as the commits that wrote it (EventHub::committed), so a stream opened on any
/// replica carries the same `audit` and `change` events, and keeps going while the leader is
/// down or being elected. It watches only while `active()` says so (this replica does not lead
/// and a stream is open): from the revision current when it starts, again from the last
/// revision seen after each turn, and after a compaction it reads the deployments and the
/// registry again and hands them on whole. Thread-safe; one thread between start() and stop().
class StoreFeed {
public:
    StoreFeed(etcd::Client& client, EtcdStateStore& store, EventHub& hub,
              std::function<bool()> active,
              std::chrono::milliseconds poll = std::chrono::milliseconds(50));
    ~StoreFeed();
    StoreFeed(const StoreFeed&) = delete;
    StoreFeed& operator=(const StoreFeed&) = delete;

    void start();
    void stop();

    /// Compactions met (each followed by a read of the state), for tests and logs.
    std::uint64_t rereads() const { return rereads_.load(); }
    /// Test seam, before start(): run on the feed's thread before each watch, after the
    /// revision it starts from was read (a test writes and compacts there).
    void setBeforeWatchForTest(std::function<void()> hook) { before_watch_ = std::move(hook); }

private:
    void loop();
    /// Hands one batch of watch events to the hub.
    void deliver(const std::vector<etcd::WatchEvent>& events);
    /// The new deployments being created as of `revision` (their rows are held back).
    void readCreating(std::int64_t revision);
    /// After a compaction: what may have changed unseen, read afresh.
    void reread();

    etcd::Client& client_;
    EtcdStateStore& store_;
    EventHub& hub_;
    std::function<bool()> active_;
    std::chrono::milliseconds poll_;
    /// The watched range: the rollout's records (deployments, their node rows, the registry,
    /// holds, audit events), not the election, the replicas' entries or staged parts.
    std::string from_;
    std::string to_;
    /// New deployments being created (creating/<id> seen, its row not yet): their rows, held
    /// back until the step commits (dropped when it never does). The feed's thread only.
    std::map<std::string, std::vector<DeploymentNode>> creating_;
    std::atomic<bool> stopping_{false};
    std::atomic<std::uint64_t> rereads_{0};
    std::function<void()> before_watch_;
    std::thread thread_;
};

}  // namespace hoist::deploy_coordinator
