#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <mutex>

#include "core/sqlite.hpp"
#include "deploy_coordinator/state.hpp"

// State's private parts, shared by state.cpp and state_holds.cpp.

namespace hoist::deploy_coordinator {

struct State::Impl {
    Impl(sqlite::Database database, sqlite::Database holds_database)
        : db(std::move(database)), holds_db(std::move(holds_database)) {}
    /// The state file: registry, deployments, the audit log. Under `mutex`.
    sqlite::Database db;
    std::recursive_mutex mutex;
    /// The holds file: the holds, and the audit events of hold changes not yet folded into the
    /// state file's log. Under `holds_mutex` (taken after `mutex` when both are).
    sqlite::Database holds_db;
    std::mutex holds_mutex;
    /// The newest journal sequence number written to the holds file, and the newest the state
    /// file's log holds (under `mutex`): a fold is due while they differ.
    std::atomic<std::int64_t> journal_seq{0};
    std::int64_t folded_seq = 0;
};

/// Opens (creating when absent) the holds file beside the state file `state_path`, with the
/// same policy for a damaged file (`init`: start over, else Corrupt).
Result<sqlite::Database> openHoldsFile(const std::filesystem::path& state_path, bool init);

}  // namespace hoist::deploy_coordinator
