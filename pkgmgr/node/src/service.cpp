#include "pkgmgr/service.hpp"

#include <sys/wait.h>
#include <cerrno>
#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/files.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/process.hpp"
#include "core/strings.hpp"

namespace hoist::pkgmgr {

namespace {

constexpr std::string_view kComponent = "service";
using Clock = std::chrono::steady_clock;

// Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot. A pid
// and its start time together name one process, even after the pid is reused.
std::string processStartTime(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(in, line)) return {};
    auto close = line.rfind(')');
    if (close == std::string::npos) return {};
    auto fields = strings::split(std::string_view(line).substr(close + 2), ' ');
    // After the command come state (field 3) ... starttime (field 22): index 19 here.
    return fields.size() > 19 ? fields[19] : std::string();
}

Result<std::string> readEnvironmentFile(const fs::path& path,
                                        std::vector<std::pair<std::string, std::string>>& env) {
    auto text = files::readFile(path);
    if (!text) {
        if (text.error().code == Errc::NotFound) return std::string();
        return std::unexpected(text.error());
    }
    for (const auto& line : strings::split(*text, '\n')) {
        auto trimmed = strings::trim(line);
        if (trimmed.empty() || trimmed.front() == '#') continue;
        auto eq = trimmed.find('=');
        if (eq == std::string_view::npos || eq == 0)
            return fail(Errc::Corrupt, path.string(), ": line '", trimmed, "' is not KEY=VALUE");
        env.emplace_back(std::string(trimmed.substr(0, eq)), std::string(trimmed.substr(eq + 1)));
    }
    return *text;
}

struct PidFile {
    pid_t pid = 0;
    std::string start_time;
    long generation = 0;
};

Result<std::optional<PidFile>> readPidFile(const fs::path& path) {
    auto text = files::readFile(path);
    if (!text) {
        if (text.error().code == Errc::NotFound) return std::optional<PidFile>();
        return std::unexpected(text.error());
    }
    std::string ctx = path.string();
    HOIST_ASSIGN(auto doc, json::parseObject(*text, ctx));
    PidFile p;
    HOIST_ASSIGN(auto pid, json::getInt(doc, "pid", ctx));
    HOIST_ASSIGN(p.start_time, json::getString(doc, "start_time", ctx));
    HOIST_ASSIGN(auto generation, json::optInt(doc, "generation", ctx));
    p.pid = static_cast<pid_t>(pid);
    p.generation = static_cast<long>(generation.value_or(0));
    return std::optional<PidFile>(p);
}

// True while the process the pidfile names still runs (same pid, same start time).
bool sameProcessAlive(const PidFile& p) {
    if (!process::alive(p.pid)) return false;
    return processStartTime(p.pid) == p.start_time;
}

class ProcessManager final : public ServiceManager {
public:
    explicit ProcessManager(const NodeLayout& layout) : paths_(ServicePaths::of(layout)) {}

    std::string_view name() const override { return "process"; }

    Result<void> start(const ServiceLaunch& launch) override {
        HOIST_ASSIGN(auto current, status());
        if (current.running)
            return fail(Errc::Conflict, "the service already runs (pid ", current.pid,
                        "); stop it first");
        HOIST_TRY(files::makeDirs(paths_.pidfile.parent_path()));
        // A port file left by the previous process would point the health check at a port
        // nobody (or somebody else) listens on.
        std::error_code ec;
        fs::remove(paths_.portfile, ec);
        // A process of an earlier start that died before its pidfile was written.
        HOIST_TRY(stopUnrecorded(std::chrono::milliseconds(launch.spec.stop_timeout_ms)));
        // No service runs now, so no port file is being written: a temporary one is a killed
        // service's (node recovery leaves these to us, as the service may be writing one).
        HOIST_TRY(files::removeTempSiblings(paths_.portfile));
        process::Options options;
        options.env = launch.env;
        options.cwd = launch.cwd;
        options.stdout_file = paths_.logfile;
        options.stderr_file = paths_.logfile;
        options.new_session = true;
        // Held by the service from before its exec: the record of this start that exists
        // even when we die before the pidfile below is written.
        options.hold_lock = paths_.lockfile;
        HOIST_ASSIGN(auto child, process::Child::start(launch.argv, options));
        crashPoint("service.forked");
        PidFile p{child.pid(), processStartTime(child.pid()), launch.generation};
        json::Writer w;
        w.beginObject()
            .field("pid", static_cast<std::int64_t>(p.pid))
            .field("start_time", p.start_time)
            .field("generation", static_cast<std::int64_t>(p.generation))
            .field("started", log::nowRfc3339())
            .endObject();
        auto written = files::writeFileAtomic(paths_.pidfile, w.str() + "\n");
        if (!written) {
            child.terminate(std::chrono::milliseconds(2000));
            return std::unexpected(written.error());
        }
        log::info(kComponent, "started",
                  {{"pid", static_cast<std::int64_t>(p.pid)},
                   {"generation", static_cast<std::int64_t>(p.generation)}});
        child_ = std::move(child);
        return ok();
    }

