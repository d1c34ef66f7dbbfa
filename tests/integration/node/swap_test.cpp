// restart-helper swap: healthy swaps and every way a new generation can fail to come up.

#include "core/process.hpp"
#include "node_fixture.hpp"
#include "pkgmgr/generations.hpp"
#include "restart_helper/helper.hpp"

namespace hoist::testing {
namespace {

using restart_helper::kExitFailed;
using restart_helper::kExitHealthy;
using restart_helper::kExitRolledBack;

class SwapTest : public NodeFixture {
protected:
    // Generation 1 (version 1.0.0, healthy) running, as after a first swap.
    void startOld() {
        old_ = stageVersion("1.0.0");
        ASSERT_EQ(old_, 1);
        auto first = helper({"swap", "--to", "1"});
        ASSERT_EQ(first.exit_code, kExitHealthy) << first.err;
        ASSERT_EQ(runningVersion(), "1.0.0");
        old_pid_ = servicePid();
        ASSERT_GT(old_pid_, 0);
    }

    void expectRolledBack(const process::Outcome& swap, const std::string& why) {
        EXPECT_EQ(swap.exit_code, kExitRolledBack) << swap.err;
        EXPECT_EQ(lastState(), "rolled_back");
        EXPECT_NE(lastMessage().find(why), std::string::npos) << lastMessage();
        EXPECT_EQ(currentGeneration(), old_);
        EXPECT_EQ(runningVersion(), "1.0.0");
        EXPECT_TRUE(serviceHealthy());
        EXPECT_FALSE(fs::exists(layout_.txn()));
        EXPECT_EQ(lastSteps(),
                  (std::vector<std::string>{"stopping", "swapping", "starting", "checking",
                                            "rolling_back", "rolled_back"}));
    }

