#pragma once

#include <sys/types.h>
#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "core/fd.hpp"

namespace hoist::files {

namespace fs = std::filesystem;

/// Writes data to a temporary file beside `path`, fsyncs it, renames it over `path` and
/// fsyncs the folder: readers see the old bytes or the new ones, never a mix. With
/// `Durability::Atomic` nothing is synced (for caches rebuilt when lost): still never a mix,
/// but a crash may leave the old bytes or an empty file.
enum class Durability { Synced, Atomic };
Result<void> writeFileAtomic(const fs::path& path, std::string_view data, mode_t mode = 0644,
                             Durability durability = Durability::Synced);
/// Reads a whole file; Invalid when it is larger than max_bytes, NotFound when absent.
Result<std::string> readFile(const fs::path& path, size_t max_bytes = 64u << 20);
/// Reads a secret (a token) from a file of at most 64 KiB, trimmed of surrounding white space.
/// `what` names it in errors ("token file"): NotFound or Io as readFile, Invalid "WHAT 'PATH'
/// is empty" when nothing is left. The one way hoist reads a token file.
Result<std::string> readSecretFile(const fs::path& path, std::string_view what);
/// write(2) until all of `data` is written (retrying EINTR and short writes); Io naming
/// `path` on failure. The one write loop over a raw descriptor.
Result<void> writeAll(int fd, std::string_view data, const fs::path& path);
/// fsync(2) on a file or a folder.
Result<void> fsyncPath(const fs::path& path);
/// rename(2) then fsync of the destination's folder (and the source's, when different).
Result<void> renameDurable(const fs::path& from, const fs::path& to);
/// Points `link` at `target` atomically: a new symlink under a temporary name, rename(2)
/// over `link`, fsync of the folder.
Result<void> swapSymlink(const fs::path& link, const fs::path& target);
/// mkdir -p; Io on failure.
Result<void> makeDirs(const fs::path& path);
/// rm -rf that reports failure instead of throwing; absent is fine.
Result<void> removeTree(const fs::path& path);
/// A name for a temporary sibling: "<dir>/.tmp-<stem>-<random>".
fs::path tempSibling(const fs::path& path);
/// Removes the temporary siblings of `path` a killed writer left behind; returns how many.
/// Only for a caller that knows no writer of `path` runs now (it holds the writers' lock, or
/// the one process that writes it is gone).
Result<int> removeTempSiblings(const fs::path& path);

/// A folder removed (recursively) when this object dies, unless keep() was called.
class TempDir {
public:
    /// Creates "<parent>/<prefix><random>" with mode 0700.
    static Result<TempDir> create(const fs::path& parent, std::string_view prefix);
    /// Creates one under the system temporary folder.
    static Result<TempDir> createSystem(std::string_view prefix);
    TempDir(TempDir&& other) noexcept;
    TempDir& operator=(TempDir&& other) noexcept;
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir();

    const fs::path& path() const { return path_; }
    /// Stops the destructor from removing the folder (after it was renamed into place).
    void keep() { path_.clear(); }

private:
    explicit TempDir(fs::path path) : path_(std::move(path)) {}
    fs::path path_;
};

/// An exclusive flock(2) on a lock file, released when the object dies (or the process does).
class FileLock {
public:
    /// Waits up to `wait` for the lock (zero: try once). Busy with `what` named when another
    /// process holds it: "another operation holds the lock on /opt/hoist (stage); try again".
    static Result<FileLock> acquire(const fs::path& lock_file, std::chrono::milliseconds wait,
                                    std::string_view what);

private:
    explicit FileLock(UniqueFd fd) : fd_(std::move(fd)) {}
    UniqueFd fd_;
};

/// An exclusive flock(2) on a lock file that also names its holder: the holder's pid is written
/// in the file. Held until the object dies or the process does (a SIGKILL releases it too), so
/// a stale file never blocks. For "one process per resource" (a coordinator's state file).
class PidLock {
public:
    /// Tries once. Busy when another process holds it, naming `what`, the pid written in the
    /// file and the lock file: "state file x.db is in use by pid 4242 (it holds x.db.lock)".
    /// Io when the file cannot be opened or written.
    static Result<PidLock> acquire(const fs::path& lock_file, std::string_view what);

private:
    explicit PidLock(UniqueFd fd) : fd_(std::move(fd)) {}
    UniqueFd fd_;
};

}  // namespace hoist::files

namespace hoist {
/// Fault injection: when the environment variable HOIST_CRASH_AT equals `point`, the process
/// ends at once with _exit(kCrashExitCode), as a power cut or SIGKILL would leave it.
void crashPoint(std::string_view point);
inline constexpr int kCrashExitCode = 86;
}  // namespace hoist
