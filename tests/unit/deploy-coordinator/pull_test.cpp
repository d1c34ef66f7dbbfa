// Pull mode in the engine: what GET /v1/nodes/{node}/desired answers, when an action is
// handed out, and that it is committed before the answer leaves.

#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "core/crypto.hpp"
#include "core/json.hpp"
#include "deploy_coordinator/state.hpp"
#include "engine.hpp"
#include "pkgmgr/release.hpp"
#include "releases.hpp"
#include "testing.hpp"

namespace hoist::deploy_coordinator {
namespace {

using hoist::testing::TempFolder;
using namespace std::chrono_literals;

struct Desired {
    std::string action;
    std::string deployment;
    std::string release;
    std::int64_t generation = 0;
    bool held = false;
};

Desired ask(Engine& engine, const std::string& node, std::int64_t generation = 1) {
    auto text = engine.desired(node, generation);
    EXPECT_TRUE(text.has_value()) << text.error().describe();
    if (!text) return {};
    auto doc = json::parseObject(*text, "desired");
    EXPECT_TRUE(doc.has_value());
    if (!doc) return {};
    return {(*doc)["action"].GetString(), (*doc)["deployment"].GetString(),
            (*doc)["release"].GetString(), (*doc)["generation"].GetInt64(),
            (*doc)["held"].GetBool()};
}

class PullEngine : public ::testing::Test {
protected:
    void SetUp() override {
        writeReleases(dir_ / "repo");
        auto state = State::open(dir_ / "state.db");
        ASSERT_OK(state);
        state_ = std::move(*state);
        startEngine();
    }

    void startEngine() {
        engine_.reset();
        EngineOptions options;
        options.repo_url = "file://" + (dir_ / "repo").string();
        options.allow_unsigned = true;
        if (fake_clock_) options.clock = [this] { return clock_.load(); };
        auto engine = Engine::create(*state_, options);
        ASSERT_OK(engine);
        engine_ = std::move(*engine);
        engine_->start();
    }

    void registerNode(const std::string& id, const std::string& role, const std::string& mode) {
        NodeRecord n;
        n.id = id;
        n.role = role;
        // Never reached: a pull node must not be called.
        n.address = "http://127.0.0.1:1/" + id;
        n.release = "1.0.0";
        n.generation = 1;
        n.mode = mode;
        ASSERT_OK(engine_->registerNode(n));
    }

    void ping(const std::string& node, const std::string& state, std::int64_t to = 2) {
        pkgmgr::StatusPing p;
        p.node = node;
        p.deployment = "d-1";
        p.seq = ++seq_[node];
        p.state = state;
        p.from_generation = 1;
        p.to_generation = to;
        p.release = "2.0.0";
        ASSERT_OK(engine_->onPing(p));
    }

    /// The committed row of a node in d-1.
    DeploymentNode row(const std::string& node) {
        auto rows = state_->deploymentNodes("d-1");
        EXPECT_TRUE(rows.has_value());
        for (const auto& r : rows.value_or(std::vector<DeploymentNode>{}))
            if (r.node == node) return r;
        return {};
    }

    int events(const std::string& node, const std::string& action) {
        auto list = state_->events(std::string_view("d-1"), 1000);
        int n = 0;
        for (const auto& e : list.value_or(std::vector<Event>{}))
            if (e.node == node && e.action == action) ++n;
        return n;
    }

    /// Waits for the loop to commit what a ping changed.
    bool committed(const std::string& node, NodeStep state) {
        return testing::waitFor([&] { return row(node).state == state; }, 5s, 10ms);
    }

    /// Asks until the answer is `action` (the engine offers on its next loop turn).
    Desired waitFor(const std::string& node, const std::string& action) {
        Desired last;
        testing::waitFor(
            [&] {
                last = ask(*engine_, node);
                return last.action == action;
            },
            5s, 10ms);
        return last;
    }

