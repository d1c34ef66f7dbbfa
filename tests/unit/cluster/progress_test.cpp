// Progress as a person sees it: fits the width, the bar is full only when done, skipped nodes
// apart, failed nodes listed with their reasons; the typed answers read the coordinator's JSON.
#include "progress.hpp"

#include <sstream>

#include <gtest/gtest.h>

#include "print.hpp"
#include "testing.hpp"

namespace hoist::cluster {
namespace {

Deployment parsed(const std::string& text) {
    auto d = parseAs<Deployment>(text, "deployment");
    EXPECT_TRUE(d.has_value()) << d.error().describe();
    return d ? *d : Deployment{};
}

std::string counts(int total, int done, int failed, int skipped, int reverted = 0) {
    return detail::concat(R"({"total":)", total, R"(,"done":)", done, R"(,"failed":)", failed,
                          R"(,"in_flight":0,"pending":)",
                          total - done - failed - skipped - reverted, R"(,"skipped":)", skipped,
                          R"(,"reverted":)", reverted, "}");
}

std::string deployment(const std::string& state, const std::string& all, const std::string& masters,
                       const std::string& agents, const std::string& waiting = "",
                       const std::string& nodes = "") {
    return R"({"id":"d-6","version":"2.0.1","kind":"upgrade","state":")" + state +
           R"(","waiting_on":")" + waiting + R"(","message":"","counts":)" + all +
           R"(,"roles":{"agent":)" + agents + R"(,"master":)" + masters + "}" +
           (nodes.empty() ? "" : R"(,"nodes":)" + nodes) + "}";
}

size_t columns(const std::string& line) {
    size_t n = 0;
    for (unsigned char ch : line)
        if ((ch & 0xC0) != 0x80) ++n;
    return n;
}

TEST(Progress, EveryLineFitsTheTerminalWidth) {
    auto d = parsed(deployment(
        "rolling", counts(108, 40, 1, 0), counts(3, 3, 0, 0), counts(105, 37, 1, 0),
        "health of agent-41, agent-42, agent-43, agent-44, agent-45, agent-46, agent-47, "
        "agent-48 (in flight for 12s)"));
    for (int width : {40, 80, 120}) {
        auto lines = progressLines(d, width);
        ASSERT_EQ(lines.size(), 4u);  // header, master, agent, waiting on
        for (const auto& line : lines)
            EXPECT_LT(columns(line), static_cast<size_t>(width)) << width << ": " << line;
        EXPECT_NE(lines[1].find("master"), std::string::npos) << lines[1];
        EXPECT_NE(lines[2].find("agent"), std::string::npos) << lines[2];
    }
    // Roles go in rollout order, whatever the JSON's order.
    EXPECT_EQ(d.roles.front().first, "master");
}

TEST(Progress, TheBarIsNeverFullUnlessDoneAndSkippedNodesCountApart) {
    // Reverted: every node it touched came back; 5 agents were skipped, never touched.
    auto reverted = parsed(
        deployment("reverted", counts(8, 0, 1, 5, 2), counts(3, 0, 1, 0, 2), counts(5, 0, 0, 5)));
    auto lines = progressLines(reverted, 80);
    EXPECT_EQ(lines[0].find("100%"), std::string::npos) << lines[0];
    EXPECT_NE(lines[0].find("99%"), std::string::npos) << lines[0];
    EXPECT_NE(lines[0].find("-]"), std::string::npos) << "the bar ends unfilled: " << lines[0];
    EXPECT_NE(lines[0].find("0/3 done"), std::string::npos) << lines[0];
    EXPECT_NE(lines[0].find("5 skipped"), std::string::npos) << lines[0];
    // Done: full.
    auto done =
        parsed(deployment("done", counts(8, 3, 0, 5), counts(3, 3, 0, 0), counts(5, 0, 0, 5)));
    auto full = progressLines(done, 80);
    EXPECT_NE(full[0].find("100%"), std::string::npos) << full[0];
    EXPECT_EQ(full[0].find("-]"), std::string::npos) << full[0];
    EXPECT_NE(progressLine(done).find("d-6 2.0.1 done: master 3/3  agent 0/0"), std::string::npos)
        << progressLine(done);
}

TEST(Progress, FailedNodesAreListedWithTheirReasons) {
    auto d = parsed(deployment(
        "reverted", counts(2, 0, 1, 0, 1), counts(2, 0, 1, 0, 1), counts(0, 0, 0, 0), "",
        R"([{"node":"master-1","role":"master","state":"failed","message":"helper reported rolled_back: health check failed"},
            {"node":"master-2","role":"master","state":"reverted","message":""}])"));
    auto lines = failedNodeLines(d, 0);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0],
              "  master-1 (master) failed: helper reported rolled_back: health check failed");
}

