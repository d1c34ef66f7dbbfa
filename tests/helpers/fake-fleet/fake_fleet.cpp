// fake-fleet: many simulated nodes in one process, for the coordinator's tests and the fleet
// benchmark. Each node answers like `pkgmgr serve` under http://HOST:PORT/n/<node>
// (GET /v1/node, POST /v1/stage, POST /v1/restart, GET /v1/transaction) and, after --swap-ms,
// POSTs the status pings checking -> healthy (or rolling_back -> rolled_back when told to
// fail) to the report_to URL, retrying until they are delivered, as the outbox would. Every
// message is built and read with the node's own wire types (pkgmgr/wire.hpp), so the fleet
// says exactly what a real node says.
//
// Each node keeps the highest coordinator epoch it has been sent and refuses a command under
// a lower one with 409, as a real node does (pkgmgr/epoch.hpp); every action records the
// epoch it came with, and refusals are recorded as kind "stale_stage"/"stale_restart", so an
// HA test can check that the epochs a node accepted never went back.
//
// Control routes: GET /fleet/actions (every stage/restart/finish with microsecond times),
// POST /fleet/fail {"nodes": [...], "release": "V"} (swaps of those nodes, or to release V,
// fail), GET /fleet/stats.
//
// `fake-fleet halt-probe` measures halt latency against a running rollout (see --help).

#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/files.hpp"
#include "core/http_client.hpp"
#include "core/http_server.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"
#include "pkgmgr/epoch.hpp"
#include "pkgmgr/wire.hpp"

using namespace hoist;

namespace {

std::int64_t nowUs() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

struct Action {
    std::string node;
    std::string role;
    std::string kind;  // stage, restart, healthy, rolled_back
    std::string deployment;
    std::int64_t generation = 0;
    std::int64_t time_us = 0;
    std::int64_t epoch = 0;  // the coordinator epoch the command came with (0: none)
};

struct SimNode {
    std::string id;
    std::string role;
    std::int64_t generation = 1;
    std::map<std::int64_t, std::string> releases;  // generation -> release
    bool healthy = true;
    bool in_txn = false;
    std::string txn_state;
    std::int64_t txn_to = 0;
    std::string txn_deployment;
    std::string txn_operation;
    std::string report_to;
    std::int64_t seq = 0;
    std::int64_t epoch = 0;  // the highest coordinator epoch this node has been sent
};

struct Ping {
    std::string url;
    std::string body;
    int attempt = 0;
};

struct Timer {
    std::int64_t due_us;
    std::string node;
    int step;  // 0: checking, 1: finish
    bool operator>(const Timer& o) const { return due_us > o.due_us; }
};

class Fleet {
public:
    int swap_ms = 1000;
    int stage_ms = 0;
    std::string token;

    void addNode(const std::string& id, const std::string& role, const std::string& release) {
        SimNode n;
        n.id = id;
        n.role = role;
        n.releases[1] = release;
        nodes_.emplace(id, std::move(n));
        order_.push_back(id);
    }
    const std::vector<std::string>& order() const { return order_; }
    /// Where the coordinator reaches a node (set once the server is bound).
    std::string base;
    std::string address(const std::string& id) const { return base + "/n/" + id; }

    void start(size_t ping_threads) {
        scheduler_ = std::thread([this] { schedule(); });
        for (size_t i = 0; i < ping_threads; ++i) pingers_.emplace_back([this] { deliver(); });
    }
    void stop() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        timer_cv_.notify_all();
        ping_cv_.notify_all();
        if (scheduler_.joinable()) scheduler_.join();
        for (auto& t : pingers_) t.join();
    }

    Result<void> authorize(const http::ServerRequest& request) {
        if (token.empty()) return ok();
        return http::requireBearer(request, token);
    }

