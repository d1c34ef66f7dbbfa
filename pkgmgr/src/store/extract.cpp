#include "extract.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "archive_probe.hpp"
#include "archive_rules.hpp"
#include "core/crypto.hpp"
#include "core/deleter.hpp"
#include "core/fd.hpp"

namespace hoist::pkgmgr::extract {

namespace {

using ArchiveRead = Handle<archive, archive_read_free>;

constexpr std::size_t kReadBuffer = 1u << 20;
constexpr std::size_t kMaxPkgInfo = 1u << 20;

/// The tarball as libarchive sees it: every byte handed over is hashed first, so the
/// archive is read from disk exactly once.
struct Source {
    int fd = -1;
    crypto::Sha256 hash;
    std::uint64_t bytes = 0;
    std::vector<char> buffer = std::vector<char>(kReadBuffer);
    int read_errno = 0;
    bool failed = false;

    ssize_t readSome() {
        while (true) {
            ssize_t n = ::read(fd, buffer.data(), buffer.size());
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                read_errno = errno;
                return -1;
            }
            hash.update(buffer.data(), static_cast<std::size_t>(n));
            bytes += static_cast<std::uint64_t>(n);
            return n;
        }
    }
};

la_ssize_t readCallback(archive* a, void* data, const void** out) noexcept {
    auto* src = static_cast<Source*>(data);
    try {
        ssize_t n = src->readSome();
        if (n < 0) {
            archive_set_error(a, src->read_errno, "cannot read the tarball");
            return -1;
        }
        *out = src->buffer.data();
        return n;
    } catch (...) {
        src->failed = true;
        archive_set_error(a, ENOMEM, "cannot hash the tarball");
        return -1;
    }
}

std::string archiveMessage(archive* a) {
    const char* msg = archive_error_string(a);
    return msg != nullptr ? msg : "unknown libarchive error";
}

Result<void> pwriteAll(int fd, const char* data, std::size_t size, std::uint64_t offset) {
    while (size > 0) {
        ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return failErrno(Errc::Io, errno, "write failed");
        data += n;
        size -= static_cast<std::size_t>(n);
        offset += static_cast<std::uint64_t>(n);
    }
    return ok();
}

/// Creates the regular file `name` in `folder` (never through a link, never over a path the
/// archive made already).
Result<UniqueFd> createFile(int folder, const char* name, unsigned mode) {
    UniqueFd fd(::openat(folder, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
    if (fd.valid()) return fd;
    if (errno == EEXIST) return fail(Errc::Invalid, "the path appears twice in the archive");
    return failErrno(Errc::Io, errno, "cannot create the file");
}

/// Names the calling thread as `top -H` and /proc show it (at most 15 characters).
void nameThread(const char* name) {
    (void)::pthread_setname_np(::pthread_self(), name);
}

/// Creates, writes and hashes whole small files on worker threads while the reading thread
/// decompresses the next entries: decompression, hashing and writing overlap. The reader
/// judges each entry (so refusals stay in archive order: a path seen twice is refused by the
/// reader's own record before it is queued) and hands over its folder, name and bytes; the
/// inode is made on the worker, off the reader's path. At most kMaxPending bytes wait at any
/// time. Files are handed over in batches (kBatchFiles files or kBatchBytes bytes): a writer
/// woken per file cost the reader a futex wake-up per file, about 4% of an ingest's CPU on the
/// thread that paces it. submit() and finish() are the reader's alone.
class WriterPool {
public:
    static constexpr std::size_t kMaxFile = 8u << 20;
    static constexpr std::size_t kMaxPending = 64u << 20;
    static constexpr std::size_t kBatchFiles = 32;
    static constexpr std::size_t kBatchBytes = 1u << 20;

    explicit WriterPool(unsigned threads) {
        for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
    }
    WriterPool(const WriterPool&) = delete;
    WriterPool& operator=(const WriterPool&) = delete;
    ~WriterPool() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        ready_.notify_all();
        for (auto& t : threads_) t.join();
    }

    /// Queues the file `name` (created with O_EXCL in `folder`, with `mode`); its sha256 lands
    /// in the returned slot once finish() returned ok.
    std::size_t submit(std::shared_ptr<const UniqueFd> folder, std::string name, unsigned mode,
                       std::string data, std::string error_prefix) {
        std::size_t slot = submitted_++;
        batch_bytes_ += data.size();
        batch_.push_back(Job{std::move(folder), std::move(name), mode, std::move(data),
                             std::move(error_prefix), slot});
        if (batch_.size() >= kBatchFiles || batch_bytes_ >= kBatchBytes) flush();
        return slot;
    }
    /// Waits for every queued file; the first write error, if any.
    Result<void> finish() {
        flush();
        std::unique_lock lock(mutex_);
        idle_.wait(lock, [&] { return jobs_.empty() && busy_ == 0; });
        if (error_) return std::unexpected(*error_);
        return ok();
    }
    std::string& result(std::size_t slot) { return results_[slot]; }
    /// Bytes written so far, by the writers and by addWritten (any thread).
    std::uint64_t written() const { return written_.load(std::memory_order_relaxed); }
    void addWritten(std::uint64_t bytes) { written_.fetch_add(bytes, std::memory_order_relaxed); }

private:
    struct Job {
        std::shared_ptr<const UniqueFd> folder;
        std::string name;
        unsigned mode = 0;
        std::string data;
        std::string error_prefix;
        std::size_t slot = 0;
    };

    /// Hands the reader's batch to the writers, once there is room for its bytes.
    void flush() {
        if (batch_.empty()) return;
        {
            std::unique_lock lock(mutex_);
            room_.wait(lock,
                       [&] { return pending_ + batch_bytes_ <= kMaxPending || pending_ == 0; });
            pending_ += batch_bytes_;
            results_.resize(submitted_);
            for (auto& job : batch_) jobs_.push_back(std::move(job));
        }
        batch_.clear();
        batch_bytes_ = 0;
        ready_.notify_all();
    }

    void work() {
        nameThread("hoist-writer");
        std::unique_lock lock(mutex_);
        while (true) {
            ready_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
            if (jobs_.empty()) return;
            Job job = std::move(jobs_.front());
            jobs_.pop_front();
            ++busy_;
            // After a write error, or when the extraction gave up, the rest is not written.
            bool skip = error_.has_value() || stopping_;
            lock.unlock();
            std::optional<Error> failed;
            std::string sha;
            if (!skip) {
                crypto::Sha256 hash;
                hash.update(job.data.data(), job.data.size());
                sha = hash.finishHex();
                auto fd = createFile(job.folder->get(), job.name.c_str(), job.mode);
                if (!fd) {
                    failed = Error{fd.error().code, job.error_prefix + fd.error().message,
                                   fd.error().sys_errno};
                } else if (auto w = pwriteAll(fd->get(), job.data.data(), job.data.size(), 0); !w) {
                    failed =
                        Error{Errc::Io, job.error_prefix + w.error().message, w.error().sys_errno};
                } else if (fd->close() != 0) {
                    failed = Error{Errc::Io, job.error_prefix + "cannot write the file", errno};
                } else {
                    addWritten(job.data.size());
                }
            }
            job.folder.reset();
            lock.lock();
            results_[job.slot] = std::move(sha);
            if (failed && !error_) error_ = std::move(failed);
            pending_ -= job.data.size();
            --busy_;
            room_.notify_all();
            if (jobs_.empty() && busy_ == 0) idle_.notify_all();
        }
    }

    std::mutex mutex_;
    std::condition_variable ready_, room_, idle_;
    std::deque<Job> jobs_;
    std::deque<std::string> results_;
    // The reader's own: the batch not yet handed over, and how many files it submitted.
    std::vector<Job> batch_;
    std::size_t batch_bytes_ = 0;
    std::size_t submitted_ = 0;
    std::size_t pending_ = 0;
    unsigned busy_ = 0;
    bool stopping_ = false;
    std::optional<Error> error_;
    std::atomic<std::uint64_t> written_{0};
    std::vector<std::thread> threads_;
};

/// Starts the disk's write-back while the extraction still runs: every kPeriod, once at
/// least kMinBytes more were written, one syncfs of the staging folder's filesystem. The
/// kernel would otherwise hold the whole package in dirty pages (far below its write-back
/// thresholds) until the syncfs that makes the entry durable before its rename, leaving the
/// disk idle while the CPUs decompress, hash and copy, and then the CPUs idle while the disk
/// writes. Durability is unchanged: that final syncfs still runs, and finds less to do. The
/// count stays batched (about one per kPeriod, never one per file), and a small package
/// (written within the first kPeriod, or under kMinBytes) causes none.
class EarlyWriteback {
public:
    static constexpr std::chrono::milliseconds kPeriod{100};
    static constexpr std::uint64_t kMinBytes = 16u << 20;

    EarlyWriteback(int fd, const WriterPool& pool)
        : fd_(fd), pool_(pool), thread_([this] { run(); }) {}
    EarlyWriteback(const EarlyWriteback&) = delete;
    EarlyWriteback& operator=(const EarlyWriteback&) = delete;
    ~EarlyWriteback() {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        wake_.notify_all();
        thread_.join();
    }

private:
    void run() {
        nameThread("hoist-writeback");
        std::uint64_t flushed = 0;
        std::unique_lock lock(mutex_);
        while (!wake_.wait_for(lock, kPeriod, [&] { return stop_; })) {
            std::uint64_t now = pool_.written();
            if (now - flushed < kMinBytes) continue;
            lock.unlock();
            // A failure here is not the entry's: the final syncfs reports what matters.
            (void)::syncfs(fd_);
            flushed = now;
            lock.lock();
        }
    }

    int fd_;
    const WriterPool& pool_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stop_ = false;
    std::thread thread_;  // last: started once everything above is ready
};

unsigned writerThreads() {
    return std::clamp(std::thread::hardware_concurrency(), 1u, 4u);
}

class Extractor {
public:
    Extractor(int dest_fd, const ExtractLimits& limits, std::string_view what)
        : dest_fd_(dest_fd),
          limits_(limits),
          what_(what),
          writers_(writerThreads()),
          writeback_(dest_fd, writers_) {}

    Result<void> entry(archive* a, archive_entry* e);
    Result<Extracted> finish(Source& src);
    std::uint64_t count() const { return count_; }

private:
    std::unexpected<Error> refuse(std::string_view raw, const Error& rule) const {
        return std::unexpected(
            Error{rule.code,
                  detail::concat(what_, ": entry '", rules::printable(raw), "': ", rule.message),
                  rule.sys_errno});
    }
    template <class... Parts>
    std::unexpected<Error> refuse(std::string_view raw, Errc code, Parts&&... parts) const {
        return refuse(raw, Error{code, detail::concat(std::forward<Parts>(parts)...), 0});
    }

    Result<UniqueFd> openChain(std::string_view raw, const std::vector<std::string>& parts,
                               std::size_t count);
    Result<int> parentOf(std::string_view raw, const std::vector<std::string>& parts);
    Result<void> writeFile(std::string_view raw, archive* a, archive_entry* e, int parent,
                           const std::vector<std::string>& parts, unsigned perm);
    Result<void> checkBudget(std::string_view raw, std::uint64_t more) const;

    int dest_fd_;
    const ExtractLimits& limits_;
    std::string what_;
    std::map<std::string, manifest::Entry> made_;
    std::string cached_parent_;
    /// Shared with the writers' queued files, which are created in it after the reader moved on.
    std::shared_ptr<const UniqueFd> cached_fd_;
    std::uint64_t count_ = 0;
    std::uint64_t unpacked_ = 0;
    bool has_pkginfo_ = false;
    std::string pkginfo_;
    std::vector<char> zeros_ = std::vector<char>(64 * 1024, 0);
    /// Files whose hash a writer computes: path -> slot; hardlinks: path -> target path.
    std::map<std::string, std::size_t> pooled_;
    std::vector<std::pair<std::string, std::string>> hardlinks_;
    // Last: joined (every queued write done) before the fds and maps above go away.
    WriterPool writers_;
    EarlyWriteback writeback_;  // stopped before the writers it watches
};

Result<void> Extractor::checkBudget(std::string_view raw, std::uint64_t more) const {
    if (more > limits_.max_unpacked_bytes || unpacked_ > limits_.max_unpacked_bytes - more) {
        return refuse(raw, Errc::Invalid, "the package unpacks to more than ",
                      limits_.max_unpacked_bytes, " bytes (the limit)");
    }
    return ok();
}

Result<UniqueFd> Extractor::openChain(std::string_view raw, const std::vector<std::string>& parts,
                                      std::size_t count) {
    UniqueFd current(::fcntl(dest_fd_, F_DUPFD_CLOEXEC, 0));
    if (!current.valid())
        return refuse(raw, Error{Errc::Io, "cannot open the staging folder", errno});
    for (std::size_t i = 0; i < count; ++i) {
        const char* name = parts[i].c_str();
        int fd = ::openat(current.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
            // A file a writer has not created yet is still a file.
            if (auto it = made_.find(rules::joinParts(parts, i + 1));
                it != made_.end() && it->second.type != manifest::Type::Dir) {
                return refuse(raw, Errc::Invalid, "'", rules::joinParts(parts, i + 1),
                              "' is not a folder");
            }
            // Tarballs may omit folder entries; make the folder as tar would.
            if (::mkdirat(current.get(), name, 0755) != 0 && errno != EEXIST) {
                return refuse(raw, Error{Errc::Io, "cannot create a folder", errno});
            }
            made_.try_emplace(rules::joinParts(parts, i + 1),
                              manifest::Entry{.path = rules::joinParts(parts, i + 1),
                                              .type = manifest::Type::Dir,
                                              .mode = manifest::kDirMode});
            fd = ::openat(current.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (fd < 0) {
            int err = errno;
            struct stat st {};
            if ((err == ELOOP || err == ENOTDIR) &&
                ::fstatat(current.get(), name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                if (S_ISLNK(st.st_mode)) {
                    return refuse(raw, Errc::Invalid, "writing through the symlink '",
                                  rules::joinParts(parts, i + 1), "' is not allowed");
                }
                return refuse(raw, Errc::Invalid, "'", rules::joinParts(parts, i + 1),
                              "' is not a folder");
            }
            return refuse(raw, Error{Errc::Io, "cannot open a folder", err});
        }
        current.reset(fd);
    }
    return current;
}

Result<int> Extractor::parentOf(std::string_view raw, const std::vector<std::string>& parts) {
    auto parent = rules::joinParts(parts, parts.size() - 1);
    if (!cached_fd_ || parent != cached_parent_) {
        HOIST_ASSIGN(auto fd, openChain(raw, parts, parts.size() - 1));
        cached_fd_ = std::make_shared<const UniqueFd>(std::move(fd));
        cached_parent_ = std::move(parent);
    }
    return cached_fd_->get();
}

Result<void> Extractor::writeFile(std::string_view raw, archive* a, archive_entry* e, int parent,
                                  const std::vector<std::string>& parts, unsigned perm) {
    std::uint64_t declared = 0;
    if (archive_entry_size_is_set(e) && archive_entry_size(e) > 0) {
        declared = static_cast<std::uint64_t>(archive_entry_size(e));
    }
    HOIST_TRY(checkBudget(raw, declared));
    bool is_pkginfo = parts.size() == 1 && parts[0] == "pkginfo.json";
    if (is_pkginfo && declared > kMaxPkgInfo) {
        return refuse(raw, Errc::Invalid, "pkginfo.json is larger than ", kMaxPkgInfo, " bytes");
    }
    unsigned mode = (perm & 0111u) != 0 ? manifest::kExecMode : manifest::kFileMode;
    // A small file without holes goes whole to a writer thread, which creates it; anything
    // else is created and written here.
    bool pooled = !is_pkginfo && declared <= WriterPool::kMaxFile;
    UniqueFd fd;
    auto create = [&]() -> Result<void> {
        HOIST_ASSIGN(fd, createFile(parent, parts.back().c_str(), mode));
        return ok();
    };
    if (!pooled) {
        if (auto made = create(); !made) return refuse(raw, made.error());
    }
    crypto::Sha256 hash;
    std::uint64_t pos = 0;
    std::string whole;
    if (pooled) whole.reserve(static_cast<std::size_t>(declared));
    auto unpool = [&]() -> Result<void> {
        pooled = false;
        HOIST_TRY(create());
        if (auto w = pwriteAll(fd.get(), whole.data(), whole.size(), 0); !w) return w;
        hash.update(whole.data(), whole.size());
        whole = std::string();
        return ok();
    };
    auto hashZeros = [&](std::uint64_t n) {
        while (n > 0) {
            auto chunk = static_cast<std::size_t>(std::min<std::uint64_t>(n, zeros_.size()));
            hash.update(zeros_.data(), chunk);
            n -= chunk;
        }
    };
    while (true) {
        const void* block = nullptr;
        std::size_t size = 0;
        la_int64_t offset = 0;
        int r = archive_read_data_block(a, &block, &size, &offset);
        if (r == ARCHIVE_EOF) break;
        if (r == ARCHIVE_RETRY || r < ARCHIVE_WARN) {
            return refuse(raw, Errc::Corrupt, "cannot read its data: ", archiveMessage(a));
        }
        auto at = static_cast<std::uint64_t>(offset < 0 ? 0 : offset);
        if (at < pos) return refuse(raw, Errc::Corrupt, "its data blocks overlap");
        // A sparse file's holes read as zeros, so they are hashed as zeros.
        if (at + size > declared) HOIST_TRY(checkBudget(raw, at + size));
        if (pooled && at == pos && pos + size <= WriterPool::kMaxFile) {
            whole.append(static_cast<const char*>(block), size);
            pos += size;
            continue;
        }
        if (pooled) {
            if (auto w = unpool(); !w) return refuse(raw, w.error());
        }
        if (at > pos) {
            hashZeros(at - pos);
            pos = at;
        }
        if (auto w = pwriteAll(fd.get(), static_cast<const char*>(block), size, pos); !w) {
            return refuse(raw, w.error());
        }
        writers_.addWritten(size);
        hash.update(block, size);
        if (is_pkginfo) {
            if (pos + size > kMaxPkgInfo) {
                return refuse(raw, Errc::Invalid, "pkginfo.json is larger than ", kMaxPkgInfo,
                              " bytes");
            }
            pkginfo_.append(static_cast<const char*>(block), size);
        }
        pos += size;
    }
    if (pooled && pos < declared) {
        if (auto w = unpool(); !w) return refuse(raw, w.error());
    }
    auto path = rules::joinParts(parts);
    if (pooled) {
        unpacked_ += pos;
        pooled_[path] =
            writers_.submit(cached_fd_, parts.back(), mode, std::move(whole),
                            detail::concat(what_, ": entry '", rules::printable(raw), "': "));
        made_[path] = manifest::Entry{.path = path,
                                      .type = manifest::Type::File,
                                      .mode = mode,
                                      .size = pos,
                                      .sha256 = {},
                                      .target = {}};
        return ok();
    }
    if (pos < declared) {
        hashZeros(declared - pos);
        if (::ftruncate(fd.get(), static_cast<off_t>(declared)) != 0) {
            return refuse(raw, Error{Errc::Io, "cannot size the file", errno});
        }
        if (is_pkginfo) pkginfo_.append(declared - pos, '\0');
        pos = declared;
    }
    if (fd.close() != 0) return refuse(raw, Error{Errc::Io, "cannot write the file", errno});
    unpacked_ += pos;
    if (is_pkginfo) has_pkginfo_ = true;
    made_[path] = manifest::Entry{.path = path,
                                  .type = manifest::Type::File,
                                  .mode = mode,
                                  .size = pos,
                                  .sha256 = hash.finishHex(),
                                  .target = {}};
    return ok();
}

Result<void> Extractor::entry(archive* a, archive_entry* e) {
    const char* raw_c = archive_entry_pathname(e);
    std::string raw = raw_c != nullptr ? raw_c : "";
    if (++count_ > limits_.max_entries) {
        return fail(Errc::Invalid, what_, ": the archive holds more than ", limits_.max_entries,
                    " entries (the limit)");
    }
    auto split = rules::splitEntryPath(raw, limits_.max_path_length);
    if (!split) return refuse(raw, split.error());
    auto parts = std::move(*split);

    using rules::EntryType;
    EntryType type = EntryType::File;
    const char* hardlink = archive_entry_hardlink(e);
    if (hardlink != nullptr) {
        type = EntryType::Hardlink;
    } else {
        switch (archive_entry_filetype(e)) {
            case AE_IFREG:
                type = EntryType::File;
                break;
            case AE_IFDIR:
                type = EntryType::Dir;
                break;
            case AE_IFLNK:
                type = EntryType::Symlink;
                break;
            case AE_IFCHR:
            case AE_IFBLK:
                return refuse(raw, Errc::Invalid, "device files are not allowed");
            case AE_IFIFO:
                return refuse(raw, Errc::Invalid, "fifos are not allowed");
            case AE_IFSOCK:
                return refuse(raw, Errc::Invalid, "sockets are not allowed");
            default:
                return refuse(raw, Errc::Invalid, "this entry type is not allowed");
        }
    }
    auto perm = static_cast<unsigned>(archive_entry_perm(e));
    if ((perm & (S_ISUID | S_ISGID)) != 0) {
        return refuse(raw, Errc::Invalid, "setuid and setgid bits are not allowed");
    }
    if (parts.empty()) {
        if (type == EntryType::Dir) return ok();  // "./", the package root itself
        return refuse(raw, Errc::Invalid, "the package root must be a folder");
    }
    if (auto r = rules::checkRoot(parts, type); !r) return refuse(raw, r.error());

    auto path = rules::joinParts(parts);
    if (auto it = made_.find(path); it != made_.end()) {
        // Repeating a folder is harmless; anything else would overwrite an entry.
        if (type == EntryType::Dir && it->second.type == manifest::Type::Dir) return ok();
        return refuse(raw, Errc::Invalid, "the path appears twice in the archive");
    }
    HOIST_ASSIGN(int parent, parentOf(raw, parts));
    const char* name = parts.back().c_str();

    switch (type) {
        case EntryType::File:
            return writeFile(raw, a, e, parent, parts, perm);
        case EntryType::Dir: {
            if (::mkdirat(parent, name, 0755) != 0) {
                if (errno == EEXIST)
                    return refuse(raw, Errc::Invalid, "the path appears twice in the archive");
                return refuse(raw, Error{Errc::Io, "cannot create the folder", errno});
            }
            made_[path] = manifest::Entry{
                .path = path, .type = manifest::Type::Dir, .mode = manifest::kDirMode};
            return ok();
        }
        case EntryType::Symlink: {
            const char* target_c = archive_entry_symlink(e);
            std::string target = target_c != nullptr ? target_c : "";
            if (auto r = rules::checkSymlinkTarget(parts, target); !r)
                return refuse(raw, r.error());
            if (::symlinkat(target.c_str(), parent, name) != 0) {
                if (errno == EEXIST)
                    return refuse(raw, Errc::Invalid, "the path appears twice in the archive");
                return refuse(raw, Error{Errc::Io, "cannot create the symlink", errno});
            }
            made_[path] = manifest::Entry{.path = path,
                                          .type = manifest::Type::Symlink,
                                          .mode = 0777,
                                          .size = 0,
                                          .sha256 = {},
                                          .target = target};
            return ok();
        }
        case EntryType::Hardlink: {
            auto target_split = rules::splitEntryPath(hardlink, limits_.max_path_length);
            if (!target_split) {
                return refuse(raw, Errc::Invalid, "hardlink target '", hardlink,
                              "': ", target_split.error().message);
            }
            auto target_path = rules::joinParts(*target_split);
            auto it = made_.find(target_path);
            if (target_split->empty() || it == made_.end() ||
                it->second.type != manifest::Type::File) {
                return refuse(raw, Errc::Invalid, "the hardlink target '", hardlink,
                              "' is not a regular file earlier in the package");
            }
            // The target may still wait in a writer's queue to be created.
            HOIST_TRY(writers_.finish());
            HOIST_ASSIGN(auto target_parent,
                         openChain(raw, *target_split, target_split->size() - 1));
            if (::linkat(target_parent.get(), target_split->back().c_str(), parent, name, 0) != 0) {
                if (errno == EEXIST)
                    return refuse(raw, Errc::Invalid, "the path appears twice in the archive");
                return refuse(raw, Error{Errc::Io, "cannot create the hardlink", errno});
            }
            auto copy = it->second;
            copy.path = path;
            // The target's hash may still be in a writer's hands: copied in finish().
            if (copy.sha256.empty()) hardlinks_.emplace_back(path, target_path);
            made_[path] = std::move(copy);
            return ok();
        }
    }
    return ok();
}

Result<Extracted> Extractor::finish(Source& src) {
    if (!has_pkginfo_)
        return fail(Errc::Invalid, what_, ": pkginfo.json is missing at the package root");
    // Bytes after the end-of-archive marker are part of the tarball and its hash too.
    while (true) {
        ssize_t n = src.readSome();
        if (n < 0) return failErrno(Errc::Io, src.read_errno, what_, ": cannot read the tarball");
        if (n == 0) break;
    }
    HOIST_TRY(writers_.finish());
    for (const auto& [path, slot] : pooled_) made_[path].sha256 = std::move(writers_.result(slot));
    for (const auto& [path, target] : hardlinks_) made_[path].sha256 = made_[target].sha256;
    Extracted out;
    out.sha256 = src.hash.finishHex();
    out.size = src.bytes;
    out.pkginfo = std::move(pkginfo_);
    out.unpacked_bytes = unpacked_;
    out.entries.reserve(made_.size());
    for (auto& [path, entry] : made_) out.entries.push_back(std::move(entry));
    return out;
}

/// A reader for tar, plain or compressed with gzip, xz or zstd.
Result<ArchiveRead> newReader() {
    ArchiveRead a(archive_read_new());
    if (!a) return fail(Errc::Internal, "cannot allocate an archive reader");
    archive_read_support_filter_gzip(a.get());
    archive_read_support_filter_xz(a.get());
    archive_read_support_filter_zstd(a.get());
    archive_read_support_format_tar(a.get());
    return a;
}

/// The entry-count limit, judged from the headers alone by a pass of its own (libarchive skips
/// the contents: a seek for a plain tar, decompression without writing or hashing for a
/// compressed one). It runs on its own thread beside the extraction, reading the tarball with
/// pread (its own offset), so the decompression it costs overlaps the real pass; the real pass
/// writes at most kUncounted entries before the verdict is in. Problems it cannot judge (a
/// damaged archive) are left to the real pass, which names them. A real pass that finishes
/// needs no verdict (it counted every entry against the limit itself) and stops it.
class EntryCounter {
public:
    /// Entries the real pass may write before the count is known.
    static constexpr std::uint64_t kUncounted = 8192;

    EntryCounter(int tarball_fd, const ExtractLimits& limits)
        : fd_(tarball_fd), limit_(limits.max_entries), thread_([this] { run(); }) {}
    EntryCounter(const EntryCounter&) = delete;
    EntryCounter& operator=(const EntryCounter&) = delete;
    ~EntryCounter() {
        stop_ = true;
        thread_.join();
    }

    /// Waits for the verdict: true when the archive holds more entries than the limit.
    bool tooMany() {
        std::unique_lock lock(mutex_);
        done_cv_.wait(lock, [&] { return done_; });
        return too_many_;
    }

private:
    static la_ssize_t readAt(archive* a, void* data, const void** out) noexcept {
        auto* self = static_cast<EntryCounter*>(data);
        if (self->stop_) return 0;
        while (true) {
            ssize_t n = ::pread(self->fd_, self->buffer_.data(), self->buffer_.size(),
                                static_cast<off_t>(self->offset_));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                archive_set_error(a, errno, "cannot read the tarball");
                return -1;
            }
            self->offset_ += static_cast<std::uint64_t>(n);
            *out = self->buffer_.data();
            return n;
        }
    }
    static la_int64_t skipAt(archive*, void* data, la_int64_t request) noexcept {
        // Plain tar: the contents are skipped without being read.
        auto* self = static_cast<EntryCounter*>(data);
        self->offset_ += static_cast<std::uint64_t>(request);
        return request;
    }

    void run() {
        nameThread("hoist-count");
        bool too_many = false;
        ArchiveRead a(archive_read_new());
        if (a) {
            archive_read_support_filter_gzip(a.get());
            archive_read_support_filter_xz(a.get());
            archive_read_support_filter_zstd(a.get());
            archive_read_support_format_tar(a.get());
            archive_read_set_callback_data(a.get(), this);
            archive_read_set_read_callback(a.get(), readAt);
            archive_read_set_skip_callback(a.get(), skipAt);
            if (archive_read_open1(a.get()) == ARCHIVE_OK) {
                std::uint64_t count = 0;
                archive_entry* e = nullptr;
                while (!stop_ && archive_read_next_header(a.get(), &e) == ARCHIVE_OK) {
                    if (++count > limit_) {
                        too_many = true;
                        break;
                    }
                }
            }
        }
        std::lock_guard lock(mutex_);
        too_many_ = too_many;
        done_ = true;
        done_cv_.notify_all();
    }

    int fd_;
    std::uint64_t limit_;
    std::uint64_t offset_ = 0;
    std::vector<char> buffer_ = std::vector<char>(kReadBuffer);
    std::atomic<bool> stop_{false};
    std::mutex mutex_;
    std::condition_variable done_cv_;
    bool done_ = false;
    bool too_many_ = false;
    std::thread thread_;  // last: started once everything above is ready
};

}  // namespace

Result<Extracted> extractTarball(int tarball_fd, int dest_fd, const ExtractLimits& limits,
                                 std::string_view what) {
    EntryCounter counter(tarball_fd, limits);
    auto tooManyEntries = [&]() -> std::unexpected<Error> {
        return fail(Errc::Invalid, what, ": the archive holds more than ", limits.max_entries,
                    " entries (the limit)");
    };
    // Any refusal waits for the count: an archive over the limit is refused as such, whatever
    // else is wrong with it.
    auto extracted = [&]() -> Result<Extracted> {
        HOIST_ASSIGN(auto a, newReader());

        Source src;
        src.fd = tarball_fd;
        Extractor extractor(dest_fd, limits, what);
        auto archiveFailure = [&]() -> std::unexpected<Error> {
            if (src.read_errno != 0) {
                return failErrno(Errc::Io, src.read_errno, what, ": cannot read the tarball");
            }
            if (extractor.count() == 0) {
                std::string found = probe::describe(tarball_fd);
                return fail(Errc::Invalid, what,
                            ": not a package (a tar archive, uncompressed or zstd, xz or gzip): ",
                            found.empty() ? archiveMessage(a.get()) : "found " + found);
            }
            return fail(Errc::Corrupt, what, ": the archive is damaged: ", archiveMessage(a.get()));
        };
        if (archive_read_open(a.get(), &src, nullptr, readCallback, nullptr) != ARCHIVE_OK) {
            return archiveFailure();
        }
        while (true) {
            archive_entry* e = nullptr;
            int r = archive_read_next_header(a.get(), &e);
            if (r == ARCHIVE_EOF) break;
            if (r == ARCHIVE_RETRY || r < ARCHIVE_WARN || src.failed) return archiveFailure();
            if (extractor.count() == EntryCounter::kUncounted && counter.tooMany())
                return tooManyEntries();
            HOIST_TRY(extractor.entry(a.get(), e));
        }
        return extractor.finish(src);
    }();
    // An extraction that finished counted every entry itself, each against the limit: the
    // count pass is stopped (by ~EntryCounter) instead of awaited, so a small package does not
    // pay for a second decompression it does not need.
    if (extracted) return extracted;
    if (counter.tooMany()) return tooManyEntries();
    return extracted;
}

}  // namespace hoist::pkgmgr::extract
