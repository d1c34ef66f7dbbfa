#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "pkgmgr/layout.hpp"
#include "pkgmgr/package.hpp"

namespace hoist::pkgmgr {

class StoreIndex;
struct DeferredStamps;

/// Limits on what one archive may unpack to (configurable from the CLI).
struct ExtractLimits {
    std::uint64_t max_entries = 1'000'000;
    std::uint64_t max_unpacked_bytes = 32ull << 30;
    std::size_t max_path_length = 1024;
};

/// A complete, verified store entry: <root>/store/<sha256>/.
struct StoredPackage {
    PackageRef ref;
    PkgInfo info;
    fs::path path;
};

/// What `verify` found for one package.
struct VerifyReport {
    std::string sha256;
    std::string id;
    /// Human-readable problems: "bin/mesos-master: content changed", "lib/x.so: missing".
    std::vector<std::string> problems;
    bool ok() const { return problems.empty(); }
};

/// The content-addressed package store. Store does not take the node lock: callers that
/// mutate it (the CLI, `pkgmgr serve`, gc) hold <root>/lock themselves. Concurrent add() calls
/// are safe, in one process or several (each extracts into its own store/.tmp-*; the rename
/// decides). A crash at any instant leaves each entry complete or absent. Store entries hold
/// .hoist/package.json (the reference) and .hoist/manifest.json (per-file sha256, for verify).
/// list() and find() by id read the store index (<root>/store-index.json, a cache checked
/// against the store's folder names and repaired when stale); every Store of a root in a
/// process shares one. get() answers from it too, reading the entry only when it lacks it.
class Store {
public:
    /// Opens (and creates) the store under layout.root.
    static Result<Store> open(const NodeLayout& layout);

    const NodeLayout& layout() const { return layout_; }

    /// Reads the tarball once, hashing it while safe extraction writes entries into
    /// store/.tmp-*, then renames to store/<sha256>. Idempotent (an existing entry is kept).
    /// With `expected_sha256`, a different hash is Corrupt and nothing is kept. Refusals
    /// (Invalid / Corrupt) name the entry and the rule.
    Result<StoredPackage> add(const fs::path& tarball, const ExtractLimits& limits = {},
                              const std::optional<std::string>& expected_sha256 = {});
    /// NotFound when absent.
    Result<StoredPackage> get(const std::string& sha256) const;
    bool has(const std::string& sha256) const;
    /// By sha256 or by id (through the index, then get()); Conflict when an id matches
    /// several entries.
    Result<StoredPackage> find(const std::string& id_or_sha256) const;
    /// get() of each sha256, with one look at the store for them all (a set of 1,000).
    std::vector<Result<StoredPackage>> getMany(const std::vector<std::string>& sha256s) const;
    /// find() of each sha256 or id, with one look at the store for them all.
    std::vector<Result<StoredPackage>> findMany(const std::vector<std::string>& ids) const;
    /// Every complete entry, sorted by id.
    Result<std::vector<StoredPackage>> list() const;
    /// Removes an entry (the caller checks it is not in use). NotFound when absent.
    Result<void> remove(const std::string& sha256);
    /// Re-hashes every file against the manifest recorded at add time.
    Result<VerifyReport> verify(const std::string& sha256) const;
    /// verify() as a gate before a package is used (staging, a swap): Corrupt naming the
    /// package and the first files that changed when anything did. A package whose verified
    /// stamp (run/verified/<sha256>, written by add or stampDeferred and after each re-hash
    /// that passed) still matches the inode, size and ctime of every path is not re-read: true
    /// when it was re-hashed, false when the stamp stood for it.
    Result<bool> requireIntact(const std::string& sha256) const;
    /// Removes leftover store/.tmp-* folders; returns how many.
    Result<int> recover();
    /// Writes the verified stamps add() did not write (in a root without run/, which this
    /// makes, or racy: an entry whose paths changed within the filesystem clock's current tick,
    /// as a package just added has), after one wait of at most 50 ms for that clock, however
    /// many there are: for a command that has added packages (`pkgmgr add`, fetch) to call at
    /// its end, once nothing it added is undone. A stamp that cannot be written is logged; the
    /// package is then re-hashed at its first use.
    void stampDeferred() const;

private:
    explicit Store(NodeLayout layout);
    NodeLayout layout_;
    std::shared_ptr<StoreIndex> index_;
    std::shared_ptr<DeferredStamps> deferred_;  // shared by copies, like the index
};

}  // namespace hoist::pkgmgr
