#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace hoist::pkgmgr {

/// The largest MAJOR, MINOR or PATCH a version or range may use: 2^53-1, the limit node-semver
/// enforces, so that hoist and npm-style tools read the same ranges the same way.
inline constexpr std::uint64_t kMaxVersionNumber = 9007199254740991ULL;

/// A semantic version (semver.org 2.0.0): MAJOR.MINOR.PATCH[-pre][+build], one optional
/// leading 'v'. Build metadata is dropped: it does not take part in ordering.
struct SemVer {
    std::uint64_t major = 0;
    std::uint64_t minor = 0;
    std::uint64_t patch = 0;
    std::vector<std::string> pre;

    /// Invalid, naming the rule broken: a missing part, a leading zero, a number above
    /// kMaxVersionNumber, an empty or ill-formed identifier.
    static Result<SemVer> parse(std::string_view text);
    /// MAJOR.MINOR.PATCH[-pre].
    std::string str() const;
};

/// <0, 0 or >0, by semver precedence.
int compare(const SemVer& a, const SemVer& b);

/// Orders any two version strings (semantic or not, used to sort what a repository holds):
/// numeric parts numerically, missing parts as 0, a pre-release ('-' or '~') before its release.
int compareVersions(std::string_view a, std::string_view b);

/// Checks a version range without testing a version against it; Invalid naming the rule.
///
/// The syntax and meaning are node-semver's (without its options): comparators >=, <=, >, <,
/// = (and hoist's == and !=, the latter with a full version only) before full or partial
/// versions; partial versions and x/X/* are X-ranges ("1.11" is ">=1.11.0 <1.12.0-0", ">1.11"
/// is ">=1.12.0", "<=1.11" is "<1.12.0-0"); ^ and ~ ranges; "A - B" hyphen ranges; "||"
/// between alternatives. Refused, naming the rule: an empty range or alternative, '~>',
/// a comparator that can match nothing ("<*"), a number after a wildcard, numbers above
/// kMaxVersionNumber, leading zeros, a version longer than 64 characters.
Result<void> validateRange(std::string_view range);

/// The range as primitive comparators, in node-semver's canonical form ("1.11" ->
/// ">=1.11.0 <1.12.0-0", "^1.2.3 || 2" -> ">=1.2.3 <2.0.0-0||>=2.0.0 <3.0.0-0", "*" -> "*").
Result<std::string> normalizeRange(std::string_view range);

/// True when `version` is in `range`. A pre-release version is only in a range whose
/// alternative names a pre-release of the same MAJOR.MINOR.PATCH (semver's rule).
/// Invalid when the range is refused by validateRange, or when `version` is not a semantic
/// version: hoist installs such versions ("latest", "4.33") but does not guess their order
/// against a range.
Result<bool> versionSatisfies(std::string_view version, std::string_view range);

}  // namespace hoist::pkgmgr
