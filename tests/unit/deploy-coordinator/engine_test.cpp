// The engine against an in-memory NodeGateway: a whole rollout with no network, each restart
// committed before it is sent, masters before agents.

#include <mutex>

#include <gtest/gtest.h>

#include "core/crypto.hpp"
#include "deploy_coordinator/state.hpp"
#include "engine.hpp"
#include "pkgmgr/release.hpp"
#include "releases.hpp"
#include "testing.hpp"

namespace hoist::deploy_coordinator {
namespace {

using hoist::testing::TempFolder;
using namespace std::chrono_literals;

/// Nodes that stage, take restarts and answer polls from memory. It checks, as each restart
/// arrives, that the state file already says the node is restarting.
class FakeGateway final : public NodeGateway {
public:
    explicit FakeGateway(State& state) : state_(state) {}

    StageOutcome stage(const std::string& address, const std::string&,
                       std::int64_t epoch) override {
        std::lock_guard lock(mutex_);
        log_.push_back("stage " + address);
        epochs_.push_back(epoch);
        if (address.ends_with("/" + fail_stage_)) return {StageOutcome::Kind::failed, 0, "refused"};
        return {StageOutcome::Kind::staged, 2, ""};
    }
    /// The node whose stage fails.
    void failStage(std::string node) {
        std::lock_guard lock(mutex_);
        fail_stage_ = std::move(node);
    }
    RestartOutcome restart(const std::string& address, std::int64_t generation,
                           const std::string& deployment, const std::string&,
                           std::int64_t epoch) override {
        std::string node = address.substr(address.rfind('/') + 1);
        bool committed = false;
        if (auto rows = state_.deploymentNodes(deployment))
            for (const auto& row : *rows)
                if (row.node == node) committed = row.state == NodeStep::restarting;
        std::lock_guard lock(mutex_);
        log_.push_back("restart " + node);
        epochs_.push_back(epoch);
        if (!committed) uncommitted_.push_back(node);
        generation_[address] = generation;
        return {RestartOutcome::Kind::accepted, ""};
    }
    PollOutcome poll(const std::string& address) override {
        std::lock_guard lock(mutex_);
        PollOutcome p;
        p.reachable = true;
        p.view = {generation_[address], "2.0.0", true};
        return p;
    }
    std::optional<NodeView> probe(const std::string& address) override {
        std::lock_guard lock(mutex_);
        return NodeView{generation_[address], "2.0.0", true};
    }
    bool answers(const std::string&) override { return true; }

