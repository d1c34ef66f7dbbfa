#pragma once

// Safe extraction of a package tarball into a staging folder.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "manifest.hpp"
#include "pkgmgr/store.hpp"

namespace hoist::pkgmgr::extract {

struct Extracted {
    /// SHA-256 and size of every byte read from the tarball's fd (to its end).
    std::string sha256;
    std::uint64_t size = 0;
    /// The bytes of pkginfo.json (not parsed here).
    std::string pkginfo;
    std::uint64_t unpacked_bytes = 0;
    /// Every entry made, implicit parent folders included, sorted by path.
    std::vector<manifest::Entry> entries;
};

/// Reads the tarball from `tarball_fd` once (zstd, xz, gzip or plain tar, detected by
/// content), hashing the bytes as they stream, and writes the allowed entries below the
/// folder `dest_fd` with openat/O_NOFOLLOW: regular files (mode 0444, or 0555 when any
/// executable bit was set), folders (0755; the caller makes them read-only), symlinks whose
/// target stays inside the package, hardlinks to regular files earlier in the package.
/// Everything else is refused (Invalid) naming `what`, the entry and the rule; unreadable or
/// truncated archives are Corrupt. On failure the caller removes dest. Files are not fsynced.
Result<Extracted> extractTarball(int tarball_fd, int dest_fd, const ExtractLimits& limits,
                                 std::string_view what);

}  // namespace hoist::pkgmgr::extract
