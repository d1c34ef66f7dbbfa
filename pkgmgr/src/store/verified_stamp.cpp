#include "verified_stamp.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <string_view>
#include <thread>
#include <utility>

#include "core/files.hpp"

namespace hoist::pkgmgr::stamp {

namespace {

constexpr std::string_view kMagic = "hoist-verified 1 ";
constexpr std::string_view kEnd = "end\n";
constexpr std::size_t kMaxStamp = 512u << 20;
/// How long begin() waits for the filesystem's clock to leave the tick of a fresh change.
constexpr std::chrono::milliseconds kRacyWait{50};

// What a stamp records of one path. The entry's own folder is renamed into place after it is
// stamped at add time, which moves its ctime: for it the mtime stands (it moves when a name is
// added to or removed from it; its mode is not part of the manifest).
struct Seen {
    std::uint64_t ino = 0;
    std::int64_t sec = 0;
    std::int64_t nsec = 0;
    std::uint64_t size = 0;
};

Seen seen(const struct stat& st, bool folder_itself) {
    const timespec& t = folder_itself ? st.st_mtim : st.st_ctim;
    return Seen{.ino = static_cast<std::uint64_t>(st.st_ino),
                .sec = static_cast<std::int64_t>(t.tv_sec),
                .nsec = static_cast<std::int64_t>(t.tv_nsec),
                .size = static_cast<std::uint64_t>(st.st_size)};
}

bool notOlder(const Seen& s, const timespec& t0) {
    return s.sec > t0.tv_sec || (s.sec == t0.tv_sec && s.nsec >= t0.tv_nsec);
}

std::chrono::nanoseconds sinceEpoch(const timespec& t) {
    return std::chrono::seconds(t.tv_sec) + std::chrono::nanoseconds(t.tv_nsec);
}

bool later(const timespec& a, const timespec& b) {
    return sinceEpoch(a) > sinceEpoch(b);
}

void append(std::string& out, const Seen& s, std::string_view path) {
    out += std::to_string(s.ino);
    out += ' ';
    out += std::to_string(s.sec);
    out += ' ';
    out += std::to_string(s.nsec);
    out += ' ';
    out += std::to_string(s.size);
    out += ' ';
    out += std::to_string(path.size());
    out += ' ';
    out += path;
    out += '\n';
}

// The paths a stamp covers besides the manifest's entries: what the store records beside the
// package (a changed manifest must not be trusted by an old stamp).
constexpr const char* kRecorded[] = {manifest::kManifestFile, manifest::kRefFile};

/// Reads "<number> " from text at pos.
template <typename T>
bool number(std::string_view text, std::size_t& pos, T& out) {
    auto* first = text.data() + pos;
    auto* last = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(first, last, out);
    if (ec != std::errc() || ptr == last || *ptr != ' ') return false;
    pos = static_cast<std::size_t>(ptr - text.data()) + 1;
    return true;
}

}  // namespace

fs::path folder(const fs::path& root) {
    return root / "run" / "verified";
}

bool holds(const fs::path& root, const std::string& sha256, const fs::path& entry) {
    auto text = files::readFile(folder(root) / sha256, kMaxStamp);
    if (!text) return false;
    std::string_view t = *text;
    std::string header = std::string(kMagic) + sha256 + " ";
    if (!t.starts_with(header) || !t.ends_with(kEnd)) return false;
    std::size_t pos = header.size();
    std::uint64_t count = 0;
    {
        auto [ptr, ec] = std::from_chars(t.data() + pos, t.data() + t.size(), count);
        if (ec != std::errc() || ptr == t.data() + t.size() || *ptr != '\n') return false;
        pos = static_cast<std::size_t>(ptr - t.data()) + 1;
    }
    UniqueFd dir(::open(entry.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir.valid()) return false;
    std::uint64_t lines = 0;
    std::string path;
    // Each path is looked up from its folder, opened once for its consecutive entries (the
    // manifest is sorted, so a folder's entries follow it): one name per lookup, not the whole
    // path. A folder comes before its content and is compared first, so a folder replaced by a
    // symlink fails there before anything is looked up through it.
    std::string parent_path;
    UniqueFd parent;
    while (t.size() - pos > kEnd.size()) {
        Seen want;
        std::size_t len = 0;
        if (!number(t, pos, want.ino) || !number(t, pos, want.sec) || !number(t, pos, want.nsec) ||
            !number(t, pos, want.size) || !number(t, pos, len)) {
            return false;
        }
        if (len > t.size() - pos - 1 || t[pos + len] != '\n') return false;
        path.assign(t.substr(pos, len));
        pos += len + 1;
        bool itself = lines == 0;
        if (itself != (path == ".")) return false;
        struct stat st {};
        int rc = 0;
        if (itself) {
            rc = ::fstat(dir.get(), &st);
        } else {
            auto slash = path.rfind('/');
            int at = dir.get();
            const char* name = path.c_str();
            if (slash != std::string::npos) {
                std::string_view folder_of(path.data(), slash);
                if (!parent.valid() || folder_of != parent_path) {
                    parent_path.assign(folder_of);
                    parent.reset(::openat(dir.get(), parent_path.c_str(),
                                          O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
                    if (!parent.valid()) return false;
                }
                at = parent.get();
                name = path.c_str() + slash + 1;
            }
            rc = ::fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW);
        }
        if (rc != 0) return false;
        Seen now = seen(st, itself);
        if (now.ino != want.ino || now.sec != want.sec || now.nsec != want.nsec ||
            now.size != want.size) {
            return false;
        }
        ++lines;
    }
    return pos == t.size() - kEnd.size() && lines == count;
}

void drop(const fs::path& root, const std::string& sha256) {
    ::unlink((folder(root) / sha256).c_str());
}

Result<Pending> Pending::begin(const fs::path& root, const std::string& sha256,
                               const fs::path& entry, const std::vector<manifest::Entry>& entries,
                               bool wait_for_clock) {
    Pending p;
    auto dir = folder(root);
    HOIST_TRY(files::makeDirs(dir));
    p.final_ = dir / sha256;
    p.tmp_ = files::tempSibling(p.final_);
    p.fd_ = UniqueFd(::open(p.tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!p.fd_.valid()) {
        int err = errno;
        p.tmp_.clear();
        return failErrno(Errc::Io, err, "cannot create '", dir.string(), "/", sha256, "'");
    }
    // T0: the filesystem's clock now, read from the file it just stamped (futimens moves it on).
    auto clock = [&]() -> Result<timespec> {
        struct stat tmp_st {};
        if (::fstat(p.fd_.get(), &tmp_st) != 0)
            return failErrno(Errc::Io, errno, "cannot inspect '", p.tmp_.string(), "'");
        return tmp_st.st_mtim;
    };
    HOIST_ASSIGN(timespec t0, clock());

    UniqueFd top(::open(entry.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!top.valid()) return failErrno(Errc::Io, errno, "cannot open '", entry.string(), "'");
    std::string body;
    std::uint64_t count = 0;
    timespec newest{};
    auto record = [&](const char* path, bool itself) -> Result<void> {
        struct stat st {};
        int rc =
            itself ? ::fstat(top.get(), &st) : ::fstatat(top.get(), path, &st, AT_SYMLINK_NOFOLLOW);
        if (rc != 0)
            return failErrno(Errc::Io, errno, "cannot inspect '", entry.string(), "/", path, "'");
        Seen s = seen(st, itself);
        if (notOlder(s, t0)) {
            p.racy_ = true;
            timespec at{.tv_sec = s.sec, .tv_nsec = s.nsec};
            if (later(at, newest)) newest = at;
        }
        append(body, s, path);
        ++count;
        return ok();
    };
    auto recordAll = [&]() -> Result<void> {
        body.clear();
        count = 0;
        p.racy_ = false;
        HOIST_TRY(record(".", true));
        for (const char* path : kRecorded) HOIST_TRY(record(path, false));
        for (const auto& e : entries) HOIST_TRY(record(e.path.c_str(), false));
        return ok();
    };
    HOIST_TRY(recordAll());
    // (A path stamped further ahead than the wait, a clock set back, stays racy at once.)
    if (wait_for_clock && p.racy_ && sinceEpoch(newest) - sinceEpoch(t0) <= kRacyWait) {
        // Paths changed within the clock's current tick (an entry just added, its folders just
        // sealed): wait, briefly, for the clock to pass the newest of them and record them
        // again, so that a fresh entry gets its stamp. A path changed during the wait keeps
        // the stamp racy.
        auto deadline = std::chrono::steady_clock::now() + kRacyWait;
        do {  // the clock is read again at least once, however long this thread was kept off
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
            if (::futimens(p.fd_.get(), nullptr) != 0)
                return failErrno(Errc::Io, errno, "cannot touch '", p.tmp_.string(), "'");
            HOIST_ASSIGN(t0, clock());
        } while (!later(t0, newest) && std::chrono::steady_clock::now() < deadline);
        HOIST_TRY(recordAll());
    }
    p.text_ = std::string(kMagic) + sha256 + " " + std::to_string(count) + "\n" + body +
              std::string(kEnd);
    return p;
}

Result<bool> Pending::commit() {
    if (racy_) return false;
    std::string_view data = text_;
    while (!data.empty()) {
        ssize_t n = ::write(fd_.get(), data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return failErrno(Errc::Io, errno, "cannot write '", tmp_.string(), "'");
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    if (fd_.close() != 0) return failErrno(Errc::Io, errno, "cannot write '", tmp_.string(), "'");
    if (::rename(tmp_.c_str(), final_.c_str()) != 0)
        return failErrno(Errc::Io, errno, "cannot rename '", tmp_.string(), "'");
    tmp_.clear();
    return true;
}

Pending::Pending(Pending&& other) noexcept
    : tmp_(std::exchange(other.tmp_, {})),
      final_(std::move(other.final_)),
      fd_(std::move(other.fd_)),
      text_(std::move(other.text_)),
      racy_(other.racy_) {}

Pending::~Pending() {
    if (!tmp_.empty()) ::unlink(tmp_.c_str());
}

}  // namespace hoist::pkgmgr::stamp
