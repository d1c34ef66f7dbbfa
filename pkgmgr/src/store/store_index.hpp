#pragma once

// The store's index (<root>/run/store-index.json): every complete entry's reference and
// pkginfo.json, so that list, find-by-id and the set verbs read one file instead of opening
// two files in every entry. It is a cache: entries are immutable and named by their
// sha256, so an index whose sha256s are exactly the store's folder names is correct. Each
// load compares the two (one readdir, no opens), re-reads the entries it lacks, drops the
// ones gone, and writes the repaired index. Writes are atomic (temporary file + rename) but
// not synced: a crash leaves the old index, the new one or an unreadable one, all of which
// the next load repairs. It is kept only where run/ exists (every node root NodeLayout::ensure
// made); a bare store without it reads its entries once per process instead.

#include <sys/stat.h>

#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "pkgmgr/layout.hpp"
#include "pkgmgr/store.hpp"

namespace hoist::pkgmgr {

/// Reads store/<sha256>/.hoist/package.json and pkginfo.json: NotFound when absent, Corrupt
/// when they disagree with the name or do not parse.
Result<StoredPackage> readStoreEntry(const NodeLayout& layout, const std::string& sha256);

class StoreIndex {
public:
    explicit StoreIndex(NodeLayout layout) : layout_(std::move(layout)) {}

    /// Every complete entry, sorted by id then sha256.
    Result<std::vector<StoredPackage>> all();
    /// The sha256s of the entries with each id, sorted (one look at the store for them all).
    Result<std::vector<std::vector<std::string>>> shasOf(const std::vector<std::string>& ids);
    /// The entries named by each sha256, nullopt where the index does not hold one (one look
    /// at the store for them all).
    Result<std::vector<std::optional<StoredPackage>>> find(const std::vector<std::string>& shas);
    /// Records an entry just renamed into place, and writes the index.
    void added(const StoredPackage& pkg);
    /// Forgets an entry just renamed away, and writes the index.
    void removed(const std::string& sha256);

    /// The index of this root shared by every Store of the process (one load of the file per
    /// process, not per Store::open). Thread-safe.
    static std::shared_ptr<StoreIndex> of(const NodeLayout& layout);

    /// The index file.
    static fs::path file(const NodeLayout& layout) { return layout.run() / "store-index.json"; }

private:
    /// Loads the index file on first use, then reconciles with the store's folder names
    /// whenever the store folder changed since the last look (its mtime, trusted only once it
    /// is older than the clock's granularity could hide).
    /// True when the file must be written (it missed entries, held gone ones, or was
    /// unreadable).
    Result<bool> refreshLocked();
    Result<bool> reconcileLocked();
    /// refreshLocked, then `change` (true when it changed the entries), then the write.
    Result<void> syncLocked(const std::function<bool()>& change);
    void loadFileLocked();
    void writeLocked();
    std::map<std::string, StoredPackage>::iterator eraseLocked(
        std::map<std::string, StoredPackage>::iterator it);

    NodeLayout layout_;
    std::mutex mutex_;
    bool loaded_ = false;
    bool file_ok_ = false;  ///< the file on disk holds what by_sha_ held when loaded
    /// The index file as last loaded or written (inode, size, mtime): another writer's file
    /// (another process, a repair by hand) is loaded again.
    struct stat file_seen_ {};
    timespec seen_mtime_{};
    bool seen_racy_ = true;
    std::map<std::string, StoredPackage> by_sha_;
    std::multimap<std::string, std::string> by_id_;
};

}  // namespace hoist::pkgmgr
