#pragma once

// The restart helper's internals, shared by helper.cpp (swap, recover) and bootstrap.cpp.

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/files.hpp"
#include "pkgmgr/generations.hpp"
#include "pkgmgr/node_config.hpp"
#include "pkgmgr/outbox.hpp"
#include "pkgmgr/service.hpp"
#include "pkgmgr/sets.hpp"
#include "pkgmgr/store.hpp"
#include "restart_helper/helper.hpp"

namespace hoist::restart_helper {

inline constexpr std::string_view kComponent = "restart-helper";

struct Helper::Impl {
    HelperOptions options;
    pkgmgr::NodeLayout layout;
    std::optional<pkgmgr::NodeConfig> config;
    std::optional<pkgmgr::Store> store;
    std::optional<pkgmgr::Generations> gens;
    std::optional<pkgmgr::RoleRules> rules;
    std::unique_ptr<pkgmgr::ServiceManager> manager;
    std::unique_ptr<pkgmgr::PingCourier> courier;
    std::optional<files::FileLock> node_lock;
    /// Off during bootstrap: the node registers with the coordinator when `pkgmgr serve` first
    /// starts, and the coordinator refuses a ping from a node it does not know. Until then the
    /// pings wait in the outbox, and serve delivers them once registered.
    bool deliver_pings = true;

    explicit Impl(HelperOptions o);
    ~Impl();

    Result<void> openStore();
    /// node.json, role rules and the service manager.
    Result<void> loadNode();
    /// Role rules and the service manager from `config`.
    Result<void> useConfig();
    /// <root>/lock for the whole transaction; generation switches then reuse it.
    Result<void> lockNode();

    /// Queues a status ping of the journal's state (when there is a coordinator to tell) and,
    /// when deliver_pings, has the courier deliver it.
    void ping(const Journal& j);
    /// Gives the courier ping_grace to deliver, then stops it.
    void stopCourier();
    /// Journals the state, pings it, then passes the crash point "helper.<state>".
    Result<void> step(Journal& j, std::string_view state, std::string_view message = {});

    Result<pkgmgr::ServiceLaunch> launchFor(long generation);
    /// Stops the service; without a known timeout, the running generation's stop_timeout_ms.
    Result<void> stopService(std::optional<std::chrono::milliseconds> known_timeout = std::nullopt);
    Result<void> checkService(const pkgmgr::ServiceLaunch& launch);

    Result<Journal> runSwap(Journal j);
    /// From the switch on: start (unless it runs already), check, finish or roll back.
    Result<Journal> forward(Journal j);
    /// Starts the new generation's service (when `start`), checks it, and finishes healthy or
    /// rolls back.
    Result<Journal> startAndCheck(Journal j, const pkgmgr::ServiceLaunch& launch, bool start);
    Result<Journal> rollBack(Journal j, const Error& why);
    Result<Journal> continueRollBack(Journal j, const std::string& reason);
    /// Enters a terminal state and closes the journal.
    Result<Journal> finish(Journal j, std::string_view state, std::string_view message);
    /// Updates node.json's release, moves the journal to run/last-txn.json.
    Result<Journal> close(Journal j);
    /// `set_aside_damaged`: a txn.json that cannot be read is moved aside and the current
    /// generation brought up (recover); otherwise it is a Corrupt refusal (swap).
    Result<std::optional<Journal>> recoverLocked(bool start_service,
                                                 bool set_aside_damaged = false);
    Result<std::optional<Journal>> recoverDamagedJournal(const Error& damage);
};

}  // namespace hoist::restart_helper
