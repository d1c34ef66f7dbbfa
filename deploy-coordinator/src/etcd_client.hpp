#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/metrics.hpp"

namespace hoist::deploy_coordinator::etcd {

/// One key as etcd returns it. Revisions and the lease come back from the gateway as JSON
/// strings; a zero value is omitted there and is 0 here.
struct KeyValue {
    std::string key;
    std::string value;
    std::int64_t create_revision = 0;
    std::int64_t mod_revision = 0;
    std::int64_t version = 0;
    std::int64_t lease = 0;
};

/// The end of the range that holds every key starting with `prefix` (its last byte plus one).
std::string prefixEnd(std::string_view prefix);

struct RangeRequest {
    std::string key;
    /// Empty: the single key.
    std::string range_end;
    std::int64_t limit = 0;
    enum class Sort { none, ascend, descend } sort_order = Sort::none;
    enum class Target { key, version, create, mod, value } sort_target = Target::key;
    bool keys_only = false;
    bool count_only = false;
    /// Read as of this revision (0: the newest).
    std::int64_t revision = 0;
};

struct RangeResult {
    /// The store's revision when it answered.
    std::int64_t revision = 0;
    std::vector<KeyValue> kvs;
    std::int64_t count = 0;
    bool more = false;
};

/// One condition of a txn.
struct Compare {
    enum class Target { version, create, mod, value, lease } target = Target::create;
    enum class Result { equal, greater, less, not_equal } result = Result::equal;
    std::string key;
    std::int64_t number = 0;
    std::string value;
};

/// One operation of a txn: a put, a delete of a key or range, or a range read.
struct Op {
    enum class Kind { put, remove, range } kind = Kind::put;
    std::string key;
    std::string value;
    std::string range_end;
    std::int64_t lease = 0;

    static Op put(std::string key, std::string value, std::int64_t lease = 0);
    static Op remove(std::string key, std::string range_end = {});
    static Op range(std::string key, std::string range_end = {});
};

struct TxnResult {
    bool succeeded = false;
    std::int64_t revision = 0;
    /// The answers of the range operations of the branch that ran, in order.
    std::vector<RangeResult> ranges;
};

struct WatchEvent {
    enum class Type { put, remove } type = Type::put;
    KeyValue kv;
};

/// What a watch stream delivers: the events of one revision batch. Returns false to stop.
using WatchSink = std::function<bool(std::int64_t revision, const std::vector<WatchEvent>&)>;

struct ClientOptions {
    /// Base URLs of the members ("http://127.0.0.1:2379").
    std::vector<std::string> endpoints;
    std::chrono::milliseconds connect_timeout{1000};
    /// Each request's whole transfer (a write sent to a member that lost its leader otherwise
    /// hangs for seconds).
    std::chrono::milliseconds request_timeout{2000};
};

/// A client of etcd v3 through its JSON gateway (POST /v3/<service>/<method>), on libcurl.
/// A request that fails on one member moves on to the next: reads and compare-guarded txns
/// whatever the failure, other writes only when the request cannot have reached the member
/// (connection refused). etcd's errors become Errors: NotFound for a lost lease, Conflict for
/// a compacted revision, Network for unavailable. Thread-safe (one curl handle per thread).
class Client {
public:
    static Result<std::unique_ptr<Client>> create(ClientOptions options);
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    Result<RangeResult> range(const RangeRequest& request);
    /// Returns the revision of the write.
    Result<std::int64_t> put(std::string_view key, std::string_view value, std::int64_t lease = 0);
    /// Returns how many keys went.
    Result<std::int64_t> deleteRange(std::string_view key, std::string_view range_end = {});
    Result<TxnResult> txn(const std::vector<Compare>& compares, const std::vector<Op>& success,
                          const std::vector<Op>& failure = {});
    /// A new lease of `ttl_seconds`; returns its id.
    Result<std::int64_t> grant(std::int64_t ttl_seconds);
    /// Renews a lease once; returns its TTL. NotFound when the lease is gone.
    Result<std::int64_t> keepAlive(std::int64_t lease);
    Result<void> revoke(std::int64_t lease);
    /// The answering member's {"header":{"member_id"}, "leader", ...} raw (health checks).
    Result<std::string> status(const std::string& endpoint);

    /// Watches [key, range_end) from `start_revision` (0: now) and hands each batch to `sink`
    /// until it returns false, `stop` is set, or `max_time` passes (then ok: the caller watches
    /// again from the last revision it saw). Conflict naming the compact revision when
    /// `start_revision` was compacted away: read again, then watch from the read's revision + 1.
    Result<void> watch(std::string_view key, std::string_view range_end,
                       std::int64_t start_revision, const WatchSink& sink,
                       const std::atomic<bool>& stop,
                       std::chrono::milliseconds max_time = std::chrono::seconds(10));

    /// Requests answered and failed, and a latency histogram, for /metrics.
    void collectMetrics(metrics::Registry& registry) const;
    const std::vector<std::string>& endpoints() const { return options_.endpoints; }

    /// The request bodies, for tests that check each builder against a real etcd.
    static std::string rangeBody(const RangeRequest& request);
    static std::string txnBody(const std::vector<Compare>& compares, const std::vector<Op>& success,
                               const std::vector<Op>& failure);

private:
    explicit Client(ClientOptions options);
    enum class Retry { always, if_not_sent };
    /// POSTs `body` to `path` on the current endpoint, moving on as `retry` allows; the
    /// answer's JSON text on 200.
    Result<std::string> call(std::string_view path, const std::string& body, Retry retry);
    void observe(std::chrono::steady_clock::duration took, bool ok) const;

    ClientOptions options_;
    std::atomic<std::size_t> current_{0};
    static constexpr std::array<double, 10> kBuckets{0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                     0.025,  0.05,  0.1,    0.25,  1.0};
    mutable std::array<std::atomic<std::uint64_t>, kBuckets.size() + 1> buckets_{};
    mutable std::atomic<std::uint64_t> requests_{0};
    mutable std::atomic<std::uint64_t> failures_{0};
    mutable std::atomic<std::uint64_t> sum_us_{0};
};

/// Parses "etcd://HOST:PORT[,HOST:PORT...]/PREFIX" into endpoints (http://HOST:PORT) and the
/// key prefix ("/PREFIX/"). Invalid naming the rule otherwise.
struct EtcdUrl {
    std::vector<std::string> endpoints;
    std::string prefix;
};
Result<EtcdUrl> parseEtcdUrl(std::string_view url);

}  // namespace hoist::deploy_coordinator::etcd