    Result<void> stop(std::chrono::milliseconds timeout) override {
        HOIST_ASSIGN(auto pidfile, readPidFile(paths_.pidfile));
        if (pidfile && sameProcessAlive(*pidfile)) {
            pid_t pid = pidfile->pid;
            log::info(kComponent, "stopping", {{"pid", static_cast<std::int64_t>(pid)}});
            // The service leads its own session, so its pid is also its process group.
            ::kill(-pid, SIGTERM);
            ::kill(pid, SIGTERM);
            if (!waitGone(*pidfile, timeout)) {
                log::warn(kComponent, "did not stop in time, killing",
                          {{"pid", static_cast<std::int64_t>(pid)},
                           {"stop_timeout_ms", static_cast<std::int64_t>(timeout.count())}});
                ::kill(-pid, SIGKILL);
                ::kill(pid, SIGKILL);
                if (!waitGone(*pidfile, std::chrono::seconds(10)))
                    return fail(Errc::Timeout, "the service (pid ", pid,
                                ") still runs after SIGKILL");
            }
            // Whatever else it left in its group goes too.
            ::kill(-pid, SIGKILL);
        }
        reap();
        HOIST_TRY(stopUnrecorded(timeout));
        child_.reset();
        std::error_code ec;
        fs::remove(paths_.portfile, ec);
        HOIST_TRY(files::removeTempSiblings(paths_.portfile));
        if (fs::exists(paths_.pidfile, ec)) {
            if (::unlink(paths_.pidfile.c_str()) != 0 && errno != ENOENT)
                return failErrno(Errc::Io, errno, "cannot remove ", paths_.pidfile.string());
            HOIST_TRY(files::fsyncPath(paths_.pidfile.parent_path()));
        }
        return ok();
    }

