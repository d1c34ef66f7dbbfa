// A hold written by a replica that does not lead, and the leader's acknowledgement of it.
//
// Any replica may write a hold (a halt that reached no leader), but only the leader sends node
// actions, and it learns of such a hold through its watch on holds/. So the writer answers the
// halt only once the leader has raised its gate for it: the leader, after reading the holds
// again, puts meta/holds-seen = {"epoch": its epoch, "revision": R} (fenced on its election
// key), meaning every hold written at or before revision R is in force there. The writer waits
// until the replica that leads now has acknowledged the newest hold's revision, or until no
// replica campaigns at all (the next leader reads the holds when it takes over, after it won).
#include <algorithm>
#include <thread>

#include "core/json.hpp"
#include "etcd_state.hpp"

namespace hoist::deploy_coordinator {

namespace {
constexpr std::string_view kHoldsSeen = "meta/holds-seen";
}  // namespace

Result<void> EtcdStateStore::acknowledgeHolds(std::int64_t revision) {
    std::int64_t epoch = 0;
    {
        std::lock_guard lock(mutex_);
        epoch = epoch_;
    }
    auto fence = fenceFor(epoch);
    if (fence.empty())
        return fail(Errc::Conflict, "holds not acknowledged: this replica does not lead");
    json::Writer w;
    w.beginObject()
        .field("schema", kSchema)
        .field("epoch", epoch)
        .field("revision", revision)
        .endObject();
    return fencedTxn(fence, {etcd::Op::put(prefix_ + std::string(kHoldsSeen), w.str())}, epoch);
}

Result<void> EtcdStateStore::confirmHolds() {
    {
        std::lock_guard lock(mutex_);
        if (epoch_ != 0) return ok();  // this replica leads: its own gate is the one that counts
    }
    const auto deadline = std::chrono::steady_clock::now() + confirm_timeout_;
    // The newest hold's revision (a cleared hold needs no acknowledgement: it lifts nothing).
    HOIST_ASSIGN(auto held, rangePrefix(prefix_ + "holds/"));
    std::int64_t newest = 0;
    for (const auto& kv : held) newest = std::max(newest, kv.mod_revision);
    if (newest == 0) return ok();
    const auto election = prefix_ + "election/";
    const auto seen_key = prefix_ + std::string(kHoldsSeen);
    std::string waiting_on = "no replica";
    std::string last_seen = "etcd did not answer";  // what the acknowledgement said, for the error
    for (;;) {
        // One read: who leads now (the lowest create_revision under election/) and what it
        // acknowledged, as of the same revision.
        auto read = client_.txn(
            {}, {etcd::Op::range(election, etcd::prefixEnd(election)), etcd::Op::range(seen_key)});
        if (read && read->ranges.size() == 2) {
            const auto& candidates = read->ranges[0].kvs;
            if (candidates.empty()) return ok();  // the next leader reads the holds before acting
            auto first = std::min_element(candidates.begin(), candidates.end(),
                                          [](const etcd::KeyValue& a, const etcd::KeyValue& b) {
                                              return a.create_revision < b.create_revision;
                                          });
            waiting_on =
                "the leading replica (epoch " + std::to_string(first->create_revision) + ")";
            last_seen = "etcd key " + seen_key + " is absent";
            if (!read->ranges[1].kvs.empty()) {
                const auto& kv = read->ranges[1].kvs.front();
                auto doc = json::parseObject(kv.value, "etcd key " + kv.key);
                std::optional<std::int64_t> epoch;
                std::optional<std::int64_t> acked;
                if (doc && json::getString(*doc, "schema", kv.key).value_or("") == kSchema) {
                    if (auto e = json::getInt(*doc, "epoch", kv.key)) epoch = *e;
                    if (auto r = json::getInt(*doc, "revision", kv.key)) acked = *r;
                }
                if (!epoch || !acked) {
                    // The leader puts it whole again with its next acknowledgement.
                    last_seen = "etcd key " + kv.key + " holds no acknowledgement this build reads";
                } else if (*epoch == first->create_revision && *acked >= newest) {
                    return ok();
                } else {
                    last_seen = "the last acknowledgement is epoch " + std::to_string(*epoch) +
                                "'s, of revision " + std::to_string(*acked) +
                                " (the hold is at revision " + std::to_string(newest) + ")";
                }
            }
        }
        if (std::chrono::steady_clock::now() >= deadline)
            return fail(
                Errc::Unhealthy, "the hold is written to etcd, but ", waiting_on,
                " has not confirmed it within ",
                std::chrono::duration_cast<std::chrono::milliseconds>(confirm_timeout_).count(),
                " ms (", last_seen,
                "), so a node action may still start; the hold stays: post the halt again, or "
                "check `cluster status`");
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

}  // namespace hoist::deploy_coordinator