    /// With fake_clock_, the engine reads clock_ as now (set before startEngine()).
    bool fake_clock_ = false;
    std::atomic<std::int64_t> clock_{1'000'000'000'000};
    TempFolder dir_;
    std::unique_ptr<State> state_;
    std::unique_ptr<Engine> engine_;
    std::map<std::string, std::int64_t> seq_;
};

TEST_F(PullEngine, RefusesUnknownAndPushNodes) {
    ASSERT_ERROR(engine_->desired("ghost", std::nullopt), Errc::NotFound,
                 "node 'ghost' is not registered");
    registerNode("agent-1", "agent", "push");
    ASSERT_ERROR(engine_->desired("agent-1", std::nullopt), Errc::Conflict,
                 "node 'agent-1' is registered in push mode: the coordinator sends it its actions");
    // Registering again in pull mode switches it (and is recorded, as the mode is kept).
    registerNode("agent-1", "agent", "pull");
    auto nodes = state_->nodes();
    ASSERT_OK(nodes);
    ASSERT_EQ(nodes->size(), 1u);
    EXPECT_EQ((*nodes)[0].mode, "pull");
    auto answer = ask(*engine_, "agent-1");
    EXPECT_EQ(answer.action, "none");
    EXPECT_FALSE(answer.held);
    EXPECT_NE(engine_->nodesJson().find("\"mode\":\"pull\""), std::string::npos);
}

TEST_F(PullEngine, HandsOutCommittedActionsInOrderOnlyWithoutAHold) {
    registerNode("master-1", "master", "pull");
    registerNode("agent-1", "agent", "pull");
    registerNode("agent-2", "agent", "pull");
    StartRequest request;
    request.version = "2.0.0";
    request.max_parallel = "1";
    ASSERT_OK(engine_->startDeployment(request));

    // Staging: handed out when asked, committed as staging before the answer.
    auto stage = waitFor("master-1", "stage");
    EXPECT_EQ(stage.deployment, "d-1");
    EXPECT_EQ(stage.release, "2.0.0");
    EXPECT_EQ(row("master-1").state, NodeStep::staging);
    EXPECT_GT(row("master-1").started_ms, 0);
    EXPECT_EQ(ask(*engine_, "master-1").action, "stage");  // asking again: the same action
    EXPECT_EQ(events("master-1", "stage"), 1);

    // A hold: nothing is handed out, not even again; the committed state does not move.
    ASSERT_OK(engine_->halt("sla", "burn", "monitor"));
    for (const char* node : {"master-1", "agent-1", "agent-2"}) {
        auto held = ask(*engine_, node);
        EXPECT_EQ(held.action, "none") << node;
        EXPECT_TRUE(held.held) << node;
    }
    EXPECT_EQ(row("agent-1").state, NodeStep::pending);
    ASSERT_OK(engine_->clearHolds(std::nullopt, "admin"));
    EXPECT_EQ(waitFor("agent-1", "stage").held, false);
    EXPECT_EQ(waitFor("agent-2", "stage").action, "stage");
    for (const char* node : {"master-1", "agent-1", "agent-2"}) ping(node, "staged");
    EXPECT_TRUE(committed("agent-2", NodeStep::staged));
    EXPECT_EQ(row("agent-2").target_generation, 2);

    // Rolling: the master first; agents get nothing while it is in flight.
    auto restart = waitFor("master-1", "restart");
    EXPECT_EQ(restart.generation, 2);
    EXPECT_EQ(row("master-1").state, NodeStep::restarting);
    EXPECT_EQ(ask(*engine_, "agent-1").action, "none");
    EXPECT_EQ(ask(*engine_, "agent-2").action, "none");
    ping("master-1", "stopping");
    ping("master-1", "healthy");
    EXPECT_TRUE(committed("master-1", NodeStep::done));
    EXPECT_EQ(row("master-1").restarts, 1);

    // max_parallel 1: the restart offered to agent-1 counts before agent-1 takes it, so
    // agent-2 asking first gets nothing.
    ASSERT_TRUE(testing::waitFor(
        [&] {
            return engine_->deploymentJson("d-1", false, 0)
                       ->find("pull node agent-1 to ask for its restart") != std::string::npos;
        },
        5s, 10ms));
    // Several loop turns (50 ms each): a second offer would show.
    auto until = std::chrono::steady_clock::now() + 300ms;
    while (std::chrono::steady_clock::now() < until) {
        ASSERT_EQ(ask(*engine_, "agent-2").action, "none");
        std::this_thread::sleep_for(20ms);
    }
    EXPECT_EQ(waitFor("agent-1", "restart").generation, 2);
    EXPECT_EQ(row("agent-1").state, NodeStep::restarting);

    // A coordinator restart: the restart handed out is answered again, not handed out anew.
    startEngine();
    auto again = ask(*engine_, "agent-1");
    EXPECT_EQ(again.action, "restart");
    EXPECT_EQ(again.generation, 2);
    EXPECT_EQ(ask(*engine_, "agent-2").action, "none");
    ping("agent-1", "healthy");
    EXPECT_EQ(waitFor("agent-2", "restart").generation, 2);
    ping("agent-2", "healthy");
    ASSERT_TRUE(testing::waitFor(
        [&] { return state_->deployment("d-1")->value().state == DeploymentState::done; }, 5s,
        10ms));
    for (const char* node : {"master-1", "agent-1", "agent-2"}) {
        EXPECT_EQ(row(node).restarts, 1) << node;
        EXPECT_EQ(events(node, "restart"), 1) << node;
        EXPECT_EQ(ask(*engine_, node).action, "none") << node;
    }
}

TEST_F(PullEngine, APullNodeThatStopsAskingFailsAtTheNodeDeadline) {
    registerNode("agent-1", "agent", "pull");
    StartRequest request;
    request.version = "2.0.0";
    request.node_deadline_ms = 300;
    ASSERT_OK(engine_->startDeployment(request));
    waitFor("agent-1", "stage");
    ping("agent-1", "staged");
    waitFor("agent-1", "restart");
    // It never reports again.
    ASSERT_TRUE(
        testing::waitFor([&] { return row("agent-1").state == NodeStep::failed; }, 5s, 20ms));
    EXPECT_EQ(row("agent-1").message, "no healthy report within the node deadline (300 ms)");
}

// The engine's clock is a seam: on a fake one, an offer ages only as the clock moves, and a
// pull node that does not ask for its restart fails once the node deadline has passed.
TEST_F(PullEngine, OnAFakeClockAnOfferNotTakenFailsOnlyOnceTheNodeDeadlinePasses) {
    fake_clock_ = true;
    startEngine();
    registerNode("agent-1", "agent", "pull");
    StartRequest request;
    request.version = "2.0.0";
    request.node_deadline_ms = 60000;
    ASSERT_OK(engine_->startDeployment(request));
    waitFor("agent-1", "stage");
    ping("agent-1", "staged");
    // Its restart is offered (and committed as what the deployment waits on); nobody asks.
    ASSERT_TRUE(testing::waitFor(
        [&] {
            auto d = state_->deployment("d-1");
            return d && *d && (*d)->waiting_on == "pull node agent-1 to ask for its restart";
        },
        5s, 10ms));
    // Two runner commands in a row: the runner's timers ran at least once between them.
    auto turn = [&] {
        for (int i = 0; i < 2; ++i) EXPECT_FALSE(engine_->desired("ghost", std::nullopt));
    };
    clock_ += 60000;
    turn();
    EXPECT_EQ(row("agent-1").state, NodeStep::staged) << row("agent-1").message;
    clock_ += 1;
    ASSERT_TRUE(
        testing::waitFor([&] { return row("agent-1").state == NodeStep::failed; }, 5s, 10ms));
    EXPECT_EQ(row("agent-1").message, "the pull node did not ask for its restart within 60000 ms");
    EXPECT_EQ(row("agent-1").finished_ms, clock_.load());
}

TEST_F(PullEngine, AnAutoRevertHandsOutTheRestartBackToTheOldGeneration) {
    registerNode("agent-1", "agent", "pull");
    registerNode("agent-2", "agent", "pull");
    StartRequest request;
    request.version = "2.0.0";
    request.auto_revert = true;
    ASSERT_OK(engine_->startDeployment(request));
    waitFor("agent-1", "stage");
    waitFor("agent-2", "stage");
    ping("agent-1", "staged");
    ping("agent-2", "staged");
    waitFor("agent-1", "restart");
    ping("agent-1", "healthy");
    waitFor("agent-2", "restart");
    ping("agent-2", "rolled_back");
    // Over the failure budget: agent-1, upgraded, goes back to generation 1 of 1.0.0.
    auto back = waitFor("agent-1", "restart");
    EXPECT_EQ(back.generation, 1);
    EXPECT_EQ(back.release, "1.0.0");
    EXPECT_EQ(row("agent-1").state, NodeStep::reverting);
    EXPECT_EQ(ask(*engine_, "agent-2").action, "none");
    ping("agent-1", "healthy", 1);
    ASSERT_TRUE(testing::waitFor(
        [&] { return state_->deployment("d-1")->value().state == DeploymentState::reverted; }, 5s,
        10ms));
    EXPECT_EQ(row("agent-1").state, NodeStep::reverted);
    EXPECT_EQ(row("agent-1").restarts, 2);
    EXPECT_EQ(events("agent-1", "revert"), 1);
}

}  // namespace
}  // namespace hoist::deploy_coordinator