    long old_ = 0;
    pid_t old_pid_ = 0;
};

TEST_F(SwapTest, FirstActivationStartsTheService) {
    auto gen = stageVersion("1.0.0");
    auto swap = helper({"swap", "--to", std::to_string(gen), "--json"});
    ASSERT_EQ(swap.exit_code, kExitHealthy) << swap.err;
    EXPECT_NE(swap.out.find("\"state\":\"healthy\""), std::string::npos) << swap.out;
    EXPECT_EQ(currentGeneration(), gen);
    EXPECT_EQ(runningVersion(), "1.0.0");
}

// One flipped byte in a stored file of the new generation: the swap is refused before the
// old service stops, naming the file.
TEST_F(SwapTest, APackageWithAFlippedByteIsRefusedAndTheOldServiceKeepsRunning) {
    startOld();
    auto next = stageVersion("2.0.0");
    auto gen = pkgmgr::Generations::open(layout_);
    ASSERT_OK(gen);
    auto loaded = gen->load(next);
    ASSERT_OK(loaded);
    std::string mesos_sha;
    for (const auto& ref : loaded->packages)
        if (ref.id == "mesos--2.0.0") mesos_sha = ref.sha256;
    ASSERT_FALSE(mesos_sha.empty());
    auto file = layout_.storeEntry(mesos_sha) / "share/version";
    fs::permissions(file, fs::perms::owner_write, fs::perm_options::add);
    writeFile(file, "2.0.1\n");  // same size, one byte differs

    auto swap = helper({"swap", "--to", std::to_string(next)});
    EXPECT_EQ(swap.exit_code, exitCode(Errc::Corrupt)) << swap.out << swap.err;
    EXPECT_NE(swap.err.find("package mesos--2.0.0 (" + mesos_sha +
                            ") differs from what was added, so it is not used: share/version: "
                            "content changed"),
              std::string::npos)
        << swap.err;
    EXPECT_EQ(currentGeneration(), old_);
    EXPECT_EQ(runningVersion(), "1.0.0");
    EXPECT_EQ(servicePid(), old_pid_);
}

TEST_F(SwapTest, HealthySwapRunsTheNewVersion) {
    startOld();
    auto next = stageVersion("2.0.0");
    auto swap = helper({"swap", "--to", std::to_string(next)});
    ASSERT_EQ(swap.exit_code, kExitHealthy) << swap.err;
    EXPECT_EQ(swap.out, "healthy: generation 1 -> 2\n");
    EXPECT_EQ(currentGeneration(), next);
    EXPECT_EQ(runningVersion(), "2.0.0");
    EXPECT_FALSE(process::alive(old_pid_)) << "the old service still runs";
    EXPECT_FALSE(fs::exists(layout_.txn()));
    EXPECT_EQ(lastState(), "healthy");
    EXPECT_EQ(lastSteps(), (std::vector<std::string>{"stopping", "swapping", "starting", "checking",
                                                     "healthy"}));
}

TEST_F(SwapTest, FailingHealthRollsBackToTheOldVersion) {
    startOld();
    auto next = stageVersion("2.0.0", Behaviour{.health = "fail"});
    auto swap = helper({"swap", "--to", std::to_string(next)});
    expectRolledBack(swap, "answered 503");
    EXPECT_NE(swap.out.find("rolled_back: generation 1 -> 2"), std::string::npos) << swap.out;
}

TEST_F(SwapTest, CrashAtStartRollsBack) {
    startOld();
    auto next = stageVersion("2.0.0", Behaviour{.crash_at_start = true});
    auto started = std::chrono::steady_clock::now();
    auto swap = helper({"swap", "--to", std::to_string(next)});
    expectRolledBack(swap, "the service stopped during the health check (exited with code 1)");
    // A crash is noticed at once, not after the whole deadline.
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(3500));
}

TEST_F(SwapTest, LateFailureInsideHealthyAfterRollsBack) {
    startOld();
    // Healthy at first, 503 after 150 ms: inside healthy_after_ms (300 ms), so never healthy
    // for long enough before the deadline.
    auto next = stageVersion("2.0.0", Behaviour{.unhealthy_after_ms = 150},
                             HealthSpec{.healthy_after_ms = 300, .deadline_ms = 1500});
    auto swap = helper({"swap", "--to", std::to_string(next)});
    expectRolledBack(swap, "not healthy within 1500 ms");
}

TEST_F(SwapTest, SlowStartWithinTheDeadlineIsHealthy) {
    startOld();
    auto next = stageVersion("2.0.0", Behaviour{.start_delay_ms = 400});
    auto swap = helper({"swap", "--to", std::to_string(next)});
    ASSERT_EQ(swap.exit_code, kExitHealthy) << swap.err;
    EXPECT_EQ(runningVersion(), "2.0.0");
}

TEST_F(SwapTest, SlowStartPastTheDeadlineRollsBack) {
    startOld();
    auto next =
        stageVersion("2.0.0", Behaviour{.start_delay_ms = 3000}, HealthSpec{.deadline_ms = 800});
    auto swap = helper({"swap", "--to", std::to_string(next)});
    expectRolledBack(swap, "has not written its port file");
}

TEST_F(SwapTest, ServiceIgnoringSigtermIsKilledAfterStopTimeout) {
    auto gen = stage({mesosPackage("1.0.0", HealthSpec{.stop_timeout_ms = 300}),
                      configPackage("1.0.0", Behaviour{.ignore_sigterm = true})});
    ASSERT_EQ(helper({"swap", "--to", std::to_string(gen)}).exit_code, kExitHealthy);
    auto stubborn = servicePid();
    auto next = stageVersion("2.0.0");
    auto started = std::chrono::steady_clock::now();
    auto swap = helper({"swap", "--to", std::to_string(next)});
    ASSERT_EQ(swap.exit_code, kExitHealthy) << swap.err;
    EXPECT_FALSE(process::alive(stubborn));
    EXPECT_NE(swap.err.find("did not stop in time, killing"), std::string::npos) << swap.err;
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(4));
}

