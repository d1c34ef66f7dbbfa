#pragma once

#include <sys/types.h>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/http_client.hpp"
#include "pkgmgr/generations.hpp"
#include "pkgmgr/layout.hpp"
#include "pkgmgr/node_config.hpp"
#include "pkgmgr/package.hpp"
#include "pkgmgr/sets.hpp"
#include "pkgmgr/store.hpp"

namespace hoist::pkgmgr {

/// Runtime files of the node's service, all under <root>/run/.
/// The service finds its port file through ${PORT_FILE} (in exec) or $HOIST_PORT_FILE; a
/// health URL or command finds the port it wrote through ${PORT}.
struct ServicePaths {
    fs::path pidfile;   ///< run/service.pid: {"pid", "start_time", "generation", "started"}
    fs::path portfile;  ///< run/service.port: written by the service once it listens
    fs::path logfile;   ///< run/service.log: the service's stdout and stderr (appended)
    fs::path envfile;   ///< run/service.env: KEY=VALUE lines, for a systemd unit's EnvironmentFile=
    /// run/service.lock: the service (process manager) holds a POSIX lock on it from before
    /// its exec, so a start whose pidfile was never written is still found (and stopped).
    fs::path lockfile;

    static ServicePaths of(const NodeLayout& layout);
};

/// Replaces ${NAME} with vars[NAME]; names not in vars are left as written.
std::string expandVars(std::string_view text, const std::map<std::string, std::string>& vars);

/// Everything needed to start the service of one generation.
struct ServiceLaunch {
    long generation = 0;
    PackageRef package;
    ServiceSpec spec;  ///< exec already expanded; health left with ${PORT} for the checker
    std::vector<std::string> argv;
    std::vector<std::pair<std::string, std::string>> env;
    fs::path cwd;
};

/// Reads the generation's set, finds the package of the role's service kind, and expands
/// ${PKG} (its store path), ${STATE}, ${GEN} (generations/<N>), ${ROOT} and ${PORT_FILE} in
/// its exec and health command. The environment holds the generation's `environment` file
/// plus HOIST_ROOT, HOIST_GENERATION and HOIST_PORT_FILE. NotFound when the set has no service.
Result<ServiceLaunch> prepareLaunch(const NodeLayout& layout, const Store& store,
                                    const Generation& generation, const RoleRules& rules);

struct ServiceStatus {
    bool running = false;
    pid_t pid = 0;        ///< process manager only; 0 otherwise
    long generation = 0;  ///< the generation it was started from, when known (0: unknown)
    std::string detail;   ///< "exited with code 1", "systemctl: inactive", ...
};

/// Starts and stops the node's one service. Not thread-safe.
class ServiceManager {
public:
    virtual ~ServiceManager() = default;
    virtual std::string_view name() const = 0;
    /// Starts the service; Conflict when it already runs (stop it first).
    virtual Result<void> start(const ServiceLaunch& launch) = 0;
    /// Stops it (SIGTERM, then SIGKILL after `timeout`); stopping a stopped service is fine.
    virtual Result<void> stop(std::chrono::milliseconds timeout) = 0;
    virtual Result<ServiceStatus> status() = 0;
};

/// `process`: the service runs in a session of its own (so it outlives the endpoint and the
/// helper), recorded in run/service.pid with its start time (a reused pid is never signalled);
/// stop sends SIGTERM to its process group, then SIGKILL after the timeout. The service holds
/// a lock on run/service.lock from before its exec: a process whose start was never recorded
/// (the starter died between fork and pidfile) is reported by status() and stopped by stop()
/// and start(), so there is never a second service.
std::unique_ptr<ServiceManager> makeProcessManager(const NodeLayout& layout);
/// `systemd`: `systemctl start|stop|is-active <unit>` (systemctl looked up on PATH). start
/// also writes run/service.env for the unit's EnvironmentFile=.
/// `systemctl`: the program to run (a path, or a name looked up on PATH).
std::unique_ptr<ServiceManager> makeSystemdManager(const NodeLayout& layout, std::string unit,
                                                   std::string systemctl = "systemctl");
/// The manager node.json names; Invalid for an unknown one.
Result<std::unique_ptr<ServiceManager>> makeServiceManager(const NodeLayout& layout,
                                                           const NodeConfig& config);

/// What the health checker needs besides the check itself.
struct HealthContext {
    NodeLayout layout;
    /// Called between probes; returning a message ends the check at once (the service died).
    std::function<std::optional<std::string>()> gone;
};

/// One probe: an HTTP GET answering 2xx within timeout_ms, or the command exiting 0 within
/// timeout_ms. ${PORT} is read from run/service.port (Unhealthy while it is absent).
Result<void> probeHealth(const HealthCheck& check, const HealthContext& context,
                         http::Client& client);

/// Probes every interval_ms until the probes have passed continuously for healthy_after_ms
/// (ok), or deadline_ms passes, or context.gone says the service died (Unhealthy, with the
/// last probe's error).
Result<void> waitHealthy(const HealthCheck& check, const HealthContext& context);

}  // namespace hoist::pkgmgr
