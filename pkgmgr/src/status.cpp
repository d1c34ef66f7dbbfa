#include "pkgmgr/status.hpp"

#include <algorithm>

namespace hoist::pkgmgr {

namespace {
constexpr std::string_view kStates[] = {"staging",  "staged",   "stopping",     "swapping",
                                        "starting", "checking", "healthy",      "rolling_back",
                                        "rolled_back", "failed", "bootstrapping"};
}

bool isTerminalState(std::string_view state) {
    return std::find(std::begin(kTerminalStates), std::end(kTerminalStates), state) !=
           std::end(kTerminalStates);
}

bool isKnownState(std::string_view state) {
    return std::find(std::begin(kStates), std::end(kStates), state) != std::end(kStates);
}

}  // namespace hoist::pkgmgr
