#include "pkgmgr/pack.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <locale.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <utility>

#include "archive_rules.hpp"
#include "core/crypto.hpp"
#include "core/deleter.hpp"
#include "core/fd.hpp"
#include "core/files.hpp"
#include "pkgmgr/store.hpp"

namespace hoist::pkgmgr {

namespace {

namespace fs = std::filesystem;

using ArchiveWrite = Handle<archive, archive_write_free>;
using Entry = Handle<archive_entry, archive_entry_free>;

/// Where the compressed bytes go: the output file, hashed as they are written.
struct Sink {
    int fd = -1;
    crypto::Sha256 hash;
    std::uint64_t bytes = 0;
    int write_errno = 0;
};

la_ssize_t writeCallback(archive* a, void* data, const void* buffer, size_t size) noexcept {
    auto* sink = static_cast<Sink*>(data);
    const char* p = static_cast<const char*>(buffer);
    size_t left = size;
    while (left > 0) {
        ssize_t n = ::write(sink->fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            sink->write_errno = errno;
            archive_set_error(a, errno, "cannot write the tarball");
            return -1;
        }
        p += n;
        left -= static_cast<size_t>(n);
    }
    try {
        sink->hash.update(buffer, size);
    } catch (...) {
        archive_set_error(a, ENOMEM, "cannot hash the tarball");
        return -1;
    }
    sink->bytes += size;
    return static_cast<la_ssize_t>(size);
}

/// A UTF-8 LC_CTYPE for the calling thread (uselocale) until destroyed. Where the C library
/// has no C.UTF-8 the thread keeps its locale: ASCII names still pack, others are refused by
/// libarchive naming the path.
class ThreadLocale {
public:
    static ThreadLocale utf8() {
        locale_t utf8 = ::newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
        if (utf8 == static_cast<locale_t>(nullptr))
            return ThreadLocale(utf8, static_cast<locale_t>(nullptr));
        return ThreadLocale(utf8, ::uselocale(utf8));
    }
    ThreadLocale(ThreadLocale&& other) noexcept
        : mine_(std::exchange(other.mine_, static_cast<locale_t>(nullptr))),
          previous_(other.previous_) {}
    ThreadLocale(const ThreadLocale&) = delete;
    ThreadLocale& operator=(const ThreadLocale&) = delete;
    ThreadLocale& operator=(ThreadLocale&&) = delete;
    ~ThreadLocale() {
        if (mine_ == static_cast<locale_t>(nullptr)) return;
        ::uselocale(previous_);
        ::freelocale(mine_);
    }

private:
    ThreadLocale(locale_t mine, locale_t previous) : mine_(mine), previous_(previous) {}
    locale_t mine_;
    locale_t previous_;
};

struct Item {
    std::string path;  ///< relative, '/'-separated
    rules::EntryType type = rules::EntryType::File;
    unsigned mode = 0644;
    std::uint64_t size = 0;
    std::string target;
};

/// Walks the folder depth-first with each folder's names sorted, so the order depends only
/// on the names, not on the order the files were made in.
Result<void> collect(const fs::path& root, const std::vector<std::string>& parts,
                     std::vector<Item>& out, std::string_view what) {
    auto dir = root / rules::joinParts(parts);
    std::vector<std::string> names;
    std::error_code ec;
    for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
        names.push_back(it->path().filename().string());
    }
    if (ec) return failErrno(Errc::Io, ec.value(), what, ": cannot list '", dir.string(), "'");
    std::sort(names.begin(), names.end());
    const ExtractLimits limits;
    for (const auto& name : names) {
        auto child_parts = parts;
        child_parts.push_back(name);
        auto rel = rules::joinParts(child_parts);
        auto refuse = [&](const Error& rule) {
            return fail(rule.code, what, ": '", rules::printable(rel), "': ", rule.message);
        };
        if (auto r = rules::splitEntryPath(rel, limits.max_path_length); !r)
            return refuse(r.error());
        struct stat st {};
        if (::lstat((root / rel).c_str(), &st) != 0) {
            return failErrno(Errc::Io, errno, what, ": cannot inspect '", rel, "'");
        }
        Item item{.path = rel};
        if (S_ISREG(st.st_mode)) {
            item.type = rules::EntryType::File;
            item.mode = (st.st_mode & 0111) != 0 ? 0755 : 0644;
            item.size = static_cast<std::uint64_t>(st.st_size);
        } else if (S_ISDIR(st.st_mode)) {
            item.type = rules::EntryType::Dir;
            item.mode = 0755;
        } else if (S_ISLNK(st.st_mode)) {
            item.type = rules::EntryType::Symlink;
            item.mode = 0777;
            std::error_code lec;
            item.target = fs::read_symlink(root / rel, lec).string();
            if (lec)
                return failErrno(Errc::Io, lec.value(), what, ": cannot read the symlink '", rel,
                                 "'");
            if (auto r = rules::checkSymlinkTarget(child_parts, item.target); !r)
                return refuse(r.error());
        } else {
            return refuse(
                Error{Errc::Invalid, "only files, folders and symlinks can be packed", 0});
        }
        if (auto r = rules::checkRoot(child_parts, item.type); !r) return refuse(r.error());
        bool is_dir = item.type == rules::EntryType::Dir;
        out.push_back(std::move(item));
        if (is_dir) HOIST_TRY(collect(root, child_parts, out, what));
    }
    return ok();
}

Result<void> writeItem(archive* a, const fs::path& root, const Item& item,
                       std::vector<char>& buffer, std::string_view what) {
    Entry entry(archive_entry_new());
    if (!entry) return fail(Errc::Internal, "cannot allocate an archive entry");
    auto* e = entry.get();
    archive_entry_set_pathname(e, item.path.c_str());
    archive_entry_set_mtime(e, 0, 0);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    archive_entry_set_perm(e, static_cast<mode_t>(item.mode));
    UniqueFd fd;
    switch (item.type) {
        case rules::EntryType::Dir:
            archive_entry_set_filetype(e, AE_IFDIR);
            break;
        case rules::EntryType::Symlink:
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, item.target.c_str());
            break;
        case rules::EntryType::File:
        case rules::EntryType::Hardlink: {
            archive_entry_set_filetype(e, AE_IFREG);
            fd.reset(::open((root / item.path).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
            if (!fd.valid())
                return failErrno(Errc::Io, errno, what, ": cannot open '", item.path, "'");
            archive_entry_set_size(e, static_cast<la_int64_t>(item.size));
            break;
        }
    }
    if (archive_write_header(a, e) != ARCHIVE_OK) {
        return fail(Errc::Io, what, ": cannot write '", item.path, "': ", archive_error_string(a));
    }
    if (!fd.valid()) return ok();
    std::uint64_t written = 0;
    while (true) {
        ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return failErrno(Errc::Io, errno, what, ": cannot read '", item.path, "'");
        if (n == 0) break;
        if (written + static_cast<std::uint64_t>(n) > item.size) break;
        if (archive_write_data(a, buffer.data(), static_cast<size_t>(n)) != n) {
            return fail(Errc::Io, what, ": cannot write '", item.path,
                        "': ", archive_error_string(a));
        }
        written += static_cast<std::uint64_t>(n);
    }
    if (written != item.size) {
        return fail(Errc::Conflict, what, ": '", item.path, "' changed while it was being packed");
    }
    return ok();
}

}  // namespace

Result<PackResult> packDirectory(const fs::path& dir, const fs::path& out) {
    auto what = detail::concat("pack '", dir.string(), "'");
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        return fail(Errc::NotFound, what, ": not a folder");
    }
    auto pkginfo_text = files::readFile(dir / "pkginfo.json", 1u << 20);
    if (!pkginfo_text) {
        if (pkginfo_text.error().code == Errc::NotFound) {
            return fail(Errc::Invalid, what, ": pkginfo.json is missing at the package root");
        }
        return std::unexpected(withContext(pkginfo_text.error(), what));
    }
    auto info = PkgInfo::parse(*pkginfo_text);
    if (!info) return std::unexpected(withContext(info.error(), what));

