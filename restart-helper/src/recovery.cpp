#include "recovery.hpp"

namespace hoist::restart_helper {

std::string_view actionName(RecoveryAction action) {
    switch (action) {
        case RecoveryAction::none:
            return "none";
        case RecoveryAction::start_service:
            return "start_service";
        case RecoveryAction::close:
            return "close";
        case RecoveryAction::continue_rollback:
            return "continue_rollback";
        case RecoveryAction::fail_bootstrap:
            return "fail_bootstrap";
        case RecoveryAction::adopt_bootstrap:
            return "adopt_bootstrap";
        case RecoveryAction::forward:
            return "forward";
        case RecoveryAction::activate_then_forward:
            return "activate_then_forward";
        case RecoveryAction::roll_back:
            return "roll_back";
    }
    return "unknown";
}

RecoveryAction decideRecovery(const RecoveryFacts& facts) {
    const auto& cur = facts.current;
    if (!facts.journal) {
        if (facts.start_service && cur && !facts.service_running)
            return RecoveryAction::start_service;
        return RecoveryAction::none;
    }
    const pkgmgr::Journal& j = *facts.journal;
    if (pkgmgr::isTerminalState(j.state)) return RecoveryAction::close;
    auto step = pkgmgr::parseHelperStep(j.state);
    if (step == pkgmgr::HelperStep::rolling_back) return RecoveryAction::continue_rollback;
    if (j.kind == "bootstrap" && j.to_generation == 0)
        return cur ? RecoveryAction::adopt_bootstrap : RecoveryAction::fail_bootstrap;
    // While "stopping", the switch has not been made yet even when current already names the
    // target (a swap to the generation that runs is a restart in place).
    if (cur && *cur == j.to_generation &&
        (step != pkgmgr::HelperStep::stopping || j.from_generation == j.to_generation))
        return RecoveryAction::forward;
    if (j.from_generation == 0) return RecoveryAction::activate_then_forward;
    return RecoveryAction::roll_back;
}

}  // namespace hoist::restart_helper
