// The etcd gateway client and the etcd state store against a real etcd member (Debian's
// etcd-server): every request builder is checked by what etcd then holds, because the gateway
// silently ignores a misspelled field.
#include <algorithm>
#include <atomic>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "core/crypto.hpp"
#include "core/http_client.hpp"
#include "etcd_client.hpp"
#include "etcd_cluster.hpp"
#include "etcd_state.hpp"
#include "etcd_suite.hpp"
#include "records.hpp"
#include "testing.hpp"

namespace hoist::deploy_coordinator {
namespace {

using etcd::Compare;
using etcd::Op;
using hoist::testing::TempFolder;

using Etcd = EtcdSuite;

etcd::KeyValue get(etcd::Client& c, const std::string& key) {
    etcd::RangeRequest r;
    r.key = key;
    auto answer = c.range(r);
    EXPECT_TRUE(answer.has_value());
    if (!answer || answer->kvs.empty()) return {};
    return answer->kvs.front();
}

std::int64_t countUnder(etcd::Client& c, const std::string& prefix) {
    etcd::RangeRequest r;
    r.key = prefix;
    r.range_end = etcd::prefixEnd(prefix);
    r.count_only = true;
    auto answer = c.range(r);
    EXPECT_TRUE(answer.has_value());
    return answer ? answer->count : -1;
}

TEST(EtcdUrl, ParsesEndpointsAndPrefix) {
    auto url = etcd::parseEtcdUrl("etcd://127.0.0.1:2379,10.0.0.2:2379/hoist");
    ASSERT_OK(url);
    EXPECT_EQ(url->endpoints,
              (std::vector<std::string>{"http://127.0.0.1:2379", "http://10.0.0.2:2379"}));
    EXPECT_EQ(url->prefix, "/hoist/");
    for (const char* bad : {"etcd://", "etcd://h:1", "etcd://h:1/", "etcd://h/p", "etcd://h:0/p",
                            "http://h:1/p", "etcd://h:1,/p", "etcd://h:99999/p"})
        ASSERT_ERROR(etcd::parseEtcdUrl(bad), Errc::Invalid, "etcd://HOST:PORT");
}

TEST(EtcdUrl, PrefixEndIncrementsTheLastByte) {
    EXPECT_EQ(etcd::prefixEnd("/a/"), "/a0");
    EXPECT_EQ(etcd::prefixEnd(std::string("a\xff", 2)), "b");
}

TEST_F(Etcd, PutAndRangeKeepEveryFieldIncludingZeroValues) {
    ASSERT_OK(client_->put(prefix_ + "empty", ""));
    ASSERT_OK(client_->put(prefix_ + "bin", std::string("a\0b\n", 4)));
    auto empty = get(*client_, prefix_ + "empty");
    EXPECT_EQ(empty.key, prefix_ + "empty");
    EXPECT_EQ(empty.value, "");
    EXPECT_GT(empty.create_revision, 0);
    EXPECT_EQ(empty.version, 1);
    EXPECT_EQ(get(*client_, prefix_ + "bin").value, std::string("a\0b\n", 4));
    // No match: the gateway omits kvs and count.
    etcd::RangeRequest none;
    none.key = prefix_ + "absent";
    auto answer = client_->range(none);
    ASSERT_OK(answer);
    EXPECT_TRUE(answer->kvs.empty());
    EXPECT_EQ(answer->count, 0);
    EXPECT_GT(answer->revision, 0);
}

TEST_F(Etcd, RangeHonoursLimitSortAndCount) {
    for (const char* k : {"c", "a", "b"}) ASSERT_OK(client_->put(prefix_ + k, k));
    etcd::RangeRequest r;
    r.key = prefix_;
    r.range_end = etcd::prefixEnd(prefix_);
    r.limit = 2;
    r.sort_order = etcd::RangeRequest::Sort::descend;
    r.sort_target = etcd::RangeRequest::Target::create;
    auto answer = client_->range(r);
    ASSERT_OK(answer);
    ASSERT_EQ(answer->kvs.size(), 2u);
    EXPECT_EQ(answer->kvs[0].value, "b");  // newest first
    EXPECT_EQ(answer->kvs[1].value, "a");
    EXPECT_TRUE(answer->more);
    EXPECT_EQ(answer->count, 3);
    r.limit = 0;
    r.sort_order = etcd::RangeRequest::Sort::none;
    r.count_only = true;
    answer = client_->range(r);
    ASSERT_OK(answer);
    EXPECT_TRUE(answer->kvs.empty());
    EXPECT_EQ(answer->count, 3);
    r.count_only = false;
    r.keys_only = true;
    answer = client_->range(r);
    ASSERT_OK(answer);
    ASSERT_EQ(answer->kvs.size(), 3u);
    EXPECT_EQ(answer->kvs[0].key, prefix_ + "a");
    EXPECT_EQ(answer->kvs[0].value, "");
}

TEST_F(Etcd, TxnComparesEachTargetAndRunsTheRightBranch) {
    auto key = prefix_ + "k";
    auto lease = client_->grant(30);
    ASSERT_OK(lease);
    // Create-if-absent, reading the key back in the same txn.
    Compare absent{Compare::Target::create, Compare::Result::equal, key, 0, {}};
    auto first =
        client_->txn({absent}, {Op::put(key, "v1", *lease), Op::range(key)}, {Op::range(key)});
    ASSERT_OK(first);
    EXPECT_TRUE(first->succeeded);
    ASSERT_EQ(first->ranges.size(), 1u);
    ASSERT_EQ(first->ranges[0].kvs.size(), 1u);
    auto kv = first->ranges[0].kvs[0];
    EXPECT_EQ(kv.value, "v1");
    EXPECT_EQ(kv.lease, *lease);
    // A failed txn has no "succeeded" field: it must read as false, running the failure branch.
    auto second = client_->txn({absent}, {Op::put(key, "v2")}, {Op::range(key)});
    ASSERT_OK(second);
    EXPECT_FALSE(second->succeeded);
    ASSERT_EQ(second->ranges.size(), 1u);
    EXPECT_EQ(second->ranges[0].kvs.at(0).value, "v1");
    struct Case {
        Compare compare;
        bool holds;
    };
    std::vector<Case> cases{
        {{Compare::Target::create, Compare::Result::equal, key, kv.create_revision, {}}, true},
        {{Compare::Target::create, Compare::Result::equal, key, kv.create_revision + 1, {}}, false},
        {{Compare::Target::mod, Compare::Result::equal, key, kv.mod_revision, {}}, true},
        {{Compare::Target::mod, Compare::Result::less, key, kv.mod_revision, {}}, false},
        {{Compare::Target::version, Compare::Result::equal, key, 1, {}}, true},
        {{Compare::Target::version, Compare::Result::greater, key, 1, {}}, false},
        {{Compare::Target::lease, Compare::Result::equal, key, *lease, {}}, true},
        {{Compare::Target::lease, Compare::Result::equal, key, *lease + 1, {}}, false},
        {{Compare::Target::value, Compare::Result::equal, key, 0, "v1"}, true},
        {{Compare::Target::value, Compare::Result::not_equal, key, 0, "v1"}, false},
    };
    for (const auto& c : cases) {
        auto t = client_->txn({c.compare}, {});
        ASSERT_OK(t);
        EXPECT_EQ(t->succeeded, c.holds) << etcd::Client::txnBody({c.compare}, {}, {});
    }
    // Delete in a txn, then a range delete.
    ASSERT_OK(client_->txn({}, {Op::remove(key)}));
    EXPECT_EQ(get(*client_, key).key, "");
    for (const char* k : {"x1", "x2"}) ASSERT_OK(client_->put(prefix_ + k, "x"));
    auto deleted = client_->deleteRange(prefix_ + "x", etcd::prefixEnd(prefix_ + "x"));
    ASSERT_OK(deleted);
    EXPECT_EQ(*deleted, 2);
}

TEST_F(Etcd, LeasesAreGrantedWithTheirTtlRenewedAndRevoked) {
    auto lease = client_->grant(7);
    ASSERT_OK(lease);
    auto ttl = client_->keepAlive(*lease);
    ASSERT_OK(ttl);
    EXPECT_EQ(*ttl, 7);  // a misspelled TTL field would grant the minimum instead
    ASSERT_OK(client_->put(prefix_ + "leased", "x", *lease));
    EXPECT_EQ(get(*client_, prefix_ + "leased").lease, *lease);
    ASSERT_OK(client_->revoke(*lease));
    EXPECT_EQ(get(*client_, prefix_ + "leased").key, "");
    ASSERT_ERROR(client_->keepAlive(*lease), Errc::NotFound, "expired");
    EXPECT_OK(client_->revoke(*lease));  // twice is fine
}

TEST_F(Etcd, WatchDeliversPutsAndDeletesAndReportsCompaction) {
    auto start = client_->put(prefix_ + "w0", "0");
    ASSERT_OK(start);
    std::vector<etcd::WatchEvent> seen;
    std::atomic<bool> stop{false};
    std::thread writer([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        (void)client_->put(prefix_ + "w1", "1");
        (void)client_->deleteRange(prefix_ + "w1");
    });
    auto watched = client_->watch(
        prefix_, etcd::prefixEnd(prefix_), *start + 1,
        [&](std::int64_t, const std::vector<etcd::WatchEvent>& events) {
            for (const auto& e : events) seen.push_back(e);
            // The sink may use the client on the watching thread (the holds watch reads the
            // holds again from here).
            if (!events.empty()) {
                EXPECT_EQ(get(*client_, prefix_ + "w0").value, "0");
            }
            return seen.size() < 2;
        },
        stop, std::chrono::seconds(10));
    writer.join();
    ASSERT_OK(watched);
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[0].type, etcd::WatchEvent::Type::put);
    EXPECT_EQ(seen[0].kv.value, "1");
    EXPECT_EQ(seen[1].type, etcd::WatchEvent::Type::remove);
    EXPECT_EQ(seen[1].kv.key, prefix_ + "w1");
    // Compact past the start: the watch is canceled and says so.
    auto now = client_->put(prefix_ + "w2", "2");
    ASSERT_OK(now);
    compact(*now);
    ASSERT_ERROR(client_->watch(
                     prefix_, etcd::prefixEnd(prefix_), *start + 1,
                     [](std::int64_t, const auto&) { return true; }, stop, std::chrono::seconds(5)),
                 Errc::Conflict, "compacted");
}

TEST_F(Etcd, MovesToTheNextEndpointWhenOneIsDown) {
    etcd::ClientOptions o;
    o.endpoints = {"http://127.0.0.1:" + std::to_string(hoist::testing::freeLoopbackPort()),
                   cluster_->endpoints()[0]};
    auto c = etcd::Client::create(o);
    ASSERT_OK(c);
    // A guarded write and a read go through; an unguarded put too, since the first member
    // refused the connection (nothing was sent there).
    ASSERT_OK((*c)->put(prefix_ + "p", "1"));
    EXPECT_EQ(get(**c, prefix_ + "p").value, "1");
    etcd::ClientOptions dead;
    dead.endpoints = {"http://127.0.0.1:" + std::to_string(hoist::testing::freeLoopbackPort())};
    auto d = etcd::Client::create(dead);
    ASSERT_OK(d);
    ASSERT_ERROR((*d)->range({prefix_, "", 0, {}, {}, false, false}), Errc::Network, "127.0.0.1");
}

// --- the state store ---

TEST_F(Etcd, StoreRoundTripsEveryRecord) {
    EtcdStateStore store(*client_, prefix_);
    auto lease = client_->grant(30);
    ASSERT_OK(lease);
    auto key = prefix_ + "election/x";
    auto put = client_->txn({}, {Op::put(key, "{}", *lease), Op::range(key)});
    ASSERT_OK(put);
    auto epoch = put->ranges.at(0).kvs.at(0).create_revision;
    store.setLeadership(epoch, key, *lease);
    EXPECT_EQ(store.term().value_or(0), epoch);
    EXPECT_OK(store.claim(epoch));
    ASSERT_ERROR(store.claim(epoch + 1), Errc::Conflict, "election");
    EXPECT_EQ(store.nextDeploymentNumber().value_or(0), 1);

    StepWrite w;
    w.deployment = sampleDeployment(1);
    NodeRecord n{"n1", "agent", "http://127.0.0.1:1", "1.0.0", 3, "up", 10, 20, "pull"};
    w.registry.push_back(n);
    DeploymentNode dn = sampleDeploymentNode("n1");
    dn.last_seq = -1;
    dn.message = "x\"y";
    w.nodes.push_back(dn);
    w.put_holds.push_back({"sla", "p99 high", "monitor", 5, "[{\"a\":1}]", 0});
    w.events.push_back({0, 7, "admin", "deployment start", "d-1", "", "detail"});
    w.events.push_back({0, 8, "coordinator", "note", "", "", "global"});
    ASSERT_OK(store.commit(w, epoch));

    auto nodes = store.nodes();
    ASSERT_OK(nodes);
    ASSERT_EQ(nodes->size(), 1u);
    EXPECT_EQ((*nodes)[0].mode, "pull");
    EXPECT_EQ((*nodes)[0].generation, 3);
    auto d = store.deployment("d-1");
    ASSERT_OK(d);
    ASSERT_TRUE(d->has_value());
    EXPECT_EQ((*d)->max_parallel, "10%");
    EXPECT_TRUE((*d)->auto_revert);
    EXPECT_EQ((*d)->state, DeploymentState::rolling);
    EXPECT_EQ((*d)->release_json, w.deployment->release_json);
    EXPECT_EQ(store.nextDeploymentNumber().value_or(0), 2);
    auto rows = store.deploymentNodes("d-1");
    ASSERT_OK(rows);
    ASSERT_EQ(rows->size(), 1u);
    EXPECT_EQ((*rows)[0].state, NodeStep::restarting);
    EXPECT_EQ((*rows)[0].message, "x\"y");
    EXPECT_EQ((*rows)[0].last_seq, -1);
    auto holds = store.holds();
    ASSERT_OK(holds);
    ASSERT_EQ(holds->size(), 1u);
    EXPECT_EQ((*holds)[0].alerts_json, "[{\"a\":1}]");
    auto all = store.events(std::nullopt, 10);
    ASSERT_OK(all);
    ASSERT_EQ(all->size(), 2u);
    EXPECT_EQ((*all)[0].action, "deployment start");
    EXPECT_LT((*all)[0].id, (*all)[1].id);
    auto mine = store.events(std::string_view("d-1"), 10);
    ASSERT_OK(mine);
    ASSERT_EQ(mine->size(), 1u);
    EXPECT_EQ((*mine)[0].detail, "detail");

    StepWrite clear;
    clear.clear_holds = true;
    ASSERT_OK(store.commit(clear, epoch));
    EXPECT_TRUE(store.holds().value_or(std::vector<Hold>{Hold{}}).empty());

    ASSERT_OK(store.writeMonitor(MonitorRecord{"am", 60000, 9}, {}, {}));
    auto monitors = store.monitors();
    ASSERT_OK(monitors);
    ASSERT_EQ(monitors->size(), 1u);
    EXPECT_EQ((*monitors)[0].allowance_ms, 60000);
    ASSERT_OK(store.writeMonitor(std::nullopt, "am", {}));
    EXPECT_TRUE(store.monitors().value_or(std::vector<MonitorRecord>{{}}).empty());
}

TEST_F(Etcd, AFencedWriteIsRefusedOnceTheElectionKeyIsGone) {
    EtcdStateStore store(*client_, prefix_);
    auto lease = client_->grant(30);
    ASSERT_OK(lease);
    auto key = prefix_ + "election/x";
    auto put = client_->txn({}, {Op::put(key, "{}", *lease), Op::range(key)});
    ASSERT_OK(put);
    auto epoch = put->ranges.at(0).kvs.at(0).create_revision;
    store.setLeadership(epoch, key, *lease);
    StepWrite w;
    w.deployment = sampleDeployment(1);
    ASSERT_OK(store.commit(w, epoch));
    // Another term: refused before anything is sent.
    ASSERT_ERROR(store.commit(w, epoch + 1), Errc::Conflict, "not the leader");
    // The lease expires (revoked here): etcd itself refuses the write.
    ASSERT_OK(client_->revoke(*lease));
    w.deployment->version = "3.0.0";
    ASSERT_ERROR(store.commit(w, epoch), Errc::Conflict, "refused by etcd");
    EXPECT_EQ(store.deployment("d-1").value()->version, "2.0.0");
    // A key of the same name from another campaign does not let the old epoch write either.
    auto again = client_->txn({}, {Op::put(key, "{}")});
    ASSERT_OK(again);
    ASSERT_ERROR(store.commit(w, epoch), Errc::Conflict, "refused by etcd");
}

TEST_F(Etcd, AReplicaThatDoesNotLeadWritesOnlyHoldsAndEvents) {
    EtcdStateStore store(*client_, prefix_);
    StepWrite halt;
    halt.put_holds.push_back({"sla", "r", "monitor", 1, "[]", 0});
    halt.events.push_back({0, 1, "monitor", "halt", "", "", "sla: r"});
    ASSERT_OK(store.commit(halt, 0));
    EXPECT_EQ(store.holds().value().size(), 1u);
    StepWrite rollout;
    rollout.deployment = sampleDeployment(1);
    ASSERT_ERROR(store.commit(rollout, 0), Errc::Conflict, "only the leader");
    EXPECT_FALSE(store.deployment("d-1").value().has_value());
}

TEST_F(Etcd, ForeignOrDamagedValuesAreRefusedNamingTheirKey) {
    EtcdStateStore store(*client_, prefix_);
    ASSERT_OK(client_->put(prefix_ + "nodes/n1", "{\"schema\":\"other/9\",\"id\":\"n1\"}"));
    ASSERT_ERROR(store.nodes(), Errc::Corrupt, prefix_ + "nodes/n1");
    ASSERT_ERROR(store.nodes(), Errc::Corrupt, "foreign schema 'other/9'");
    ASSERT_OK(client_->put(prefix_ + "holds/x", "not json"));
    ASSERT_ERROR(store.holds(), Errc::Corrupt, prefix_ + "holds/x");
    ASSERT_OK(client_->put(prefix_ + "deployments/d-1",
                           "{\"schema\":\"hoist-coordinator/1\",\"id\":\"d-1\"}"));
    ASSERT_ERROR(store.deployment("d-1"), Errc::Corrupt, prefix_ + "deployments/d-1");
    ASSERT_OK(client_->put(prefix_ + "meta/deployment-number", "x"));
    ASSERT_ERROR(store.nextDeploymentNumber(), Errc::Corrupt, "meta/deployment-number");
}

TEST_F(Etcd, AStepLargerThanOneTxnIsSplitAndStillFenced) {
    EtcdStateStore store(*client_, prefix_, 8);
    auto lease = client_->grant(30);
    ASSERT_OK(lease);
    auto key = prefix_ + "election/x";
    auto put = client_->txn({}, {Op::put(key, "{}", *lease), Op::range(key)});
    ASSERT_OK(put);
    auto epoch = put->ranges.at(0).kvs.at(0).create_revision;
    store.setLeadership(epoch, key, *lease);
    StepWrite w;
    w.deployment = sampleDeployment(4);
    for (int i = 0; i < 30; ++i) {
        DeploymentNode dn;
        dn.deployment = "d-4";
        dn.node = "n" + std::to_string(i);
        dn.ord = i;
        w.nodes.push_back(dn);
    }
    ASSERT_OK(store.commit(w, epoch));
    EXPECT_EQ(store.deploymentNodes("d-4").value().size(), 30u);
    EXPECT_EQ(store.nextDeploymentNumber().value_or(0), 5);
    // Nothing staged is left behind once a step is in place.
    EXPECT_EQ(countUnder(*client_, prefix_ + "staged/"), 0);
    EXPECT_EQ(countUnder(*client_, prefix_ + "applying/"), 0);
}

// A leader (epoch, key, lease) and a store writing as it, max 8 ops a txn, small staged parts.
struct Leader {
    std::string key;
    std::int64_t lease = 0;
    std::int64_t epoch = 0;
};

Leader elect(etcd::Client& client, EtcdStateStore& store, const std::string& prefix,
             const std::string& name) {
    Leader l;
    l.lease = client.grant(30).value_or(0);
    l.key = prefix + "election/" + name;
    auto put = client.txn({}, {Op::put(l.key, "{}", l.lease), Op::range(l.key)});
    EXPECT_TRUE(put.has_value());
    if (put) l.epoch = put->ranges.at(0).kvs.at(0).create_revision;
    store.setLeadership(l.epoch, l.key, l.lease);
    return l;
}

StepWrite bigStart(int rows) {
    StepWrite w;
    w.deployment = sampleDeployment(4);
    for (int i = 0; i < rows; ++i) {
        DeploymentNode dn;
        dn.deployment = "d-4";
        dn.node = "n" + std::to_string(i);
        dn.ord = i;
        w.nodes.push_back(dn);
        w.registry.push_back(
            {dn.node, "agent", "http://127.0.0.1:1", "1.0.0", 1, "up", 10, 20, "push"});
    }
    w.events.push_back({0, 1, "admin", "deployment start", "d-4", "", "start"});
    return w;
}

TEST_F(Etcd, AStagedStepLeftBeforeItsMarkerIsNeverReadAndIsDroppedByTheNextLeader) {
    EtcdStateStore store(*client_, prefix_, 8);
    auto first = elect(*client_, store, prefix_, "a");
    // The leader is deposed (its lease revoked) after its first staged part.
    store.setStagingForTest(2000, [&](std::string_view stage) {
        if (stage == "part") (void)client_->revoke(first.lease);
    });
    ASSERT_ERROR(store.commit(bigStart(40), first.epoch), Errc::Conflict, "refused by etcd");
    EXPECT_GT(countUnder(*client_, prefix_ + "staged/"), 0);
    // Readers see none of it: no deployment, no rows, no registry entries, no event.
    EXPECT_FALSE(store.deployment("d-4").value().has_value());
    EXPECT_TRUE(store.deploymentNodes("d-4").value().empty());
    EXPECT_TRUE(store.nodes().value().empty());
    EXPECT_TRUE(store.events(std::nullopt, 10).value().empty());
    // The next leader drops the parts before it loads.
    EtcdStateStore next(*client_, prefix_, 8);
    elect(*client_, next, prefix_, "b");
    ASSERT_OK(next.recover());
    EXPECT_EQ(countUnder(*client_, prefix_ + "staged/"), 0);
    EXPECT_TRUE(next.deploymentNodes("d-4").value().empty());
}

StepWrite newDeployment(int number, int rows) {
    StepWrite w;
    w.deployment = sampleDeployment(number);
    for (int i = 0; i < rows; ++i) {
        DeploymentNode dn;
        dn.deployment = w.deployment->id;
        dn.node = "n" + std::to_string(i);
        dn.ord = i;
        w.nodes.push_back(dn);
    }
    w.events.push_back({0, 1, "admin", "deployment start", w.deployment->id, "", "start"});
    return w;
}

TEST_F(Etcd, ANewDeploymentsRowsAreWrittenOnceInPlace) {
    EtcdStateStore store(*client_, prefix_, 8);
    auto leader = elect(*client_, store, prefix_, "a");
    std::vector<std::string> stages;
    store.setStagingForTest(2000, [&](std::string_view stage) { stages.emplace_back(stage); });
    ASSERT_OK(store.commit(newDeployment(4, 40), leader.epoch));
    // Not staged: in place at once, then one txn with the deployment's row.
    EXPECT_EQ(stages, std::vector<std::string>{"rows"});
    EXPECT_EQ(store.stagedSteps(), 0u);
    EXPECT_EQ(countUnder(*client_, prefix_ + "staged/"), 0);
    EXPECT_EQ(countUnder(*client_, prefix_ + "creating/"), 0);
    EXPECT_EQ(store.deploymentNodes("d-4").value().size(), 40u);
    EXPECT_EQ(store.events(std::nullopt, 10).value().size(), 1u);
    // The rows of a deployment that exists are state: an update of them is staged as before.
    StepWrite update = newDeployment(4, 40);
    for (auto& n : update.nodes) n.message = "restarting";
    stages.clear();
    ASSERT_OK(store.commit(update, leader.epoch));
    EXPECT_NE(std::find(stages.begin(), stages.end(), "marker"), stages.end());
    EXPECT_EQ(store.stagedSteps(), 1u);
    EXPECT_EQ(store.deploymentNodes("d-4").value().at(39).message, "restarting");
}

TEST_F(Etcd, ANewDeploymentsRowsWithoutItsCommitAreNeverReadAndAreDroppedBeforeTheNextStep) {
    EtcdStateStore store(*client_, prefix_, 8);
    auto first = elect(*client_, store, prefix_, "a");
    // Deposed once the rows are in place, before the step's commit.
    store.setStagingForTest(2000, [&](std::string_view stage) {
        if (stage == "rows") (void)client_->revoke(first.lease);
    });
    ASSERT_ERROR(store.commit(newDeployment(4, 40), first.epoch), Errc::Conflict,
                 "refused by etcd");
    EXPECT_EQ(countUnder(*client_, prefix_ + "deployment-nodes/d-4/"), 40);
    EXPECT_EQ(countUnder(*client_, prefix_ + "creating/"), 1);
    // Readers see none of it, by the deployment or by its rows.
    EtcdStateStore reader(*client_, prefix_, 8);
    EXPECT_FALSE(reader.deployment("d-4").value().has_value());
    EXPECT_TRUE(reader.deployments().value().empty());
    EXPECT_TRUE(reader.deploymentNodes("d-4").value().empty());
    EXPECT_TRUE(reader.events(std::nullopt, 10).value().empty());
    // The same replica, leading again: its next step drops the rows first, and the id (never
    // committed) starts afresh with only its own rows.
    store.setStagingForTest(2000, nullptr);
    auto again = elect(*client_, store, prefix_, "b");
    ASSERT_OK(store.commit(newDeployment(4, 5), again.epoch));
    EXPECT_EQ(countUnder(*client_, prefix_ + "creating/"), 0);
    EXPECT_EQ(countUnder(*client_, prefix_ + "deployment-nodes/d-4/"), 5);
    EXPECT_EQ(store.deploymentNodes("d-4").value().size(), 5u);
}

TEST_F(Etcd, AStagedStepCommittedButNotInPlaceIsReadWholeAndFinishedByTheNextLeader) {
    EtcdStateStore store(*client_, prefix_, 8);
    auto first = elect(*client_, store, prefix_, "a");
    // Deposed right after the marker: the step is committed, its rows not yet in place.
    store.setStagingForTest(2000, [&](std::string_view stage) {
        if (stage == "marker") (void)client_->revoke(first.lease);
    });
    ASSERT_OK(store.commit(bigStart(40), first.epoch));
    EXPECT_EQ(countUnder(*client_, prefix_ + "applying/"), 1);
    // The staged rows (the registry's; a new deployment's own rows went in place before the
    // marker) are not all in place yet.
    EXPECT_LT(countUnder(*client_, prefix_ + "nodes/"), 40);
    // Any reader sees the whole step.
    EtcdStateStore reader(*client_, prefix_, 8);
    EXPECT_TRUE(reader.deployment("d-4").value().has_value());
    EXPECT_EQ(reader.deploymentNodes("d-4").value().size(), 40u);
    EXPECT_EQ(reader.nodes().value().size(), 40u);
    EXPECT_EQ(reader.events(std::nullopt, 10).value().size(), 1u);
    // The next leader puts it in place before it loads.
    EtcdStateStore next(*client_, prefix_, 8);
    elect(*client_, next, prefix_, "b");
    ASSERT_OK(next.recover());
    EXPECT_EQ(countUnder(*client_, prefix_ + "applying/"), 0);
    EXPECT_EQ(countUnder(*client_, prefix_ + "staged/"), 0);
    EXPECT_EQ(countUnder(*client_, prefix_ + "deployment-nodes/"), 40);
    EXPECT_EQ(next.deploymentNodes("d-4").value().size(), 40u);
    EXPECT_EQ(next.nodes().value().size(), 40u);
}

// A halt a follower writes is answered only once the replica that leads has it in force: the
// follower waits for that leader's acknowledgement of the hold's revision (etcd_holds.cpp).
TEST_F(Etcd, AHoldWrittenByAFollowerIsConfirmedOnlyOnceTheLeaderAcknowledgesIt) {
    EtcdStateStore leader_store(*client_, prefix_);
    EtcdStateStore follower(*client_, prefix_);
    follower.setConfirmTimeout(std::chrono::seconds(20));
    // With no hold standing there is nothing to confirm.
    ASSERT_OK(follower.confirmHolds());
    auto a = elect(*client_, leader_store, prefix_, "a");
    StepWrite halt;
    halt.put_holds.push_back({"sla", "p99", "monitor", 1, "[]", 0});
    ASSERT_OK(follower.commitHolds(halt));
    auto held_at = get(*client_, prefix_ + "holds/sla").mod_revision;
    ASSERT_GT(held_at, 0);
    // The leader's own halts need no acknowledgement: its gate is the one that counts.
    ASSERT_OK(leader_store.confirmHolds());

    auto confirmed = std::async(std::launch::async, [&] { return follower.confirmHolds(); });
    // Nothing but the leader's acknowledgement of the hold's revision ends the wait.
    EXPECT_EQ(confirmed.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout);
    ASSERT_OK(leader_store.acknowledgeHolds(held_at - 1));
    EXPECT_EQ(confirmed.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout);
    ASSERT_OK(leader_store.acknowledgeHolds(held_at));
    ASSERT_EQ(confirmed.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    ASSERT_OK(confirmed.get());

    // The leader deposed (its lease gone) cannot acknowledge any more, and its acknowledgement
    // does not count for its successor: the next hold waits for the new leader's.
    ASSERT_OK(client_->revoke(a.lease));
    EtcdStateStore next_store(*client_, prefix_);
    auto b = elect(*client_, next_store, prefix_, "b");
    halt.put_holds[0].source = "canary";
    ASSERT_OK(follower.commitHolds(halt));
    auto canary_at = get(*client_, prefix_ + "holds/canary").mod_revision;
    ASSERT_ERROR(leader_store.acknowledgeHolds(canary_at), Errc::Conflict, "refused by etcd");
    auto second = std::async(std::launch::async, [&] { return follower.confirmHolds(); });
    EXPECT_EQ(second.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout);
    ASSERT_OK(next_store.acknowledgeHolds(canary_at));
    ASSERT_EQ(second.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    ASSERT_OK(second.get());

    // No acknowledgement within the timeout: an error saying the hold stays but is not confirmed.
    halt.put_holds[0].source = "late";
    ASSERT_OK(follower.commitHolds(halt));
    follower.setConfirmTimeout(std::chrono::milliseconds(200));
    ASSERT_ERROR(follower.confirmHolds(), Errc::Unhealthy, "has not confirmed it");
    ASSERT_ERROR(follower.confirmHolds(), Errc::Unhealthy,
                 "the last acknowledgement is epoch " + std::to_string(b.epoch) + "'s");
    // A damaged acknowledgement is named, and confirms nothing.
    ASSERT_OK(client_->put(prefix_ + "meta/holds-seen", "not json"));
    ASSERT_ERROR(follower.confirmHolds(), Errc::Unhealthy,
                 "etcd key " + prefix_ + "meta/holds-seen holds no acknowledgement");
    EXPECT_EQ(follower.holds().value().size(), 3u);
    // No replica campaigns: the next leader reads the holds before it acts, so it is confirmed.
    ASSERT_OK(client_->revoke(b.lease));
    ASSERT_OK(follower.confirmHolds());
}

}  // namespace
}  // namespace hoist::deploy_coordinator
