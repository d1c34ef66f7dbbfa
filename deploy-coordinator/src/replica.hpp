#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/error.hpp"
#include "core/http_server.hpp"
#include "core/metrics.hpp"
#include "etcd_client.hpp"
#include "etcd_state.hpp"

namespace hoist::deploy_coordinator {

struct ReplicaOptions {
    /// This replica's name (unique among the replicas) and its API URL.
    std::string id;
    std::string url;
    /// The election lease. The leader renews every ttl/3 and stops acting once no renewal
    /// succeeded for `renew_deadline` (less than the ttl: it stops before its lease can expire
    /// and another replica can win).
    std::chrono::seconds ttl{5};
    std::chrono::milliseconds renew_deadline{0};  ///< 0: two thirds of the ttl
    /// How often a follower looks whether the leader's key went.
    std::chrono::milliseconds poll{200};
    /// False when etcd did not answer at start (a replica rejoining while etcd is down): the
    /// API answers 503 naming the store until etcd answers.
    bool store_heard = true;
};

/// One coordinator replica in an etcd election (create-revision election: each replica puts
/// <prefix>election/<its lease> and the key with the lowest create_revision leads; that
/// create_revision is the leader's epoch and the term of every write it makes). Runs two
/// threads: the campaign and lease renewals, and a watch on the holds that tells the engine
/// when another replica put or cleared one. Thread-safe.
class Replica {
public:
    struct Hooks {
        /// This replica won as `epoch` (the store already writes as it).
        std::function<Result<void>(std::int64_t epoch)> lead;
        /// This replica lost the lead (lease lost or renewal overdue); called once, after
        /// the store refuses its writes. The process restarts itself here.
        std::function<void(const std::string& why)> step_down;
        /// The holds under the prefix changed; false when they could not be read (they are
        /// read again, and this called again, until they are).
        std::function<bool()> holds_changed;
    };

    Replica(etcd::Client& client, EtcdStateStore& store, ReplicaOptions options, Hooks hooks);
    ~Replica();
    Replica(const Replica&) = delete;
    Replica& operator=(const Replica&) = delete;

    void start();
    void stop();

    bool leading() const { return leading_.load(); }
    /// True while this replica leads and its last renewal is within the deadline.
    bool mayAct() const;
    std::int64_t epoch() const { return epoch_.load(); }

    struct Leader {
        std::string id;
        std::string url;
        std::int64_t epoch = 0;
    };
    std::optional<Leader> leader() const;
    /// Wall-clock ms at which this replica won (0 while it does not lead).
    std::int64_t leadingSinceMs() const { return leading_ ? leading_since_ms_.load() : 0; }
    /// Since when the leader leads (wall-clock ms, from its entry under replicas/); nullopt
    /// while no replica leads. Unhealthy naming the store when etcd does not answer.
    Result<std::optional<std::int64_t>> leaderSinceMs();
    /// True when etcd has not answered this replica for longer than the ttl.
    bool storeLost() const;

    /// GET /v1/cluster/coordinators:
    /// {"leader", "epoch", "replicas": [{"id","url","leader","epoch","last_renewal"}]}; a
    /// replica that refused to lead adds "refused" (why).
    Result<std::string> coordinatorsJson();
    /// The hook of http::Server::intercept: while this replica does not lead, requests for
    /// the leader are forwarded to it (503 while none leads or etcd is lost); halts, holds,
    /// reads of the store (registry, deployments, audit log, monitors, the plan, the event
    /// stream), health, metrics and the coordinators list are answered here.
    std::optional<http::ServerReply> intercept(const http::ServerRequest& request);
    void collectMetrics(metrics::Registry& registry) const;

private:
    void campaign();
    void watchHolds();
    Result<void> enter();
    Result<void> publish();
    /// A lease without an election key, and this replica's entry under it (a replica that
    /// refused to lead stays listed while it runs).
    Result<void> present();
    void lose(const std::string& why);
    /// A takeover met a damaged value (Corrupt): this replica stops acting, gives its election
    /// key up and campaigns no more (until it is restarted); the API names the key.
    void refuseToLead(const Error& why);
    /// The leader, after reading the holds as of `revision` (its gate raised for them): puts
    /// its acknowledgement, which a halt written by another replica waits for.
    void acknowledgeHolds(std::int64_t revision);
    /// Reads the holds again as of now (the holds_changed hook) and, leading, acknowledges
    /// them; the revision they were read at, or nullopt when etcd or the hook failed.
    std::optional<std::int64_t> readHolds();

    etcd::Client& client_;
    EtcdStateStore& store_;
    ReplicaOptions options_;
    Hooks hooks_;
    std::string election_prefix_;
    std::string key_;
    std::int64_t lease_ = 0;

    std::atomic<bool> stopping_{false};
    std::atomic<bool> leading_{false};
    std::atomic<bool> lost_{false};
    std::atomic<bool> refused_{false};
    std::string refusal_;  ///< set once, before refused_
    std::atomic<std::int64_t> epoch_{0};
    /// steady_clock ns of the send of the last renewal that succeeded.
    std::atomic<std::int64_t> renewed_at_{0};
    std::atomic<std::int64_t> heard_at_{0};
    std::atomic<std::int64_t> renewed_wall_ms_{0};
    /// Wall-clock ms when this replica won (published: followers count monitors' silence
    /// from it, as the leader does).
    std::atomic<std::int64_t> leading_since_ms_{0};
    std::atomic<std::uint64_t> renewals_{0};
    std::atomic<std::uint64_t> renewal_failures_{0};
    mutable std::mutex leader_mutex_;
    std::optional<Leader> leader_;
    std::thread campaign_thread_;
    std::thread holds_thread_;
};

}  // namespace hoist::deploy_coordinator
