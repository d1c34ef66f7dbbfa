#include "core/files.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cstdlib>
#include <thread>
#include <vector>

#include "core/crypto.hpp"
#include "core/strings.hpp"

namespace hoist::files {

namespace {
fs::path parentOf(const fs::path& path) {
    auto parent = path.parent_path();
    return parent.empty() ? fs::path(".") : parent;
}
}  // namespace

Result<void> writeAll(int fd, std::string_view data, const fs::path& path) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return failErrno(Errc::Io, errno, "cannot write '", path.string(), "'");
        }
        data.remove_prefix(static_cast<size_t>(n));
    }
    return ok();
}

fs::path tempSibling(const fs::path& path) {
    return parentOf(path) / (".tmp-" + path.filename().string() + "-" + crypto::randomHex(6));
}

Result<int> removeTempSiblings(const fs::path& path) {
    auto prefix = ".tmp-" + path.filename().string() + "-";
    auto dir = parentOf(path);
    std::error_code ec;
    std::vector<fs::path> doomed;
    for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
        if (it->path().filename().string().starts_with(prefix)) doomed.push_back(it->path());
    }
    if (ec && ec != std::errc::no_such_file_or_directory)
        return failErrno(Errc::Io, ec.value(), "cannot list '", dir.string(), "'");
    for (const auto& leftover : doomed) {
        if (::unlink(leftover.c_str()) != 0 && errno != ENOENT)
            return failErrno(Errc::Io, errno, "cannot remove '", leftover.string(), "'");
    }
    return static_cast<int>(doomed.size());
}

Result<void> fsyncPath(const fs::path& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return failErrno(Errc::Io, errno, "cannot open '", path.string(), "' to sync it");
    if (::fsync(fd.get()) != 0)
        return failErrno(Errc::Io, errno, "cannot sync '", path.string(), "'");
    return ok();
}

Result<void> writeFileAtomic(const fs::path& path, std::string_view data, mode_t mode,
                             Durability durability) {
    bool sync = durability == Durability::Synced;
    auto tmp = tempSibling(path);
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
    if (!fd) return failErrno(Errc::Io, errno, "cannot create '", tmp.string(), "'");
    auto written = writeAll(fd.get(), data, tmp);
    if (written && ::fchmod(fd.get(), mode) != 0)
        written = failErrno(Errc::Io, errno, "cannot set the mode of '", tmp.string(), "'");
    if (written && sync && ::fsync(fd.get()) != 0)
        written = failErrno(Errc::Io, errno, "cannot sync '", tmp.string(), "'");
    if (written && fd.close() != 0)
        written = failErrno(Errc::Io, errno, "cannot write '", tmp.string(), "'");
    if (!written) {
        ::unlink(tmp.c_str());
        return written;
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        return failErrno(Errc::Io, err, "cannot rename into '", path.string(), "'");
    }
    return sync ? fsyncPath(parentOf(path)) : ok();
}

Result<std::string> readFile(const fs::path& path, size_t max_bytes) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        int err = errno;
        return failErrno(err == ENOENT ? Errc::NotFound : Errc::Io, err, "cannot read '",
                         path.string(), "'");
    }
    std::string out;
    char buffer[65536];
    while (true) {
        ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0) {
            if (errno == EINTR) continue;
            int err = errno;
            return failErrno(Errc::Io, err, "cannot read '", path.string(), "'");
        }
        if (n == 0) break;
        if (out.size() + static_cast<size_t>(n) > max_bytes) {
            return fail(Errc::Invalid, "'", path.string(), "' is larger than ", max_bytes,
                        " bytes");
        }
        out.append(buffer, static_cast<size_t>(n));
    }
    return out;
}

Result<std::string> readSecretFile(const fs::path& path, std::string_view what) {
    auto text = readFile(path, 64 * 1024);
    if (!text) return std::unexpected(withContext(text.error(), what));
    std::string secret(strings::trim(*text));
    if (secret.empty()) return fail(Errc::Invalid, what, " '", path.string(), "' is empty");
    return secret;
}

Result<void> renameDurable(const fs::path& from, const fs::path& to) {
    if (::rename(from.c_str(), to.c_str()) != 0)
        return failErrno(Errc::Io, errno, "cannot rename '", from.string(), "' to '", to.string(),
                         "'");
    HOIST_TRY(fsyncPath(parentOf(to)));
    if (parentOf(from) != parentOf(to)) HOIST_TRY(fsyncPath(parentOf(from)));
    return ok();
}

