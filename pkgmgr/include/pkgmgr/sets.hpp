#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "pkgmgr/semver.hpp"
#include "pkgmgr/store.hpp"

namespace hoist::pkgmgr {

/// How many packages of a kind a role's set may hold; max < 0 means no upper bound.
struct KindCount {
    int min = 0;
    int max = -1;
};

/// A role's rules, from layouts/roles/<role>.json (compiled in as the embedded default;
/// --layouts DIR or HOIST_LAYOUTS reads another folder). Nothing here is hard-coded.
struct RoleRules {
    std::string role;
    /// Kinds not listed are not allowed in the set.
    std::map<std::string, KindCount> kinds;
    /// The kind whose package's "service" the restart helper runs.
    std::string service_kind = "mesos";

    static Result<RoleRules> parse(std::string_view text, std::string_view ctx);
    /// Reads <layouts_dir>/roles/<role>.json, or the embedded copy when layouts_dir is empty.
    static Result<RoleRules> load(std::string_view role,
                                  const std::filesystem::path& layouts_dir = {});
};

/// Checks every rule of DESIGN.md "Active sets": unique names, kind counts, requires,
/// compatible, no two packages putting the same path into a well-known folder, no
/// conflicting environment variables. Invalid, naming the rule and the packages:
/// "set: package 'mesos--2.0' requires 'libev', which the set does not hold".
Result<void> validateSet(const std::vector<StoredPackage>& set, const RoleRules& rules);

}  // namespace hoist::pkgmgr
