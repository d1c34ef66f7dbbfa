#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/files.hpp"
#include "pkgmgr/layout.hpp"
#include "pkgmgr/package.hpp"
#include "pkgmgr/release.hpp"
#include "pkgmgr/sets.hpp"
#include "pkgmgr/store.hpp"

namespace hoist::pkgmgr {

struct MergedTree;  // the set's well-known folders, merged (src/sets/merged_tree.hpp)

/// generations/<N>/set.json plus what stage built beside it: bin/ lib/ ... symlink farms into
/// the store, `environment` (KEY=VALUE lines, ${PKG} and ${STATE} expanded), units/.
struct Generation {
    long number = 0;
    std::string role;
    std::string release;  ///< empty when staged from a bare package list
    /// The release's upgrade_from patterns; nullopt when staged from a bare package list.
    std::optional<std::vector<std::string>> upgrade_from;
    std::vector<PackageRef> packages;
    std::string created;  ///< RFC 3339
    std::filesystem::path path;

    /// The service to run: the package of the role's service kind, with exec and health.
    /// NotFound when the set has none.
    Result<std::pair<PackageRef, ServiceSpec>> service(const Store& store,
                                                       const RoleRules& rules) const;
};

struct GcReport {
    std::vector<long> generations_removed;
    std::vector<std::string> packages_removed;  ///< sha256
    std::uint64_t bytes_freed = 0;
};

struct RecoverReport {
    std::vector<std::string> actions;  ///< human-readable: "removed generations/.tmp-7-ab12"
};

/// Generations and the `current` switch. Every mutating call holds <root>/lock (waiting up to
/// `lock_wait`, then Busy) unless it is given a lock the caller already holds.
class Generations {
public:
    static Result<Generations> open(const NodeLayout& layout);

    /// Validates the set (validateSet) and builds generations/<N> under a temporary name,
    /// renamed into place. Idempotent: when the newest generation holds the same packages
    /// for the same role and release, returns it. Packages must already be in the store.
    Result<Generation> stage(const std::vector<std::string>& sha256s, const RoleRules& rules,
                             const std::string& release);
    /// Stages the role's packages of a (verified) release: each reference must be in the store
    /// under its sha256 with the same id (Corrupt otherwise), and the release must allow
    /// upgrading from the current generation's release (Conflict otherwise). Records the
    /// release's version and upgrade_from in set.json.
    Result<Generation> stage(const Release& release, const RoleRules& rules);
    /// What stage checks, without building anything and without the lock (`pkgmgr check`).
    Result<std::vector<StoredPackage>> check(const std::vector<std::string>& sha256s,
                                             const RoleRules& rules) const;
    Result<std::vector<StoredPackage>> check(const Release& release, const RoleRules& rules) const;
    /// Re-hashes each package against its manifest (Store::requireIntact): Corrupt, naming
    /// the package and the files that changed, when any differs. stage() does this before it
    /// builds or reuses a generation; the restart helper before it stops the service to swap.
    Result<void> requireIntact(const std::vector<PackageRef>& packages) const;
    /// Switches `current` to generations/<N> with rename(2) of a new symlink, fsyncs, and
    /// records N in the activation history. NotFound for an unknown N. Conflict when N comes
    /// from a release whose upgrade_from does not match the current generation's release
    /// (unless N was active before: going back is always allowed).
    Result<void> activate(long number);
    /// Activates the generation that was current before this one. NotFound when none.
    Result<long> rollback();
    /// The generation `current` points at; nullopt on a node with none yet.
    Result<std::optional<long>> current() const;
    /// The generation active before the current one, per the activation history.
    Result<std::optional<long>> previous() const;
    Result<Generation> load(long number) const;
    /// All complete generations, oldest first.
    Result<std::vector<Generation>> list() const;
    /// Keeps current, the previous `keep` activated generations and their packages; removes
    /// the rest (generations first, then unused packages).
    Result<GcReport> gc(int keep, bool dry_run);
    /// Removes temporary leftovers (generations/.tmp-*, store/.tmp-*, a stale `current`
    /// temp link) and repairs `current` if it points at a missing generation.
    Result<RecoverReport> recover();
    /// Packages used by the generations gc would keep (sha256).
    Result<std::vector<std::string>> packagesInUse(int keep) const;

    const NodeLayout& layout() const { return layout_; }

    /// How long mutating calls wait for <root>/lock before failing with Busy (default: 0,
    /// fail at once).
    void setLockWait(std::chrono::milliseconds wait) { lock_wait_ = wait; }
    /// The caller already holds <root>/lock (the restart helper during a swap): mutating
    /// calls then do not take it themselves.
    void setCallerHoldsLock(bool held) { caller_holds_lock_ = held; }

private:
    explicit Generations(NodeLayout layout) : layout_(std::move(layout)) {}
    Result<std::optional<files::FileLock>> lock(std::string_view what) const;
    /// The store entries of sha256s, in order (no validation): NotFound or Invalid.
    Result<std::vector<StoredPackage>> resolve(const std::vector<std::string>& sha256s) const;
    /// The sha256s of a release's packages for the role, after checking the transition.
    Result<std::vector<std::string>> releaseShas(const Release& release,
                                                 const RoleRules& rules) const;
    /// Validates the set and checks its packages (requireIntact) beside the build, which publishes
    /// nothing before the check passed; a changed package is the refusal, whatever else failed.
    Result<Generation> stageVerified(const std::vector<StoredPackage>& set, const RoleRules& rules,
                                     const std::string& release,
                                     const std::optional<std::vector<std::string>>& upgrade_from);
    /// `before_publish` runs before a generation (new or already staged) is handed back.
    Result<Generation> build(const std::vector<StoredPackage>& set, const MergedTree& tree,
                             const RoleRules& rules, const std::string& release,
                             const std::optional<std::vector<std::string>>& upgrade_from,
                             const std::function<Result<void>()>& before_publish);
    Result<void> switchTo(long number, std::string_view step_prefix);
    Result<void> requireIntact(const std::vector<StoredPackage>& set) const;
    Result<void> checkTransition(const std::string& release,
                                 const std::optional<std::vector<std::string>>& upgrade_from,
                                 std::optional<long> target) const;
    Result<std::vector<long>> history() const;
    Result<std::vector<long>> keptGenerations(int keep) const;

    NodeLayout layout_;
    std::chrono::milliseconds lock_wait_{0};
    bool caller_holds_lock_ = false;
};

}  // namespace hoist::pkgmgr