    std::vector<Item> items;
    HOIST_TRY(collect(dir, {}, items, what));

    fs::path target = out.empty() ? fs::current_path() / (info->id().str() + ".tar.zst") : out;
    if (target.has_parent_path()) HOIST_TRY(files::makeDirs(target.parent_path()));
    auto temp = files::tempSibling(target);
    UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd.valid())
        return failErrno(Errc::Io, errno, what, ": cannot create '", temp.string(), "'");
    struct Cleanup {
        fs::path path;
        ~Cleanup() {
            if (!path.empty()) ::unlink(path.c_str());
        }
    } cleanup{temp};

    Sink sink;
    sink.fd = fd.get();
    // Names are UTF-8 (collect checked), and pax headers hold UTF-8: libarchive converts from
    // the locale's charset, which in the "C" locale a process starts in cannot hold 'café'.
    // This thread reads them as UTF-8 while it packs; the process locale is left alone.
    auto utf8_names = ThreadLocale::utf8();
    {
        ArchiveWrite a(archive_write_new());
        if (!a) return fail(Errc::Internal, "cannot allocate an archive writer");
        // pax only where ustar can't say it (long names); no names, times or pids in headers.
        if (archive_write_set_format_pax_restricted(a.get()) != ARCHIVE_OK ||
            archive_write_add_filter_zstd(a.get()) != ARCHIVE_OK ||
            archive_write_set_filter_option(a.get(), "zstd", "compression-level", "3") !=
                ARCHIVE_OK) {
            return fail(Errc::Internal, what, ": ", archive_error_string(a.get()));
        }
        // No zero padding after the compressed stream (it would be read as another frame).
        archive_write_set_bytes_in_last_block(a.get(), 1);
        if (archive_write_open(a.get(), &sink, nullptr, writeCallback, nullptr) != ARCHIVE_OK) {
            return fail(Errc::Io, what, ": ", archive_error_string(a.get()));
        }
        std::vector<char> buffer(1u << 20);
        for (const auto& item : items) HOIST_TRY(writeItem(a.get(), dir, item, buffer, what));
        if (archive_write_close(a.get()) != ARCHIVE_OK) {
            return fail(Errc::Io, what,
                        ": cannot finish the tarball: ", archive_error_string(a.get()));
        }
    }
    if (::fsync(fd.get()) != 0 || fd.close() != 0) {
        return failErrno(Errc::Io, errno, what, ": cannot write '", temp.string(), "'");
    }
    HOIST_TRY(files::renameDurable(temp, target));
    cleanup.path.clear();
    PackResult result{
        .ref = {.id = info->id().str(), .sha256 = sink.hash.finishHex(), .size = sink.bytes},
        .info = std::move(*info),
        .file = target};
    return result;
}

}  // namespace hoist::pkgmgr
