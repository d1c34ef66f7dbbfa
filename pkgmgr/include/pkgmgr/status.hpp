#pragma once

#include <string_view>

namespace hoist::pkgmgr {

/// The restart helper's steps, as reported in status pings (pkgmgr/wire.hpp) and journaled in
/// txn.json (pkgmgr/journal.hpp).
/// stopping -> swapping -> starting -> checking -> healthy, or
/// ... -> rolling_back -> rolled_back | failed. "staged" and "staging" come from stage.
inline constexpr std::string_view kTerminalStates[] = {"healthy", "rolled_back", "failed"};
bool isTerminalState(std::string_view state);
bool isKnownState(std::string_view state);

}  // namespace hoist::pkgmgr
