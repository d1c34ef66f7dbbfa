#pragma once

#include <optional>
#include <string_view>

namespace hoist::pkgmgr {

/// The restart helper's steps, as reported in status pings (pkgmgr/wire.hpp) and journaled in
/// txn.json (pkgmgr/journal.hpp).
/// stopping -> swapping -> starting -> checking -> healthy, or
/// ... -> rolling_back -> rolled_back | failed. "staged" and "staging" come from stage.
bool isTerminalState(std::string_view state);
bool isKnownState(std::string_view state);

/// The same steps, typed: what a reader of pings and journals compares (never the strings).
enum class HelperStep {
    staging,
    staged,
    stopping,
    swapping,
    starting,
    checking,
    healthy,
    rolling_back,
    rolled_back,
    failed,
    bootstrapping,
};
/// The step's wire form ("rolled_back").
std::string_view toString(HelperStep step);
/// nullopt for a string that is no step.
std::optional<HelperStep> parseHelperStep(std::string_view text);
/// healthy, rolled_back or failed: the transaction has ended.
bool isTerminal(HelperStep step);

}  // namespace hoist::pkgmgr
