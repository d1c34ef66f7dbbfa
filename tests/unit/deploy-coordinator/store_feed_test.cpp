// The event stream of an HA follower (StoreFeed) against a real etcd member: what the leader
// commits to etcd reaches a stream opened on a follower, and a watch compacted away is
// followed by a read of the state, so the stream still reports what changed.
#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "core/crypto.hpp"
#include "core/http_client.hpp"
#include "etcd_client.hpp"
#include "etcd_cluster.hpp"
#include "etcd_state.hpp"
#include "etcd_suite.hpp"
#include "event_stream.hpp"
#include "records.hpp"
#include "store_feed.hpp"
#include "testing.hpp"
#include "ui_server.hpp"

namespace hoist::deploy_coordinator {
namespace {

using namespace std::chrono_literals;
using hoist::testing::TempFolder;

class StoreFeedTest : public EtcdSuite {
protected:
    void SetUp() override {
        EtcdSuite::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        // The leader: an election key of its own, so its steps are fenced as in a replica.
        leader_ = std::make_unique<EtcdStateStore>(*client_, prefix_);
        auto lease = client_->grant(60);
        ASSERT_OK(lease);
        auto key = prefix_ + "election/x";
        auto put = client_->txn({}, {etcd::Op::put(key, "{}", *lease), etcd::Op::range(key)});
        ASSERT_OK(put);
        epoch_ = put->ranges.at(0).kvs.at(0).create_revision;
        leader_->setLeadership(epoch_, key, *lease);
        // The follower: its hub polls the audit log only once a minute, so what reaches the
        // stream within the test came through the feed.
        follower_ = std::make_unique<EtcdStateStore>(*client_, prefix_);
        hub_ = std::make_unique<EventHub>(*follower_, 60s);
        feed_ = std::make_unique<StoreFeed>(*client_, *follower_, *hub_,
                                            [this] { return hub_->listening(); });
        auto ui = serveUi(*hub_);
        ASSERT_OK(ui);
        server_ = std::move(ui->server);
        port_ = ui->port;
    }

    void startAll() {
        hub_->start();
        feed_->start();
        thread_ = std::thread([this] { server_->run(); });
    }

    void TearDown() override {
        if (!server_) return;
        if (thread_.joinable()) {
            server_->stop();
            thread_.join();
        }
        feed_->stop();
        hub_->stop();
    }

    std::unique_ptr<hoist::testing::RawConnection> open() {
        auto conn = std::make_unique<hoist::testing::RawConnection>(port_);
        conn->send(
            "GET /v1/events/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer halt-t\r\n\r\n");
        std::string text;
        EXPECT_TRUE(conn->readUntil(text, "event: hello\n", 5s)) << text;
        return conn;
    }

    std::int64_t newestId() {
        auto list = follower_->events(std::nullopt, 1);
        return list && !list->empty() ? list->back().id : 0;
    }