    http::ServerReply node(const std::string& id) {
        std::lock_guard lock(mutex_);
        auto it = nodes_.find(id);
        if (it == nodes_.end()) return http::ServerReply::error(404, "no such node");
        auto& n = it->second;
        pkgmgr::NodeView view;
        view.id = n.id;
        view.role = n.role;
        view.address = address(n.id);
        view.release = n.releases[n.generation];
        view.generation = n.generation;
        view.service = {"fake", !n.in_txn, 0, ""};
        view.healthy = n.healthy && !n.in_txn;
        view.epoch = n.epoch;
        if (n.in_txn) view.transaction = pkgmgr::TransactionSummary{n.txn_operation, n.txn_state};
        return http::ServerReply::json(200, view.toJson());
    }

    http::ServerReply transaction(const std::string& id) {
        std::lock_guard lock(mutex_);
        auto it = nodes_.find(id);
        if (it == nodes_.end()) return http::ServerReply::error(404, "no such node");
        auto& n = it->second;
        pkgmgr::TransactionView view;
        if (n.in_txn) {
            pkgmgr::Journal j;
            j.operation = n.txn_operation;
            j.deployment = n.txn_deployment;
            j.report_to = n.report_to;
            j.release = n.releases[n.txn_to];
            j.from_generation = static_cast<long>(n.generation);
            j.to_generation = static_cast<long>(n.txn_to);
            j.state = n.txn_state;
            view.active = true;
            view.transaction = std::move(j);
        }
        return http::ServerReply::json(200, view.toJson());
    }

    http::ServerReply stage(const std::string& id, const std::string& body) {
        auto request = pkgmgr::StageRequest::fromJson(body);
        if (!request) return http::ServerReply::error(request.error());
        if (!request->release)
            return http::ServerReply::error(400, "the fake fleet stages releases only");
        const auto& release = request->release;
        if (stage_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(stage_ms));
        std::lock_guard lock(mutex_);
        auto it = nodes_.find(id);
        if (it == nodes_.end()) return http::ServerReply::error(404, "no such node");
        auto& n = it->second;
        if (auto refused = fence(n, "stage", request->epoch, nowUs())) return *refused;
        std::int64_t generation = 0;
        for (const auto& [g, r] : n.releases)
            if (r == *release) generation = g;
        if (generation == 0) {
            generation = n.releases.rbegin()->first + 1;
            n.releases[generation] = *release;
        }
        actions_.push_back({id, n.role, "stage", "", generation, nowUs(), request->epoch});
        return http::ServerReply::json(200, pkgmgr::StageReply{generation, *release, {}}.toJson());
    }

    http::ServerReply restart(const std::string& id, const std::string& body) {
        auto request = pkgmgr::RestartRequest::fromJson(body);
        if (!request) return http::ServerReply::error(request.error());
        auto now = nowUs();
        auto operation = "op-" + std::to_string(now);
        {
            std::lock_guard lock(mutex_);
            auto it = nodes_.find(id);
            if (it == nodes_.end()) return http::ServerReply::error(404, "no such node");
            auto& n = it->second;
            if (auto refused = fence(n, "restart", request->epoch, now)) return *refused;
            if (n.in_txn) return http::ServerReply::error(409, "another transaction is under way");
            if (!n.releases.contains(request->generation))
                return http::ServerReply::error(400, "generation not staged");
            n.in_txn = true;
            n.txn_state = "stopping";
            n.txn_to = request->generation;
            n.txn_deployment = request->deployment;
            n.txn_operation = operation;
            n.report_to = request->report_to;
            actions_.push_back({id, n.role, "restart", n.txn_deployment, request->generation, now,
                                request->epoch});
            timers_.push({now + swap_ms * 500, id, 0});
        }
        timer_cv_.notify_one();
        return http::ServerReply::json(
            202, pkgmgr::RestartReply{operation, request->generation}.toJson());
    }

    // As a real node: an epoch below the highest seen is refused (recorded as "stale_<what>"),
    // a higher one is kept. Under mutex_.
    std::optional<http::ServerReply> fence(SimNode& n, const std::string& what, std::int64_t epoch,
                                           std::int64_t now) {
        if (epoch == 0) return std::nullopt;
        if (epoch < n.epoch) {
            actions_.push_back({n.id, n.role, "stale_" + what, "", 0, now, epoch});
            return http::ServerReply::error(pkgmgr::staleEpoch(what, epoch, n.epoch));
        }
        n.epoch = epoch;
        return std::nullopt;
    }

