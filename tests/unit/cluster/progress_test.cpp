// Progress as a person sees it: fits the width, the bar is full only when done, skipped nodes
// apart, failed nodes listed with their reasons; the typed answers read the coordinator's JSON.
#include "progress.hpp"

#include <sstream>

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace hoist::cluster
