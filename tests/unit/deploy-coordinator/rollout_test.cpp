// The rollout model on simulated nodes and a simulated clock (the rehearsal's fleet), driven by
// the same fault names `cluster upgrade --rehearse --inject` takes. No sleeps, no I/O.

#include <algorithm>

#include <gtest/gtest.h>

#include "rehearsal.hpp"
#include "rollout.hpp"
#include "testing.hpp"

namespace hoist::deploy_coordinator {
namespace {

using NS = NodeStep;
using DS = DeploymentState;

struct Fleet {
    Rollout rollout;
    std::vector<Wave> waves;
};

// masters master-1..m, agents agent-1..a, all on generation 1 of 1.0.0, upgrading to 2.0.0.
Fleet fleet(int masters, int agents, std::int64_t max_parallel, std::int64_t max_failures,
            bool auto_revert = false) {
    std::vector<PlanNode> nodes;
    for (int i = 1; i <= masters; ++i) nodes.push_back({"master-" + std::to_string(i), "master"});
    for (int i = 1; i <= agents; ++i) nodes.push_back({"agent-" + std::to_string(i), "agent"});
    Fleet f;
    f.waves = planWaves(nodes, max_parallel);
    auto& r = f.rollout;
    r.d.id = "d-1";
    r.d.version = "2.0.0";
    r.d.max_failures = max_failures;
    r.d.auto_revert = auto_revert;
    r.d.node_deadline_ms = 120000;
    r.d.progress_deadline_ms = 0;
    r.max_parallel = max_parallel;
    std::int64_t ord = 0;
    for (const auto& wave : f.waves)
        for (const auto& id : wave.nodes) {
            Slot slot;
            slot.row.node = id;
            slot.row.role = id.starts_with("master") ? "master" : "agent";
            slot.row.ord = ord++;
            slot.row.from_release = "1.0.0";
            slot.row.from_generation = 1;
            r.slots.push_back(slot);
        }
    r.index();
    return f;
}

Rehearsal run(Fleet f, const std::string& inject = "",
              const std::map<std::string, SimNode>& known = {}) {
    auto faults = parseFaults(inject);
    EXPECT_TRUE(faults.has_value()) << faults.error().describe();
    RehearsalSettings settings;
    settings.default_swap_ms = 20000;
    settings.stage_ms = 5000;
    return rehearse(std::move(f.rollout), known, faults.value_or(std::vector<Fault>{}), f.waves,
                    settings);
}

const Rehearsal::NodeLine& line(const Rehearsal& r, const std::string& node) {
    for (const auto& n : r.nodes)
        if (n.node == node) return n;
    static Rehearsal::NodeLine none;
    ADD_FAILURE() << "no node " << node;
    return none;
}

TEST(RolloutModel, MastersGoOneAtATimeThenAgentsAtMostMaxParallel) {
    auto r = run(fleet(3, 5, 2, 0));
    EXPECT_EQ(r.outcome, DS::done);
    ASSERT_EQ(r.waves.size(), 6u);  // 3 masters, agents 2+2+1
    // Staging takes 5 s everywhere; then each wave waits for the one before.
    EXPECT_EQ(r.waves[0].start_ms, 5000);
    for (size_t i = 1; i < r.waves.size(); ++i) {
        SCOPED_TRACE(i);
        EXPECT_GE(r.waves[i].start_ms, r.waves[i - 1].end_ms);
        EXPECT_LT(r.waves[i].start_ms - r.waves[i - 1].end_ms, 1000);
    }
    for (const auto& n : r.nodes) EXPECT_EQ(n.step, NS::done) << n.node;
    // At most 2 agents in flight at any instant.
    for (const auto& a : r.nodes) {
        int overlapping = 0;
        for (const auto& b : r.nodes)
            if (a.role == "agent" && b.role == "agent" && b.start_ms <= a.start_ms &&
                a.start_ms < b.end_ms)
                ++overlapping;
        EXPECT_LE(overlapping, 2) << a.node;
    }
    // 5 s of staging, 5 waves of 20 s (and a little for the replies).
    EXPECT_GE(r.total_ms, 5000 + 6 * 20000);
    EXPECT_LT(r.total_ms, 5000 + 6 * 21000);
    EXPECT_FALSE(r.budget_stop_ms.has_value());
}

TEST(RolloutModel, AFailingFirstMasterSpendsTheBudgetAndNothingElseRestarts) {
    auto r = run(fleet(3, 4, 2, 0), "master-1:health_fail");
    EXPECT_EQ(r.outcome, DS::held);
    ASSERT_TRUE(r.budget_stop_ms.has_value());
    EXPECT_EQ(line(r, "master-1").step, NS::failed);
    EXPECT_NE(line(r, "master-1").message.find("injected health_fail"), std::string::npos);
    EXPECT_EQ(*r.budget_stop_ms, line(r, "master-1").end_ms);
    for (const char* n : {"master-2", "master-3", "agent-1", "agent-4"}) {
        EXPECT_EQ(line(r, n).start_ms, -1) << n;
        EXPECT_EQ(line(r, n).step, NS::staged) << n;
    }
    EXPECT_EQ(r.waves[1].start_ms, -1);
    EXPECT_EQ(r.message, "1 node failed, more than max_failures 0");
}

TEST(RolloutModel, ABudgetOfOneLetsOneFailureThroughAndStopsAtTheSecond) {
    auto r = run(fleet(1, 6, 2, 1), "agent-2:health_fail,agent-5:stage_fail,agent-6:health_fail");
    // agent-5 fails staging (1, within the budget); agent-2 is the second failure.
    EXPECT_EQ(r.outcome, DS::held);
    EXPECT_EQ(line(r, "agent-5").step, NS::failed);
    EXPECT_EQ(line(r, "agent-5").message, "staging failed: injected stage_fail");
    EXPECT_EQ(line(r, "agent-2").step, NS::failed);
    EXPECT_EQ(*r.budget_stop_ms, line(r, "agent-2").end_ms);
    EXPECT_EQ(line(r, "agent-6").start_ms, -1);
}

TEST(RolloutModel, ASilentNodeFailsAtTheNodeDeadline) {
    auto r = run(fleet(1, 2, 1, 0), "agent-1:silent");
    EXPECT_EQ(r.outcome, DS::held);
    const auto& a = line(r, "agent-1");
    EXPECT_EQ(a.step, NS::failed);
    EXPECT_NE(a.message.find("node deadline (120000 ms)"), std::string::npos) << a.message;
    EXPECT_GE(a.end_ms - a.start_ms, 120000);
    EXPECT_LE(a.end_ms - a.start_ms, 122000);
}

TEST(RolloutModel, SlowNodesAndRecordedSwapTimesSetThePrediction) {
    auto r = run(fleet(1, 2, 2, 0), "agent-*:slow=45s",
                 {{"master-1", {7000, true}}, {"agent-1", {9000, true}}});
    EXPECT_EQ(r.outcome, DS::done);
    EXPECT_EQ(line(r, "master-1").swap_source, "recorded");
    EXPECT_EQ(line(r, "master-1").end_ms - line(r, "master-1").start_ms, 7000);
    // The injected time wins over the recorded one.
    EXPECT_EQ(line(r, "agent-1").swap_source, "injected");
    EXPECT_EQ(line(r, "agent-1").end_ms - line(r, "agent-1").start_ms, 45000);
    EXPECT_EQ(line(r, "agent-2").swap_ms, 45000);
}

TEST(RolloutModel, AHealthFailureTakesTheHealthDeadlineNotTheSwapTime) {
    // Each row: the known history of master-1; how long its failing swap is predicted to take.
    struct Case {
        std::map<std::string, SimNode> known;
        std::int64_t fail_ms;
    };
    std::vector<Case> cases = {
        {{}, 60000},                                   // the health check's default deadline
        {{{"master-1", {7000, true}}}, 60000},         // a fast swap says nothing of a failure
        {{{"master-1", {7000, true, 35000}}}, 35000},  // its last failed swap, as measured
    };
    for (const auto& c : cases) {
        auto r = run(fleet(1, 2, 1, 0), "master-1:health_fail", c.known);
        const auto& m = line(r, "master-1");
        EXPECT_EQ(m.step, NS::failed);
        EXPECT_EQ(m.fail_ms, c.fail_ms);
        EXPECT_EQ(m.end_ms - m.start_ms, c.fail_ms);
        EXPECT_EQ(*r.budget_stop_ms, m.end_ms);
    }
}

TEST(RolloutModel, ANodeThisReleaseFailedOnBeforeIsPredictedToFailAgain) {
    std::map<std::string, SimNode> known = {{"master-1", {0, false, 35000, true}}};
    auto r = run(fleet(2, 2, 1, 0), "", known);
    EXPECT_EQ(r.outcome, DS::held);
    EXPECT_EQ(line(r, "master-1").fault, "health_fail");
    EXPECT_EQ(line(r, "master-1").fault_source, "recorded");
    EXPECT_EQ(line(r, "master-1").step, NS::failed);
    EXPECT_EQ(line(r, "master-2").start_ms, -1);
    // An injected fault is named as such, and wins.
    auto s = run(fleet(2, 2, 1, 0), "master-1:slow=5s", known);
    EXPECT_EQ(line(s, "master-1").fault_source, "injected");
    EXPECT_EQ(s.outcome, DS::done);
}

TEST(RolloutModel, AHoldSaysWhereItBitesAndTheNodesInFlightFinish) {
    // Swaps of 20 s after 5 s of staging: master-1 runs 5-25 s, agents 1-2 25-45 s, then
    // agent-3.
    struct Case {
        std::string inject;
        std::int64_t bit_ms;
        std::vector<std::string> done;
    };
    std::vector<Case> cases = {
        {"hold=1ms", 1, {}},
        {"hold=10s", 10000, {"master-1"}},  // master-1 was in flight: it finishes
        {"hold=30s", 30000, {"master-1", "agent-1", "agent-2"}},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.inject);
        auto r = run(fleet(1, 3, 2, 0), c.inject);
        ASSERT_TRUE(r.hold_bit_ms.has_value());
        EXPECT_EQ(*r.hold_bit_ms, c.bit_ms);
        std::vector<std::string> done;
        for (const auto& n : r.nodes)
            if (n.step == NS::done) done.push_back(n.node);
        EXPECT_EQ(done, c.done);
        EXPECT_EQ(line(r, "agent-3").start_ms, -1);
        EXPECT_NE(r.message.find("stopped by a hold"), std::string::npos) << r.message;
        EXPECT_FALSE(r.cut_short);
    }
    auto bad = parseFaults("agent-1:hold");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("hold=TIME"), std::string::npos);
}

