#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <utility>

#include "core/sqlite.hpp"
#include "deploy_coordinator/state.hpp"

// State's private parts, shared by state.cpp and state_holds.cpp.

namespace hoist::deploy_coordinator {

struct State::Impl {
    Impl(sqlite::Database database, sqlite::Database holds_database,
         sqlite::Database holds_checkpointer)
        : db(std::move(database)),
          holds_db(std::move(holds_database)),
          holds_checkpoint_db(std::move(holds_checkpointer)) {}
    /// The state file: registry, deployments, the audit log. Under `mutex`.
    sqlite::Database db;
    std::recursive_mutex mutex;
    /// The holds file: the holds, and the audit events of hold changes not yet folded into the
    /// state file's log. Under `holds_mutex` (taken after `mutex` when both are).
    sqlite::Database holds_db;
    std::mutex holds_mutex;
    /// A second connection to the holds file that checkpoints it after a fold, off the halt's
    /// path (holds_db never checkpoints on commit). Under `checkpoint_mutex`.
    sqlite::Database holds_checkpoint_db;
    std::mutex checkpoint_mutex;
    /// The newest journal sequence number written to the holds file, and the newest the state
    /// file's log holds (under `mutex`): a fold is due while they differ.
    std::atomic<std::int64_t> journal_seq{0};
    std::int64_t folded_seq = 0;
};

/// What lastCommitTiming() returns: set by State::commit and State::commitHolds.
inline thread_local CommitTiming last_commit_timing;

/// Opens (creating when absent) the holds file beside the state file `state_path`, with the
/// same policy for a damaged file (`init`: start over, else Corrupt): the connection that
/// writes it and the one that checkpoints it.
Result<std::pair<sqlite::Database, sqlite::Database>> openHoldsFile(
    const std::filesystem::path& state_path, bool init);
/// Copies the holds file's WAL into it (PASSIVE: never waits for a writer), so that the WAL
/// starts over from its beginning and a hold's commit overwrites blocks the file already has.
void checkpointHolds(State::Impl& impl);

}  // namespace hoist::deploy_coordinator
