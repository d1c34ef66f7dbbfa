// standin-probe: measures how long a stand-in service does not answer, for tools/bench/swap.
//
//   standin-probe watch --port-file F --stop-file S
//       GETs http://127.0.0.1:<port in F>/health about every 0.5 ms (re-reading F, which the
//       service rewrites when it restarts on a new port) until S exists; prints the longest
//       outage (last 200 before it -> first 200 after it) in microseconds as JSON.
//   standin-probe start --standin BIN --port-file F [--runs N]
//       starts BIN --port-file F N times and prints the median time from spawn to the first
//       200 on /health in microseconds: the stand-in's own start time.

#include <algorithm>
#include <chrono>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/files.hpp"
#include "core/http_client.hpp"
#include "core/json.hpp"
#include "core/process.hpp"
#include "core/strings.hpp"

namespace {

using namespace hoist;
using Clock = std::chrono::steady_clock;

bool healthy(http::Client& client, const std::filesystem::path& port_file) {
    auto port = files::readFile(port_file, 64);
    if (!port) return false;
    http::Request request;
    request.url = "http://127.0.0.1:" + std::string(strings::trim(*port)) + "/health";
    request.connect_timeout = std::chrono::milliseconds(100);
    request.timeout = std::chrono::milliseconds(200);
    auto response = client.send(request);
    return response && response->status == 200;
}

std::int64_t micros(Clock::duration d) {
    return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

int watch(const std::string& port_file, const std::string& stop_file) {
    http::Client client;
    std::optional<Clock::time_point> last_ok;
    bool down = false;
    std::int64_t longest = 0;
    int outages = 0;
    std::int64_t probes = 0;
    std::error_code ec;
    while (!std::filesystem::exists(stop_file, ec)) {
        bool ok = healthy(client, port_file);
        ++probes;
        auto now = Clock::now();
        if (ok) {
            if (down && last_ok) {
                longest = std::max(longest, micros(now - *last_ok));
                ++outages;
            }
            down = false;
            last_ok = now;
        } else if (last_ok) {
            down = true;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    json::Writer w;
    w.beginObject()
        .field("longest_outage_us", longest)
        .field("outages", outages)
        .field("probes", probes)
        .field("down_at_end", down)
        .endObject();
    std::cout << w.str() << "\n";
    return 0;
}

int start(const std::string& standin, const std::string& port_file, int runs) {
    std::vector<std::int64_t> times;
    http::Client client;
    for (int i = 0; i < runs; ++i) {
        std::error_code ec;
        std::filesystem::remove(port_file, ec);
        auto t0 = Clock::now();
        process::Options options;
        auto child = process::Child::start({standin, "--port-file", port_file}, options);
        if (!child) {
            std::cerr << "standin-probe: " << child.error().describe() << "\n";
            return 1;
        }
        while (!healthy(client, port_file)) {
            if (Clock::now() - t0 > std::chrono::seconds(10)) {
                std::cerr << "standin-probe: the stand-in did not come up\n";
                child->terminate();
                return 1;
            }
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
        times.push_back(micros(Clock::now() - t0));
        child->terminate();
    }
    std::sort(times.begin(), times.end());
    json::Writer w;
    w.beginObject()
        .field("median_start_us", times[times.size() / 2])
        .field("min_start_us", times.front())
        .field("max_start_us", times.back())
        .field("runs", runs)
        .endObject();
    std::cout << w.str() << "\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"standin-probe: outage and start-time measurements of the stand-in",
                 "standin-probe"};
    app.require_subcommand(1);
    std::string port_file;
    std::string stop_file;
    std::string standin;
    int runs = 10;
    auto* w = app.add_subcommand("watch", "measure the longest outage until --stop-file exists");
    w->add_option("--port-file", port_file, "the service's port file")->required();
    w->add_option("--stop-file", stop_file, "stop when this file exists")->required();
    auto* s = app.add_subcommand("start", "measure the stand-in's own start time");
    s->add_option("--standin", standin, "the standin-mesos binary")->required();
    s->add_option("--port-file", port_file, "a scratch port file")->required();
    s->add_option("--runs", runs, "starts to measure");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    if (*w) return watch(port_file, stop_file);
    return start(standin, port_file, std::max(runs, 1));
}
