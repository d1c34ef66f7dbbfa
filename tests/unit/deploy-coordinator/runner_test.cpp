// The single writer: the runner's two lanes, a caller that gives up changing nothing, and a
// halt answered ahead of the commands queued before it, waiting only for the write under way.

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "deploy_coordinator/state.hpp"
#include "engine.hpp"
#include "releases.hpp"
#include "runner.hpp"
#include "testing.hpp"

namespace hoist::deploy_coordinator {
namespace {

using hoist::testing::TempFolder;
using namespace std::chrono_literals;

TEST(Runner, PriorityCommandsAreTakenBeforeEveryQueuedNormalOne) {
    // Each row: what is posted, in order; what the loop takes, in order.
    struct Case {
        std::vector<std::pair<Runner::Lane, std::string>> posted;
        std::vector<std::string> taken;
    };
    using L = Runner::Lane;
    std::vector<Case> cases = {
        {{{L::normal, "ping-1"}, {L::normal, "ping-2"}, {L::priority, "halt"}},
         {"halt", "ping-1", "ping-2"}},
        {{{L::priority, "halt"}, {L::normal, "ping"}, {L::priority, "clear"}},
         {"halt", "clear", "ping"}},
        {{{L::normal, "register"}, {L::normal, "ping"}}, {"register", "ping"}},
    };
    for (const auto& c : cases) {
        Runner runner;
        std::vector<std::string> ran;
        for (const auto& [lane, name] : c.posted)
            runner.post([&ran, name = name] { ran.push_back(name); }, lane);
        EXPECT_EQ(runner.queued(), c.posted.size());
        // The loop's order: every priority command, then the normal ones, checking between.
        while (true) {
            if (auto p = runner.takePriority()) {
                (*p)();
                continue;
            }
            auto n = runner.takeNormal();
            if (!n) break;
            (*n)();
        }
        EXPECT_EQ(ran, c.taken);
        EXPECT_FALSE(runner.priorityWaiting());
    }
}

TEST(Runner, ACallerThatGaveUpGets503AndItsCommandNeverRuns) {
    Runner runner;  // no loop: nobody takes the command in time
    bool ran = false;
    auto answer = callRunner<int>(runner, Runner::Lane::normal, 20ms, "a test command",
                                  [&](auto) -> std::optional<Result<int>> {
                                      ran = true;
                                      return 1;
                                  });
    ASSERT_FALSE(answer);
    EXPECT_EQ(answer.error().code, Errc::Unhealthy);  // HTTP 503
    EXPECT_NE(answer.error().message.find("a test command"), std::string::npos);
    EXPECT_NE(answer.error().message.find("nothing changed"), std::string::npos);
    // The loop gets to it later: it is skipped.
    auto command = runner.takeNormal();
    ASSERT_TRUE(command);
    (*command)();
    EXPECT_FALSE(ran);
}

TEST(Runner, AnAnswerGivenLaterReachesTheCaller) {
    Runner runner;
    std::thread loop([&] {
        while (runner.wait(10ms)) {
            if (auto c = runner.takeNormal()) (*c)();
        }
    });
    std::shared_ptr<Answer<int>> kept;
    std::mutex m;
    std::thread later([&] {
        // The "commit" that answers: after the command returned without an answer.
        ASSERT_TRUE(testing::waitFor(
            [&] {
                std::lock_guard lock(m);
                return kept != nullptr;
            },
            5s, 1ms));
        std::lock_guard lock(m);
        kept->give(42);
    });
    auto answer =
        callRunner<int>(runner, Runner::Lane::normal, 5s, "later",
                        [&](std::shared_ptr<Answer<int>> a) -> std::optional<Result<int>> {
                            std::lock_guard lock(m);
                            kept = a;
                            return std::nullopt;
                        });
    later.join();
    runner.stop();
    loop.join();
    ASSERT_OK(answer);
    EXPECT_EQ(*answer, 42);
}

/// The SQLite state, with a latch that holds the next write carrying registry rows until the
/// test lets it go (inside a transaction on the state file: its lock and SQLite's write lock
/// are held, as by a long step write), and the order of the writes.
class LatchedStore final : public StateStore {
public:
    explicit LatchedStore(State& state) : state_(state) {}
    Result<void> commit(const StepWrite& write, std::int64_t term, bool durable) override {
        bool latch = false;
        {
            std::lock_guard lock(mutex_);
            latch = armed_ && !write.registry.empty();
            if (latch) armed_ = false;
        }
        if (latch)
            HOIST_TRY(state_.transaction([&](State::Tx&) -> Result<void> {
                std::unique_lock lock(mutex_);
                blocked_ = true;
                cv_.notify_all();
                cv_.wait(lock, [this] { return released_; });
                return ok();
            }));
        {
            std::lock_guard lock(mutex_);
            writes_.push_back(!write.put_holds.empty() ? "hold" : "step");
        }
        return state_.commit(write, term, durable);
    }
    Result<void> commitHolds(const StepWrite& write) override {
        {
            std::lock_guard lock(mutex_);
            writes_.push_back("hold");
        }
        return state_.commitHolds(write);
    }
    Result<std::int64_t> term() override { return state_.term(); }
    Result<void> claim(std::int64_t term) override { return state_.claim(term); }
    Result<std::vector<NodeRecord>> nodes() override { return state_.nodes(); }
    Result<std::vector<Hold>> holds() override { return state_.holds(); }
    Result<std::vector<Deployment>> deployments(int limit) override {
        return state_.deployments(limit);
    }
    Result<std::optional<Deployment>> deployment(std::string_view id) override {
        return state_.deployment(id);
    }
    Result<std::vector<DeploymentNode>> deploymentNodes(std::string_view d) override {
        return state_.deploymentNodes(d);
    }
    Result<std::vector<Event>> events(std::optional<std::string_view> d, int limit) override {
        return state_.events(d, limit);
    }
    Result<std::int64_t> nextDeploymentNumber() override { return state_.nextDeploymentNumber(); }
    Result<std::vector<MonitorRecord>> monitors() override { return state_.monitors(); }
    Result<void> writeMonitor(const std::optional<MonitorRecord>& put, std::string_view remove,
                              const std::vector<Event>& events) override {
        return state_.writeMonitor(put, remove, events);
    }