    std::vector<std::string> log() {
        std::lock_guard lock(mutex_);
        return log_;
    }
    std::vector<std::string> uncommitted() {
        std::lock_guard lock(mutex_);
        return uncommitted_;
    }
    /// The epoch of every stage and restart, in the order sent.
    std::vector<std::int64_t> epochs() {
        std::lock_guard lock(mutex_);
        return epochs_;
    }

private:
    State& state_;
    std::mutex mutex_;
    std::vector<std::string> log_;
    std::vector<std::string> uncommitted_;
    std::vector<std::int64_t> epochs_;
    std::map<std::string, std::int64_t> generation_;
    std::string fail_stage_;
};

TEST(EngineWithFakeGateway, RollsOutCommittingEachRestartBeforeItIsSent) {
    TempFolder dir;
    writeReleases(dir / "repo");
    auto state = State::open(dir / "state.db");
    ASSERT_OK(state);
    auto gateway = std::make_unique<FakeGateway>(**state);
    auto* fake = gateway.get();
    EngineOptions options;
    options.repo_url = "file://" + (dir / "repo").string();
    options.allow_unsigned = true;
    options.poll_after = 20ms;  // no pings here: polls tell the engine the nodes are healthy
    auto engine = Engine::create(**state, options, std::move(gateway));
    ASSERT_OK(engine);
    (*engine)->start();
    for (const char* id : {"agent-2", "master-1", "agent-1"}) {
        NodeRecord n;
        n.id = id;
        n.role = std::string(id).starts_with("master") ? "master" : "agent";
        n.address = std::string("http://fake/") + id;
        n.release = "1.0.0";
        n.generation = 1;
        ASSERT_OK((*engine)->registerNode(n));
    }
    StartRequest request;
    request.version = "2.0.0";
    request.max_parallel = "1";
    ASSERT_OK((*engine)->startDeployment(request));
    ASSERT_TRUE(testing::waitFor(
        [&] {
            auto d = (*state)->deployment("d-1");
            return d && *d && (*d)->state == DeploymentState::done;
        },
        10s, 10ms));
    std::vector<std::string> restarts;
    for (const auto& line : fake->log())
        if (line.starts_with("restart ")) restarts.push_back(line.substr(8));
    EXPECT_EQ(restarts, (std::vector<std::string>{"master-1", "agent-1", "agent-2"}));
    EXPECT_TRUE(fake->uncommitted().empty());
    auto nodes = (*state)->nodes();
    ASSERT_OK(nodes);
    (*engine)->stop();
    nodes = (*state)->nodes();
    for (const auto& n : *nodes) EXPECT_EQ(n.release, "2.0.0") << n.id;
    // The state never claimed a term: no epoch goes to the nodes (an older node reads them).
    for (auto epoch : fake->epochs()) EXPECT_EQ(epoch, 0);
}

TEST(EngineWithFakeGateway, EveryCommandAndPullAnswerCarriesTheLeadershipTerm) {
    TempFolder dir;
    writeReleases(dir / "repo");
    auto state = State::open(dir / "state.db");
    ASSERT_OK(state);
    ASSERT_OK((*state)->claim(7));
    auto gateway = std::make_unique<FakeGateway>(**state);
    auto* fake = gateway.get();
    EngineOptions options;
    options.repo_url = "file://" + (dir / "repo").string();
    options.allow_unsigned = true;
    options.poll_after = 20ms;
    auto engine = Engine::create(**state, options, std::move(gateway));
    ASSERT_OK(engine);
    (*engine)->start();
    for (const char* id : {"master-1", "agent-1"}) {
        NodeRecord n;
        n.id = id;
        n.role = std::string(id).starts_with("master") ? "master" : "agent";
        n.address = std::string("http://fake/") + id;
        n.release = "1.0.0";
        n.generation = 1;
        ASSERT_OK((*engine)->registerNode(n));
    }
    StartRequest request;
    request.version = "2.0.0";
    ASSERT_OK((*engine)->startDeployment(request));
    ASSERT_TRUE(testing::waitFor(
        [&] {
            auto d = (*state)->deployment("d-1");
            return d && *d && (*d)->state == DeploymentState::done;
        },
        10s, 10ms));
    auto epochs = fake->epochs();
    EXPECT_EQ(epochs.size(), 4u);  // a stage and a restart per node
    for (auto epoch : epochs) EXPECT_EQ(epoch, 7);

    // A pull node's answer carries it too.
    NodeRecord puller;
    puller.id = "agent-pull";
    puller.role = "agent";
    puller.address = "http://fake/agent-pull";
    puller.release = "2.0.0";
    puller.generation = 2;
    puller.mode = "pull";
    ASSERT_OK((*engine)->registerNode(puller));
    auto answer = (*engine)->desired("agent-pull", 2);
    ASSERT_OK(answer);
    auto desired = pkgmgr::DesiredState::fromJson(*answer);
    ASSERT_OK(desired);
    EXPECT_EQ(desired->epoch, 7) << *answer;
    (*engine)->stop();
}

TEST(EngineWithFakeGateway, ANodeSwappingWhenItsDeploymentWasAbortedIsRecordedAfterARestart) {
    TempFolder dir;
    writeReleases(dir / "repo");
    auto state = State::open(dir / "state.db");
    ASSERT_OK(state);
    EngineOptions options;
    options.repo_url = "file://" + (dir / "repo").string();
    options.allow_unsigned = true;
    options.poll_after = std::chrono::hours(1);  // only a ping can finish the swap
    {
        auto engine = Engine::create(**state, options, std::make_unique<FakeGateway>(**state));
        ASSERT_OK(engine);
        (*engine)->start();
        for (const char* id : {"master-1", "agent-1"}) {
            NodeRecord n;
            n.id = id;
            n.role = std::string(id).starts_with("master") ? "master" : "agent";
            n.address = std::string("http://fake/") + id;
            n.release = "1.0.0";
            n.generation = 1;
            ASSERT_OK((*engine)->registerNode(n));
        }
        StartRequest request;
        request.version = "2.0.0";
        ASSERT_OK((*engine)->startDeployment(request));
        auto step = [&](const std::string& node) {
            auto rows = (*state)->deploymentNodes("d-1");
            if (rows)
                for (const auto& row : *rows)
                    if (row.node == node) return row.state;
            return NodeStep::pending;
        };
        ASSERT_TRUE(
            testing::waitFor([&] { return step("master-1") == NodeStep::restarted; }, 10s, 5ms));
        ASSERT_OK((*engine)->command("d-1", "abort", std::nullopt, "admin"));
        (*engine)->stop();
    }
    // A new coordinator on the same state file; the helper's report arrives only now.
    auto engine = Engine::create(**state, options, std::make_unique<FakeGateway>(**state));
    ASSERT_OK(engine);
    (*engine)->start();
    pkgmgr::StatusPing ping;
    ping.node = "master-1";
    ping.deployment = "d-1";
    ping.seq = 7;
    ping.state = "healthy";
    ping.from_generation = 1;
    ping.to_generation = 2;
    ping.release = "2.0.0";
    ASSERT_OK((*engine)->onPing(ping));
    ASSERT_TRUE(testing::waitFor(
        [&] {
            auto rows = (*state)->deploymentNodes("d-1");
            if (!rows) return false;
            for (const auto& row : *rows)
                if (row.node == "master-1") return row.state == NodeStep::done;
            return false;
        },
        10s, 5ms));
    auto d = (*state)->deployment("d-1");
    ASSERT_OK(d);
    EXPECT_EQ((*d)->state, DeploymentState::aborted);  // it keeps its outcome
    (*engine)->stop();
}

std::string render(Engine& engine) {
    metrics::Registry registry;
    engine.collectMetrics(registry);
    return registry.render();
}

bool has(const std::string& text, const std::string& line) {
    return text.find(line + "\n") != std::string::npos;
}

// Every state of the per-state gauges is set on each render: a state a deployment left
// behind (a failed node) reads 0 once it is over, and the counters exist from the start.
TEST(EngineWithFakeGateway, PerStateGaugesKeepNoStaleValueAcrossDeployments) {
    TempFolder dir;
    writeReleases(dir / "repo");
    auto state = State::open(dir / "state.db");
    ASSERT_OK(state);
    auto gateway = std::make_unique<FakeGateway>(**state);
    auto* fake = gateway.get();
    fake->failStage("agent-2");
    EngineOptions options;
    options.repo_url = "file://" + (dir / "repo").string();
    options.allow_unsigned = true;
    options.poll_after = 20ms;
    auto engine = Engine::create(**state, options, std::move(gateway));
    ASSERT_OK(engine);
    auto& e = **engine;
    auto before = render(e);
    for (const char* line :
         {"hoist_coordinator_deployment_nodes{state=\"failed\"} 0",
          "hoist_coordinator_deployment_acting 0",
          "hoist_coordinator_node_swaps_total{result=\"done\"} 0",
          "hoist_coordinator_node_swaps_total{result=\"failed\"} 0",
          "hoist_coordinator_node_swap_duration_seconds_count{result=\"done\"} 0",
          "hoist_coordinator_deployment_state{state=\"rolling\"} 0"})
        EXPECT_TRUE(has(before, line)) << line << "\n" << before;
    e.start();
    for (const char* id : {"agent-2", "master-1", "agent-1"}) {
        NodeRecord n;
        n.id = id;
        n.role = std::string(id).starts_with("master") ? "master" : "agent";
        n.address = std::string("http://fake/") + id;
        n.release = "1.0.0";
        n.generation = 1;
        ASSERT_OK(e.registerNode(n));
    }
    StartRequest request;
    request.version = "2.0.0";
    request.max_parallel = "1";
    request.max_failures = 1;
    ASSERT_OK(e.startDeployment(request));
    // Seen while d-1 acts: its failed node.
    std::string during;
    ASSERT_TRUE(testing::waitFor(
        [&] {
            during = render(e);
            return has(during, "hoist_coordinator_deployment_nodes{state=\"failed\"} 1") &&
                   has(during, "hoist_coordinator_deployment_acting 1");
        },
        10s, 1ms))
        << during;
    EXPECT_NE(during.find("hoist_coordinator_deployment_info{id=\"d-1\",version=\"2.0.0\""),
              std::string::npos)
        << during;
    ASSERT_TRUE(testing::waitFor(
        [&] {
            auto d = (*state)->deployment("d-1");
            return d && *d && isFinished((*d)->state);
        },
        10s, 10ms));
    // d-1 over, d-2 (its rollback) runs and ends: nothing of d-1's states stays.
    fake->failStage("");
    ASSERT_OK(e.rollback(std::string("d-1"), std::nullopt, "admin"));
    ASSERT_TRUE(testing::waitFor(
        [&] {
            auto d = (*state)->deployment("d-2");
            return d && *d && isFinished((*d)->state);
        },
        10s, 10ms));
    std::string after;
    ASSERT_TRUE(testing::waitFor(
        [&] {
            after = render(e);
            return has(after, "hoist_coordinator_deployment_acting 0");
        },
        5s, 10ms))
        << after;
    for (auto step : allNodeSteps())
        EXPECT_TRUE(has(after, "hoist_coordinator_deployment_nodes{state=\"" +
                                   std::string(toString(step)) + "\"} 0"))
            << toString(step) << "\n"
            << after;
    EXPECT_EQ(after.find("hoist_coordinator_deployment_info{"), std::string::npos) << after;
    // d-1 swapped two nodes (agent-2 failed its stage: no swap), d-2 put both back.
    EXPECT_TRUE(has(after, "hoist_coordinator_node_swaps_total{result=\"done\"} 2")) << after;
    EXPECT_TRUE(has(after, "hoist_coordinator_node_swaps_total{result=\"reverted\"} 2")) << after;
    EXPECT_TRUE(has(after, "hoist_coordinator_node_swaps_total{result=\"failed\"} 0")) << after;
    EXPECT_TRUE(has(after, "hoist_coordinator_node_swap_duration_seconds_count{result=\"done\"} 2"))
        << after;
    e.stop();
}

}  // namespace
}  // namespace hoist::deploy_coordinator
