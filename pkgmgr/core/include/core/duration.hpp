#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace hoist::duration {

/// Milliseconds from "1500ms", "30s", "5m", "2h" or "1d" (a whole number and a unit; a bare
/// number is milliseconds). Invalid, naming `what`, for anything else or past 100 days.
Result<std::int64_t> parseMs(std::string_view text, std::string_view what);

/// The shortest exact form: 0 -> "0s", 30000 -> "30s", 300000 -> "5m", 1500 -> "1500ms".
std::string format(std::int64_t ms);

}  // namespace hoist::duration
