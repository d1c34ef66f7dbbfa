// standin-mesos: a stand-in for the Mesos core service in tests and benchmarks (Mesos itself
// cannot be installed here). It serves GET /health and GET /version on a loopback port chosen
// by the kernel (written to --port-file), and misbehaves as its config file says.
//
// The config file comes from the node's mesos-config package (a missing file means "behave"):
// {"health": "ok" | "fail",       answer /health with 200 or 503
//  "crash_at_start": false,        exit with exit_code before listening
//  "exit_code": 1,
//  "start_delay_ms": 0,            sleep this long before listening
//  "unhealthy_after_ms": 0,        turn /health to 503 this long after listening (0: never)
//  "ignore_sigterm": false,        ignore SIGTERM (to test SIGKILL after stop_timeout_ms)
//  "errors_per_second": 0}         grow standin_errors_total on /metrics at this rate (a broken
//                                  release for metric gates; the counter is there at 0 otherwise)

#include <unistd.h>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>

#include "core/files.hpp"
#include "core/http_server.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"

namespace {

using namespace hoist;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kComponent = "standin-mesos";

struct Behaviour {
    bool healthy = true;
    bool crash_at_start = false;
    int exit_code = 1;
    std::int64_t start_delay_ms = 0;
    std::int64_t unhealthy_after_ms = 0;
    bool ignore_sigterm = false;
    std::int64_t errors_per_second = 0;
};

Result<Behaviour> loadBehaviour(const std::string& path) {
    Behaviour b;
    if (path.empty()) return b;
    auto text = files::readFile(path);
    if (!text) {
        if (text.error().code == Errc::NotFound) return b;
        return std::unexpected(text.error());
    }
    HOIST_ASSIGN(auto doc, json::parseObject(*text, path));
    HOIST_TRY(json::rejectUnknown(doc,
                                  {"health", "crash_at_start", "exit_code", "start_delay_ms",
                                   "unhealthy_after_ms", "ignore_sigterm", "errors_per_second"},
                                  path));
    HOIST_ASSIGN(auto health, json::optString(doc, "health", path));
    if (health) {
        if (*health != "ok" && *health != "fail")
            return fail(Errc::Invalid, path, ": field 'health' must be \"ok\" or \"fail\"");
        b.healthy = *health == "ok";
    }
    HOIST_ASSIGN(auto crash, json::optBool(doc, "crash_at_start", path));
    b.crash_at_start = crash.value_or(false);
    HOIST_ASSIGN(auto code, json::optInt(doc, "exit_code", path));
    b.exit_code = static_cast<int>(code.value_or(1));
    HOIST_ASSIGN(auto delay, json::optInt(doc, "start_delay_ms", path));
    b.start_delay_ms = delay.value_or(0);
    HOIST_ASSIGN(auto after, json::optInt(doc, "unhealthy_after_ms", path));
    b.unhealthy_after_ms = after.value_or(0);
    HOIST_ASSIGN(auto ignore, json::optBool(doc, "ignore_sigterm", path));
    b.ignore_sigterm = ignore.value_or(false);
    HOIST_ASSIGN(auto errors, json::optInt(doc, "errors_per_second", path));
    b.errors_per_second = errors.value_or(0);
    return b;
}

int run(int argc, char** argv) {
    auto started = Clock::now();
    CLI::App app{"standin-mesos: a stand-in for the Mesos core service in tests", "standin-mesos"};
    std::string version;
    std::string version_file;
    std::string config;
    std::string listen = "127.0.0.1:0";
    std::string port_file;
    app.add_option("--version-text", version, "the version to report");
    app.add_option("--version-file", version_file, "a file holding the version to report");
    app.add_option("--config", config, "behaviour file (JSON); absent: healthy");
    app.add_option("--listen", listen, "host:port (port 0: any free port)");
    app.add_option("--port-file", port_file, "write the bound port here");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }

    auto behaviour = loadBehaviour(config);
    if (!behaviour) {
        std::cerr << "standin-mesos: " << behaviour.error().describe() << "\n";
        return 2;
    }
    if (!version_file.empty()) {
        auto text = files::readFile(version_file);
        if (!text) {
            std::cerr << "standin-mesos: " << text.error().describe() << "\n";
            return 2;
        }
        version = std::string(strings::trim(*text));
    }
    if (behaviour->ignore_sigterm) std::signal(SIGTERM, SIG_IGN);
    if (behaviour->crash_at_start) {
        std::cerr << "standin-mesos: crashing at start, as configured\n";
        return behaviour->exit_code;
    }

    std::atomic<http::Server*> server_ptr{nullptr};
    std::atomic<bool> stop_requested{false};
    std::optional<http::SignalWaiter> waiter;
    if (!behaviour->ignore_sigterm) {
        waiter.emplace([&server_ptr, &stop_requested] {
            stop_requested = true;
            if (auto* s = server_ptr.load()) s->stop();
        });
    }

    if (behaviour->start_delay_ms > 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(behaviour->start_delay_ms));

    auto colon = listen.rfind(':');
    http::ServerOptions options;
    options.component = std::string(kComponent);
    options.host = colon == std::string::npos ? listen : listen.substr(0, colon);
    options.port = colon == std::string::npos ? 0 : std::atoi(listen.c_str() + colon + 1);
    options.threads = 2;
    options.access_log = false;
    auto created = http::Server::create(options);
    if (!created) {
        std::cerr << "standin-mesos: " << created.error().describe() << "\n";
        return 4;
    }
    auto& server = **created;
    Clock::time_point listening;
    auto behave = *behaviour;
    server.route("GET", "/health", [&listening, behave](const http::ServerRequest&) {
        bool healthy = behave.healthy;
        if (healthy && behave.unhealthy_after_ms > 0 &&
            Clock::now() - listening >= std::chrono::milliseconds(behave.unhealthy_after_ms))
            healthy = false;
        return healthy ? http::ServerReply::json(200, "{\"healthy\":true}")
                       : http::ServerReply::json(503, "{\"healthy\":false}");
    });
    server.route("GET", "/version", [&version, &listening, started](const http::ServerRequest&) {
        auto startup = std::chrono::duration_cast<std::chrono::microseconds>(listening - started);
        json::Writer w;
        w.beginObject()
            .field("version", version)
            .field("pid", static_cast<std::int64_t>(::getpid()))
            .field("startup_us", static_cast<std::int64_t>(startup.count()))
            .endObject();
        return http::ServerReply::json(200, w.str());
    });
    server.metrics().describe("standin_errors_total", "counter",
                              "errors the stand-in reports (errors_per_second since listening)");
    server.onMetrics([&listening, behave](metrics::Registry& registry) {
        auto seconds = std::chrono::duration<double>(Clock::now() - listening).count();
        registry.set("standin_errors_total", {},
                     std::floor(static_cast<double>(behave.errors_per_second) * seconds));
    });
    auto port = server.bind();
    if (!port) {
        std::cerr << "standin-mesos: " << port.error().describe() << "\n";
        return 4;
    }
    listening = Clock::now();
    if (!port_file.empty()) {
        if (auto written = server.writePortFile(port_file); !written) {
            std::cerr << "standin-mesos: " << written.error().describe() << "\n";
            return 4;
        }
    }
    server_ptr = &server;
    if (stop_requested) return 0;
    log::info(kComponent, "listening", {{"port", *port}, {"version", version}});
    server.run();
    log::info(kComponent, "stopped");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    return run(argc, argv);
}