Result<void> swapSymlink(const fs::path& link, const fs::path& target) {
    auto tmp = tempSibling(link);
    if (::symlink(target.c_str(), tmp.c_str()) != 0)
        return failErrno(Errc::Io, errno, "cannot create the symlink '", tmp.string(), "'");
    if (::rename(tmp.c_str(), link.c_str()) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        return failErrno(Errc::Io, err, "cannot switch the symlink '", link.string(), "'");
    }
    return fsyncPath(parentOf(link));
}

Result<void> makeDirs(const fs::path& path) {
    std::error_code ec;
    fs::create_directories(path, ec);
    if (ec)
        return failErrno(Errc::Io, ec.value(), "cannot create the folder '", path.string(), "'");
    return ok();
}

Result<void> removeTree(const fs::path& path) {
    std::error_code ec;
    // Folders made read-only (complete store entries) must be made writable to be removed.
    if (fs::is_directory(fs::symlink_status(path, ec))) {
        for (auto it = fs::recursive_directory_iterator(path, ec);
             !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
            if (it->is_directory(ec) && !it->is_symlink(ec)) ::chmod(it->path().c_str(), 0755);
        }
        ::chmod(path.c_str(), 0755);
    }
    ec.clear();
    fs::remove_all(path, ec);
    if (ec) return failErrno(Errc::Io, ec.value(), "cannot remove '", path.string(), "'");
    return ok();
}

Result<TempDir> TempDir::create(const fs::path& parent, std::string_view prefix) {
    for (int attempt = 0; attempt < 8; ++attempt) {
        auto path = parent / (std::string(prefix) + crypto::randomHex(8));
        if (::mkdir(path.c_str(), 0700) == 0) return TempDir(path);
        if (errno != EEXIST)
            return failErrno(Errc::Io, errno, "cannot create the folder '", path.string(), "'");
    }
    return fail(Errc::Io, "cannot find a free temporary name under '", parent.string(), "'");
}

Result<TempDir> TempDir::createSystem(std::string_view prefix) {
    const char* tmp = std::getenv("TMPDIR");
    return create(tmp != nullptr && *tmp != '\0' ? fs::path(tmp) : fs::path("/tmp"), prefix);
}

TempDir::TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) {
    other.path_.clear();
}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
    if (this != &other) {
        if (!path_.empty()) (void)removeTree(path_);
        path_ = std::move(other.path_);
        other.path_.clear();
    }
    return *this;
}

TempDir::~TempDir() {
    if (!path_.empty()) (void)removeTree(path_);
}

Result<FileLock> FileLock::acquire(const fs::path& lock_file, std::chrono::milliseconds wait,
                                   std::string_view what) {
    UniqueFd fd(::open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!fd) return failErrno(Errc::Io, errno, "cannot open the lock '", lock_file.string(), "'");
    auto deadline = std::chrono::steady_clock::now() + wait;
    auto pause = std::chrono::milliseconds(2);
    while (true) {
        if (::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) return FileLock(std::move(fd));
        if (errno != EWOULDBLOCK && errno != EINTR) {
            int err = errno;
            return failErrno(Errc::Io, err, "cannot lock '", lock_file.string(), "'");
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return fail(Errc::Busy, "busy: another operation holds the lock '", lock_file.string(),
                        "' (", what, "); try again when it has finished");
        }
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::milliseconds(50));
    }
}

Result<PidLock> PidLock::acquire(const fs::path& lock_file, std::string_view what) {
    UniqueFd fd(::open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!fd) return failErrno(Errc::Io, errno, "cannot open the lock '", lock_file.string(), "'");
    int rc;
    do rc = ::flock(fd.get(), LOCK_EX | LOCK_NB);
    while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        if (errno != EWOULDBLOCK)
            return failErrno(Errc::Io, errno, "cannot lock '", lock_file.string(), "'");
        // The holder writes its pid right after locking: an empty file is one just taken.
        char buf[32] = {};
        auto n = ::pread(fd.get(), buf, sizeof buf - 1, 0);
        std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
        while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
        return fail(Errc::Busy, what, " is in use by ",
                    pid.empty() ? std::string("another process") : "pid " + pid, " (it holds ",
                    lock_file.string(), ")");
    }
    auto text = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd.get(), 0) != 0 ||
        ::pwrite(fd.get(), text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()))
        return failErrno(Errc::Io, errno, "cannot write the pid to '", lock_file.string(), "'");
    return PidLock(std::move(fd));
}

}  // namespace hoist::files

namespace hoist {
void crashPoint(std::string_view point) {
    static const char* configured = std::getenv("HOIST_CRASH_AT");
    if (configured != nullptr && point == configured) ::_exit(kCrashExitCode);
}
}  // namespace hoist
