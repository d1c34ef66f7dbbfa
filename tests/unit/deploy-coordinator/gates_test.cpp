// Metric gates in the rollout model: parsing, and the model between waves on a simulated
// clock with samples the test hands in (no Prometheus, no sleeps).

#include <gtest/gtest.h>

#include "metric_gates.hpp"
#include "rollout.hpp"
#include "testing.hpp"

namespace hoist::deploy_coordinator {
namespace {

using NS = NodeStep;
using DS = DeploymentState;

TEST(GateSpec, ParsesNameQueryComparisonAndForTime) {
    auto g = GateSpec::parse("error-rate: sum(rate(http_errors_total[1m])) < 5 for 30s");
    ASSERT_OK(g);
    EXPECT_EQ(g->name, "error-rate");
    EXPECT_EQ(g->query, "sum(rate(http_errors_total[1m]))");
    EXPECT_EQ(g->op, "<");
    EXPECT_EQ(g->threshold, 5);
    EXPECT_EQ(g->for_ms, 30000);
    EXPECT_EQ(g->text(), "error-rate: sum(rate(http_errors_total[1m])) < 5 for 30s");
    EXPECT_TRUE(g->holds(4.9));
    EXPECT_FALSE(g->holds(5));
    // The last comparison is the gate's; the query may compare too.
    auto nested = GateSpec::parse("up: min(up > 0) >= 1");
    ASSERT_OK(nested);
    EXPECT_EQ(nested->query, "min(up > 0)");
    EXPECT_EQ(nested->op, ">=");
    EXPECT_EQ(nested->for_ms, 0);
}

TEST(GateSpec, RefusesWhatIsNotAGate) {
    for (const char* bad : {"sum(x) < 5", "g: sum(x)", "g: sum(x) < five", "g: x < 5 for 30",
                            "g: x < 5 for 2d", "bad name: x < 1"}) {
        auto g = GateSpec::parse(bad);
        EXPECT_FALSE(g.has_value()) << bad;
        if (!g) {
            EXPECT_EQ(g.error().code, Errc::Invalid) << bad;
        }
    }
    GateConfig c;
    c.gates.push_back(*GateSpec::parse("a: x < 1"));
    auto no_url = c.validate();
    ASSERT_FALSE(no_url.has_value());
    EXPECT_NE(no_url.error().message.find("--prometheus"), std::string::npos);
    c.prometheus = "http://127.0.0.1:9090";
    EXPECT_OK(c.validate());
    auto round = GateConfig::fromJson(c.toJson());
    ASSERT_OK(round);
    EXPECT_EQ(round->gates.at(0).text(), "a: x < 1");
    c.on_fail = "panic";
    EXPECT_FALSE(c.validate().has_value());
}

// One master and two agents, one at a time, with nodes that swap as soon as asked.
class GatedRollout : public ::testing::Test {
protected:
    void SetUp() override {
        auto& d = r_.d;
        d.id = "d-1";
        d.version = "2.0.0";
        d.state = DS::staging;
        d.node_deadline_ms = 600000;
        d.progress_deadline_ms = 0;
        r_.max_parallel = 1;
        std::int64_t ord = 0;
        for (const char* id : {"master-1", "agent-1", "agent-2"}) {
            Slot slot;
            slot.row.node = id;
            slot.row.role = std::string(id).starts_with("master") ? "master" : "agent";
            slot.row.ord = ord++;
            slot.row.from_release = "1.0.0";
            slot.row.from_generation = 1;
            r_.slots.push_back(slot);
        }
        r_.gates.prometheus = "http://prometheus";
        r_.gates.error_grace_ms = 20000;
        r_.gates.gates.push_back(*GateSpec::parse("errors: sum(rate(e[1m])) < 5 for 10s"));
        r_.index();
    }

    // Plays node actions out at once; keeps gate queries and holds for the test.
    void handle(Output& out) {
        while (true) {
            auto actions = std::move(out.actions);
            for (auto& q : out.gate_queries) queries_.push_back(q);
            for (auto& h : out.gate_holds) holds_.push_back(h);
            for (auto& e : out.events) events_.push_back(e.action + ": " + e.detail);
            out = Output{};
            if (actions.empty()) return;
            for (const auto& a : actions) {
                Slot* slot = r_.find(a.node);
                ASSERT_NE(slot, nullptr);
                switch (a.kind) {
                    case NodeAction::Kind::stage:
                        r_.onStage(*slot, {StageOutcome::Kind::staged, 2, ""}, now_, out);
                        break;
                    case NodeAction::Kind::restart:
                        restarted_.push_back(a.node);
                        r_.onRestart(*slot, {RestartOutcome::Kind::accepted, ""}, now_, out);
                        r_.onPing(*slot, {++seq_, pkgmgr::HelperStep::healthy, 1, a.generation, ""},
                                  now_, out);
                        break;
                    case NodeAction::Kind::probe:
                        r_.onProbe(*slot, NodeView{2, "2.0.0", true}, now_, out);
                        break;
                    case NodeAction::Kind::poll:
                        r_.onPoll(*slot, {true, false, std::nullopt, {2, "2.0.0", true}}, now_,
                                  out);
                        break;
                }
            }
        }
    }

