#pragma once

// The verified stamp of a store entry (<root>/run/verified/<sha256>): what every file, folder
// and symlink of the entry looked like (inode, ctime, size) when its content was last known to
// match the manifest, at add time or after a full re-hash. Before a package is used, a stamp
// that still matches what the filesystem reports stands for a re-hash: no write, truncation,
// chmod, rename, replacement, link, addition or removal through the filesystem leaves an
// inode's ctime (or its folder's) unchanged, and ctime cannot be set from user space.
// A stamp is a cache: a missing, damaged or stale one costs a full re-hash, never a refusal.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/fd.hpp"
#include "manifest.hpp"

namespace hoist::pkgmgr::stamp {

namespace fs = std::filesystem;

/// The folder of the stamps of a node root.
fs::path folder(const fs::path& root);

/// True when the stamp of `sha256` exists, is whole, and every path it covers reports the
/// inode, size and ctime it recorded (the entry's folder: its inode and mtime).
bool holds(const fs::path& root, const std::string& sha256, const fs::path& entry);

/// Removes the stamp of `sha256` (absent is fine).
void drop(const fs::path& root, const std::string& sha256);

/// A stamp being taken. begin() first creates the stamp's temporary file, whose own timestamp
/// T0 comes from the filesystem's clock, then records every path; the caller then checks the
/// content (or has just written it) and commit()s. An entry whose timestamp is not older than
/// T0 could change again within the same clock tick without its ctime moving, so then nothing
/// is written ("racy", as git names it): the next use re-hashes instead.
class Pending {
public:
    /// Io when the stamp folder or the temporary file cannot be made, or an entry cannot be
    /// inspected (a missing one: the caller's check reports it). With `wait_for_clock`, a
    /// racy stamp waits (up to 50 ms) for the filesystem's clock to pass the newest of its
    /// times and records every path again, so that it is racy only if a path changed meanwhile.
    static Result<Pending> begin(const fs::path& root, const std::string& sha256,
                                 const fs::path& entry, const std::vector<manifest::Entry>& entries,
                                 bool wait_for_clock);
    Pending(Pending&& other) noexcept;
    Pending& operator=(Pending&&) = delete;
    ~Pending();

    /// Writes the stamp and renames it into place (not synced: a lost stamp costs a re-hash).
    /// False, writing nothing, when an entry was racy.
    Result<bool> commit();

private:
    Pending() = default;
    fs::path tmp_;
    fs::path final_;
    UniqueFd fd_;
    std::string text_;
    bool racy_ = false;
};

}  // namespace hoist::pkgmgr::stamp
