#include "recovery.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace hoist::restart_helper {
namespace {

constexpr std::optional<std::int64_t> kNone = std::nullopt;

struct Row {
    std::string name;
    /// "" for no open transaction.
    std::string state;
    std::string kind = "swap";
    std::int64_t from = 3;
    std::int64_t to = 4;
    std::optional<std::int64_t> current;
    bool start_service = true;
    bool running = false;
    RecoveryAction expected;
};

std::ostream& operator<<(std::ostream& os, const Row& row) {
    return os << row.name;
}

RecoveryFacts factsOf(const Row& row) {
    RecoveryFacts facts;
    if (!row.state.empty()) {
        pkgmgr::Journal j;
        j.operation = "op-test";
        j.kind = row.kind;
        j.state = row.state;
        j.from_generation = row.from;
        j.to_generation = row.to;
        facts.journal = j;
    }
    facts.current = row.current;
    facts.start_service = row.start_service;
    facts.service_running = row.running;
    return facts;
}

class Recovery : public ::testing::TestWithParam<Row> {};

TEST_P(Recovery, DecidesFromTheJournalAndTheNode) {
    const Row& row = GetParam();
    auto action = decideRecovery(factsOf(row));
    EXPECT_EQ(actionName(action), actionName(row.expected)) << row.name;
}

using A = RecoveryAction;

// Every journal state the helper writes, against where `current` points and whether the
// service runs. A swap from generation 3 to 4 unless a row says otherwise.
const std::vector<Row> kRows = {
    // No transaction: only the service's state matters, and only when recover starts it.
    {"idle_service_running", "", "swap", 0, 0, 3, true, true, A::none},
    {"idle_service_down_is_started", "", "swap", 0, 0, 3, true, false, A::start_service},
    {"idle_service_down_swap_precheck_leaves_it", "", "swap", 0, 0, 3, false, false, A::none},
    {"idle_no_generation_nothing_to_start", "", "swap", 0, 0, kNone, true, false, A::none},

    // Ended transactions are closed, whatever current says.
    {"healthy_is_closed", "healthy", "swap", 3, 4, 4, true, true, A::close},
    {"rolled_back_is_closed", "rolled_back", "swap", 3, 4, 3, true, true, A::close},
    {"failed_is_closed", "failed", "swap", 3, 4, 3, true, false, A::close},

    // A rollback under way is finished, wherever current points.
    {"rolling_back_on_new_continues", "rolling_back", "swap", 3, 4, 4, true, false,
     A::continue_rollback},
    {"rolling_back_on_old_continues", "rolling_back", "swap", 3, 4, 3, true, false,
     A::continue_rollback},

    // Before the switch: stopping with current still on the old generation rolls back.
    {"stopping_before_switch_rolls_back", "stopping", "swap", 3, 4, 3, true, false, A::roll_back},
    // current already on the target while "stopping" is not a switch made by this swap.
    {"stopping_current_already_target_rolls_back", "stopping", "swap", 3, 4, 4, true, false,
     A::roll_back},
    // ... unless the swap is a restart in place (from == to).
    {"stopping_restart_in_place_forwards", "stopping", "swap", 4, 4, 4, true, false, A::forward},

    // After the switch: finish forward (start, check).
    {"swapping_after_switch_forwards", "swapping", "swap", 3, 4, 4, true, false, A::forward},
    {"starting_forwards", "starting", "swap", 3, 4, 4, true, false, A::forward},
    {"checking_forwards", "checking", "swap", 3, 4, 4, true, true, A::forward},
    // The switch did not happen (current still old): roll back.
    {"swapping_before_switch_rolls_back", "swapping", "swap", 3, 4, 3, true, false, A::roll_back},
    // current went elsewhere: roll back to the old generation.
    {"checking_current_elsewhere_rolls_back", "checking", "swap", 3, 4, 7, true, false,
     A::roll_back},

    // A first swap on a node with no generation yet: activate the target, then finish.
    {"first_swap_no_current_activates", "swapping", "swap", 0, 4, kNone, true, false,
     A::activate_then_forward},
    {"first_swap_stopping_activates", "stopping", "swap", 0, 4, kNone, true, false,
     A::activate_then_forward},

    // Bootstraps: before a generation was made, fail; once one is current, adopt it.
    {"bootstrap_before_activation_fails", "bootstrapping", "bootstrap", 0, 0, kNone, true, false,
     A::fail_bootstrap},
    {"bootstrap_after_activation_adopts", "bootstrapping", "bootstrap", 0, 0, 1, true, false,
     A::adopt_bootstrap},
    // A bootstrap that knew its generation goes on like a first swap.
    {"bootstrap_known_target_current_forwards", "starting", "bootstrap", 0, 1, 1, true, false,
     A::forward},
    {"bootstrap_known_target_no_current_activates", "starting", "bootstrap", 0, 1, kNone, true,
     false, A::activate_then_forward},
};

INSTANTIATE_TEST_SUITE_P(Decisions, Recovery, ::testing::ValuesIn(kRows),
                         [](const ::testing::TestParamInfo<Row>& row) { return row.param.name; });

TEST(RecoveryActions, EveryActionHasAName) {
    for (auto a : {A::none, A::start_service, A::close, A::continue_rollback, A::fail_bootstrap,
                   A::adopt_bootstrap, A::forward, A::activate_then_forward, A::roll_back})
        EXPECT_NE(actionName(a), "unknown");
}

TEST(RecoveryActions, TheTableCoversEveryAction) {
    std::vector<bool> seen(9, false);
    for (const auto& row : kRows) seen[static_cast<std::size_t>(row.expected)] = true;
    for (std::size_t i = 0; i < seen.size(); ++i)
        EXPECT_TRUE(seen[i]) << actionName(static_cast<RecoveryAction>(i)) << " has no row";
}

}  // namespace
}  // namespace hoist::restart_helper
