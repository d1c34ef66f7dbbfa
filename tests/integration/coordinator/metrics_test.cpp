// Metrics an SRE can alert on, and metric gates, against the real peers: promtool (Debian
// `prometheus`) lints every /metrics endpoint of the coordinator, repo-server, provisioner and
// nodes; a real Prometheus, started here on a free loopback port with its own data folder,
// scrapes the stand-in services of a real fleet (found through http_sd) and answers the gates
// a rollout checks between waves.

#include <iostream>
#include <thread>

#include "coordinator/fleet_fixture.hpp"
#include "core/files.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"
#include "pkgmgr/node_config.hpp"
#include "pkgmgr/release.hpp"
#include "pkgmgr/service.hpp"
#include "restart_helper/helper.hpp"

namespace hoist::testing {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view kAdminToken = kFleetAdminToken;
constexpr const char* kPromtool = "/usr/bin/promtool";
constexpr const char* kPrometheus = "/usr/bin/prometheus";

class MonitoredFleet : public FleetFixture {
protected:
    void SetUp() override {
        FleetFixture::SetUp();
        publishBothRoles("1.0.0", {});
        publishBothRoles("2.0.0", {"1.*"});
        // The broken release: healthy, but its service counts 50 errors a second.
        Behaviour broken;
        broken.errors_per_second = 50;
        publishBothRoles("2.0.1", {"1.*"}, broken);
        startRepo();
    }

    void TearDown() override {
        prometheus_.reset();
        if (sd_) sd_->stop();
        if (sd_thread_.joinable()) sd_thread_.join();
        FleetFixture::TearDown();
    }

    json::Document deployment(const std::string& id) {
        return parsed(call("GET", "/v1/deployments/" + id + "?events=200"));
    }

    std::map<std::string, std::pair<std::string, std::int64_t>> nodeStates(
        const json::Document& d) {
        std::map<std::string, std::pair<std::string, std::int64_t>> out;
        if (!d.IsObject() || !d.HasMember("nodes")) return out;
        for (const auto& n : d["nodes"].GetArray())
            out[n["node"].GetString()] = {n["state"].GetString(), n["restarts"].GetInt64()};
        return out;
    }

    /// Lints `url`/metrics with promtool; returns the exposition.
    std::string lint(const std::string& what, const std::string& url) {
        auto r = httpGet(url + "/metrics");
        EXPECT_TRUE(r.has_value()) << what;
        if (!r) return {};
        EXPECT_EQ(r->status, 200) << what;
        auto file = tmp_ / ("metrics-" + what + ".txt");
        writeFile(file, r->body);
        auto checked =
            run({"/bin/sh", "-c",
                 std::string(kPromtool) + " check metrics < '" + file.string() + "' 2>&1"});
        EXPECT_EQ(checked.exit_code, 0) << what << ": promtool says\n"
                                        << checked.out << checked.err << "\n"
                                        << r->body;
        EXPECT_NE(r->body.find("hoist_build_info{version=\""), std::string::npos) << what;
        EXPECT_NE(r->body.find("\nprocess_resident_memory_bytes "), std::string::npos) << what;
        EXPECT_NE(r->body.find("\nprocess_open_fds "), std::string::npos) << what;
        EXPECT_NE(r->body.find("\nprocess_start_time_seconds "), std::string::npos) << what;
        EXPECT_NE(r->body.find("hoist_http_request_duration_seconds_bucket{route="),
                  std::string::npos)
            << what;
        return r->body;
    }

    /// Serves Prometheus http_sd targets: each node's stand-in service (its port file, read
    /// on every request, since each generation listens on a new port).
    void startServiceDiscovery() {
        http::ServerOptions options;
        options.component = "test-sd";
        options.access_log = false;
        options.threads = 2;
        auto created = http::Server::create(options);
        ASSERT_OK(created);
        sd_ = std::move(*created);
        sd_->route("GET", "/targets", [this](const http::ServerRequest&) {
            json::Writer w;
            w.beginArray();
            for (const auto& n : nodes_) {
                auto port = files::readFile(pkgmgr::NodeLayout::at(n.root).run() / "service.port");
                if (!port) continue;
                w.beginObject().key("targets").beginArray();
                w.value("127.0.0.1:" + std::string(strings::trim(*port)));
                w.endArray()
                    .key("labels")
                    .beginObject()
                    .field("node", n.id)
                    .endObject()
                    .endObject();
            }
            w.endArray();
            return http::ServerReply::json(200, w.str());
        });
        auto port = sd_->bind();
        ASSERT_OK(port);
        sd_port_ = *port;
        sd_thread_ = std::thread([this] { sd_->run(); });
    }

