// Status pings: delivered during a swap, kept in the outbox while the coordinator is
// unreachable, delivered once it answers, in order and without duplicates.

#include <set>

#include "core/json.hpp"
#include "node_fixture.hpp"
#include "pkgmgr/node_config.hpp"
#include "pkgmgr/outbox.hpp"
#include "restart_helper/helper.hpp"

namespace hoist::testing {
namespace {

using restart_helper::kExitHealthy;

struct SeenPing {
    std::int64_t seq = 0;
    std::string state;
    std::string deployment;
    std::string node;
    std::int64_t from = 0;
    std::int64_t to = 0;
};

std::vector<SeenPing> parsePings(const std::vector<RecordingCoordinator::Record>& records) {
    std::vector<SeenPing> out;
    for (const auto& r : records) {
        auto doc = json::parseObject(r.body, "ping");
        EXPECT_OK(doc);
        if (!doc) continue;
        SeenPing p;
        p.seq = *json::getInt(*doc, "seq", "ping");
        p.state = *json::getString(*doc, "state", "ping");
        p.deployment = *json::getString(*doc, "deployment", "ping");
        p.node = *json::getString(*doc, "node", "ping");
        p.from = *json::getInt(*doc, "from_generation", "ping");
        p.to = *json::getInt(*doc, "to_generation", "ping");
        out.push_back(p);
    }
    return out;
}

std::vector<std::string> states(const std::vector<SeenPing>& pings) {
    std::vector<std::string> out;
    for (const auto& p : pings) out.push_back(p.state);
    return out;
}

const std::vector<std::string> kHealthySwap = {"stopping", "swapping", "starting", "checking",
                                               "healthy"};

class PingTest : public NodeFixture {
protected:
    void startOld() {
        auto gen = stageVersion("1.0.0");
        ASSERT_EQ(helper({"swap", "--to", std::to_string(gen)}).exit_code, kExitHealthy);
    }
    size_t queued() {
        auto outbox = pkgmgr::Outbox::open(layout_);
        EXPECT_OK(outbox);
        auto pending = outbox->pending();
        EXPECT_OK(pending);
        return pending ? pending->size() : 0;
    }
};

TEST_F(PingTest, DeliveredDuringASwap) {
    RecordingCoordinator coordinator;
    startOld();
    auto next = stageVersion("2.0.0");
    auto swap = helper({"swap", "--to", std::to_string(next), "--deployment", "d-1", "--report-to",
                        coordinator.url()});
    ASSERT_EQ(swap.exit_code, kExitHealthy) << swap.err;
    auto pings = parsePings(coordinator.pings());
    EXPECT_EQ(states(pings), kHealthySwap);
    for (size_t i = 0; i < pings.size(); ++i) {
        EXPECT_EQ(pings[i].seq, static_cast<std::int64_t>(i + 1));
        EXPECT_EQ(pings[i].deployment, "d-1");
        EXPECT_EQ(pings[i].node, "node-1");
        EXPECT_EQ(pings[i].from, 1);
        EXPECT_EQ(pings[i].to, 2);
    }
    EXPECT_EQ(coordinator.pings().front().path, "/v1/nodes/node-1/status");
    EXPECT_EQ(queued(), 0u);
}

TEST_F(PingTest, KeptWhileTheCoordinatorIsUnreachableThenDeliveredOnce) {
    RecordingCoordinator coordinator;
    int port = coordinator.port();
    coordinator.stop();  // connections to its port are refused from now on
    startOld();
    auto next = stageVersion("2.0.0");
    auto swap = helper({"--ping-grace", "300", "swap", "--to", std::to_string(next), "--deployment",
                        "d-2", "--report-to", coordinator.url()});
    // The swap does not wait for the coordinator.
    ASSERT_EQ(swap.exit_code, kExitHealthy) << swap.err;
    EXPECT_EQ(runningVersion(), "2.0.0");
    EXPECT_EQ(queued(), kHealthySwap.size());
    EXPECT_NE(swap.err.find("status pings left in the outbox for later"), std::string::npos)
        << swap.err;

    // Still unreachable: flush keeps them.
    auto early = helper({"flush", "--timeout", "200"});
    EXPECT_EQ(early.exit_code, exitCode(Errc::Network));
    EXPECT_EQ(queued(), kHealthySwap.size());

    ASSERT_TRUE(coordinator.start());
    ASSERT_EQ(coordinator.port(), port);
    auto flushed = helper({"flush"});
    EXPECT_EQ(flushed.exit_code, 0) << flushed.err;
    EXPECT_EQ(flushed.out, "0 pings left\n");
    EXPECT_EQ(queued(), 0u);

    auto pings = parsePings(coordinator.pings());
    EXPECT_EQ(states(pings), kHealthySwap);
    std::set<std::int64_t> seqs;
    for (const auto& p : pings) seqs.insert(p.seq);
    EXPECT_EQ(seqs.size(), pings.size()) << "a ping was delivered twice";
    EXPECT_TRUE(std::is_sorted(pings.begin(), pings.end(),
                               [](const SeenPing& a, const SeenPing& b) { return a.seq < b.seq; }));

    // Flushing again sends nothing more.
    EXPECT_EQ(helper({"flush"}).exit_code, 0);
    EXPECT_EQ(coordinator.pings().size(), pings.size());
}

// A queued ping cut short (a bad disk, a truncated copy) is not skipped forever without a
// word: flush sets it aside, names it and fails; status and the other pings go on.
TEST_F(PingTest, ATruncatedQueuedPingIsSetAsideAndReported) {
    RecordingCoordinator coordinator;
    int port = coordinator.port();
    coordinator.stop();
    startOld();
    auto swap =
        helper({"--ping-grace", "100", "swap", "--to", std::to_string(stageVersion("2.0.0")),
                "--deployment", "d-3", "--report-to", coordinator.url()});
    ASSERT_EQ(swap.exit_code, kExitHealthy) << swap.err;
    ASSERT_EQ(queued(), kHealthySwap.size());
    auto first = layout_.outbox() / "000000000001.json";
    auto text = readFile(first);
    writeFile(first, text.substr(0, text.size() / 2));

    ASSERT_TRUE(coordinator.start());
    ASSERT_EQ(coordinator.port(), port);
    auto flushed = helper({"flush"});
    EXPECT_EQ(flushed.exit_code, exitCode(Errc::Corrupt)) << flushed.out << flushed.err;
    EXPECT_EQ(flushed.out, "0 pings left\n");
    EXPECT_NE(flushed.err.find("1 queued ping(s) were unreadable and set aside, never sent: " +
                               first.string() + ".damaged"),
              std::string::npos)
        << flushed.err;
    EXPECT_FALSE(fs::exists(first));
    EXPECT_TRUE(fs::exists(first.string() + ".damaged"));
    EXPECT_EQ(states(parsePings(coordinator.pings())),
              std::vector<std::string>(kHealthySwap.begin() + 1, kHealthySwap.end()));
    auto status = helper({"status"});
    EXPECT_NE(status.out.find("pings damaged (set aside, never sent): 1"), std::string::npos)
        << status.out;
}

TEST_F(PingTest, ServeDeliversWhatTheHelperLeftBehind) {
    RecordingCoordinator coordinator;
    coordinator.stop();
    startOld();
    auto next = stageVersion("2.0.0");
    ASSERT_EQ(helper({"--ping-grace", "100", "swap", "--to", std::to_string(next), "--report-to",
                      coordinator.url()})
                  .exit_code,
              kExitHealthy);
    ASSERT_EQ(queued(), kHealthySwap.size());
    ASSERT_TRUE(coordinator.start());
    ServerProcess serve(
        {PKGMGR_BIN, "--root", root_.string(), "serve", "--no-register", "--port-file",
         (tmp_ / "serve.port").string(), "--restart-helper", RESTART_HELPER_BIN},
        tmp_ / "serve.port", tmp_ / "serve.log");
    ASSERT_TRUE(serve.started());
    EXPECT_TRUE(waitFor([&] { return coordinator.pings().size() == kHealthySwap.size(); },
                        std::chrono::seconds(15)))
        << readFile(tmp_ / "serve.log");
    EXPECT_TRUE(waitFor([&] { return queued() == 0; }, std::chrono::seconds(5)));
    EXPECT_EQ(states(parsePings(coordinator.pings())), kHealthySwap);
}

TEST_F(PingTest, CarriesTheCoordinatorToken) {
    RecordingCoordinator coordinator;
    reportTo(coordinator.url());
    auto gen = stageVersion("1.0.0");
    // No --report-to: node.json's coordinator is used.
    ASSERT_EQ(helper({"swap", "--to", std::to_string(gen)}).exit_code, kExitHealthy);
    auto pings = coordinator.pings();
    ASSERT_EQ(pings.size(), kHealthySwap.size());
    for (const auto& p : pings) EXPECT_EQ(p.authorization, "Bearer coord-secret");
}

}  // namespace
}  // namespace hoist::testing