TEST(RolloutModel, AutoRevertPutsTheUpgradedNodesBackAgentsFirst) {
    auto r = run(fleet(2, 3, 1, 0, true), "agent-2:health_fail");
    EXPECT_EQ(r.outcome, DS::reverted);
    ASSERT_TRUE(r.revert_start_ms.has_value());
    EXPECT_EQ(r.budget_stop_ms, r.revert_start_ms);
    EXPECT_EQ(line(r, "agent-2").step, NS::failed);
    for (const char* n : {"master-1", "master-2", "agent-1"})
        EXPECT_EQ(line(r, n).step, NS::reverted) << n;
    EXPECT_EQ(line(r, "agent-3").step, NS::skipped);
    // The timeline has agent-1 back before the masters.
    std::vector<std::string> back;
    for (const auto& m : r.timeline)
        if (m.what.ends_with(" reverted") && !m.what.starts_with("deployment"))
            back.push_back(m.what);
    ASSERT_EQ(back.size(), 3u);
    EXPECT_EQ(back[0], "agent-1 reverted");
    EXPECT_EQ(back[1], "master-2 reverted");
    EXPECT_EQ(back[2], "master-1 reverted");
}

TEST(RolloutModel, FaultsAreParsedOrRefusedNamingTheItem) {
    auto f = parseFaults("agent-3:health_fail, master-2:silent,agent-*:slow=30s,x:slow=500ms");
    ASSERT_OK(f);
    ASSERT_EQ(f->size(), 4u);
    EXPECT_EQ((*f)[1].pattern, "master-2");
    EXPECT_EQ((*f)[2].kind, FaultKind::slow);
    EXPECT_EQ((*f)[2].ms, 30000);
    EXPECT_EQ((*f)[3].ms, 500);
    ASSERT_OK(parseFaults(""));
    ASSERT_ERROR(parseFaults("agent-3"), Errc::Invalid, "inject 'agent-3': expected NODE:FAULT");
    ASSERT_ERROR(parseFaults("agent-3:explode"), Errc::Invalid, "unknown fault 'explode'");
    ASSERT_ERROR(parseFaults("agent-3:slow"), Errc::Invalid, "slow needs a time");
    ASSERT_ERROR(parseFaults("agent-3:slow=fast"), Errc::Invalid, "is not a duration");
    ASSERT_ERROR(parseFaults("agent-3:silent=1s"), Errc::Invalid, "silent takes no value");
}