TEST_F(SwapTest, BothGenerationsFailingEndsFailed) {
    auto gen = stageVersion("1.0.0");
    ASSERT_EQ(helper({"swap", "--to", std::to_string(gen)}).exit_code, kExitHealthy);
    old_ = gen;
    // The old generation's config is replaced under it: simulate a node whose old set broke
    // too, by making generation 1's stand-in unhealthy through a second swap that fails to
    // come up while generation 1 cannot either.
    auto bad = stageVersion("2.0.0", Behaviour{.health = "fail"}, HealthSpec{.deadline_ms = 600});
    auto worse = stageVersion("3.0.0", Behaviour{.health = "fail"}, HealthSpec{.deadline_ms = 600});
    // Force generation 2 to be current without a health check (as an admin with `pkgmgr
    // activate` would), then swap to 3: both are unhealthy.
    ASSERT_EQ(
        run({PKGMGR_BIN, "--root", root_.string(), "activate", std::to_string(bad)}).exit_code, 0);
    auto swap = helper({"swap", "--to", std::to_string(worse)});
    EXPECT_EQ(swap.exit_code, kExitFailed) << swap.err;
    EXPECT_EQ(lastState(), "failed");
    EXPECT_NE(lastMessage().find("the old generation is not healthy either"), std::string::npos)
        << lastMessage();
    EXPECT_EQ(currentGeneration(), bad);
}

// `pkgmgr rollback` switches `current` alone; on a node whose service runs, that would leave
// the service on one generation while the node reports another. It is refused, naming the
// restart-helper command that does it whole; that command then works.
TEST_F(SwapTest, PkgmgrRollbackUnderARunningServiceIsRefusedNamingTheHelper) {
    startOld();
    auto next = stageVersion("2.0.0");
    ASSERT_EQ(helper({"swap", "--to", std::to_string(next)}).exit_code, kExitHealthy);
    auto refused = run({PKGMGR_BIN, "--root", root_.string(), "rollback"});
    EXPECT_EQ(refused.exit_code, exitCode(Errc::Conflict)) << refused.err;
    auto command = "restart-helper --root " + fs::absolute(root_).string() + " swap --to " +
                   std::to_string(old_);
    EXPECT_NE(refused.err.find("the node's service is running"), std::string::npos) << refused.err;
    EXPECT_NE(refused.err.find(command), std::string::npos) << refused.err;
    EXPECT_EQ(currentGeneration(), next);
    EXPECT_EQ(runningVersion(), "2.0.0");

    auto back = helper({"swap", "--to", std::to_string(old_)});
    EXPECT_EQ(back.exit_code, kExitHealthy) << back.err;
    EXPECT_EQ(currentGeneration(), old_);
    EXPECT_EQ(runningVersion(), "1.0.0");
}

TEST_F(SwapTest, UnknownGenerationIsRefusedAndChangesNothing) {
    startOld();
    auto swap = helper({"swap", "--to", "42"});
    EXPECT_EQ(swap.exit_code, exitCode(Errc::NotFound));
    EXPECT_EQ(swap.err, "restart-helper: generation 42 does not exist\n");
    EXPECT_EQ(currentGeneration(), old_);
    EXPECT_EQ(servicePid(), old_pid_);
    EXPECT_TRUE(process::alive(old_pid_));
}

TEST_F(SwapTest, ServiceOutlivesTheHelper) {
    startOld();
    // The helper exited long ago (helper() waited for it); the service it started still runs
    // in a session of its own.
    EXPECT_TRUE(process::alive(old_pid_));
    EXPECT_EQ(::getsid(old_pid_), old_pid_);
    EXPECT_TRUE(serviceHealthy());
}

TEST_F(SwapTest, StatusReportsTheLastTransaction) {
    startOld();
    auto status = helper({"status", "--json"});
    ASSERT_EQ(status.exit_code, 0) << status.err;
    EXPECT_NE(status.out.find("\"current\":1"), std::string::npos) << status.out;
    EXPECT_NE(status.out.find("\"transaction\":null"), std::string::npos) << status.out;
    EXPECT_NE(status.out.find("\"running\":true"), std::string::npos) << status.out;
    EXPECT_NE(status.out.find("\"state\":\"healthy\""), std::string::npos) << status.out;
}

}  // namespace
}  // namespace hoist::testing