    void arm() {
        std::lock_guard lock(mutex_);
        armed_ = true;
    }
    void waitBlocked() {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [this] { return blocked_; });
    }
    void release() {
        std::lock_guard lock(mutex_);
        released_ = true;
        cv_.notify_all();
    }
    std::vector<std::string> writes() {
        std::lock_guard lock(mutex_);
        return writes_;
    }

private:
    State& state_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool armed_ = false, blocked_ = false, released_ = false;
    std::vector<std::string> writes_;
};

NodeRecord node(const std::string& id) {
    NodeRecord n;
    n.id = id;
    n.role = "agent";
    n.address = "http://fake/" + id;
    n.release = "1.0.0";
    n.generation = 1;
    return n;
}

TEST(EngineRunner, AHaltWaitsNeitherForTheStepWriteUnderWayNorForTheCommandsQueuedBehindIt) {
    TempFolder dir;
    auto state = State::open(dir / "state.db");
    ASSERT_OK(state);
    LatchedStore store(**state);
    EngineOptions options;
    options.repo_url = "file://" + (dir / "repo").string();
    auto engine = Engine::create(store, options);
    ASSERT_OK(engine);
    (*engine)->start();
    ASSERT_OK((*engine)->registerNode(node("agent-1")));

    // The runner is stuck in a write holding the state file; registrations queue up behind it.
    store.arm();
    std::thread first([&] { (void)(*engine)->registerNode(node("agent-2")); });
    store.waitBlocked();
    std::vector<std::thread> queued;
    for (int i = 3; i < 40; ++i)
        queued.emplace_back(
            [&, i] { (void)(*engine)->registerNode(node("agent-" + std::to_string(i))); });
    ASSERT_TRUE(testing::waitFor([&] { return (*engine)->queuedCommands() == 37; }, 5s, 1ms));
    // The halt is answered, its hold on disk, while the step write is still under way.
    auto h = (*engine)->halt("probe", "test", "admin");
    ASSERT_OK(h);
    EXPECT_FALSE((*engine)->requireNoHold("x").has_value());
    auto held = (*state)->holds();
    ASSERT_OK(held);
    ASSERT_EQ(held->size(), 1u);
    EXPECT_EQ((*held)[0].source, "probe");
    // The 37 registrations, and the store's upkeep the halt posted (StateStore::settleHolds).
    EXPECT_EQ((*engine)->queuedCommands(), 38u);
    store.release();
    first.join();
    for (auto& t : queued) t.join();
    auto writes = store.writes();
    ASSERT_GE(writes.size(), 3u);
    EXPECT_EQ(writes[1], "hold");
    (*engine)->stop();
    auto holds = (*state)->holds();
    ASSERT_OK(holds);
    EXPECT_EQ(holds->size(), 1u);
    auto nodes = (*state)->nodes();
    ASSERT_OK(nodes);
    EXPECT_EQ(nodes->size(), 39u);
    // The halt's audit event reached the log once the state file was free.
    auto events = (*state)->events(std::nullopt, 100);
    ASSERT_OK(events);
    EXPECT_EQ(std::count_if(events->begin(), events->end(),
                            [](const Event& e) { return e.action == "halt"; }),
              1);
}

TEST(EngineRunner, ACommandTheRunnerDoesNotTakeInTimeIsRefusedWith503AndChangesNothing) {
    TempFolder dir;
    auto state = State::open(dir / "state.db");
    ASSERT_OK(state);
    LatchedStore store(**state);
    EngineOptions options;
    options.repo_url = "file://" + (dir / "repo").string();
    options.answer_deadline = 100ms;
    auto engine = Engine::create(store, options);
    ASSERT_OK(engine);
    (*engine)->start();
    store.arm();
    std::thread first([&] { (void)(*engine)->registerNode(node("agent-1")); });
    store.waitBlocked();
    auto late = (*engine)->registerNode(node("agent-2"));
    ASSERT_FALSE(late);
    EXPECT_EQ(late.error().code, Errc::Unhealthy);
    EXPECT_EQ(httpStatus(late.error().code), 503);
    EXPECT_NE(late.error().message.find("registration of 'agent-2'"), std::string::npos);
    store.release();
    first.join();
    EXPECT_OK((*engine)->node("agent-1"));
    // The refused registration never happens, even once the runner is free.
    auto after = (*engine)->registerNode(node("agent-3"));
    ASSERT_OK(after);
    EXPECT_FALSE((*engine)->node("agent-2"));
    (*engine)->stop();
}

}  // namespace
}  // namespace hoist::deploy_coordinator