// Bugs users hit, each fixed in the model.

TEST(RolloutModel, ResumeOfABudgetHeldDeploymentNeedsABudgetAboveTheFailures) {
    auto f = fleet(1, 3, 1, 0);
    auto r = std::move(f.rollout);
    r.d.state = DS::held;
    r.slots[1].row.state = NS::failed;
    r.slots[2].row.state = NS::failed;
    r.index();
    Output out;
    ASSERT_ERROR(r.command("resume", std::nullopt, "admin", 10, out), Errc::Conflict,
                 "deployment d-1 stays held: 2 nodes failed, more than max_failures 0; raise the "
                 "budget (cluster resume --max-failures 2)");
    ASSERT_ERROR(r.command("resume", 1, "admin", 10, out), Errc::Conflict,
                 "2 nodes failed, more than max_failures 1");
    EXPECT_EQ(r.d.state, DS::held);
    EXPECT_EQ(r.d.max_failures, 0);
    EXPECT_TRUE(out.events.empty());
    ASSERT_OK(r.command("resume", 2, "admin", 10, out));
    EXPECT_EQ(r.d.state, DS::staging);  // master-1 and agent-3 still to stage
    EXPECT_EQ(r.d.max_failures, 2);
    r.d.state = DS::rolling;
    ASSERT_ERROR(r.command("resume", std::nullopt, "admin", 10, out), Errc::Conflict,
                 "nothing to resume: deployment d-1 is rolling");
}

