// For every crash point of the restart helper (HOIST_CRASH_AT): crash there, run `recover`,
// and find the node on the old or the new generation with the service healthy.

#include <algorithm>
#include <csignal>
#include <fstream>
#include <random>
#include <thread>

#include "node_fixture.hpp"
#include "restart_helper/helper.hpp"

namespace hoist::testing {
namespace {

using restart_helper::kExitHealthy;
using restart_helper::kExitRolledBack;

struct CrashCase {
    std::string point;
    /// The new generation fails its health check (to reach the rollback's crash points).
    bool new_fails = false;
    /// The generation recover must leave running: 1 (old) or 2 (new).
    long expected_generation = 0;
    int expected_exit = 0;
};

// Test names and ctest listings show the point, not the struct's bytes.
void PrintTo(const CrashCase& c, std::ostream* os) {
    *os << c.point << (c.new_fails ? " (new generation unhealthy)" : "");
}

std::vector<CrashCase> crashCases() {
    return {
        // Before the switch: recover undoes the swap (the old generation keeps running).
        {"helper.stopping", false, 1, kExitRolledBack},
        {"helper.stopped", false, 1, kExitRolledBack},
        {"helper.swapping", false, 1, kExitRolledBack},
        // Inside the switch itself (pkgmgr's Generations::activate).
        {"activate.linked", false, 1, kExitRolledBack},
        {"activate.renamed", false, 2, kExitHealthy},
        {"activate.recorded", false, 2, kExitHealthy},
        // After it: recover finishes the swap.
        {"helper.swapped", false, 2, kExitHealthy},
        {"helper.starting", false, 2, kExitHealthy},
        {"helper.started", false, 2, kExitHealthy},
        {"helper.checking", false, 2, kExitHealthy},
        {"helper.checked", false, 2, kExitHealthy},
        {"helper.healthy", false, 2, kExitHealthy},
        {"helper.closed", false, 2, -1},  // the journal was closed: nothing left to recover
        // A new generation that does not come up: recover finishes the rollback.
        {"helper.checking", true, 1, kExitRolledBack},
        {"helper.rolling_back", true, 1, kExitRolledBack},
        {"helper.rb_stopped", true, 1, kExitRolledBack},
        {"helper.rb_swapped", true, 1, kExitRolledBack},
        {"helper.rb_started", true, 1, kExitRolledBack},
        {"helper.rolled_back", true, 1, kExitRolledBack},
    };
}

class CrashTest : public NodeFixture, public ::testing::WithParamInterface<CrashCase> {};

TEST_P(CrashTest, RecoverLeavesTheNodeOnOneGenerationAndHealthy) {
    const auto& c = GetParam();
    // A generation meant to come up gets the fixture's usual deadline, so a busy disk under
    // `ctest -j2` cannot fail it; only the one meant to fail gets a short one, to keep the
    // rollback cases quick.
    HealthSpec sure{.healthy_after_ms = 150, .deadline_ms = 4000};
    HealthSpec doomed{.healthy_after_ms = 150, .deadline_ms = 1500};
    auto old_gen = stageVersion("1.0.0", {}, sure);
    ASSERT_EQ(helper({"swap", "--to", std::to_string(old_gen)}).exit_code, kExitHealthy);
    Behaviour next_behaviour;
    if (c.new_fails) next_behaviour.health = "fail";
    auto new_gen = stageVersion("2.0.0", next_behaviour, c.new_fails ? doomed : sure);
    ASSERT_EQ(new_gen, 2);

    auto crashed = helper({"swap", "--to", "2"}, {{"HOIST_CRASH_AT", c.point}});
    ASSERT_EQ(crashed.exit_code, kCrashExitCode)
        << "no crash at " << c.point << ": " << crashed.err;
    if (c.expected_exit >= 0) {
        EXPECT_TRUE(fs::exists(layout_.txn())) << "no journal left at " << c.point;
    }

    auto recovered = helper({"recover"});
    if (c.expected_exit < 0) {
        EXPECT_EQ(recovered.exit_code, 0) << recovered.err;
        EXPECT_EQ(recovered.out, "nothing to recover\n");
    } else {
        EXPECT_EQ(recovered.exit_code, c.expected_exit) << recovered.out << recovered.err;
    }
    EXPECT_FALSE(fs::exists(layout_.txn()));
    EXPECT_EQ(currentGeneration(), c.expected_generation);
    EXPECT_EQ(runningVersion(), c.expected_generation == 1 ? "1.0.0" : "2.0.0");
    EXPECT_TRUE(serviceHealthy());
    EXPECT_EQ(lastState(), c.expected_generation == 1 ? "rolled_back" : "healthy");

    // A second recover finds nothing to do, and the next swap works.
    auto again = helper({"recover"});
    EXPECT_EQ(again.exit_code, 0);
    EXPECT_EQ(again.out, "nothing to recover\n");
}

INSTANTIATE_TEST_SUITE_P(EveryPoint, CrashTest, ::testing::ValuesIn(crashCases()),
                         [](const ::testing::TestParamInfo<CrashCase>& param_info) {
                             const auto& c = param_info.param;
                             std::string name = c.point + (c.new_fails ? "_unhealthy" : "");
                             std::replace(name.begin(), name.end(), '.', '_');
                             return name;
                         });

// Every crash point the helper declares is exercised above, or in FailedIsClosedByRecover.
TEST(CrashPoints, AllAreCovered) {
    auto cases = crashCases();
    for (const auto& point : restart_helper::kCrashPoints) {
        if (point == "helper.failed") continue;
        bool covered = std::any_of(cases.begin(), cases.end(),
                                   [&point](const CrashCase& c) { return c.point == point; });
        EXPECT_TRUE(covered) << point;
    }
}

TEST_F(NodeFixture, FailedIsClosedByRecover) {
    HealthSpec fast{.healthy_after_ms = 100, .deadline_ms = 500};
    auto gen = stageVersion("1.0.0", Behaviour{.health = "fail"}, fast);
    auto crashed =
        helper({"swap", "--to", std::to_string(gen)}, {{"HOIST_CRASH_AT", "helper.failed"}});
    ASSERT_EQ(crashed.exit_code, kCrashExitCode) << crashed.err;
    auto recovered = helper({"recover"});
    EXPECT_EQ(recovered.exit_code, restart_helper::kExitFailed) << recovered.err;
    EXPECT_EQ(lastState(), "failed");
    EXPECT_FALSE(fs::exists(layout_.txn()));
}

/// Every live process whose command line mentions `needle` (the node root).
std::vector<pid_t> processesMentioning(const std::string& needle) {
    std::vector<pid_t> found;
    std::error_code ec;
    for (fs::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
        auto name = it->path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::string cmdline;
        try {
            std::ifstream in(it->path() / "cmdline", std::ios::binary);
            cmdline.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        } catch (const std::exception&) {
            continue;  // it ended while we read (ESRCH)
        }
        auto pid = static_cast<pid_t>(std::stol(name));
        if (cmdline.find(needle) != std::string::npos && process::alive(pid)) found.push_back(pid);
    }
    return found;
}

// The helper dies after forking the service and before its pidfile is written: recover must
// stop that unrecorded service before it starts one, never leave two running.
TEST_F(NodeFixture, ACrashBetweenForkAndPidfileLeavesNoOrphan) {
    HealthSpec fast{.healthy_after_ms = 150, .deadline_ms = 3000};
    ASSERT_EQ(helper({"swap", "--to", std::to_string(stageVersion("1.0.0", {}, fast))}).exit_code,
              kExitHealthy);
    ASSERT_EQ(stageVersion("2.0.0", {}, fast), 2);
    auto crashed = helper({"swap", "--to", "2"}, {{"HOIST_CRASH_AT", "service.forked"}});
    ASSERT_EQ(crashed.exit_code, kCrashExitCode) << crashed.err;
    auto orphans = processesMentioning(root_.string());
    ASSERT_EQ(orphans.size(), 1u) << "the started service runs, with no pidfile";
    EXPECT_EQ(servicePid(), 0);

    auto status = helper({"status"});
    EXPECT_NE(
        status.out.find("a service process no pidfile records (pid " + std::to_string(orphans[0])),
        std::string::npos)
        << status.out;

    auto recovered = helper({"recover"});
    EXPECT_EQ(recovered.exit_code, kExitHealthy) << recovered.out << recovered.err;
    EXPECT_FALSE(process::alive(orphans[0])) << "the unrecorded service still runs";
    auto running = processesMentioning(root_.string());
    EXPECT_EQ(running, std::vector<pid_t>{servicePid()});
    EXPECT_EQ(runningVersion(), "2.0.0");
    for (pid_t pid : processesMentioning(root_.string()))
        if (pid != servicePid()) ::kill(pid, SIGKILL);
}

// SIGKILL of the helper at random instants 0-40 ms after it journals "starting" (the fork and
// the pidfile follow within a few ms): after recover, exactly one service runs, every time.
TEST_F(NodeFixture, RandomKillsAroundTheStartNeverLeaveTwoServices) {
    HealthSpec fast{.healthy_after_ms = 100, .deadline_ms = 3000};
    ASSERT_EQ(helper({"swap", "--to", std::to_string(stageVersion("1.0.0", {}, fast))}).exit_code,
              kExitHealthy);
    ASSERT_EQ(stageVersion("2.0.0", {}, fast), 2);
    std::random_device seed_source;
    auto seed = seed_source();
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> delay_us(0, 40000);
    int killed_after_starting = 0;
    int left_two = 0;
    for (int i = 0; i < 20; ++i) {
        SCOPED_TRACE("kill " + std::to_string(i) + " (seed " + std::to_string(seed) + ")");
        auto to = std::to_string(i % 2 == 0 ? 2 : 1);
        process::Options options;
        options.new_session = false;
        auto swap = process::Child::start(
            {RESTART_HELPER_BIN, "--root", root_.string(), "--ping-grace", "0", "swap", "--to", to},
            options);
        ASSERT_OK(swap);
        // Polled finely: the window after "starting" is a few milliseconds.
        bool starting = false;
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (!starting && swap->running() && std::chrono::steady_clock::now() < deadline) {
            auto text = files::readFile(layout_.txn());
            starting = text && text->find("\"state\":\"starting\"") != std::string::npos;
            if (!starting) std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
        if (starting) {
            ++killed_after_starting;
            std::this_thread::sleep_for(std::chrono::microseconds(delay_us(rng)));
        }
        swap->signal(SIGKILL);
        (void)swap->wait(std::chrono::seconds(10));
        auto recovered = helper({"recover"});
        EXPECT_TRUE(recovered.exit_code == 0 ||
                    recovered.exit_code == restart_helper::kExitRolledBack)
            << recovered.out << recovered.err;
        auto running = processesMentioning(root_.string());
        if (running != std::vector<pid_t>{servicePid()}) {
            ++left_two;
            for (pid_t pid : running)
                if (pid != servicePid()) ::kill(pid, SIGKILL);
        }
    }
    EXPECT_EQ(left_two, 0) << left_two << " of 20 kills left a service nothing manages";
    EXPECT_GT(killed_after_starting, 10);
}

TEST_F(NodeFixture, RecoverAtBootStartsTheService) {
    auto gen = stageVersion("1.0.0");
    ASSERT_EQ(helper({"swap", "--to", std::to_string(gen)}).exit_code, kExitHealthy);
    stopService();  // as a reboot would
    ASSERT_FALSE(runningVersion().has_value());
    auto recovered = helper({"recover"});
    EXPECT_EQ(recovered.exit_code, 0) << recovered.err;
    EXPECT_TRUE(waitFor([this] { return serviceHealthy(); }, std::chrono::seconds(5)));
    EXPECT_EQ(runningVersion(), "1.0.0");
}

}  // namespace
}  // namespace hoist::testing
