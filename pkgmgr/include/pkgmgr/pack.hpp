#pragma once

#include <filesystem>

#include "core/error.hpp"
#include "pkgmgr/package.hpp"

namespace hoist::pkgmgr {

struct PackResult {
    PackageRef ref;
    PkgInfo info;
    std::filesystem::path file;
};

/// Packs a package folder (pkginfo.json + well-known folders) into a zstd tarball whose bytes
/// depend only on the folder's content: sorted entries, mtime 0, uid/gid 0 with no names,
/// modes normalised to 0755/0644 (executable bit kept). Validates pkginfo.json and the root
/// first. Writes `out` atomically; when `out` is empty, writes "<id>.tar.zst" in the current
/// folder.
Result<PackResult> packDirectory(const std::filesystem::path& dir,
                                 const std::filesystem::path& out);

}  // namespace hoist::pkgmgr