TEST(RolloutModel, WaitingOnSaysTheBudgetOnceWithTheCurrentCount) {
    auto f = fleet(0, 4, 4, 0);
    auto& r = f.rollout;
    r.d.state = DS::rolling;
    for (auto& s : r.slots) {
        s.row.state = NS::restarted;
        s.row.target_generation = 2;
        s.last_heard_ms = 100;
    }
    r.index();
    Output out;
    r.onPing(r.slots[0], {1, pkgmgr::HelperStep::rolled_back, 1, 2, "health check failed"}, 100,
             out);
    r.tick(100, false, "", {}, out);
    EXPECT_EQ(r.d.state, DS::held);
    EXPECT_EQ(r.d.waiting_on, "failure budget: 1 node failed, more than max_failures 0");
    // The swaps in flight when the budget ran out fail afterwards: the numbers follow.
    for (int i = 1; i < 4; ++i)
        r.onPing(r.slots[static_cast<size_t>(i)], {1, pkgmgr::HelperStep::failed, 1, 2, ""}, 200,
                 out);
    r.tick(200, false, "", {}, out);
    EXPECT_EQ(r.d.waiting_on, "failure budget: 4 nodes failed, more than max_failures 0");
    EXPECT_EQ(r.d.message, "4 nodes failed, more than max_failures 0");
}

TEST(RolloutModel, ANodeReportAfterAbortIsRecorded) {
    auto f = fleet(0, 2, 2, 0);
    auto& r = f.rollout;
    r.d.state = DS::rolling;
    r.d.min_healthy_ms = 5000;
    for (auto& s : r.slots) {
        s.row.state = NS::restarted;
        s.row.target_generation = 2;
    }
    r.index();
    Output out;
    ASSERT_OK(r.command("abort", std::nullopt, "admin", 10, out));
    EXPECT_EQ(r.d.state, DS::aborted);
    r.onPing(r.slots[0], {1, pkgmgr::HelperStep::rolled_back, 1, 2, ""}, 2000, out);
    r.onPing(r.slots[1], {1, pkgmgr::HelperStep::healthy, 1, 2, ""}, 2000, out);
    EXPECT_EQ(r.slots[0].row.state, NS::failed);
    // No probe follows an ended deployment: healthy is done.
    EXPECT_EQ(r.slots[1].row.state, NS::done);
    EXPECT_TRUE(r.slots[0].dirty);
}

