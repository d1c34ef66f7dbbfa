#include "pkgmgr/store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <mutex>
#include <set>

#include "core/crypto.hpp"
#include "core/fd.hpp"
#include "core/files.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"
#include "extract.hpp"
#include "manifest.hpp"
#include "store_index.hpp"
#include "verified_stamp.hpp"

namespace hoist::pkgmgr {

namespace {

constexpr std::string_view kTmpPrefix = ".tmp-";
constexpr std::size_t kMaxManifest = 1u << 30;

std::string modeText(unsigned mode) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", mode & 07777u);
    return buf;
}

Result<void> requireSha(const std::string& sha256) {
    if (!crypto::isSha256Hex(sha256)) {
        return fail(Errc::Invalid, "'", sha256, "' is not a sha256 (64 lowercase hex digits)");
    }
    return ok();
}

Result<void> writeAt(int dir_fd, const char* name, std::string_view data, mode_t mode) {
    UniqueFd fd(::openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
    if (!fd.valid()) return failErrno(Errc::Io, errno, "cannot create '", name, "'");
    while (!data.empty()) {
        ssize_t n = ::write(fd.get(), data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return failErrno(Errc::Io, errno, "cannot write '", name, "'");
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    if (fd.close() != 0) return failErrno(Errc::Io, errno, "cannot write '", name, "'");
    return ok();
}

/// Makes the staged tree read-only: folders deepest first, so each chmod still finds its
/// parent searchable.
Result<void> sealTree(int root_fd, const std::vector<manifest::Entry>& entries) {
    for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
        if (it->type != manifest::Type::Dir) continue;
        if (::fchmodat(root_fd, it->path.c_str(), manifest::kDirMode, 0) != 0) {
            return failErrno(Errc::Io, errno, "cannot make '", it->path, "' read-only");
        }
    }
    if (::fchmod(root_fd, manifest::kDirMode) != 0) {
        return failErrno(Errc::Io, errno, "cannot make the package folder read-only");
    }
    return ok();
}

/// The staging folder of one add: removed unless it was renamed into place.
class Staging {
public:
    static Result<Staging> create(const fs::path& store) {
        HOIST_ASSIGN(auto dir, files::TempDir::create(store, kTmpPrefix));
        UniqueFd fd(::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!fd.valid())
            return failErrno(Errc::Io, errno, "cannot open '", dir.path().string(), "'");
        return Staging(std::move(dir), std::move(fd));
    }
    const fs::path& path() const { return dir_.path(); }
    int fd() const { return fd_.get(); }
    void keep() { dir_.keep(); }

private:
    Staging(files::TempDir dir, UniqueFd fd) : dir_(std::move(dir)), fd_(std::move(fd)) {}
    files::TempDir dir_;
    UniqueFd fd_;
};

/// Takes and writes the stamp of an entry: true when written, false when racy (see
/// stamp::Pending), the error when it could not be taken or written.
Result<bool> writeStamp(const NodeLayout& layout, const std::string& sha256, const fs::path& entry,
                        const std::vector<manifest::Entry>& entries, bool wait_for_clock) {
    HOIST_ASSIGN(auto pending,
                 stamp::Pending::begin(layout.root, sha256, entry, entries, wait_for_clock));
    return pending.commit();
}

void warnUnstamped(const std::string& sha256, const std::string& why) {
    log::warn("store", "cannot record a package as verified; it is re-hashed at first use",
              {{"sha256", sha256}, {"error", why}});
}

}  // namespace

/// The stamps add() did not write, for stampDeferred().
struct DeferredStamps {
    struct Item {
        std::string sha256;
        fs::path entry;
        std::vector<manifest::Entry> entries;
    };
    std::mutex mutex;
    std::vector<Item> items;
};

Result<StoredPackage> readStoreEntry(const NodeLayout& layout, const std::string& sha256) {
    auto path = layout.storeEntry(sha256);
    auto ref_text = files::readFile(path / manifest::kRefFile, 1u << 20);
    if (!ref_text) {
        if (ref_text.error().code == Errc::NotFound) {
            return fail(Errc::NotFound, "package ", sha256, " is not in the store");
        }
        return std::unexpected(ref_text.error());
    }
    auto ctx = detail::concat("store entry ", sha256);
    auto doc = json::parseObject(*ref_text, ctx);
    if (!doc) return fail(Errc::Corrupt, doc.error().message);
    auto ref = PackageRef::fromJson(*doc, ctx);
    if (!ref) return fail(Errc::Corrupt, ref.error().message);
    if (ref->sha256 != sha256) {
        return fail(Errc::Corrupt, ctx, ": records the sha256 ", ref->sha256);
    }
    HOIST_ASSIGN(auto pkginfo_text, files::readFile(path / "pkginfo.json", 1u << 20));
    auto info = PkgInfo::parse(pkginfo_text);
    if (!info) return fail(Errc::Corrupt, ctx, ": ", info.error().message);
    return StoredPackage{.ref = std::move(*ref), .info = std::move(*info), .path = path};
}

Store::Store(NodeLayout layout)
    : layout_(std::move(layout)),
      index_(StoreIndex::of(layout_)),
      deferred_(std::make_shared<DeferredStamps>()) {}

Result<Store> Store::open(const NodeLayout& layout) {
    std::error_code ec;
    NodeLayout absolute = NodeLayout::at(fs::absolute(layout.root, ec));
    if (ec) absolute = layout;
    HOIST_TRY(files::makeDirs(absolute.store()));
    return Store(std::move(absolute));
}

Result<StoredPackage> Store::add(const fs::path& tarball, const ExtractLimits& limits,
                                 const std::optional<std::string>& expected_sha256) {
    auto what = detail::concat("package archive '", tarball.string(), "'");
    if (expected_sha256) {
        HOIST_TRY(requireSha(*expected_sha256));
        if (has(*expected_sha256)) return get(*expected_sha256);
    }
    UniqueFd tar_fd(::open(tarball.c_str(), O_RDONLY | O_CLOEXEC));
    if (!tar_fd.valid()) {
        int err = errno;
        return failErrno(err == ENOENT ? Errc::NotFound : Errc::Io, err, what, ": cannot open");
    }
    struct stat st {};
    if (::fstat(tar_fd.get(), &st) == 0 && S_ISDIR(st.st_mode)) {
        return fail(Errc::Invalid, what,
                    ": is a folder, not a tarball (pack it with 'pkgmgr pack')");
    }
    HOIST_TRY(files::makeDirs(layout_.store()));
    HOIST_ASSIGN(auto staging, Staging::create(layout_.store()));
    HOIST_ASSIGN(auto extracted, extract::extractTarball(tar_fd.get(), staging.fd(), limits, what));

    if (expected_sha256 && extracted.sha256 != *expected_sha256) {
        return fail(Errc::Corrupt, what, ": its sha256 is ", extracted.sha256, ", expected ",
                    *expected_sha256);
    }
    auto parsed = PkgInfo::parse(extracted.pkginfo);
    if (!parsed) return std::unexpected(withContext(parsed.error(), what));
    PkgInfo info = std::move(*parsed);

    StoredPackage stored{
        .ref = {.id = info.id().str(), .sha256 = extracted.sha256, .size = extracted.size},
        .info = std::move(info),
        .path = layout_.storeEntry(extracted.sha256)};

    // What the store records goes beside the package, in a folder a package may not hold.
    if (::mkdirat(staging.fd(), manifest::kDir, 0755) != 0) {
        return failErrno(Errc::Io, errno, "cannot create '", manifest::kDir,
                         "' in the staging folder");
    }
    manifest::Manifest record{.ref = stored.ref,
                              .unpacked_bytes = extracted.unpacked_bytes,
                              .entries = std::move(extracted.entries)};
    HOIST_TRY(writeAt(staging.fd(), manifest::kManifestFile, manifest::toJson(record),
                      manifest::kFileMode));
    HOIST_TRY(writeAt(staging.fd(), manifest::kRefFile, stored.ref.toJson(), manifest::kFileMode));
    record.entries.push_back(manifest::Entry{.path = manifest::kDir, .type = manifest::Type::Dir});
    HOIST_TRY(sealTree(staging.fd(), record.entries));
    record.entries.pop_back();
    // One syncfs instead of an fsync per file: the entry is durable before it gets its name.
    if (::syncfs(staging.fd()) != 0)
        return failErrno(Errc::Io, errno, "cannot sync the staging folder");
    crashPoint("store-add-before-rename");

    if (::rename(staging.path().c_str(), stored.path.c_str()) != 0) {
        int err = errno;
        if (err == EEXIST || err == ENOTEMPTY) {
            // Added meanwhile (same bytes, same content): keep the existing entry.
            return get(stored.ref.sha256);
        }
        return failErrno(Errc::Io, err, "cannot rename the staging folder to '",
                         stored.path.string(), "'");
    }
    staging.keep();
    HOIST_TRY(files::fsyncPath(layout_.store()));
    crashPoint("store-add-after-rename");
    index_->added(stored);
    // Every file was hashed as it was written: the entry as it now stands is the verified one.
    // Like the index, stamps live in run/ and are not made by add() in a root without it. Such
    // a stamp, or a racy one, waits for stampDeferred(): once per command that adds packages,
    // not once per package, and the CLI's add makes run/ only once nothing is undone.
    struct stat run_st {};
    bool has_run = ::stat(layout_.run().c_str(), &run_st) == 0 && S_ISDIR(run_st.st_mode);
    Result<bool> written = false;
    if (has_run) {
        written = writeStamp(layout_, stored.ref.sha256, stored.path, record.entries,
                             /*wait_for_clock=*/false);
    }
    if (!written) {
        warnUnstamped(stored.ref.sha256, written.error().describe());
    } else if (!*written) {
        std::lock_guard lock(deferred_->mutex);
        deferred_->items.push_back(
            DeferredStamps::Item{stored.ref.sha256, stored.path, std::move(record.entries)});
    }
    log::info("store", "added package",
              {{"id", stored.ref.id}, {"sha256", stored.ref.sha256}, {"size", stored.ref.size}});
    return stored;
}

void Store::stampDeferred() const {
    std::vector<DeferredStamps::Item> items;
    {
        std::lock_guard lock(deferred_->mutex);
        items.swap(deferred_->items);
    }
    // The first stamp waits for the clock to leave the tick of the last add; the others find
    // it gone.
    for (const auto& item : items) {
        auto written = writeStamp(layout_, item.sha256, item.entry, item.entries,
                                  /*wait_for_clock=*/true);
        if (!written)
            warnUnstamped(item.sha256, written.error().describe());
        else if (!*written)
            warnUnstamped(item.sha256, "a path changed while it was recorded");
    }
}

Result<StoredPackage> Store::get(const std::string& sha256) const {
    return std::move(getMany({sha256}).front());
}

std::vector<Result<StoredPackage>> Store::getMany(const std::vector<std::string>& sha256s) const {
    std::vector<Result<StoredPackage>> out;
    out.reserve(sha256s.size());
    // The index holds what each entry's two files held when it was read (entries never
    // change; one that did is refused by requireIntact before use): a set of 1,000 reads no
    // file per package. An entry the index lacks is read, so its error is the entry's.
    auto indexed = index_->find(sha256s);
    for (std::size_t i = 0; i < sha256s.size(); ++i) {
        const auto& sha = sha256s[i];
        if (auto valid = requireSha(sha); !valid) {
            out.emplace_back(std::unexpected(valid.error()));
        } else if (indexed && (*indexed)[i]) {
            out.emplace_back(std::move(*(*indexed)[i]));
        } else {
            out.push_back(readStoreEntry(layout_, sha));
        }
    }
    return out;
}

bool Store::has(const std::string& sha256) const {
    if (!crypto::isSha256Hex(sha256)) return false;
    struct stat st {};
    return ::stat((layout_.storeEntry(sha256) / manifest::kRefFile).c_str(), &st) == 0;
}

Result<StoredPackage> Store::find(const std::string& id_or_sha256) const {
    return std::move(findMany({id_or_sha256}).front());
}

std::vector<Result<StoredPackage>> Store::findMany(const std::vector<std::string>& ids) const {
    std::vector<Result<StoredPackage>> out(ids.size(), std::unexpected(Error{}));
    // Ids to their sha256s through the index, then every sha256 (given or found) at once.
    std::vector<std::string> names;
    std::vector<std::size_t> name_of;
    std::vector<std::string> shas(ids.size());
    std::vector<bool> wanted(ids.size(), false);
    for (std::size_t i = 0; i < ids.size(); ++i) {
        if (crypto::isSha256Hex(ids[i])) {
            shas[i] = ids[i];
            wanted[i] = true;
            continue;
        }
        auto id = PackageId::parse(ids[i]);
        if (!id) {
            out[i] = std::unexpected(id.error());
            continue;
        }
        names.push_back(id->str());
        name_of.push_back(i);
    }
    if (!names.empty()) {
        auto found = index_->shasOf(names);
        for (std::size_t k = 0; k < names.size(); ++k) {
            auto i = name_of[k];
            if (!found) {
                out[i] = std::unexpected(found.error());
                continue;
            }
            const auto& matches = (*found)[k];
            if (matches.empty()) {
                out[i] = fail(Errc::NotFound, "package '", ids[i], "' is not in the store");
            } else if (matches.size() > 1) {
                out[i] =
                    fail(Errc::Conflict, "package '", ids[i], "' matches ", matches.size(),
                         " store entries (", strings::join(matches, ", "), "); name one by sha256");
            } else {
                shas[i] = matches.front();
                wanted[i] = true;
            }
        }
    }
    std::vector<std::string> lookups;
    for (std::size_t i = 0; i < ids.size(); ++i)
        if (wanted[i]) lookups.push_back(shas[i]);
    auto got = getMany(lookups);
    std::size_t k = 0;
    for (std::size_t i = 0; i < ids.size(); ++i)
        if (wanted[i]) out[i] = std::move(got[k++]);
    return out;
}

Result<std::vector<StoredPackage>> Store::list() const {
    return index_->all();
}

Result<void> Store::remove(const std::string& sha256) {
    HOIST_TRY(requireSha(sha256));
    auto path = layout_.storeEntry(sha256);
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT)
            return fail(Errc::NotFound, "package ", sha256, " is not in the store");
        return failErrno(Errc::Io, errno, "cannot inspect '", path.string(), "'");
    }
    // Renamed away first, so the entry disappears at once; recover() finishes a crashed removal.
    auto doomed = layout_.store() / (std::string(kTmpPrefix) + "rm-" + sha256.substr(0, 16) + "-" +
                                     crypto::randomHex(4));
    HOIST_TRY(files::renameDurable(path, doomed));
    crashPoint("store-remove-after-rename");
    index_->removed(sha256);
    stamp::drop(layout_.root, sha256);
    HOIST_TRY(files::removeTree(doomed));
    log::info("store", "removed package", {{"sha256", sha256}});
    return ok();
}