    std::int64_t epoch_ = 0;
    std::unique_ptr<EtcdStateStore> leader_;
    std::unique_ptr<EtcdStateStore> follower_;
    std::unique_ptr<EventHub> hub_;
    std::unique_ptr<StoreFeed> feed_;
    std::unique_ptr<http::Server> server_;
    std::thread thread_;
    int port_ = 0;
};

TEST_F(StoreFeedTest, AStreamOnAFollowerCarriesWhatTheLeaderCommits) {
    std::atomic<int> watches{0};
    feed_->setBeforeWatchForTest([&] { watches++; });
    startAll();
    auto conn = open();
    ASSERT_TRUE(hoist::testing::waitFor([&] { return watches.load() > 0; }, 5s));

    StepWrite step;
    step.deployment = sampleDeployment(1);
    step.nodes.push_back(sampleDeploymentNode("n1"));
    NodeRecord node;
    node.id = "n1";
    node.role = "agent";
    node.release = "1.0.0";
    step.registry.push_back(node);
    step.put_holds.push_back({"sla", "p99 too high", "monitor", nowMs(), "[]", 0});
    step.events.push_back({0, nowMs(), "admin", "deployment started", "d-1", "", "2.0.0"});
    ASSERT_OK(leader_->commit(step, epoch_));
    auto id = std::to_string(newestId());

    std::string got;
    ASSERT_TRUE(conn->readUntil(got, "id: " + id + "\nevent: audit\n", 5s)) << got;
    ASSERT_TRUE(conn->readUntil(got, "event: change\n", 5s)) << got;
    ASSERT_TRUE(conn->readUntil(got, "\"fleet\":true", 5s)) << got;
    EXPECT_NE(got.find("\"deployments\":[{\"id\":\"d-1\",\"version\":\"2.0.0\""), std::string::npos)
        << got;
    EXPECT_NE(got.find("\"deployment\":\"d-1\",\"node\":\"n1\",\"role\":\"agent\""),
              std::string::npos)
        << got;
    EXPECT_NE(got.find("\"holds\":true"), std::string::npos) << got;
    EXPECT_NE(got.find("\"action\":\"deployment started\""), std::string::npos) << got;

    // A hold cleared by the leader: the next notice says the holds changed again.
    StepWrite clear;
    clear.clear_holds = true;
    ASSERT_OK(leader_->commit(clear, epoch_));
    got.clear();
    ASSERT_TRUE(conn->readUntil(got, "\"holds\":true", 5s)) << got;
    EXPECT_EQ(feed_->rereads(), 0u);
}

TEST_F(StoreFeedTest, ANewDeploymentsRowsReachTheStreamOnlyWithItsCommit) {
    std::atomic<int> watches{0};
    feed_->setBeforeWatchForTest([&] { watches++; });
    startAll();
    auto conn = open();
    ASSERT_TRUE(hoist::testing::waitFor([&] { return watches.load() > 0; }, 5s));
    // A leader writing small txns: a new deployment's rows go in place before its commit.
    EtcdStateStore small(*client_, prefix_, 8);
    auto lease = client_->grant(60);
    ASSERT_OK(lease);
    auto key = prefix_ + "election/small";
    auto put = client_->txn({}, {etcd::Op::put(key, "{}", *lease), etcd::Op::range(key)});
    ASSERT_OK(put);
    auto epoch = put->ranges.at(0).kvs.at(0).create_revision;
    small.setLeadership(epoch, key, *lease);
    auto start = [](std::int64_t number) {
        StepWrite w;
        w.deployment = sampleDeployment(number);
        for (int i = 0; i < 20; ++i) {
            auto n = sampleDeploymentNode("n" + std::to_string(i));
            n.deployment = w.deployment->id;
            w.nodes.push_back(n);
        }
        return w;
    };
    // Deposed between the rows and the commit: the stream never shows those rows.
    small.setStagingForTest(2000, [&](std::string_view stage) {
        if (stage == "rows") (void)client_->revoke(*lease);
    });
    ASSERT_ERROR(small.commit(start(8), epoch), Errc::Conflict, "refused by etcd");
    StepWrite halt;
    halt.put_holds.push_back({"after", "r", "monitor", nowMs(), "[]", 0});
    ASSERT_OK(leader_->commit(halt, epoch_));
    std::string got;
    ASSERT_TRUE(conn->readUntil(got, "\"holds\":true", 5s)) << got;
    EXPECT_EQ(got.find("d-8"), std::string::npos) << got;
    // Committed (leading again): the rows arrive with the deployment's row, in one notice.
    small.setStagingForTest(2000, nullptr);
    auto again = client_->grant(60);
    ASSERT_OK(again);
    auto next = client_->txn({}, {etcd::Op::put(key, "{}", *again), etcd::Op::range(key)});
    ASSERT_OK(next);
    epoch = next->ranges.at(0).kvs.at(0).create_revision;
    small.setLeadership(epoch, key, *again);
    ASSERT_OK(small.commit(start(9), epoch));
    EXPECT_EQ(small.stagedSteps(), 0u);
    got.clear();
    ASSERT_TRUE(conn->readUntil(got, "\"id\":\"d-9\"", 5s)) << got;
    auto notice = got.substr(got.rfind("event: change\n"));
    EXPECT_NE(notice.find("\"deployment\":\"d-9\",\"node\":\"n19\""), std::string::npos) << got;
}

TEST_F(StoreFeedTest, AWatchCompactedAwayIsFollowedByAReadOfTheState) {
    // Between the revision the feed starts from and its watch: a hold and its audit event
    // are written, and etcd compacts past both, so the watch is refused.
    std::atomic<int> watches{0};
    feed_->setBeforeWatchForTest([&] {
        if (watches++ != 0) return;
        StepWrite halt;
        halt.put_holds.push_back({"unseen", "written during the gap", "monitor", nowMs(), "[]", 0});
        halt.events.push_back({0, nowMs(), "monitor", "halt", "", "", "unseen"});
        ASSERT_OK(leader_->commit(halt, 0));
        auto now = client_->put(prefix_ + "zz-filler", "x");
        ASSERT_OK(now);
        compact(*now);
    });
    startAll();
    auto conn = open();
    std::string got;
    ASSERT_TRUE(conn->readUntil(got, "\"holds\":true", 5s)) << got;
    auto id = std::to_string(newestId());
    ASSERT_TRUE(conn->readUntil(got, "id: " + id + "\nevent: audit\n", 5s)) << got;
    EXPECT_NE(got.find("\"detail\":\"unseen\""), std::string::npos) << got;
    EXPECT_EQ(feed_->rereads(), 1u);
    // And it watches again from there: a later step arrives as usual.
    StepWrite step;
    step.deployment = sampleDeployment(2);
    ASSERT_OK(leader_->commit(step, epoch_));
    got.clear();
    ASSERT_TRUE(conn->readUntil(got, "\"id\":\"d-2\"", 5s)) << got;
}

}  // namespace
}  // namespace hoist::deploy_coordinator
