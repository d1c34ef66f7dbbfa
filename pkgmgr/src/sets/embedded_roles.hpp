#pragma once

#include <string_view>
#include <utility>
#include <vector>

namespace hoist::pkgmgr {

/// The role rules compiled in from layouts/roles/<role>.json: (role, file text), in the
/// order CMake lists them.
const std::vector<std::pair<std::string_view, std::string_view>>& embeddedRoles();

}  // namespace hoist::pkgmgr