    http::ServerReply setFailing(const std::string& body) {
        auto doc = json::parseObject(body, "fail request");
        if (!doc) return http::ServerReply::error(doc.error());
        auto list = json::optStringArray(*doc, "nodes", "fail request");
        auto release = json::optString(*doc, "release", "fail request");
        if (!list) return http::ServerReply::error(list.error());
        if (!release) return http::ServerReply::error(release.error());
        std::lock_guard lock(mutex_);
        failing_nodes_ = std::set<std::string>(list->begin(), list->end());
        failing_release_ = release->value_or("");
        return http::ServerReply::json(200, "{}");
    }

    http::ServerReply actions(std::int64_t since_us) {
        std::lock_guard lock(mutex_);
        json::Writer w;
        w.beginObject().key("actions").beginArray();
        for (const auto& a : actions_) {
            if (a.time_us < since_us) continue;
            w.beginObject()
                .field("node", a.node)
                .field("role", a.role)
                .field("kind", a.kind)
                .field("deployment", a.deployment)
                .field("generation", a.generation)
                .field("time_us", a.time_us)
                .field("epoch", a.epoch)
                .endObject();
        }
        w.endArray().endObject();
        return http::ServerReply::json(200, w.str());
    }

    http::ServerReply stats() {
        std::lock_guard lock(mutex_);
        std::int64_t restarts = 0;
        for (const auto& a : actions_)
            if (a.kind == "restart") ++restarts;
        json::Writer w;
        w.beginObject()
            .field("nodes", static_cast<std::int64_t>(nodes_.size()))
            .field("restarts", restarts)
            .field("pings_delivered", static_cast<std::int64_t>(delivered_.load()))
            .field("pings_retried", static_cast<std::int64_t>(retried_.load()))
            .field("pings_pending", static_cast<std::int64_t>(pings_.size()))
            .endObject();
        return http::ServerReply::json(200, w.str());
    }

private:
    // Pings for a node, built under the mutex.
    void queuePing(SimNode& n, const std::string& state, std::int64_t from, std::int64_t to) {
        if (n.report_to.empty()) return;
        pkgmgr::StatusPing ping;
        ping.node = n.id;
        ping.deployment = n.txn_deployment;
        ping.seq = ++n.seq;
        ping.state = state;
        ping.from_generation = from;
        ping.to_generation = to;
        ping.release = n.releases[to];
        ping.time = log::nowRfc3339();
        pings_.push_back(
            {http::joinUrl(n.report_to, "/v1/nodes/" + n.id + "/status"), ping.toJson(), 0});
    }

    void schedule() {
        std::unique_lock lock(mutex_);
        while (!stopping_) {
            if (timers_.empty()) {
                timer_cv_.wait(lock);
                continue;
            }
            auto due = timers_.top().due_us;
            auto now = nowUs();
            if (due > now) {
                timer_cv_.wait_for(lock, std::chrono::microseconds(due - now));
                continue;
            }
            auto t = timers_.top();
            timers_.pop();
            auto& n = nodes_.at(t.node);
            if (t.step == 0) {
                n.txn_state = "checking";
                queuePing(n, "checking", n.generation, n.txn_to);
                timers_.push({t.due_us + swap_ms * 500, t.node, 1});
            } else {
                bool fails =
                    failing_nodes_.contains(n.id) ||
                    (!failing_release_.empty() && n.releases[n.txn_to] == failing_release_);
                std::int64_t from = n.generation;
                if (fails) {
                    queuePing(n, "rolling_back", from, n.txn_to);
                    queuePing(n, "rolled_back", from, n.txn_to);
                    actions_.push_back(
                        {n.id, n.role, "rolled_back", n.txn_deployment, n.txn_to, nowUs()});
                } else {
                    n.generation = n.txn_to;
                    queuePing(n, "healthy", from, n.txn_to);
                    actions_.push_back(
                        {n.id, n.role, "healthy", n.txn_deployment, n.txn_to, nowUs()});
                }
                n.in_txn = false;
                n.txn_state.clear();
            }
            ping_cv_.notify_all();
        }
    }

