#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "pkgmgr/journal.hpp"
#include "pkgmgr/layout.hpp"

namespace hoist::restart_helper {

namespace fs = std::filesystem;

/// The journal lives beside the node layout: `pkgmgr serve` reads it too.
using pkgmgr::Journal;
using pkgmgr::JournalStep;

/// Exit codes of `swap`, `recover` and `bootstrap` (errors before a transaction starts use
/// hoist::exitCode: 2 invalid, 3 not found, 8 busy, ...; a crash point exits 86).
inline constexpr int kExitHealthy = 0;
inline constexpr int kExitRolledBack = 20;
inline constexpr int kExitFailed = 21;
/// The exit code for a terminal state ("healthy", "rolled_back", "failed").
int exitCodeFor(std::string_view terminal_state);

/// Every crash point (HOIST_CRASH_AT) the helper has, in the order a swap (then a rollback)
/// passes them. "helper.<state>" fires right after the journal entered that state, before its
/// work; "helper.stopped", ".swapped", ".started", ".checked" (and the rb_ ones of a rollback)
/// right after the work; "helper.closed" after the journal moved to run/last-txn.json.
inline const std::vector<std::string> kCrashPoints = {
    "helper.stopping",   "helper.stopped",    "helper.swapping",     "helper.swapped",
    "helper.starting",   "helper.started",    "helper.checking",     "helper.checked",
    "helper.healthy",    "helper.closed",     "helper.rolling_back", "helper.rb_stopped",
    "helper.rb_swapped", "helper.rb_started", "helper.rolled_back",  "helper.failed",
};

struct HelperOptions {
    pkgmgr::NodeLayout layout;
    /// Role rules folder; empty: $HOIST_LAYOUTS, else the rules compiled into pkgmgr.
    std::filesystem::path layouts_dir;
    /// How long to wait for another helper's transaction lock.
    std::chrono::milliseconds lock_wait{10000};
    /// How long to keep trying to deliver the pings before exiting; what is left stays in
    /// the outbox for `pkgmgr serve` or the next helper.
    std::chrono::milliseconds ping_grace{3000};
};

struct SwapRequest {
    long to = 0;
    std::string deployment;
    /// Coordinator base URL for the pings; empty: node.json's coordinator (or none).
    std::string report_to;
    /// Operation id (pkgmgr serve passes the one it answered with); empty: a new one.
    std::string operation;
    /// The coordinator epoch the restart was sent under (pkgmgr/epoch.hpp); 0: none. Checked
    /// against, and recorded as, the highest epoch the node has seen before anything stops.
    std::int64_t epoch = 0;
};

struct BootstrapRequest {
    std::string repository;
    std::string release;
    std::string role;
    std::string coordinator;
    std::string id;  ///< empty: the host name
    bool allow_unsigned = false;
    std::vector<std::filesystem::path> trusted_keys;
    /// A file holding the token the node presents to the coordinator (register, status
    /// pings); copied to <root>/coordinator.token (mode 0600). Empty: none.
    std::filesystem::path coordinator_token_file;
    std::string service_manager = "process";
    std::string systemd_unit = "mesos.service";
    std::string listen = "127.0.0.1:0";
    /// Packages fetched at once.
    int parallel = 8;
};

/// What `status` reports.
struct HelperStatus {
    std::optional<long> current;
    std::optional<Journal> transaction;  ///< txn.json
    std::optional<Journal> last;         ///< run/last-txn.json
    bool service_running = false;
    std::string service_detail;
    std::size_t pings_queued = 0;
    /// Unreadable pings set aside (outbox/<seq>.json.damaged), never sent.
    std::vector<fs::path> pings_damaged;
    std::string toJson() const;
};

/// What flush left behind.
struct FlushResult {
    std::size_t left = 0;           ///< still queued (the coordinator did not take them)
    std::vector<fs::path> damaged;  ///< unreadable pings set aside, never sent
};

/// The restart helper: swaps the active set with the service stopped, checks health and rolls
/// back, finishing or undoing whatever a crash interrupted. One transaction at a time per
/// node root (run/txn.lock); generation switches also take the node lock (<root>/lock).
class Helper {
public:
    static Result<Helper> open(HelperOptions options);
    ~Helper();
    Helper(Helper&&) noexcept;
    Helper& operator=(Helper&&) noexcept;

    /// stopping -> swapping -> starting -> checking -> healthy, or on a failed start or check
    /// rolling_back -> rolled_back | failed. Runs recover() first. Returns the final journal;
    /// errors only when the swap could not begin (unknown generation, busy, bad node.json).
    Result<Journal> swap(const SwapRequest& request);
    /// Finishes (after the switch) or undoes (before it) an interrupted transaction; with no
    /// journal and `start_service`, starts the current generation's service when it is not
    /// running (at boot). Returns the journal it closed, if any.
    Result<std::optional<Journal>> recover(bool start_service);
    /// Turns an empty root into a running node: fetch and verify the release, fetch its
    /// packages, stage, activate, start, check, write node.json. Conflict when the root
    /// already holds a node.
    Result<Journal> bootstrap(const BootstrapRequest& request);
    Result<HelperStatus> status();
    /// Delivers queued pings now; says how many are left and which were set aside as
    /// unreadable.
    Result<FlushResult> flush(std::chrono::milliseconds timeout);

private:
    struct Impl;
    explicit Helper(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace hoist::restart_helper
