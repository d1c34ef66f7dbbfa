#include "pkgmgr/status.hpp"

#include <array>
#include <utility>

namespace hoist::pkgmgr {

namespace {
constexpr std::array<std::pair<HelperStep, std::string_view>, 11> kSteps = {{
    {HelperStep::staging, "staging"},
    {HelperStep::staged, "staged"},
    {HelperStep::stopping, "stopping"},
    {HelperStep::swapping, "swapping"},
    {HelperStep::starting, "starting"},
    {HelperStep::checking, "checking"},
    {HelperStep::healthy, "healthy"},
    {HelperStep::rolling_back, "rolling_back"},
    {HelperStep::rolled_back, "rolled_back"},
    {HelperStep::failed, "failed"},
    {HelperStep::bootstrapping, "bootstrapping"},
}};
}  // namespace

std::string_view toString(HelperStep step) {
    for (const auto& [s, text] : kSteps)
        if (s == step) return text;
    return "unknown";
}

std::optional<HelperStep> parseHelperStep(std::string_view text) {
    for (const auto& [s, t] : kSteps)
        if (t == text) return s;
    return std::nullopt;
}

bool isTerminal(HelperStep step) {
    return step == HelperStep::healthy || step == HelperStep::rolled_back ||
           step == HelperStep::failed;
}

bool isTerminalState(std::string_view state) {
    auto step = parseHelperStep(state);
    return step && isTerminal(*step);
}

bool isKnownState(std::string_view state) {
    return parseHelperStep(state).has_value();
}

}  // namespace hoist::pkgmgr
