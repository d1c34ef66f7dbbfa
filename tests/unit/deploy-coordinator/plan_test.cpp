#include <gtest/gtest.h>

#include "deploy_coordinator/plan.hpp"
#include "testing.hpp"

namespace hoist::deploy_coordinator {
namespace {

TEST(MaxParallel, TakesACountOrAPercentageOfTheAgents) {
    EXPECT_EQ(*resolveMaxParallel("100", 10000), 100);
    EXPECT_EQ(*resolveMaxParallel("10%", 10000), 1000);
    EXPECT_EQ(*resolveMaxParallel("10%", 5), 1);  // rounded up
    EXPECT_EQ(*resolveMaxParallel("30%", 5), 2);
    EXPECT_EQ(*resolveMaxParallel("1%", 0), 1);  // never zero
    EXPECT_EQ(*resolveMaxParallel("100%", 7), 7);
}

TEST(MaxParallel, RefusesAnythingElseNamingTheRule) {
    for (const char* bad : {"0", "-1", "", "abc", "10%%", "101%", "0%", "5 ", "1.5"}) {
        ASSERT_ERROR(resolveMaxParallel(bad, 10), Errc::Invalid,
                     "must be a positive count or a percentage such as 10%");
    }
    ASSERT_ERROR(validateMaxParallel("x"), Errc::Invalid, "max_parallel 'x'");
}

TEST(NaturalOrder, CountsLikePeople) {
    EXPECT_TRUE(naturalLess("agent-2", "agent-10"));
    EXPECT_FALSE(naturalLess("agent-10", "agent-2"));
    EXPECT_TRUE(naturalLess("agent-9", "master-1"));
    EXPECT_FALSE(naturalLess("agent-1", "agent-1"));
    EXPECT_TRUE(naturalLess("a1", "a01b"));
}

TEST(Waves, MastersOneAtATimeThenAgentsInWavesOfMaxParallel) {
    std::vector<PlanNode> nodes;
    for (int i = 12; i >= 1; --i) nodes.push_back({"agent-" + std::to_string(i), "agent"});
    nodes.push_back({"master-2", "master"});
    nodes.push_back({"master-1", "master"});
    auto waves = planWaves(nodes, 5);
    ASSERT_EQ(waves.size(), 5u);
    EXPECT_EQ(waves[0].role, "master");
    EXPECT_EQ(waves[0].nodes, std::vector<std::string>{"master-1"});
    EXPECT_EQ(waves[1].nodes, std::vector<std::string>{"master-2"});
    EXPECT_EQ(waves[2].role, "agent");
    EXPECT_EQ(waves[2].nodes,
              (std::vector<std::string>{"agent-1", "agent-2", "agent-3", "agent-4", "agent-5"}));
    EXPECT_EQ(waves[3].nodes.front(), "agent-6");
    EXPECT_EQ(waves[4].nodes, (std::vector<std::string>{"agent-11", "agent-12"}));
}

TEST(Waves, OtherRolesComeLastOneAtATimeAndEmptyFleetsHaveNoWaves) {
    auto waves = planWaves({{"gw-1", "gateway"}, {"agent-1", "agent"}, {"master-1", "master"}}, 10);
    ASSERT_EQ(waves.size(), 3u);
    EXPECT_EQ(waves[0].role, "master");
    EXPECT_EQ(waves[1].role, "agent");
    EXPECT_EQ(waves[2].role, "gateway");
    EXPECT_TRUE(planWaves({}, 10).empty());
}

TEST(Waves, TenThousandAgentsInWavesOfAHundred) {
    std::vector<PlanNode> nodes;
    for (int i = 1; i <= 10000; ++i) nodes.push_back({"agent-" + std::to_string(i), "agent"});
    auto waves = planWaves(nodes, 100);
    ASSERT_EQ(waves.size(), 100u);
    for (const auto& w : waves) EXPECT_EQ(w.nodes.size(), 100u);
    EXPECT_EQ(waves.back().nodes.back(), "agent-10000");
}

}  // namespace
}  // namespace hoist::deploy_coordinator