    Result<ServiceStatus> status() override {
        ServiceStatus s;
        if (child_ && !child_->running()) {
            auto outcome = child_->wait(std::chrono::milliseconds(0));
            if (outcome) {
                s.detail = outcome->signal != 0
                               ? "killed by signal " + std::to_string(outcome->signal)
                               : "exited with code " + std::to_string(outcome->exit_code);
            }
        }
        HOIST_ASSIGN(auto pidfile, readPidFile(paths_.pidfile));
        if (pidfile) {
            s.pid = pidfile->pid;
            s.generation = pidfile->generation;
            s.running = sameProcessAlive(*pidfile);
            if (s.running) return s;
        }
        if (pid_t holder = process::lockHolder(paths_.lockfile); holder > 0) {
            // Not ours to manage (nothing records it), and not to be left running either.
            s.detail = detail::concat("a service process no pidfile records (pid ", holder,
                                      ", from a start that was interrupted) still runs; "
                                      "'restart-helper recover' stops it");
            return s;
        }
        if (s.detail.empty()) s.detail = pidfile ? "exited" : "not started";
        return s;
    }

private:
    /// Stops the process holding run/service.lock: one whose start was never recorded (the
    /// starter died between the fork and the pidfile). Its session goes with it.
    Result<void> stopUnrecorded(std::chrono::milliseconds timeout) {
        pid_t holder = process::lockHolder(paths_.lockfile);
        if (holder <= 0) return ok();
        log::warn(kComponent, "stopping a service process no pidfile records",
                  {{"pid", static_cast<std::int64_t>(holder)}});
        auto gone = [&](std::chrono::milliseconds wait) {
            auto deadline = Clock::now() + wait;
            while (process::lockHolder(paths_.lockfile) == holder) {
                reap();
                if (Clock::now() >= deadline) return false;
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
            return true;
        };
        ::kill(-holder, SIGTERM);
        ::kill(holder, SIGTERM);
        if (!gone(timeout)) {
            ::kill(-holder, SIGKILL);
            ::kill(holder, SIGKILL);
            if (!gone(std::chrono::seconds(10)))
                return fail(Errc::Timeout, "the unrecorded service process (pid ", holder,
                            ") still runs after SIGKILL");
        }
        ::kill(-holder, SIGKILL);
        return ok();
    }

    bool waitGone(const PidFile& p, std::chrono::milliseconds timeout) {
        auto deadline = Clock::now() + timeout;
        std::chrono::microseconds pause{250};
        while (true) {
            reap();
            if (!sameProcessAlive(p)) return true;
            if (Clock::now() >= deadline) return false;
            // Short pauses: the service is down from SIGTERM on, every millisecond here is
            // downtime.
            std::this_thread::sleep_for(pause);
            pause = std::min(pause * 2, std::chrono::microseconds(2000));
        }
    }

    // A service we started ourselves becomes our zombie when it ends; collect it.
    void reap() {
        if (child_) (void)child_->running();
    }

    ServicePaths paths_;
    std::optional<process::Child> child_;
};

class SystemdManager final : public ServiceManager {
public:
    SystemdManager(const NodeLayout& layout, std::string unit, std::string systemctl)
        : paths_(ServicePaths::of(layout)),
          unit_(std::move(unit)),
          systemctl_(std::move(systemctl)) {}

    std::string_view name() const override { return "systemd"; }

    Result<void> start(const ServiceLaunch& launch) override {
        std::ostringstream env;
        for (const auto& [k, v] : launch.env) env << k << "=" << v << "\n";
        HOIST_TRY(files::makeDirs(paths_.envfile.parent_path()));
        HOIST_TRY(files::writeFileAtomic(paths_.envfile, env.str()));
        std::error_code ec;
        fs::remove(paths_.portfile, ec);
        return systemctl({"start", unit_}, std::chrono::seconds(120));
    }

    Result<void> stop(std::chrono::milliseconds timeout) override {
        HOIST_TRY(systemctl({"stop", unit_}, timeout + std::chrono::seconds(30)));
        std::error_code ec;
        fs::remove(paths_.portfile, ec);
        return ok();
    }

    Result<ServiceStatus> status() override {
        HOIST_ASSIGN(auto outcome, runSystemctl({"is-active", unit_}, std::chrono::seconds(30)));
        ServiceStatus s;
        s.running = outcome.exit_code == 0;
        s.detail = "systemctl: " + std::string(strings::trim(outcome.out));
        return s;
    }

private:
    Result<process::Outcome> runSystemctl(std::vector<std::string> args,
                                          std::chrono::milliseconds timeout) {
        args.insert(args.begin(), systemctl_);
        process::Options options;
        options.timeout = timeout;
        options.new_session = false;
        return process::run(args, options);
    }

    Result<void> systemctl(std::vector<std::string> args, std::chrono::milliseconds timeout) {
        std::string what = "systemctl " + strings::join(args, " ");
        HOIST_ASSIGN(auto outcome, runSystemctl(args, timeout));
        if (outcome.timed_out) return fail(Errc::Timeout, what, " did not finish in time");
        if (outcome.exit_code != 0)
            return fail(Errc::Io, what, " failed (exit ", outcome.exit_code,
                        "): ", strings::trim(outcome.err));
        return ok();
    }

