#pragma once

// The path rules a package's entries obey, shared by extraction (which refuses) and pack
// (which refuses to produce what extraction would refuse).

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace hoist::pkgmgr::rules {

enum class EntryType { File, Dir, Symlink, Hardlink };

/// Splits an entry path into its parts: "./" prefixes, "." parts and a trailing "/" are
/// tolerated; an absolute path, a ".." part, an over-long path or part are refused.
/// The error message is the rule alone ("'..' is not allowed"); callers add the entry.
/// An empty result is the package root itself.
Result<std::vector<std::string>> splitEntryPath(std::string_view path, std::size_t max_length);

/// At the root only pkginfo.json (a regular file) and the well-known folders (folders).
Result<void> checkRoot(const std::vector<std::string>& parts, EntryType type);

/// A symlink at `parts` pointing at `target` stays inside the package: relative, '..' only
/// as a leading run that climbs no higher than the package root. With every link checked
/// this way and links never written through, following any chain of links stays inside.
Result<void> checkSymlinkTarget(const std::vector<std::string>& parts, std::string_view target);

/// A path as a message may show it: unchanged when it is UTF-8, else each byte at or above
/// 0x80 written as \xNN, so a refusal never carries bytes a terminal or JSON cannot hold.
std::string printable(std::string_view path);

std::string joinParts(const std::vector<std::string>& parts, std::size_t count);
inline std::string joinParts(const std::vector<std::string>& parts) {
    return joinParts(parts, parts.size());
}

}  // namespace hoist::pkgmgr::rules
