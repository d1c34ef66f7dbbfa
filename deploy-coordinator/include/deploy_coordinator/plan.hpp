#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace hoist::deploy_coordinator {

/// How many agents may be in flight: a count ("100") or a percentage of the agents ("10%",
/// rounded up, at least 1). Invalid for anything else: "max_parallel '0' must be a positive
/// count or a percentage such as 10%".
Result<std::int64_t> resolveMaxParallel(std::string_view text, std::int64_t agents);
/// Checks the syntax of max_parallel without a fleet size.
Result<void> validateMaxParallel(std::string_view text);

/// A node as the planner sees it.
struct PlanNode {
    std::string id;
    std::string role;
};

/// One wave: the nodes restarted together.
struct Wave {
    std::string role;
    std::vector<std::string> nodes;
};

/// Masters one at a time (one wave each, in id order), then agents in waves of max_parallel
/// (in id order); other roles after the agents, one at a time. Ids compare naturally, so
/// agent-2 comes before agent-10.
std::vector<Wave> planWaves(std::vector<PlanNode> nodes, std::int64_t max_parallel);

/// Orders ids the way people count: "agent-2" < "agent-10".
bool naturalLess(std::string_view a, std::string_view b);

/// Rank of a role in the rollout: masters 0, agents 1, others 2.
int roleRank(std::string_view role);

}  // namespace hoist::deploy_coordinator