    void startPrometheus() {
        int port = freeLoopbackPort();
        writeFile(tmp_ / "prometheus.yml",
                  "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                  "scrape_configs:\n  - job_name: standin\n    scrape_interval: 1s\n"
                  "    http_sd_configs:\n      - url: http://127.0.0.1:" +
                      std::to_string(sd_port_) + "/targets\n        refresh_interval: 1s\n");
        prometheus_ = std::make_unique<ServerProcess>(
            std::vector<std::string>{kPrometheus,
                                     "--config.file=" + (tmp_ / "prometheus.yml").string(),
                                     "--storage.tsdb.path=" + (tmp_ / "prometheus-data").string(),
                                     "--web.listen-address=127.0.0.1:" + std::to_string(port)},
            port, "/-/ready", tmp_ / "prometheus.log");
        ASSERT_TRUE(prometheus_->started()) << readFile(tmp_ / "prometheus.log");
    }

    /// Brings up a gated fleet: Prometheus scraping the stand-ins of master-1, agent-1 and
    /// agent-2, and the coordinator with --prometheus.
    void gatedFleet() {
        if (!fs::exists(kPrometheus))
            GTEST_SKIP() << kPrometheus
                         << " is not installed (tools/setup-deps installs prometheus)";
        startServiceDiscovery();
        startPrometheus();
        startCoordinator({"--prometheus", prometheus_->url(), "--gate-error-grace-ms", "20000"});
        addNode("master-1", "master");
        addNode("agent-1", "agent");
        addNode("agent-2", "agent");
        ASSERT_TRUE(waitRegistered(3));
        // The 1.0.0 stand-ins are scraped (their error counters exist, at 0).
        ASSERT_TRUE(waitFor(
            [&] {
                auto r =
                    httpGet(prometheus_->url() + "/api/v1/query?query=count(standin_errors_total)");
                return r && r->body.find("\"value\":[") != std::string::npos &&
                       r->body.find(",\"3\"]") != std::string::npos;
            },
            30s, 200ms))
            << readFile(tmp_ / "prometheus.log");
    }

    static constexpr const char* kGate = "errors: sum(rate(standin_errors_total[5s])) < 1 for 8s";

    std::string upgrade(const std::string& version) {
        json::Writer w;
        w.beginObject()
            .field("version", version)
            .field("max_parallel", "1")
            .field("min_healthy_ms", 1000)
            .key("gates")
            .beginArray()
            .value(kGate)
            .endArray()
            .endObject();
        auto started = call("POST", "/v1/deployments", w.str());
        EXPECT_EQ(started.status, 201) << started.body;
        return started.status == 201 ? std::string(parsed(started)["id"].GetString()) : "";
    }

