#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hoist::strings {

std::vector<std::string> split(std::string_view text, char sep);
std::string join(const std::vector<std::string>& parts, std::string_view sep);
std::string_view trim(std::string_view text);
std::string toLower(std::string_view text);
/// Levenshtein distance, for "did you mean" hints.
size_t editDistance(std::string_view a, std::string_view b);
/// The closest candidate within a distance of max(2, len/3), or "" when none is close.
std::string didYouMean(std::string_view word, const std::vector<std::string>& candidates);
/// True when `text` is well-formed UTF-8 (no overlong forms, surrogates or bytes past U+10FFFF);
/// checked with RapidJSON's validator, the one JSON output relies on.
bool isUtf8(std::string_view text);
/// Human-readable byte count: 1.5 MiB.
std::string humanBytes(double bytes);

}  // namespace hoist::strings
