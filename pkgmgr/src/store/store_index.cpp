#include "store_index.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <set>

#include "core/crypto.hpp"
#include "core/files.hpp"
#include "core/json.hpp"
#include "core/log.hpp"

namespace hoist::pkgmgr {

namespace {

constexpr std::string_view kComponent = "store";
constexpr std::int64_t kFormat = 1;
constexpr std::size_t kMaxIndex = 256u << 20;

bool sameTime(const timespec& a, const timespec& b) {
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

// A change made within the timestamp granularity of the last one we saw may leave the
// folder's mtime unchanged: until the mtime is older than that, every lookup reads the folder
// again. Filesystems with nanosecond timestamps (ext4, xfs, btrfs) stamp from a clock that
// ticks every jiffy (at most 10 ms); others may count whole seconds (or two, FAT).
bool racy(const timespec& mtime) {
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    auto age_ns = (static_cast<std::int64_t>(now.tv_sec) - mtime.tv_sec) * 1'000'000'000 +
                  (now.tv_nsec - mtime.tv_nsec);
    auto window_ns = mtime.tv_nsec != 0 ? std::int64_t{50'000'000} : std::int64_t{3'000'000'000};
    return age_ns < window_ns;
}

// The sha256-named folders of the store (complete entries; .tmp-* are not).
Result<std::set<std::string>> entryNames(const fs::path& store) {
    std::set<std::string> names;
    DIR* dir = ::opendir(store.c_str());
    if (dir == nullptr) {
        if (errno == ENOENT) return names;
        return failErrno(Errc::Io, errno, "cannot list '", store.string(), "'");
    }
    errno = 0;
    while (const dirent* e = ::readdir(dir)) {
        if (crypto::isSha256Hex(e->d_name)) names.emplace(e->d_name);
        errno = 0;
    }
    int err = errno;
    ::closedir(dir);
    if (err != 0) return failErrno(Errc::Io, err, "cannot list '", store.string(), "'");
    return names;
}

bool sameFile(const struct stat& a, const struct stat& b) {
    return a.st_ino == b.st_ino && a.st_dev == b.st_dev && a.st_size == b.st_size &&
           sameTime(a.st_mtim, b.st_mtim);
}

}  // namespace

void StoreIndex::loadFileLocked() {
    by_sha_.clear();
    by_id_.clear();
    file_ok_ = false;
    auto path = file(layout_);
    file_seen_ = {};
    ::stat(path.c_str(), &file_seen_);
    auto text = files::readFile(path, kMaxIndex);
    if (!text) {
        // Absent: nothing to repair unless the store holds entries (reconcile finds them).
        file_ok_ = text.error().code == Errc::NotFound;
        if (!file_ok_)
            log::warn(kComponent, "cannot read the store index; rebuilding it",
                      {{"error", text.error().describe()}});
        return;
    }
    auto parsed = [&]() -> Result<void> {
        std::string ctx = path.string();
        HOIST_ASSIGN(auto doc, json::parseObject(*text, ctx));
        HOIST_TRY(json::rejectUnknown(doc, {"format", "packages"}, ctx));
        HOIST_ASSIGN(std::int64_t format, json::getInt(doc, "format", ctx));
        if (format != kFormat) return fail(Errc::Corrupt, ctx, ": unknown format ", format);
        HOIST_ASSIGN(const json::Value* packages, json::getArray(doc, "packages", ctx));
        for (const auto& item : packages->GetArray()) {
            if (!item.IsObject()) return fail(Errc::Corrupt, ctx, ": packages must be objects");
            HOIST_TRY(json::rejectUnknown(item, {"ref", "pkginfo"}, ctx));
            HOIST_ASSIGN(const json::Value* ref_json, json::getObject(item, "ref", ctx));
            HOIST_ASSIGN(const json::Value* info_json, json::getObject(item, "pkginfo", ctx));
            HOIST_ASSIGN(auto ref, PackageRef::fromJson(*ref_json, ctx));
            HOIST_ASSIGN(auto info, PkgInfo::parse(json::toString(*info_json)));
            if (info.id().str() != ref.id)
                return fail(Errc::Corrupt, ctx, ": ", ref.sha256, " holds ", info.id().str(),
                            ", not ", ref.id);
            auto sha = ref.sha256;
            auto id = ref.id;
            auto path_of = layout_.storeEntry(sha);
            if (!by_sha_.emplace(sha, StoredPackage{std::move(ref), std::move(info), path_of})
                     .second)
                return fail(Errc::Corrupt, ctx, ": ", sha, " is listed twice");
            by_id_.emplace(std::move(id), sha);
        }
        return ok();
    }();
    if (!parsed) {
        log::warn(kComponent, "the store index is damaged; rebuilding it",
                  {{"error", parsed.error().describe()}});
        by_sha_.clear();
        by_id_.clear();
        return;
    }
    file_ok_ = true;
}

std::map<std::string, StoredPackage>::iterator StoreIndex::eraseLocked(
    std::map<std::string, StoredPackage>::iterator it) {
    auto [first, last] = by_id_.equal_range(it->second.ref.id);
    for (auto id_it = first; id_it != last; ++id_it) {
        if (id_it->second == it->first) {
            by_id_.erase(id_it);
            break;
        }
    }
    return by_sha_.erase(it);
}

Result<bool> StoreIndex::reconcileLocked() {
    HOIST_ASSIGN(auto names, entryNames(layout_.store()));
    bool changed = false;
    for (auto it = by_sha_.begin(); it != by_sha_.end();) {
        if (names.contains(it->first)) {
            ++it;
            continue;
        }
        it = eraseLocked(it);
        changed = true;
    }
    for (const auto& name : names) {
        if (by_sha_.contains(name)) continue;
        auto pkg = readStoreEntry(layout_, name);
        if (!pkg) {
            log::warn(kComponent, "skipping a damaged store entry",
                      {{"sha256", name}, {"error", pkg.error().describe()}});
            continue;
        }
        by_id_.emplace(pkg->ref.id, name);
        by_sha_.emplace(name, std::move(*pkg));
        changed = true;
    }
    return changed;
}

Result<bool> StoreIndex::refreshLocked() {
    struct stat st {};
    if (::stat(layout_.store().c_str(), &st) != 0) {
        if (errno != ENOENT)
            return failErrno(Errc::Io, errno, "cannot inspect '", layout_.store().string(), "'");
        st = {};
    }
    if (loaded_) {
        // The index is shared by the process's Stores: a file written by someone else since
        // (or within the clock's granularity of it) is read again.
        struct stat now {};
        ::stat(file(layout_).c_str(), &now);
        if (!sameFile(now, file_seen_) || racy(file_seen_.st_mtim)) loaded_ = false;
    }
    if (loaded_ && !seen_racy_ && sameTime(st.st_mtim, seen_mtime_)) return false;
    if (!loaded_) loadFileLocked();
    loaded_ = true;
    auto changed = reconcileLocked();
    if (!changed) {
        loaded_ = false;
        return std::unexpected(changed.error());
    }
    seen_mtime_ = st.st_mtim;
    seen_racy_ = racy(st.st_mtim);
    return *changed || !file_ok_;
}

void StoreIndex::writeLocked() {
    auto path = file(layout_);
    if (by_sha_.empty()) {
        // An empty store has no index: nothing beside it changes when it empties again.
        if (::unlink(path.c_str()) != 0 && errno != ENOENT)
            log::debug(kComponent, "cannot remove the store index",
                       {{"path", path.string()}, {"error", std::strerror(errno)}});
        file_ok_ = true;
        file_seen_ = {};
        return;
    }
    struct stat st {};
    if (::stat(layout_.run().c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return;
    json::Writer w;
    w.beginObject().field("format", kFormat).key("packages").beginArray();
    for (const auto& [sha, pkg] : by_sha_) {
        w.beginObject().key("ref");
        pkg.ref.write(w);
        w.key("pkginfo").raw(pkg.info.toJson()).endObject();
    }
    w.endArray().endObject();
    // A reader without write access (a user running `pkgmgr list`) keeps its answer; the
    // next writer repairs the file.
    auto written = files::writeFileAtomic(path, w.str(), 0644, files::Durability::Atomic);
    if (!written) {
        log::debug(kComponent, "cannot write the store index",
                   {{"error", written.error().describe()}});
        return;
    }
    file_ok_ = true;
    file_seen_ = {};
    ::stat(path.c_str(), &file_seen_);
}

Result<void> StoreIndex::syncLocked(const std::function<bool()>& change) {
    HOIST_ASSIGN(bool dirty, refreshLocked());
    if (change && change()) dirty = true;
    if (dirty) writeLocked();
    return ok();
}

Result<std::vector<StoredPackage>> StoreIndex::all() {
    std::lock_guard lock(mutex_);
    HOIST_TRY(syncLocked({}));
    std::vector<StoredPackage> out;
    out.reserve(by_sha_.size());
    for (const auto& [sha, pkg] : by_sha_) out.push_back(pkg);
    std::sort(out.begin(), out.end(), [](const StoredPackage& a, const StoredPackage& b) {
        return std::tie(a.ref.id, a.ref.sha256) < std::tie(b.ref.id, b.ref.sha256);
    });
    return out;
}

Result<std::vector<std::vector<std::string>>> StoreIndex::shasOf(
    const std::vector<std::string>& ids) {
    std::lock_guard lock(mutex_);
    HOIST_TRY(syncLocked({}));
    std::vector<std::vector<std::string>> out;
    out.reserve(ids.size());
    for (const auto& id : ids) {
        auto& shas = out.emplace_back();
        auto [first, last] = by_id_.equal_range(id);
        for (auto it = first; it != last; ++it) shas.push_back(it->second);
        std::sort(shas.begin(), shas.end());
    }
    return out;
}

Result<std::vector<std::optional<StoredPackage>>> StoreIndex::find(
    const std::vector<std::string>& shas) {
    std::lock_guard lock(mutex_);
    HOIST_TRY(syncLocked({}));
    std::vector<std::optional<StoredPackage>> out;
    out.reserve(shas.size());
    for (const auto& sha : shas) {
        auto it = by_sha_.find(sha);
        out.push_back(it == by_sha_.end() ? std::nullopt : std::optional{it->second});
    }
    return out;
}

std::shared_ptr<StoreIndex> StoreIndex::of(const NodeLayout& layout) {
    // Entries are immutable and each lookup checks the store folder's mtime, so one index
    // per root serves every Store of the process (stage opens several).
    static std::mutex mutex;
    static std::map<fs::path, std::shared_ptr<StoreIndex>> indexes;
    std::lock_guard lock(mutex);
    auto& slot = indexes[layout.root];
    if (!slot) slot = std::make_shared<StoreIndex>(layout);
    return slot;
}

void StoreIndex::added(const StoredPackage& pkg) {
    std::lock_guard lock(mutex_);
    auto synced = syncLocked([&] {
        if (by_sha_.contains(pkg.ref.sha256)) return false;
        by_id_.emplace(pkg.ref.id, pkg.ref.sha256);
        by_sha_.emplace(pkg.ref.sha256, pkg);
        return true;
    });
    if (!synced)
        log::warn(kComponent, "cannot update the store index",
                  {{"error", synced.error().describe()}});
}

void StoreIndex::removed(const std::string& sha256) {
    std::lock_guard lock(mutex_);
    // The entry is already renamed away: the folder listing drops it.
    auto synced = syncLocked([&] {
        auto it = by_sha_.find(sha256);
        if (it == by_sha_.end()) return false;
        eraseLocked(it);
        return true;
    });
    if (!synced)
        log::warn(kComponent, "cannot update the store index",
                  {{"error", synced.error().describe()}});
}

}  // namespace hoist::pkgmgr
