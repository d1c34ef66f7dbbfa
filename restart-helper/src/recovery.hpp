#pragma once

// What `restart-helper recover` (and every swap, before it starts) does with what a crash left:
// a pure decision from the facts on disk, so that each case is a row in a table-driven test.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pkgmgr/journal.hpp"
#include "pkgmgr/status.hpp"

namespace hoist::restart_helper {

/// What the node looks like when recovery starts.
struct RecoveryFacts {
    /// The open transaction (run/txn.json), if any.
    std::optional<pkgmgr::Journal> journal;
    /// The generation `current` points at, if any.
    std::optional<std::int64_t> current;
    /// recover was asked to bring the service up (not a swap's own pre-check).
    bool start_service = false;
    bool service_running = false;
};

enum class RecoveryAction {
    /// Nothing to do: no transaction, and the service is as it should be.
    none,
    /// No transaction, but the current generation's service is down: start it.
    start_service,
    /// The transaction had ended (a terminal state): close it.
    close,
    /// A rollback was under way: finish it.
    continue_rollback,
    /// A bootstrap died before any generation was activated: end it as failed.
    fail_bootstrap,
    /// A bootstrap whose generation became current: adopt it as the target and finish.
    adopt_bootstrap,
    /// The switch happened: finish the swap (start, check; roll back if unhealthy).
    forward,
    /// A first swap on a node with no generation: activate the target, then finish.
    activate_then_forward,
    /// The switch did not happen (or went elsewhere): roll back to the old generation.
    roll_back,
};

std::string_view actionName(RecoveryAction action);

RecoveryAction decideRecovery(const RecoveryFacts& facts);

}  // namespace hoist::restart_helper