    ServicePaths paths_;
    std::string unit_;
    std::string systemctl_;
};

}  // namespace

ServicePaths ServicePaths::of(const NodeLayout& layout) {
    auto run = layout.run();
    return {run / "service.pid", run / "service.port", run / "service.log", run / "service.env",
            run / "service.lock"};
}

std::string expandVars(std::string_view text, const std::map<std::string, std::string>& vars) {
    std::string out;
    out.reserve(text.size());
    size_t i = 0;
    while (i < text.size()) {
        if (text[i] == '$' && i + 1 < text.size() && text[i + 1] == '{') {
            auto close = text.find('}', i + 2);
            if (close != std::string_view::npos) {
                auto name = std::string(text.substr(i + 2, close - i - 2));
                auto found = vars.find(name);
                if (found != vars.end()) {
                    out += found->second;
                    i = close + 1;
                    continue;
                }
            }
        }
        out += text[i++];
    }
    return out;
}

Result<ServiceLaunch> prepareLaunch(const NodeLayout& layout, const Store& store,
                                    const Generation& generation, const RoleRules& rules) {
    HOIST_ASSIGN(auto service, generation.service(store, rules));
    HOIST_ASSIGN(auto stored, store.get(service.first.sha256));
    auto paths = ServicePaths::of(layout);
    std::map<std::string, std::string> vars = {
        {"PKG", stored.path.string()},          {"STATE", layout.state().string()},
        {"GEN", generation.path.string()},      {"ROOT", layout.root.string()},
        {"PORT_FILE", paths.portfile.string()},
    };
    ServiceLaunch launch;
    launch.generation = generation.number;
    launch.package = service.first;
    launch.spec = service.second;
    if (launch.spec.exec.empty())
        return fail(Errc::Invalid, "package '", service.first.id, "' has an empty service exec");
    for (const auto& arg : launch.spec.exec) launch.argv.push_back(expandVars(arg, vars));
    // A relative program is relative to the package's store path.
    if (fs::path(launch.argv[0]).is_relative() && launch.argv[0].find('/') != std::string::npos)
        launch.argv[0] = (stored.path / launch.argv[0]).string();
    else if (fs::path(launch.argv[0]).is_relative() && fs::exists(stored.path / launch.argv[0]))
        launch.argv[0] = (stored.path / launch.argv[0]).string();
    if (launch.spec.health) {
        for (auto& arg : launch.spec.health->command) arg = expandVars(arg, vars);
        launch.spec.health->http = expandVars(launch.spec.health->http, vars);
    }
    HOIST_TRY(readEnvironmentFile(generation.path / "environment", launch.env));
    launch.env.emplace_back("HOIST_ROOT", layout.root.string());
    launch.env.emplace_back("HOIST_GENERATION", std::to_string(generation.number));
    launch.env.emplace_back("HOIST_PORT_FILE", paths.portfile.string());
    // The service must not inherit a fault-injection point meant for the helper.
    launch.env.emplace_back("HOIST_CRASH_AT", "");
    launch.cwd = layout.state();
    HOIST_TRY(files::makeDirs(launch.cwd));
    return launch;
}

std::unique_ptr<ServiceManager> makeProcessManager(const NodeLayout& layout) {
    return std::make_unique<ProcessManager>(layout);
}

std::unique_ptr<ServiceManager> makeSystemdManager(const NodeLayout& layout, std::string unit,
                                                   std::string systemctl) {
    return std::make_unique<SystemdManager>(layout, std::move(unit), std::move(systemctl));
}

Result<std::unique_ptr<ServiceManager>> makeServiceManager(const NodeLayout& layout,
                                                           const NodeConfig& config) {
    if (config.service_manager == "process") return makeProcessManager(layout);
    if (config.service_manager == "systemd") {
        if (config.systemd_unit.empty())
            return fail(Errc::Invalid, "node.json: field 'systemd_unit' is empty");
        return makeSystemdManager(layout, config.systemd_unit);
    }
    return fail(Errc::Invalid,
                "node.json: field 'service_manager' must be 'process' or 'systemd', not '",
                config.service_manager, "'");
}

// ---- health

namespace {

Result<std::string> readPort(const NodeLayout& layout) {
    auto path = ServicePaths::of(layout).portfile;
    auto text = files::readFile(path, 64);
    if (!text) {
        if (text.error().code == Errc::NotFound)
            return fail(Errc::Unhealthy, "the service has not written its port file ",
                        path.string(), " yet");
        return std::unexpected(text.error());
    }
    auto port = std::string(strings::trim(*text));
    if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos)
        return fail(Errc::Unhealthy, "port file ", path.string(), " holds '", port,
                    "', not a port number");
    return port;
}

bool needsPort(const HealthCheck& check) {
    if (check.http.find("${PORT}") != std::string::npos) return true;
    for (const auto& arg : check.command)
        if (arg.find("${PORT}") != std::string::npos) return true;
    return false;
}

}  // namespace