    void deliver() {
        http::Client client;
        std::mt19937 rng{std::random_device{}()};
        while (true) {
            Ping ping;
            {
                std::unique_lock lock(mutex_);
                ping_cv_.wait(lock, [this] { return stopping_ || !pings_.empty(); });
                if (stopping_) return;
                ping = std::move(pings_.front());
                pings_.pop_front();
            }
            http::Request request;
            request.method = "POST";
            request.url = ping.url;
            request.body = ping.body;
            request.headers.push_back({"Content-Type", "application/json"});
            if (!token.empty()) request.headers.push_back(http::bearer(token));
            request.connect_timeout = std::chrono::milliseconds(1000);
            request.timeout = std::chrono::milliseconds(5000);
            auto reply = client.send(request);
            if (reply && reply->status < 500) {
                delivered_++;
                continue;
            }
            // Kept until delivered, as the node's outbox keeps it.
            retried_++;
            std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 200));
            std::lock_guard lock(mutex_);
            ping.attempt++;
            pings_.push_back(std::move(ping));
        }
    }

    std::mutex mutex_;
    bool stopping_ = false;
    std::unordered_map<std::string, SimNode> nodes_;
    std::vector<std::string> order_;
    std::vector<Action> actions_;
    std::set<std::string> failing_nodes_;
    std::string failing_release_;
    std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
    std::condition_variable timer_cv_;
    std::deque<Ping> pings_;
    std::condition_variable ping_cv_;
    std::thread scheduler_;
    std::vector<std::thread> pingers_;
    std::atomic<std::uint64_t> delivered_{0};
    std::atomic<std::uint64_t> retried_{0};
};

std::string readToken(const std::string& file) {
    if (file.empty()) return "";
    auto text = files::readFile(file, 4096);
    if (!text) return "";
    return std::string(strings::trim(*text));
}