namespace {

/// A store entry with its manifest as read from disk (parse problems go into the report).
struct Recorded {
    StoredPackage pkg;
    std::optional<manifest::Manifest> manifest;
    VerifyReport report;
};

Result<Recorded> readRecorded(const NodeLayout& layout, const std::string& sha256) {
    HOIST_ASSIGN(auto pkg, readStoreEntry(layout, sha256));
    Recorded r{.pkg = pkg,
               .manifest = std::nullopt,
               .report = VerifyReport{.sha256 = sha256, .id = pkg.ref.id, .problems = {}}};
    HOIST_ASSIGN(auto text, files::readFile(pkg.path / manifest::kManifestFile, kMaxManifest));
    auto parsed = manifest::parse(text);
    if (!parsed) {
        r.report.problems.push_back(
            detail::concat(manifest::kManifestFile, ": ", parsed.error().message));
        return r;
    }
    if (parsed->ref != pkg.ref) {
        r.report.problems.push_back(
            detail::concat(manifest::kManifestFile, ": records another package"));
    }
    r.manifest = std::move(*parsed);
    return r;
}

/// Compares every entry with the manifest: types, modes, symlink targets, sizes and SHA-256
/// of every file, and anything at rest that the manifest does not hold.
Result<void> checkContent(const StoredPackage& pkg, const manifest::Manifest& recorded,
                          VerifyReport& report) {
    UniqueFd root(::open(pkg.path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!root.valid()) return failErrno(Errc::Io, errno, "cannot open '", pkg.path.string(), "'");
    std::set<std::string> expected;
    std::vector<char> buffer(1u << 20);
    for (const auto& e : recorded.entries) {
        expected.insert(e.path);
        struct stat st {};
        if (::fstatat(root.get(), e.path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
            report.problems.push_back(e.path + ": missing");
            continue;
        }
        bool type_ok = (e.type == manifest::Type::File && S_ISREG(st.st_mode)) ||
                       (e.type == manifest::Type::Dir && S_ISDIR(st.st_mode)) ||
                       (e.type == manifest::Type::Symlink && S_ISLNK(st.st_mode));
        if (!type_ok) {
            report.problems.push_back(e.path + ": type changed");
            continue;
        }
        if (e.type == manifest::Type::Symlink) {
            std::string target(4096, '\0');
            ssize_t n = ::readlinkat(root.get(), e.path.c_str(), target.data(), target.size());
            if (n < 0 || std::string_view(target.data(), static_cast<std::size_t>(n)) != e.target) {
                report.problems.push_back(e.path + ": symlink target changed");
            }
            continue;
        }
        auto mode = static_cast<unsigned>(st.st_mode & 07777);
        if (mode != e.mode) {
            report.problems.push_back(detail::concat(e.path, ": mode changed (", modeText(mode),
                                                     ", recorded ", modeText(e.mode), ")"));
        }
        if (e.type != manifest::Type::File) continue;
        if (static_cast<std::uint64_t>(st.st_size) != e.size) {
            report.problems.push_back(detail::concat(e.path, ": content changed (size ", st.st_size,
                                                     ", recorded ", e.size, ")"));
            continue;
        }
        UniqueFd fd(::openat(root.get(), e.path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
        if (!fd.valid()) {
            report.problems.push_back(
                detail::concat(e.path, ": cannot be read: ", std::strerror(errno)));
            continue;
        }
        crypto::Sha256 hash;
        bool read_ok = true;
        while (true) {
            ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) read_ok = false;
            if (n <= 0) break;
            hash.update(buffer.data(), static_cast<std::size_t>(n));
        }
        if (!read_ok) {
            report.problems.push_back(e.path + ": cannot be read");
        } else if (hash.finishHex() != e.sha256) {
            report.problems.push_back(e.path + ": content changed");
        }
    }
    // Anything added at rest is a change too.
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(pkg.path, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        auto rel = it->path().lexically_relative(pkg.path).string();
        if (rel == manifest::kDir) {
            it.disable_recursion_pending();
            continue;
        }
        if (!expected.contains(rel)) {
            report.problems.push_back(rel + ": not in the manifest");
            if (it->is_directory(ec) && !it->is_symlink(ec)) it.disable_recursion_pending();
        }
    }
    return ok();
}

}  // namespace

Result<VerifyReport> Store::verify(const std::string& sha256) const {
    HOIST_TRY(requireSha(sha256));
    HOIST_ASSIGN(auto r, readRecorded(layout_, sha256));
    if (r.manifest) HOIST_TRY(checkContent(r.pkg, *r.manifest, r.report));
    std::sort(r.report.problems.begin(), r.report.problems.end());
    return r.report;
}

Result<bool> Store::requireIntact(const std::string& sha256) const {
    HOIST_TRY(requireSha(sha256));
    auto entry = layout_.storeEntry(sha256);
    // A package whose every inode still shows what it showed when its content last matched
    // the manifest is not re-read (see the README: "Bytes that differ are never used").
    if (stamp::holds(layout_.root, sha256, entry)) return false;
    HOIST_ASSIGN(auto r, readRecorded(layout_, sha256));
    // The stamp is taken before the content is read, so a change made while it is read moves
    // a ctime past what the stamp records.
    std::optional<stamp::Pending> pending;
    if (r.manifest && r.report.ok()) {
        auto begun = stamp::Pending::begin(layout_.root, sha256, entry, r.manifest->entries,
                                           /*wait_for_clock=*/true);
        if (begun) pending.emplace(std::move(*begun));
    }
    if (r.manifest) HOIST_TRY(checkContent(r.pkg, *r.manifest, r.report));
    std::sort(r.report.problems.begin(), r.report.problems.end());
    auto& report = r.report;
    if (report.ok()) {
        if (pending) {
            auto written = pending->commit();
            if (!written)
                log::warn("store", "cannot record a package as verified; it is re-hashed next time",
                          {{"sha256", sha256}, {"error", written.error().describe()}});
        }
        return true;
    }
    constexpr std::size_t kNamed = 3;
    std::string named;
    for (std::size_t i = 0; i < report.problems.size() && i < kNamed; ++i)
        named += (i == 0 ? "" : "; ") + report.problems[i];
    if (report.problems.size() > kNamed)
        named += detail::concat("; and ", report.problems.size() - kNamed, " more");
    return fail(Errc::Corrupt, "package ", report.id, " (", sha256,
                ") differs from what was added, so it is not used: ", named,
                " (see 'pkgmgr verify ", sha256, "')");
}

Result<int> Store::recover() {
    int removed = 0;
    std::error_code ec;
    auto it = fs::directory_iterator(layout_.store(), ec);
    if (ec) {
        if (ec == std::errc::no_such_file_or_directory) return 0;
        return failErrno(Errc::Io, ec.value(), "cannot list '", layout_.store().string(), "'");
    }
    std::vector<fs::path> leftovers;
    for (; it != fs::directory_iterator(); it.increment(ec)) {
        if (ec) break;
        if (it->path().filename().string().starts_with(kTmpPrefix)) leftovers.push_back(it->path());
    }
    // An index write interrupted before its rename.
    auto index_tmp = files::tempSibling(StoreIndex::file(layout_)).filename().string();
    index_tmp.resize(index_tmp.rfind('-') + 1);
    for (auto root_it = fs::directory_iterator(layout_.run(), ec);
         !ec && root_it != fs::directory_iterator(); root_it.increment(ec)) {
        if (root_it->path().filename().string().starts_with(index_tmp))
            leftovers.push_back(root_it->path());
    }
    // A stamp write interrupted before its rename.
    for (auto stamp_it = fs::directory_iterator(stamp::folder(layout_.root), ec);
         !ec && stamp_it != fs::directory_iterator(); stamp_it.increment(ec)) {
        if (stamp_it->path().filename().string().starts_with(kTmpPrefix))
            leftovers.push_back(stamp_it->path());
    }
    for (const auto& path : leftovers) {
        HOIST_TRY(files::removeTree(path));
        log::info("store", "removed an interrupted store operation", {{"path", path.string()}});
        ++removed;
    }
    return removed;
}

}  // namespace hoist::pkgmgr
