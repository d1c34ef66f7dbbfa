#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace hoist::pkgmgr {

/// The restart helper's steps, as reported in status pings and journaled in txn.json.
/// stopping -> swapping -> starting -> checking -> healthy, or
/// ... -> rolling_back -> rolled_back | failed. "staged" and "staging" come from stage.
inline constexpr std::string_view kTerminalStates[] = {"healthy", "rolled_back", "failed"};
bool isTerminalState(std::string_view state);
bool isKnownState(std::string_view state);

/// POSTed to <coordinator>/v1/nodes/<node>/status:
/// {"node", "deployment", "seq", "state", "from_generation", "to_generation", "release",
///  "message", "time"}
struct StatusPing {
    std::string node;
    std::string deployment;
    std::int64_t seq = 0;
    std::string state;
    std::int64_t from_generation = 0;
    std::int64_t to_generation = 0;
    std::string release;
    std::string message;
    std::string time;  ///< RFC 3339 UTC

    static Result<StatusPing> parse(std::string_view text);
    std::string toJson() const;
};

}  // namespace hoist::pkgmgr
