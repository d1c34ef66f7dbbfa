#pragma once

// The per-package manifest recorded at add time (store/<sha256>/.hoist/manifest.json), which
// `verify` re-checks: every entry with its type, mode, and for files size and sha256.

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "pkgmgr/package.hpp"

namespace hoist::pkgmgr::manifest {

/// Folder inside a store entry for what the store records about the package. A package can't
/// hold it: only pkginfo.json and the well-known folders are allowed at its root.
inline constexpr const char* kDir = ".hoist";
inline constexpr const char* kManifestFile = ".hoist/manifest.json";
inline constexpr const char* kRefFile = ".hoist/package.json";

/// Modes of complete store entries: everything is read-only.
inline constexpr unsigned kDirMode = 0555;
inline constexpr unsigned kFileMode = 0444;
inline constexpr unsigned kExecMode = 0555;

enum class Type { File, Dir, Symlink };

struct Entry {
    std::string path;
    Type type = Type::File;
    unsigned mode = kFileMode;
    std::uint64_t size = 0;
    std::string sha256;  ///< files
    std::string target;  ///< symlinks
};

struct Manifest {
    PackageRef ref;
    std::uint64_t unpacked_bytes = 0;
    std::vector<Entry> entries;  ///< sorted by path
};

std::string toJson(const Manifest& manifest);
Result<Manifest> parse(std::string_view text);

}  // namespace hoist::pkgmgr::manifest