TEST(Progress, RedrawsInPlace) {
    std::ostringstream out;
    LiveView view(out, 80);
    view.draw({"a", "b", "c"});
    view.draw({"d", "e", "f"});
    view.finish();
    // The second frame goes back up two lines and erases each line it writes.
    EXPECT_EQ(out.str(),
              "\ra\x1b[K\nb\x1b[K\nc\x1b[K"
              "\x1b[2A\rd\x1b[K\ne\x1b[K\nf\x1b[K\n");
}

TEST(ApiTypes, AMistypedFieldIsAnErrorNamingIt) {
    auto bad = parseAs<Deployment>(R"({"id":"d-1","state":7})", "deployment");
    ASSERT_FALSE(bad.has_value());
    EXPECT_NE(bad.error().message.find("'state'"), std::string::npos) << bad.error().message;
    auto halt = parseAs<HaltView>(
        R"({"halted":true,"holds":[{"source":"sla","reason":"p99","by":"monitor","since":"t",
            "resolved":"","alerts":[{}, {}]}]})",
        "halt");
    ASSERT_TRUE(halt.has_value()) << halt.error().describe();
    EXPECT_EQ(halt->holds.at(0).alerts, 2u);
}

TEST(ApiTypes, AReplicaThatRefusedToLeadSaysWhy) {
    auto list = parseAs<Coordinators>(
        R"({"leader":null,"epoch":0,"replicas":[
            {"id":"r1","url":"u1","leader":false,"epoch":0,"last_renewal":"t",
             "refused":"replica r1 refused to take over: etcd key /hoist/x"},
            {"id":"r2","url":"u2","leader":false,"epoch":0,"last_renewal":"t"}]})",
        "coordinators");
    ASSERT_TRUE(list.has_value()) << list.error().describe();
    EXPECT_TRUE(list->leader.empty());
    ASSERT_EQ(list->replicas.size(), 2u);
    EXPECT_NE(list->replicas[0].refused.find("/hoist/x"), std::string::npos);
    EXPECT_TRUE(list->replicas[1].refused.empty());
}

TEST(ApiTypes, StatesAreReadThroughTheirConversionsAndAnUnknownOneIsNone) {
    using DS = deploy_coordinator::DeploymentState;
    auto held =
        parsed(deployment("held", counts(2, 0, 1, 0), counts(1, 0, 1, 0), counts(1, 0, 0, 0)));
    EXPECT_TRUE(held.is(DS::held));
    EXPECT_TRUE(held.heldByBudget());
    EXPECT_FALSE(held.ended());
    auto rolled = parsed(deployment("rolled_back", counts(2, 0, 0, 0, 2), counts(1, 0, 0, 0, 1),
                                    counts(1, 0, 0, 0, 1)));
    EXPECT_TRUE(rolled.ended());
    // A state from a newer coordinator is none of the known ones, and not an end.
    auto newer =
        parsed(deployment("canarying", counts(2, 0, 0, 0), counts(1, 0, 0, 0), counts(1, 0, 0, 0)));
    for (auto s : deploy_coordinator::allDeploymentStates()) EXPECT_FALSE(newer.is(s));
    EXPECT_FALSE(newer.ended());
}

TEST(Rehearsal, NamesThePullNodesAndHowTheirTimingWasPredicted) {
    auto doc = json::parse(R"({"version":"2.0.1","max_parallel":"1","max_failures":0,
        "auto_revert":false,"outcome":"held","message":"1 node failed, more than max_failures 0",
        "total_ms":85050,"cut_short":false,"budget_stop_ms":85050,"hold_bit_ms":null,
        "revert_start_ms":null,
        "assumptions":{"default_swap_ms":20000,"default_health_fail_ms":60000,"stage_ms":5000,
          "recorded_swaps":0,"default_pull_interval_ms":10000,"recorded_pull_intervals":1},
        "notes":[],
        "waves":[{"role":"master","nodes":["master-1"],"start_ms":25050,"end_ms":85050},
                 {"role":"agent","nodes":["agent-1"],"start_ms":null,"end_ms":null}],
        "nodes":[{"node":"master-1","role":"master","wave":1,"state":"failed",
          "message":"injected health_fail","mode":"pull","pull_interval_ms":150,
          "pull_interval_source":"recorded","waited_ms":20050},
          {"node":"agent-1","role":"agent","wave":2,"state":"staged","message":"",
          "mode":"push"}],
        "timeline":[]})",
                           "rehearsal");
    ASSERT_TRUE(doc.has_value());
    auto text = printRehearsal(*doc);
    EXPECT_NE(text.find("pull nodes act only when they next ask"), std::string::npos) << text;
    EXPECT_NE(text.find("the default 0:10"), std::string::npos) << text;
    EXPECT_NE(text.find("master-1 every 150ms (recorded)"), std::string::npos) << text;
    EXPECT_NE(text.find("their actions wait 0:20 in all"), std::string::npos) << text;
    EXPECT_NE(text.find("wave 1  master  master-1 (pull)  0:25 -> 1:25; master-1 fails "
                        "(injected health_fail)"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("wave 2  agent  agent-1  not reached"), std::string::npos) << text;
}

}  // namespace
}  // namespace hoist::cluster