int serveFleet(int argc, char** argv) {
    std::string coordinator;
    std::string listen_host = "127.0.0.1";
    int listen_port = 0;
    std::string port_file;
    std::string token_file;
    std::string release = "1.0.0";
    int masters = 3;
    int agents = 5;
    int swap_ms = 1000;
    int stage_ms = 0;
    // More than the coordinator keeps connections open (its workers + checkers): an httplib
    // thread stays with a keep-alive connection, and a request queued behind it waits.
    size_t threads = 96;
    size_t ping_threads = 8;
    size_t register_threads = 16;
    std::string repo_dir;
    CLI::App app{"fake-fleet: simulated nodes answering like pkgmgr serve"};
    app.add_option("--coordinator", coordinator,
                   "coordinator URL to register with (needed with nodes)");
    app.add_option("--repo-dir", repo_dir,
                   "also serve this folder under /repo/ (a package repository)");
    app.add_option("--host", listen_host, "address to listen on");
    app.add_option("--port", listen_port, "port (0: any)");
    app.add_option("--port-file", port_file, "write the port here once every node is registered");
    app.add_option("--node-token-file", token_file, "token for registration, pings and node calls");
    app.add_option("--release", release, "release every node starts on (generation 1)");
    app.add_option("--masters", masters, "number of masters");
    app.add_option("--agents", agents, "number of agents");
    app.add_option("--swap-ms", swap_ms,
                   "how long a swap takes (checking at half, healthy at the end)");
    app.add_option("--stage-ms", stage_ms, "how long a stage takes");
    app.add_option("--threads", threads, "HTTP server threads");
    app.add_option("--ping-threads", ping_threads, "threads delivering pings");
    CLI11_PARSE(app, argc, argv);
    log::configure(log::Level::Warn, log::Format::Text);

    Fleet fleet;
    fleet.swap_ms = swap_ms;
    fleet.stage_ms = stage_ms;
    fleet.token = readToken(token_file);
    for (int i = 1; i <= masters; ++i)
        fleet.addNode("master-" + std::to_string(i), "master", release);
    for (int i = 1; i <= agents; ++i) fleet.addNode("agent-" + std::to_string(i), "agent", release);

    http::ServerOptions so;
    so.component = "fake-fleet";
    so.host = listen_host;
    so.port = listen_port;
    so.threads = threads;
    so.access_log = false;
    auto server = http::Server::create(so);
    if (!server) {
        std::cerr << "fake-fleet: " << server.error().describe() << "\n";
        return 1;
    }
    auto& srv = **server;
    Fleet* f = &fleet;
    srv.route("GET", R"(/n/([^/]+)/v1/node)",
              [f](const http::ServerRequest& r) { return f->node(r.matches.at(1)); });
    srv.route("GET", R"(/n/([^/]+)/v1/transaction)",
              [f](const http::ServerRequest& r) { return f->transaction(r.matches.at(1)); });
    srv.route("POST", R"(/n/([^/]+)/v1/stage)", [f](const http::ServerRequest& r) {
        if (auto a = f->authorize(r); !a) return http::ServerReply::error(a.error());
        return f->stage(r.matches.at(1), r.body);
    });
    srv.route("POST", R"(/n/([^/]+)/v1/restart)", [f](const http::ServerRequest& r) {
        if (auto a = f->authorize(r); !a) return http::ServerReply::error(a.error());
        return f->restart(r.matches.at(1), r.body);
    });
    srv.route("GET", "/fleet/actions", [f](const http::ServerRequest& r) {
        std::int64_t since = 0;
        if (auto s = r.queryParam("since_us")) since = std::stoll(*s);
        return f->actions(since);
    });
    srv.route("GET", "/fleet/stats", [f](const http::ServerRequest&) { return f->stats(); });
    if (!repo_dir.empty()) {
        srv.route("GET", R"(/repo/(.+))", [repo_dir](const http::ServerRequest& r) {
            const auto& rel = r.matches.at(1);
            if (rel.find("..") != std::string::npos)
                return http::ServerReply::error(400, "bad path");
            auto text = files::readFile(std::filesystem::path(repo_dir) / rel);
            if (!text) return http::ServerReply::error(404, "not found");
            return http::ServerReply::text(200, *text, "application/octet-stream");
        });
    }
    srv.route("POST", "/fleet/fail",
              [f](const http::ServerRequest& r) { return f->setFailing(r.body); });
    auto port = srv.bind();
    if (!port) {
        std::cerr << "fake-fleet: " << port.error().describe() << "\n";
        return 1;
    }
    http::Server* server_ptr = &srv;
    http::SignalWaiter waiter([server_ptr] { server_ptr->stop(); });
    std::string base = "http://" + listen_host + ":" + std::to_string(*port);
    fleet.base = base;
    fleet.start(ping_threads);
    std::thread runner([&] { srv.run(); });

    // Register every node, in parallel, retrying until the coordinator answers.
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};
    std::vector<std::thread> registrars;
    for (size_t t = 0; t < register_threads; ++t) {
        registrars.emplace_back([&] {
            http::Client client;
            while (true) {
                size_t i = next.fetch_add(1);
                if (i >= fleet.order().size()) return;
                const auto& id = fleet.order()[i];
                pkgmgr::Registration registration;
                registration.id = id;
                registration.role = id.starts_with("master") ? "master" : "agent";
                registration.address = fleet.address(id);
                registration.release = release;
                registration.generation = 1;
                http::Request request;
                request.method = "POST";
                request.url = http::joinUrl(coordinator, "/v1/nodes/register");
                request.body = registration.toJson();
                request.headers.push_back({"Content-Type", "application/json"});
                if (!fleet.token.empty()) request.headers.push_back(http::bearer(fleet.token));
                auto reply = client.send(
                    request, {20, std::chrono::milliseconds(100), std::chrono::seconds(1)});
                if (!reply || !reply->ok()) {
                    std::cerr << "fake-fleet: cannot register " << id << ": "
                              << (reply ? reply->body : reply.error().describe()) << "\n";
                    failed = true;
                    return;
                }
            }
        });
    }
    for (auto& t : registrars) t.join();
    if (failed) {
        srv.stop();
        runner.join();
        fleet.stop();
        return 1;
    }
    if (!port_file.empty()) (void)srv.writePortFile(port_file);
    std::cerr << "fake-fleet: " << fleet.order().size() << " nodes on " << base << "\n";
    runner.join();
    fleet.stop();
    return 0;
}

