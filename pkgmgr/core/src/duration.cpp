#include "core/duration.hpp"

#include <charconv>

namespace hoist::duration {

namespace {
struct Unit {
    std::string_view name;
    std::int64_t ms;
};
constexpr Unit kUnits[] = {
    {"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1000}, {"ms", 1}};
constexpr std::int64_t kMaxMs = 100LL * 86'400'000;
}  // namespace

Result<std::int64_t> parseMs(std::string_view text, std::string_view what) {
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    std::string_view unit(end, static_cast<size_t>(text.data() + text.size() - end));
    std::int64_t scale = unit.empty() ? 1 : 0;
    for (const auto& u : kUnits)
        if (unit == u.name) scale = u.ms;
    if (ec != std::errc() || end == text.data() || value < 0 || scale == 0)
        return fail(Errc::Invalid, what, " '", text,
                    "' must be a whole number and a unit: ms, s, m, h or d (\"30s\", \"5m\")");
    if (value > kMaxMs / scale) return fail(Errc::Invalid, what, " '", text, "' is over 100 days");
    return value * scale;
}

std::string format(std::int64_t ms) {
    if (ms == 0) return "0s";
    for (const auto& u : kUnits)
        if (ms % u.ms == 0) return std::to_string(ms / u.ms) + std::string(u.name);
    return std::to_string(ms) + "ms";
}

}  // namespace hoist::duration