    std::unique_ptr<ServerProcess> prometheus_;
    std::unique_ptr<http::Server> sd_;
    int sd_port_ = 0;
    std::thread sd_thread_;
};

TEST_F(MonitoredFleet, EveryMetricsEndpointPassesPromtool) {
    if (!fs::exists(kPromtool))
        GTEST_SKIP() << kPromtool << " is not installed (tools/setup-deps installs prometheus)";
    startCoordinator();
    addNode("master-1", "master");
    addNode("agent-1", "agent");
    ASSERT_TRUE(waitRegistered(2));
    writeFile(tmp_ / "prov.token", "prov-token\n", fs::perms(0600));
    ServerProcess provisioner({PROVISIONER_BIN,     "serve",
                               "--listen",          "127.0.0.1:0",
                               "--port-file",       (tmp_ / "prov.port").string(),
                               "--token-file",      (tmp_ / "prov.token").string(),
                               "--state",           (tmp_ / "prov.db").string(),
                               "--backend",         "local",
                               "--nodes-dir",       (tmp_ / "prov-nodes").string(),
                               "--restart-helper",  RESTART_HELPER_BIN,
                               "--pkgmgr",          PKGMGR_BIN,
                               "--repo-url",        repo_->url(),
                               "--coordinator-url", coordinator_->url(),
                               "--release",         "1.0.0",
                               "--trusted-key",     publicKeyFile().string()},
                              tmp_ / "prov.port", tmp_ / "prov.log");
    ASSERT_TRUE(provisioner.started()) << readFile(tmp_ / "prov.log");

    // Before any deployment: every series an alert rates over is there, at 0.
    auto coordinator = lint("coordinator", coordinator_->url());
    for (const char* line :
         {"hoist_coordinator_deployment_nodes{state=\"failed\"} 0\n",
          "hoist_coordinator_node_swaps_total{result=\"done\"} 0\n",
          "hoist_coordinator_deployment_acting 0\n", "hoist_coordinator_nodes{status=\"up\"} 2\n",
          "route=\"/v1/deployments/{id}/{action}\",method=\"POST\"",
          "route=\"/v1/nodes/{id}/status\",method=\"POST\""})
        EXPECT_NE(coordinator.find(line), std::string::npos) << line << coordinator;
    EXPECT_EQ(coordinator.find("([^/]+)"), std::string::npos) << "a raw regex as a route label";

    auto started = call("POST", "/v1/deployments", R"({"version":"2.0.0","max_parallel":1})");
    ASSERT_EQ(started.status, 201) << started.body;
    ASSERT_TRUE(waitFor(
        [&] { return std::string(deployment("d-1")["state"].GetString()) == "done"; }, 60s, 200ms))
        << readFile(tmp_ / "coord.log");

    coordinator = lint("coordinator", coordinator_->url());
    for (const char* line :
         {"hoist_coordinator_node_swaps_total{result=\"done\"} 2\n",
          "hoist_coordinator_node_swap_duration_seconds_count{result=\"done\"} 2\n",
          "hoist_coordinator_stage_duration_seconds_count{result=\"staged\"} 2\n",
          "hoist_coordinator_deployment_nodes{state=\"done\"} 0\n"})
        EXPECT_NE(coordinator.find(line), std::string::npos) << line << coordinator;
    auto repo = lint("repo-server", repo_->url());
    // The package bodies the nodes fetched are counted.
    EXPECT_EQ(repo.find("hoist_http_response_bytes_total{route=\"/packages/{path}\"} 0\n"),
              std::string::npos)
        << repo;
    auto provisioner_text = lint("provisioner", provisioner.url());
    for (const char* line : {"hoist_provisioner_nodes{state=\"running\"} 0\n",
                             "hoist_provisioner_backend_calls_total{operation=\"launch\"} 0\n",
                             "hoist_provisioner_backend_retries_total{operation=\"launch\"} 0\n"})
        EXPECT_NE(provisioner_text.find(line), std::string::npos) << line << provisioner_text;
    for (const auto& n : nodes_) {
        auto text = lint(n.id, n.serve->url());
        EXPECT_NE(text.find("hoist_node_release_info{node=\"" + n.id + "\",role=\"" +
                            (n.id.starts_with("master") ? "master" : "agent") +
                            "\",release=\"2.0.0\"} 1\n"),
                  std::string::npos)
            << text;
        EXPECT_NE(text.find("hoist_node_restarts_total 1\n"), std::string::npos) << text;
    }

    // http_sd for Prometheus: the nodes that are up, host:port and labels.
    auto sd = call("GET", "/v1/nodes?format=prometheus-sd");
    ASSERT_EQ(sd.status, 200) << sd.body;
    auto doc = parsed(sd);
    ASSERT_TRUE(doc.IsArray()) << sd.body;
    ASSERT_EQ(doc.Size(), 2u) << sd.body;
    EXPECT_STREQ(doc[1]["labels"]["node"].GetString(), "master-1") << sd.body;
    EXPECT_EQ(std::string(doc[1]["targets"][0].GetString()),
              "127.0.0.1:" + std::to_string(nodes_[0].serve->port()))
        << sd.body;
    EXPECT_EQ(call("GET", "/v1/nodes?format=yaml").status, 400);
}

TEST_F(MonitoredFleet, AGateOnTheServiceErrorRateHoldsTheBrokenReleaseBeforeTheNextWave) {
    gatedFleet();
    if (IsSkipped() || HasFatalFailure()) return;
    auto id = upgrade("2.0.1");
    ASSERT_FALSE(id.empty());
    // The master's 2.0.1 counts errors; the gate after its wave fails and holds.
    ASSERT_TRUE(waitFor(
        [&] {
            auto holds = call("GET", "/v1/halt");
            return holds.body.find("gate/errors") != std::string::npos;
        },
        90s, 250ms))
        << readFile(tmp_ / "coord.log");
    // waiting_on names the gate's hold (the hold's text is filled in as the hold lands).
    std::string waiting;
    EXPECT_TRUE(waitFor(
        [&] {
            waiting = deployment(id)["waiting_on"].GetString();
            return waiting.find("gate/errors") != std::string::npos;
        },
        10s, 100ms))
        << waiting;
    auto d = deployment(id);
    auto states = nodeStates(d);
    EXPECT_EQ(states["master-1"].first, "done");
    EXPECT_EQ(states["agent-1"].second, 0) << "no agent restarts after the gate failed";
    EXPECT_EQ(states["agent-2"].second, 0);
    auto holds = call("GET", "/v1/halt");
    EXPECT_NE(holds.body.find("not < 1"), std::string::npos) << holds.body;
    std::cout << "waiting_on: " << waiting << "\nholds: " << holds.body << "\n";
    // The hold stands: a few seconds later still no agent has been touched.
    std::this_thread::sleep_for(3s);  // a window in which a restart would show, not a wait for luck
    states = nodeStates(deployment(id));
    EXPECT_EQ(states["agent-1"].second, 0);
    EXPECT_EQ(states["agent-1"].first, "staged");
    auto metrics = httpGet(coordinator_->url() + "/metrics");
    ASSERT_TRUE(metrics.has_value());
    EXPECT_NE(
        metrics->body.find(
            "hoist_coordinator_gate_evaluations_total{gate=\"errors\",result=\"failed\"} 1\n"),
        std::string::npos)
        << metrics->body;
    EXPECT_NE(
        metrics->body.find("hoist_coordinator_hold_start_time_seconds{source=\"gate/errors\"} "),
        std::string::npos)
        << metrics->body;
}

TEST_F(MonitoredFleet, AGoodReleasePassesTheSameGateAfterEveryWave) {
    gatedFleet();
    if (IsSkipped() || HasFatalFailure()) return;
    // The rehearsal shows the gates and where they come.
    auto rehearsal =
        call("POST", "/v1/rehearsals",
             std::string(R"({"version":"2.0.0","max_parallel":"1","gates":[")") + kGate + R"("]})");
    ASSERT_EQ(rehearsal.status, 200) << rehearsal.body;
    auto rehearsed = parsed(rehearsal);
    ASSERT_TRUE(rehearsed["gates"].IsObject()) << rehearsal.body;
    EXPECT_STREQ(rehearsed["gates"]["gates"][0].GetString(), kGate);
    EXPECT_EQ(std::string(rehearsed["gates"]["prometheus"].GetString()), prometheus_->url());
    int rehearsed_passes = 0;
    for (const auto& m : rehearsed["timeline"].GetArray())
        if (std::string(m["what"].GetString()).starts_with("gate passed")) ++rehearsed_passes;
    EXPECT_EQ(rehearsed_passes, 2) << rehearsal.body;
    // The same through `cluster upgrade --rehearse --gate` (the coordinator's Prometheus).
    std::vector<std::pair<std::string, std::string>> env{
        {"CLUSTER_URL", coordinator_->url()}, {"CLUSTER_TOKEN", std::string(kAdminToken)}};
    auto cli = run({CLUSTER_BIN, "upgrade", "2.0.0", "--rehearse", "--gate", kGate}, env);
    EXPECT_EQ(cli.exit_code, 0) << cli.out << cli.err;
    EXPECT_NE(
        cli.out.find("gates after each wave (" + prometheus_->url() + ", on fail: hold): " + kGate),
        std::string::npos)
        << cli.out;
    auto bad = run({CLUSTER_BIN, "upgrade", "2.0.0", "--gate", "error-rate: no comparison"}, env);
    EXPECT_NE(bad.exit_code, 0);
    EXPECT_NE(bad.err.find("is not NAME: QUERY OP NUMBER [for DURATION]"), std::string::npos)
        << bad.err;
    EXPECT_EQ(parsed(call("GET", "/v1/deployments"))["deployments"].Size(), 0u)
        << "a bad gate starts nothing";
    auto id = upgrade("2.0.0");
    ASSERT_FALSE(id.empty());
    bool saw_gate_waiting = false;
    ASSERT_TRUE(waitFor(
        [&] {
            auto d = deployment(id);
            std::string waiting = d["waiting_on"].GetString();
            saw_gate_waiting |= waiting.starts_with("gate 'errors'");
            return std::string(d["state"].GetString()) == "done";
        },
        120s, 200ms))
        << readFile(tmp_ / "coord.log");
    EXPECT_TRUE(saw_gate_waiting);
    EXPECT_EQ(call("GET", "/v1/halt").body.find("gate/"), std::string::npos);
    auto d = deployment(id);
    int passed = 0;
    for (const auto& e : d["events"].GetArray())
        if (std::string(e["action"].GetString()) == "gate passed") ++passed;
    EXPECT_EQ(passed, 2) << "after the master's wave and after agent-1's";
    for (const auto& [node, state] : nodeStates(d)) {
        EXPECT_EQ(state.first, "done") << node;
        EXPECT_EQ(state.second, 1) << node;
    }
}

}  // namespace
}  // namespace hoist::testing
