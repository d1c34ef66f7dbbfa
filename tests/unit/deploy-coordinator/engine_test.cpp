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
        return {StageOutcome::Kind::staged, 2, ""};
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

}  // namespace
}  // namespace hoist::deploy_coordinator