    void tick(bool held = false) {
        Output out;
        r_.tick(now_, held, held ? "gate/errors (gate failed)" : "", {}, out);
        handle(out);
    }

    // Ticks until nothing changes (a few rounds at the same time).
    void settle(bool held = false) {
        for (int i = 0; i < 6; ++i) tick(held);
    }

    // Answers the pending query.
    void answer(GateSample sample) {
        ASSERT_FALSE(queries_.empty());
        auto q = queries_.front();
        queries_.erase(queries_.begin());
        EXPECT_EQ(q.query, "sum(rate(e[1m]))");
        EXPECT_EQ(q.prometheus, "http://prometheus");
        Output out;
        r_.onGateSample(q.gate, sample, now_, out);
        handle(out);
    }

    Rollout r_;
    std::int64_t now_ = 1000;
    std::int64_t seq_ = 0;
    std::vector<GateQuery> queries_;
    std::vector<GateHold> holds_;
    std::vector<std::string> restarted_;
    std::vector<std::string> events_;
};

TEST_F(GatedRollout, TheNextWaveWaitsUntilTheGateHeldForItsTime) {
    settle();
    ASSERT_EQ(restarted_, std::vector<std::string>{"master-1"});
    ASSERT_EQ(queries_.size(), 1u) << "the gate is asked once the master settled";
    EXPECT_NE(r_.d.waiting_on.find("gate 'errors'"), std::string::npos) << r_.d.waiting_on;
    answer({1.5, "", false});
    settle();
    EXPECT_EQ(restarted_.size(), 1u) << "held for 0 of 10 s: agent-1 waits";
    EXPECT_NE(r_.d.waiting_on.find("held 0s of 10s"), std::string::npos) << r_.d.waiting_on;
    for (int i = 0; i < 10 && restarted_.size() == 1; ++i) {
        now_ += 2000;
        settle();
        if (!queries_.empty() && restarted_.size() == 1) answer({1.5, "", false});
    }
    EXPECT_GE(now_, 11000);
    ASSERT_EQ(restarted_, (std::vector<std::string>{"master-1", "agent-1"}));
    EXPECT_TRUE(holds_.empty());
    // agent-1 settled: the gate is asked again before agent-2.
    settle();
    EXPECT_EQ(restarted_.size(), 2u);
    EXPECT_EQ(queries_.size(), 1u);
}

TEST_F(GatedRollout, AFailingGatePutsItsHoldAndAClearedHoldLetsTheNextWaveGo) {
    settle();
    answer({12, "", false});
    ASSERT_EQ(holds_.size(), 1u);
    EXPECT_EQ(holds_[0].source, "gate/errors");
    EXPECT_NE(holds_[0].reason.find("is 12, not < 5"), std::string::npos) << holds_[0].reason;
    now_ += 60000;
    settle();
    EXPECT_EQ(restarted_.size(), 1u) << "nothing starts before the hold lands";
    EXPECT_TRUE(queries_.empty());
    settle(true);  // the hold stands
    EXPECT_EQ(restarted_.size(), 1u);
    settle(false);  // an admin cleared it
    EXPECT_EQ(restarted_, (std::vector<std::string>{"master-1", "agent-1"}));
    bool overridden = false;
    for (const auto& e : events_) overridden |= e.starts_with("gate overridden");
    EXPECT_TRUE(overridden);
}

TEST_F(GatedRollout, AQueryThatKeepsFailingFailsTheGateAfterTheGrace) {
    settle();
    answer({std::nullopt, "prometheus cannot be reached", false});
    EXPECT_TRUE(holds_.empty());
    EXPECT_NE(r_.d.waiting_on.find("query failing"), std::string::npos) << r_.d.waiting_on;
    for (int i = 0; i < 30 && holds_.empty(); ++i) {
        now_ += 1000;
        settle();
        if (!queries_.empty()) answer({std::nullopt, "prometheus cannot be reached", false});
    }
    ASSERT_EQ(holds_.size(), 1u);
    EXPECT_GE(now_, 21000);
    EXPECT_LE(now_, 23000);
    EXPECT_NE(holds_[0].reason.find("grace 20s"), std::string::npos) << holds_[0].reason;
    EXPECT_EQ(restarted_.size(), 1u);
}

TEST_F(GatedRollout, TheRevertPolicyRevertsInsteadOfHolding) {
    r_.gates.on_fail = "revert";
    settle();
    answer({12, "", false});
    EXPECT_TRUE(holds_.empty());
    EXPECT_EQ(r_.d.state, DS::reverting);
    EXPECT_TRUE(r_.d.message.starts_with("auto-revert: gate 'errors' failed")) << r_.d.message;
}

}  // namespace
}  // namespace hoist::deploy_coordinator
