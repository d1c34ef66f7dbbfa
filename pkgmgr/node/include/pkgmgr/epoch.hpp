#pragma once

#include <cstdint>
#include <string_view>

#include "core/error.hpp"
#include "pkgmgr/layout.hpp"

/// Fencing at the node: the deploy coordinator's leadership epoch goes with every command it
/// sends a node (stage, restart, rollback, and its answers to a pull node's ask). The node
/// keeps the highest epoch it has seen in run/epoch.json and refuses a command under a lower
/// one, so a coordinator that lost its leadership (paused, partitioned) and wakes up cannot
/// act on a node its successor already commands.
///
/// Epoch 0 means "no epoch": a coordinator that does not fence (one before fencing, or a
/// single SQLite coordinator that never claimed a term) or an admin's own request. Such a
/// command is neither checked nor recorded.
namespace hoist::pkgmgr {

/// The highest epoch this node has seen (0: none yet). Corrupt, naming the file, when
/// run/epoch.json does not read. Thread-safe.
Result<std::int64_t> seenEpoch(const NodeLayout& layout);

/// Admits `what` (a command, "restart") sent under `epoch`: 0 is admitted unchecked; an
/// epoch below the highest seen is refused (Conflict, staleEpoch); a higher one is written
/// to run/epoch.json (temporary file, fsync, rename, fsync of run/) before this returns, so
/// it survives a crash or a restart of `pkgmgr serve`. Serialised across threads and
/// processes (`pkgmgr serve`, the restart helper) by an flock on run/epoch.lock.
Result<void> admitEpoch(const NodeLayout& layout, std::int64_t epoch, std::string_view what);

/// The refusal of `what` under `epoch` by a node that has seen `seen`, with both epochs named.
Error staleEpoch(std::string_view what, std::int64_t epoch, std::int64_t seen);

}  // namespace hoist::pkgmgr