TEST(RolloutModel, RefusalsNameTheCliVerbs) {
    Deployment d;
    d.id = "d-4";
    d.version = "2.0.1";
    d.state = DS::held;
    d.waiting_on = "failure budget: 1 node failed, more than max_failures 0";
    auto held = busyRefusal(d).error().message;
    EXPECT_NE(held.find("cluster resume --max-failures N"), std::string::npos) << held;
    EXPECT_NE(held.find("cluster rollback d-4"), std::string::npos);
    EXPECT_NE(held.find("cluster abort d-4"), std::string::npos);
    EXPECT_EQ(held.find("wait for it"), std::string::npos);
    d.state = DS::paused;
    auto paused = busyRefusal(d).error().message;
    EXPECT_NE(paused.find("resume it (cluster resume)"), std::string::npos) << paused;
    EXPECT_EQ(paused.find("/v1/"), std::string::npos);
    d.state = DS::rolling;
    EXPECT_NE(busyRefusal(d).error().message.find("wait for it to finish (cluster status)"),
              std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Pull nodes in the rehearsal: nothing is sent to them; each action waits, offered, for the
// node's next ask, which the model answers as the engine does (Rollout::onAsk).

// Marks `pulls` as pull nodes (their timers change: index again).
Fleet withPull(Fleet f, const std::vector<std::string>& pulls, std::int64_t min_healthy_ms = 0) {
    for (auto& slot : f.rollout.slots)
        slot.pull = std::find(pulls.begin(), pulls.end(), slot.row.node) != pulls.end();
    f.rollout.d.min_healthy_ms = min_healthy_ms;
    f.rollout.index();
    return f;
}

TEST(RolloutModel, PullNodesActOnlyWhenTheyNextAsk) {
    // Default interval 10 s, first ask one interval in; staging 5 s, swaps 20 s, replies 50 ms.
    struct Case {
        const char* name;
        std::vector<std::string> pulls;
        std::map<std::string, SimNode> known;
        std::string inject;
        std::int64_t min_healthy_ms;
        DS outcome;
        std::map<std::string, NS> steps;
        std::string node;  ///< the pull node whose timing is checked
        std::int64_t interval_ms;
        const char* interval_source;
        std::int64_t start_ms;   ///< when it takes its restart (-1: never)
        std::int64_t end_ms;     ///< when it finishes (-1: never)
        std::int64_t waited_ms;  ///< how long its actions waited for its asks
        const char* message;     ///< part of its message ("" : none)
    };
    const std::vector<Case> cases = {
        // Stage offered at 0, taken at its first ask (10 000), staged at 15 000: every node is
        // staged, so its restart is offered then and taken at its next ask, an interval after
        // the stage ended (10 000 + 50 + 5 000 + 10 000).
        {"a pull master, default interval",
         {"master-1"},
         {},
         "",
         0,
         DS::done,
         {{"master-1", NS::done}, {"agent-1", NS::done}},
         "master-1",
         10000,
         "default",
         25050,
         45050,
         10000 + 10050,
         ""},
        // Measured: every second. Stage at 1 000 (staged 6 000); restart at 1 000+50+5 000+1 000.
        {"a recorded interval",
         {"master-1"},
         {{"master-1", {0, false, 0, false, 1000}}},
         "",
         0,
         DS::done,
         {{"master-1", NS::done}},
         "master-1",
         1000,
         "recorded",
         7050,
         27050,
         1000 + 1050,
         ""},
        // An agent waits its turn: staged at 8 000 (asks at 3 000), the master swaps 8 000 to
        // 28 000, then its restart is offered; it asks at 3 000 + 50 + 5 000 + 3 000 = 11 050
        // and every 3 050 after: it takes the restart at 29 350.
        {"a pull agent after a push master",
         {"agent-1"},
         {{"agent-1", {0, false, 0, false, 3000}}},
         "",
         0,
         DS::done,
         {{"master-1", NS::done}, {"agent-1", NS::done}},
         "agent-1",
         3000,
         "recorded",
         29350,
         49350,
         3000 + 1350,
         ""},
        {"health_fail on a pull master",
         {"master-1"},
         {},
         "master-1:health_fail",
         0,
         DS::held,
         {{"master-1", NS::failed}, {"agent-1", NS::staged}, {"agent-2", NS::staged}},
         "master-1",
         10000,
         "default",
         25050,
         25050 + 60000,
         20050,
         "injected health_fail"},
        // It takes its restart and is never heard from again: the node deadline (120 s).
        {"a silent pull master",
         {"master-1"},
         {},
         "master-1:silent",
         0,
         DS::held,
         {{"master-1", NS::failed}, {"agent-1", NS::staged}},
         "master-1",
         10000,
         "default",
         25050,
         -1,
         20050,
         "no healthy report within the node deadline (120000 ms)"},
        {"stage_fail on a pull agent",
         {"agent-2"},
         {},
         "agent-2:stage_fail",
         0,
         DS::held,
         {{"master-1", NS::staged}, {"agent-2", NS::failed}},
         "agent-2",
         10000,
         "default",
         -1,
         15000,
         10000,
         "staging failed: injected stage_fail"},
        // Asks every 200 s: its restart, offered at 205 000, is not taken within the node
        // deadline (its next ask would be at 405 050).
        {"a pull node asking too rarely",
         {"master-1"},
         {{"master-1", {0, false, 0, false, 200000}}},
         "",
         0,
         DS::held,
         {{"master-1", NS::failed}},
         "master-1",
         200000,
         "recorded",
         -1,
         -1,
         200000,
         "the pull node did not ask for its restart within 120000 ms"},
        // With min_healthy_ms, done at its first ask after that time on the new generation
        // (healthy at 45 050; asks at 35 100, 45 150, 55 200: 55 200 is past 45 050 + 8 000).
        {"min_healthy_ms waits for an ask",
         {"master-1"},
         {},
         "",
         8000,
         DS::done,
         {{"master-1", NS::done}},
         "master-1",
         10000,
         "default",
         25050,
         55200,
         20050,
         ""},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        auto f = withPull(fleet(1, 2, 1, 0), c.pulls, c.min_healthy_ms);
        auto r = run(std::move(f), c.inject, c.known);
        EXPECT_EQ(r.outcome, c.outcome) << toString(r.outcome) << ": " << r.message;
        for (const auto& [node, step] : c.steps)
            EXPECT_EQ(toString(line(r, node).step), toString(step)) << node;
        const auto& n = line(r, c.node);
        EXPECT_TRUE(n.pull);
        EXPECT_EQ(n.pull_interval_ms, c.interval_ms);
        EXPECT_EQ(n.pull_interval_source, c.interval_source);
        EXPECT_EQ(n.start_ms, c.start_ms);
        if (c.end_ms >= 0) {
            EXPECT_EQ(n.end_ms, c.end_ms);
        }
        EXPECT_EQ(n.waited_ms, c.waited_ms);
        if (*c.message != '\0') {
            EXPECT_NE(n.message.find(c.message), std::string::npos) << n.message;
        }
        for (const auto& other : r.nodes)
            if (std::find(c.pulls.begin(), c.pulls.end(), other.node) == c.pulls.end()) {
                EXPECT_FALSE(other.pull) << other.node;
                EXPECT_EQ(other.pull_interval_source, "") << other.node;
            }
        if (c.outcome == DS::held) {
            EXPECT_TRUE(r.budget_stop_ms.has_value());
        }
    }
}

TEST(RolloutModel, PullNodesStopAtAHoldAndGoBackInAnAutoRevert) {
    // A hold at 30 s: the pull master has taken its restart (25 050) and finishes; its next
    // asks get nothing, and the rehearsal still ends (the asks would come for ever).
    auto held = run(withPull(fleet(1, 2, 1, 0), {"master-1", "agent-2"}), "hold=30s");
    ASSERT_TRUE(held.hold_bit_ms.has_value());
    EXPECT_EQ(*held.hold_bit_ms, 30000);
    EXPECT_EQ(line(held, "master-1").step, NS::done);
    EXPECT_EQ(line(held, "agent-2").start_ms, -1);
    EXPECT_FALSE(held.cut_short);
    // agent-2 (pull) fails with max_failures 0 and auto-revert: master-1 and agent-1 were done
    // and go back; agent-1's revert waits for nothing, the pull master's for its ask.
    auto f = withPull(fleet(1, 2, 1, 0, true), {"master-1", "agent-2"});
    auto reverted = run(std::move(f), "agent-2:health_fail");
    EXPECT_EQ(reverted.outcome, DS::reverted) << reverted.message;
    ASSERT_TRUE(reverted.revert_start_ms.has_value());
    EXPECT_EQ(line(reverted, "agent-2").step, NS::failed);
    EXPECT_EQ(line(reverted, "agent-1").step, NS::reverted);
    EXPECT_EQ(line(reverted, "master-1").step, NS::reverted);
    bool handed = false;
    for (const auto& m : reverted.timeline)
        if (m.at_ms > *reverted.revert_start_ms &&
            m.what.starts_with("master-1 (pull) asks and takes its restart"))
            handed = true;
    EXPECT_TRUE(handed) << "the pull master's revert is handed out on its ask";
}

}  // namespace
}  // namespace hoist::deploy_coordinator
