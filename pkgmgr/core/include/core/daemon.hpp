#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace hoist::metrics {
class Registry;
}

/// What every long-running hoist daemon shares: reloadable token files, SIGHUP, the refusal
/// to run without credentials, and systemd's notify protocol.
namespace hoist::daemon {

/// A bearer token read from a file and read again by reload(). Copies share one value, so a
/// copy handed to a route or a client sees a reload. A secret made from a string (or with no
/// file) is fixed; an empty one means "no token". Thread-safe.
class Secret {
public:
    Secret() = default;
    /// A fixed token (tests, tokens passed in code).
    Secret(std::string token);  // NOLINT: implicit, so code holding strings keeps working
    /// Reads `file` (trimmed); an empty path gives an empty secret. Io when unreadable,
    /// Invalid when the file holds nothing; `what` names it in errors ("admin token").
    static Result<Secret> fromFile(const std::filesystem::path& file, std::string what);

    std::string value() const;
    operator std::string() const { return value(); }  // NOLINT: see above
    bool empty() const;
    const std::filesystem::path& file() const;
    /// Reads the file again. On an error the old value stays and the error is returned; a
    /// fixed secret is left as it is.
    Result<void> reload();

private:
    struct Shared;
    std::shared_ptr<Shared> shared_;
};

/// Blocks SIGHUP in the calling thread and calls `on_reload` from a thread of its own for
/// each SIGHUP. Construct it first in main, before any other thread (SignalWaiter's too)
/// starts, so that every thread inherits the blocked signal; its own thread also blocks
/// SIGINT and SIGTERM, which the SignalWaiter constructed next waits for.
class ReloadWaiter {
public:
    explicit ReloadWaiter(std::function<void()> on_reload);
    ~ReloadWaiter();
    ReloadWaiter(const ReloadWaiter&) = delete;
    ReloadWaiter& operator=(const ReloadWaiter&) = delete;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// --insecure-no-auth: logs a warning naming what is open, and sets the gauge
/// hoist_insecure_no_auth{component,missing} to 1 on the daemon's /metrics.
void warnInsecure(std::string_view component, metrics::Registry& registry,
                  std::string_view missing);
/// The refusal when a token is missing and --insecure-no-auth was not given.
Error missingCredential(std::string_view component, std::string_view what, std::string_view flag);

/// What SIGHUP does in every daemon (a ReloadWaiter's callback): tells systemd RELOADING,
/// re-reads each of `secrets` (copies share their value) and calls `reload_tls` when set (the
/// server's certificate files); a file that cannot be read keeps the old value and is logged
/// under `component`; READY again at the end.
void reloadSecrets(std::string_view component, std::vector<Secret> secrets,
                   const std::function<Result<void>()>& reload_tls);

/// systemd's notify protocol (sd_notify), a no-op when not started by systemd ($NOTIFY_SOCKET
/// unset) or when built without libsystemd.
void notifyReady(std::string_view status);
void notifyReloading();
void notifyStopping();
/// With WatchdogSec= in the unit: a thread sending WATCHDOG=1 at half the interval while
/// `alive()` returns true (a hung check lets systemd restart the daemon). Stops with the
/// returned handle. Nothing when no watchdog is asked for.
class Watchdog {
public:
    explicit Watchdog(std::function<bool()> alive);
    ~Watchdog();
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};
/// True when the build has libsystemd (sd_notify is real).
bool haveSystemd();

}  // namespace hoist::daemon
