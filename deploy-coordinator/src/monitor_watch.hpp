#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/error.hpp"
#include "deploy_coordinator/state.hpp"

namespace hoist::deploy_coordinator {

/// The dead man's switch. An SLA monitor proves it is alive by beating (for Alertmanager,
/// its always-firing Watchdog alert routed to the heartbeat route); while a deployment acts, a
/// monitor silent for longer than its allowance puts a hold, "heartbeat/<name>", because a
/// rollout nobody watches should not go on. Monitors are rows in the state file, so a restart
/// of the coordinator forgets none. Thread-safe; check() runs on its own thread once started.
class MonitorWatch {
public:
    struct Hooks {
        /// True while a deployment may act on nodes.
        std::function<bool()> acting;
        /// Puts the hold (Engine::halt); a repeat with the same words writes nothing.
        std::function<Result<std::string>(const std::string& source, const std::string& reason)>
            halt;
        std::function<std::int64_t()> now_ms;
        /// An HA follower's view (view() before reload()): since when the leader counts
        /// silence (Replica::leaderSinceMs), nullopt while none leads. Unset: none.
        std::function<Result<std::optional<std::int64_t>>()> leader_since_ms = {};
    };

    static constexpr std::int64_t kMinAllowanceMs = 1000;
    static constexpr std::int64_t kMaxAllowanceMs = 24LL * 3600 * 1000;
    static constexpr std::size_t kMaxMonitors = 64;

    /// `load`: read the monitors now (a replica reads them when it takes the lead, reload()).
    static Result<std::unique_ptr<MonitorWatch>> create(StateStore& state, Hooks hooks,
                                                        bool load = true);
    ~MonitorWatch();
    MonitorWatch(const MonitorWatch&) = delete;
    MonitorWatch& operator=(const MonitorWatch&) = delete;

    /// A beat from monitor `name`. `allowance` ("90s", "5m", "1h", "1500ms") is required at the
    /// first beat and may change it later. Invalid for a bad name or allowance, Busy past
    /// kMaxMonitors. Returns the monitor as JSON.
    Result<std::string> beat(const std::string& name, std::optional<std::string> allowance,
                             const std::string& by);
    /// Stops watching `name` (admin; audited). NotFound when it is not watched.
    Result<void> forget(const std::string& name, const std::string& by);
    /// {"monitors":[{"name","allowance_ms","last_beat","silent"}]}
    std::string json();
    /// GET /v1/monitors: json() once the monitors are loaded; before (an HA follower, which
    /// holds none) the same from a fresh read of the store, `silent` counted as the leader
    /// counts it (from its last beat, or from the leader's takeover when that is later; from
    /// the last beat alone while no replica leads). Unhealthy when the store does not answer.
    Result<std::string> view();
    /// Reads the monitors from the store again, each given one allowance from `since_ms`
    /// (default: now; a replica taking over: beats went to the previous leader).
    Result<void> reload(std::optional<std::int64_t> since_ms = std::nullopt);
    /// Holds for every monitor silent past its allowance while a deployment acts.
    void check();

    void start();
    void stop();

private:
    struct Monitor {
        std::int64_t allowance_ms = 0;
        std::int64_t last_beat_ms = 0;
        /// The later of the last beat and this process's start: beats sent while the
        /// coordinator was down were lost, so each monitor gets one allowance after a restart.
        std::int64_t heard_ms = 0;
    };
    MonitorWatch(StateStore& state, Hooks hooks) : state_(state), hooks_(std::move(hooks)) {}

    StateStore& state_;
    Hooks hooks_;
    std::mutex mutex_;
    std::map<std::string, Monitor> monitors_;
    /// reload() ran: monitors_ is this process's to keep (not a follower's).
    bool loaded_ = false;
    static std::string json(const std::map<std::string, Monitor>& monitors, std::int64_t now);
    /// The monitors of the stored rows, their silence counted from `counted_from` when it is
    /// later than their last beat.
    static std::map<std::string, Monitor> fromRows(const std::vector<MonitorRecord>& rows,
                                                   std::optional<std::int64_t> counted_from);
    std::condition_variable wake_;
    bool stopping_ = false;
    std::thread thread_;
};

/// "90s", "5m", "1h", "1500ms" or a bare number of milliseconds, within the watch's bounds.
Result<std::int64_t> parseAllowance(std::string_view text);

}  // namespace hoist::deploy_coordinator