// halt-probe: while a rollout runs, halt at random moments and measure, from the moment the
// halt request is sent, until the later of its reply and the last restart the fleet received.
int haltProbe(int argc, char** argv) {
    std::string coordinator;
    std::string fleet_url;
    std::string token_file;
    int rounds = 20;
    int hold_ms = 300;
    CLI::App app{"fake-fleet halt-probe: halt latency against a running rollout"};
    app.add_option("--coordinator", coordinator)->required();
    app.add_option("--fleet", fleet_url)->required();
    app.add_option("--token-file", token_file, "admin token (halts and clears)")->required();
    app.add_option("--rounds", rounds);
    app.add_option("--hold-ms", hold_ms, "how long each hold stands before it is cleared");
    CLI11_PARSE(app, argc - 1, argv + 1);
    std::string token = readToken(token_file);
    http::Client client;
    std::mt19937 rng{std::random_device{}()};
    std::vector<double> latencies;
    std::vector<double> replies;  // the reply alone, without the restarts already past the gate
    for (int round = 0; round < rounds; ++round) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 400));
        http::Request halt;
        halt.method = "POST";
        halt.url = http::joinUrl(coordinator, "/v1/halt");
        halt.headers = {http::bearer(token), {"Content-Type", "application/json"}};
        halt.body = R"({"reason":"probe","source":"probe"})";
        auto sent = nowUs();
        auto reply = client.send(halt);
        auto answered = nowUs();
        if (!reply || reply->status != 201) {
            std::cerr << "halt failed\n";
            return 1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(hold_ms));
        http::Request get;
        get.url = http::joinUrl(fleet_url, "/fleet/actions?since_us=" + std::to_string(sent));
        auto acts = client.send(get);
        std::int64_t last = answered;
        std::int64_t after_reply = 0;
        if (acts && acts->ok()) {
            auto doc = json::parseObject(acts->body, "actions");
            if (doc) {
                for (const auto& a : (*doc)["actions"].GetArray()) {
                    if (std::string(a["kind"].GetString()) != "restart") continue;
                    auto t = a["time_us"].GetInt64();
                    last = std::max(last, t);
                    if (t > answered) ++after_reply;
                }
            }
        }
        latencies.push_back(static_cast<double>(last - sent) / 1000.0);
        replies.push_back(static_cast<double>(answered - sent) / 1000.0);
        if (after_reply > 0)
            std::cerr << "round " << round << ": " << after_reply
                      << " restarts after the halt reply\n";
        http::Request clear;
        clear.method = "DELETE";
        clear.url = http::joinUrl(coordinator, "/v1/halt");
        clear.headers = {http::bearer(token)};
        (void)client.send(clear);
    }
    std::sort(latencies.begin(), latencies.end());
    std::sort(replies.begin(), replies.end());
    auto pct = [](const std::vector<double>& v, double p) {
        size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
        return v[std::min(i, v.size() - 1)];
    };
    std::printf("halt_latency_ms p50=%.2f p99=%.2f max=%.2f rounds=%zu\n", pct(latencies, 0.5),
                pct(latencies, 0.99), latencies.back(), latencies.size());
    std::printf("halt_reply_ms p50=%.2f p99=%.2f max=%.2f\n", pct(replies, 0.5), pct(replies, 0.99),
                replies.back());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc > 1 && std::string(argv[1]) == "halt-probe") return haltProbe(argc, argv);
    return serveFleet(argc, argv);
}
