#pragma once

// The well-known folders of a set's packages, merged. Only folders that two or more packages
// hold are read: a path below a folder one package holds alone cannot clash with another
// package, and a generation links that folder whole. validateSet takes the clashes from it,
// the generation build the folders and links.

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "pkgmgr/sets.hpp"
#include "pkgmgr/store.hpp"

namespace hoist::pkgmgr {

struct MergedTree {
    /// Folders several packages hold, parents before their children.
    std::vector<std::string> shared;
    /// Paths one package provides alone (a folder it holds alone, a file or a symlink), with
    /// that package's index in the set.
    std::vector<std::pair<std::string, std::size_t>> owned;
    struct Clash {
        std::string path;
        std::size_t first = 0;
        std::size_t second = 0;
    };
    /// Paths two packages both provide where one of them is not a folder.
    std::vector<Clash> clashes;
};

Result<MergedTree> mergeWellKnownFolders(const std::vector<StoredPackage>& set);

/// validateSet with the set's merged folders already read (stage reads them once for the
/// validation and the build).
Result<void> validateSet(const std::vector<StoredPackage>& set, const RoleRules& rules,
                         const MergedTree& merged);

}  // namespace hoist::pkgmgr