Result<void> probeHealth(const HealthCheck& check, const HealthContext& context,
                         http::Client& client) {
    std::map<std::string, std::string> vars;
    if (needsPort(check)) {
        HOIST_ASSIGN(auto port, readPort(context.layout));
        vars["PORT"] = port;
    }
    auto timeout = std::chrono::milliseconds(std::max<std::int64_t>(check.timeout_ms, 1));
    if (!check.http.empty()) {
        http::Request request;
        request.url = expandVars(check.http, vars);
        request.connect_timeout = timeout;
        request.timeout = timeout;
        auto response = client.send(request);
        if (!response)
            return fail(Errc::Unhealthy, "GET ", request.url, ": ", response.error().describe());
        if (!response->ok())
            return fail(Errc::Unhealthy, "GET ", request.url, " answered ", response->status);
        return ok();
    }
    if (!check.command.empty()) {
        std::vector<std::string> argv;
        for (const auto& arg : check.command) argv.push_back(expandVars(arg, vars));
        process::Options options;
        options.timeout = timeout;
        options.new_session = false;
        HOIST_ASSIGN(auto outcome, process::run(argv, options));
        if (outcome.timed_out)
            return fail(Errc::Unhealthy, "health command '", argv[0], "' ran longer than ",
                        check.timeout_ms, " ms");
        if (outcome.exit_code != 0)
            return fail(Errc::Unhealthy, "health command '", argv[0], "' exited with ",
                        outcome.exit_code, ": ", strings::trim(outcome.err));
        return ok();
    }
    return fail(Errc::Invalid, "the health check has neither 'http' nor 'command'");
}

Result<void> waitHealthy(const HealthCheck& check, const HealthContext& context) {
    http::Client client;
    auto start = Clock::now();
    auto deadline = start + std::chrono::milliseconds(check.deadline_ms);
    auto interval = std::chrono::milliseconds(std::max<std::int64_t>(check.interval_ms, 1));
    auto needed = std::chrono::milliseconds(check.healthy_after_ms);
    std::optional<Clock::time_point> passing_since;
    std::string last_error = "no probe ran";
    int probes = 0;
    while (true) {
        if (context.gone) {
            if (auto gone = context.gone())
                return fail(Errc::Unhealthy, "the service stopped during the health check (", *gone,
                            "); last probe: ", last_error);
        }
        auto probe_started = Clock::now();
        auto probed = probeHealth(check, context, client);
        ++probes;
        auto now = Clock::now();
        if (probed) {
            if (!passing_since) passing_since = probe_started;
            if (now - *passing_since >= needed) {
                log::info(
                    kComponent, "healthy",
                    {{"probes", probes},
                     {"ms", static_cast<std::int64_t>(
                                std::chrono::duration_cast<std::chrono::milliseconds>(now - start)
                                    .count())}});
                return ok();
            }
        } else {
            if (passing_since)
                log::warn(kComponent, "health check failed after passing",
                          {{"error", probed.error().describe()}});
            passing_since.reset();
            last_error = probed.error().describe();
        }
        if (now >= deadline)
            return fail(Errc::Unhealthy, "not healthy within ", check.deadline_ms,
                        " ms (healthy_after_ms ", check.healthy_after_ms,
                        "); last failure: ", last_error);
        auto next = std::min(probe_started + interval, deadline);
        if (next > now) std::this_thread::sleep_for(next - now);
    }
}

}  // namespace hoist::pkgmgr
