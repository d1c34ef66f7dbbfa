// The real deploy-coordinator and cluster binaries against fake-fleet, a process that runs
// simulated nodes answering like `pkgmgr serve` and pinging like the restart helper.

#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "core/crypto.hpp"
#include "core/http_client.hpp"
#include "core/json.hpp"
#include "core/process.hpp"
#include "pkgmgr/node_config.hpp"
#include "pkgmgr/release.hpp"
#include "testing.hpp"

namespace hoist {
namespace {

using testing::ServerProcess;
using testing::TempFolder;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct Act {
    std::string node;
    std::string role;
    std::string kind;
    std::int64_t time_us = 0;
};

pkgmgr::PackageRef packageRef(const std::string& id) {
    return {id, crypto::sha256Hex(id), 100};
}

class Coordinator : public ::testing::Test {
protected:
    void SetUp() override {
        testing::writeFile(dir_ / "admin.token", "admin-secret\n");
        testing::writeFile(dir_ / "halt.token", "halt-secret\n");
        testing::writeFile(dir_ / "node.token", "node-secret\n");
        auto keys = crypto::ed25519Generate();
        ASSERT_OK(keys);
        private_pem_ = keys->private_pem;
        testing::writeFile(dir_ / "trusted.pem", keys->public_pem);
        publish("1.0.0", {}, "mesos--1.0.0", true);
        publish("2.0.0", {"1.*"}, "mesos--2.0.0", true);
        publish("2.0.1", {"1.*", "2.*"}, "mesos--2.0.1", true);
        publish("3.0.0", {"2.*"}, "mesos--3.0.0", true);
        publish("9.0.0", {"1.*"}, "mesos--9.0.0", false);  // unsigned
        repo_ = std::make_unique<ServerProcess>(
            std::vector<std::string>{FAKE_FLEET_BIN, "--masters", "0", "--agents", "0",
                                     "--repo-dir", (dir_ / "repo").string(), "--port-file",
                                     (dir_ / "repo.port").string()},
            dir_ / "repo.port", dir_ / "repo.log");
        ASSERT_TRUE(repo_->started());
    }

    void publish(const std::string& version, std::vector<std::string> from,
                 const std::string& mesos, bool sign) {
        pkgmgr::Release release;
        release.version = version;
        release.upgrade_from = std::move(from);
        release.roles["master"] = {packageRef(mesos), packageRef("mesos-config--" + version)};
        release.roles["agent"] = {packageRef(mesos), packageRef("mesos-config--" + version),
                                  packageRef("metrics--1.0")};
        auto bytes = release.toJson();
        testing::writeFile(dir_ / "repo" / "releases" / (version + ".json"), bytes);
        if (sign) {
            auto sig = pkgmgr::signRelease(bytes, private_pem_);
            ASSERT_OK(sig);
            testing::writeFile(dir_ / "repo" / "releases" / (version + ".json.sig"), *sig);
        }
    }

    /// With open_registration, no node token is configured.
    void startCoordinator(int port = 0, const std::vector<std::string>& extra = {},
                          bool open_registration = false) {
        coordinator_.reset();
        auto argv = std::vector<std::string>(
            {COORDINATOR_BIN, "--state", (dir_ / "state.db").string(), "--listen",
             "127.0.0.1:" + std::to_string(port), "--port-file", (dir_ / "coord.port").string(),
             "--repo", repo_->url() + "/repo", "--trusted-key", (dir_ / "trusted.pem").string(),
             "--admin-token-file", (dir_ / "admin.token").string(), "--halt-token-file",
             (dir_ / "halt.token").string(), "--poll-after-ms", "1500"});
        // Open registration is a deliberate choice: without a node token the coordinator
        // starts only with --insecure-no-auth.
        if (open_registration)
            argv.push_back("--insecure-no-auth");
        else
            argv.insert(argv.end(), {"--node-token-file", (dir_ / "node.token").string()});
        argv.insert(argv.end(), extra.begin(), extra.end());
        coordinator_ =
            std::make_unique<ServerProcess>(argv, dir_ / "coord.port", dir_ / "coord.log");
        ASSERT_TRUE(coordinator_->started()) << testing::readFile(dir_ / "coord.log");
    }

    void startFleet(int masters, int agents, int swap_ms) {
        fleet_ = std::make_unique<ServerProcess>(
            std::vector<std::string>{FAKE_FLEET_BIN, "--coordinator", coordinator_->url(),
                                     "--masters", std::to_string(masters), "--agents",
                                     std::to_string(agents), "--swap-ms", std::to_string(swap_ms),
                                     "--node-token-file", (dir_ / "node.token").string(),
                                     "--port-file", (dir_ / "fleet.port").string()},
            dir_ / "fleet.port", dir_ / "fleet.log");
        ASSERT_TRUE(fleet_->started()) << testing::readFile(dir_ / "fleet.log");
    }

    http::Response call(const std::string& method, const std::string& path,
                        const std::string& body = "", const std::string& token = "admin-secret",
                        const std::string& node_secret = "") {
        http::Request request;
        request.method = method;
        request.url = coordinator_->url() + path;
        request.body = body;
        if (!token.empty()) request.headers.push_back(http::bearer(token));
        if (!node_secret.empty())
            request.headers.push_back({std::string(pkgmgr::kNodeSecretHeader), node_secret});
        auto response = client_.send(request);
        EXPECT_TRUE(response.has_value()) << response.error().describe();
        return response ? *response : http::Response{};
    }

    json::Document parsed(const http::Response& r) {
        auto doc = json::parse(r.body, "reply");
        EXPECT_TRUE(doc.has_value()) << r.body;
        return doc ? std::move(*doc) : json::Document{};
    }

    std::string deploymentState(const std::string& id) {
        auto doc = parsed(call("GET", "/v1/deployments/" + id + "?nodes=0&events=0"));
        return doc.IsObject() && doc.HasMember("state") ? doc["state"].GetString() : "";
    }

    bool waitState(const std::string& id, const std::string& state,
                   std::chrono::milliseconds timeout) {
        return testing::waitFor([&] { return deploymentState(id) == state; }, timeout, 50ms);
    }

    std::string start(const std::string& body) {
        auto r = call("POST", "/v1/deployments", body);
        EXPECT_EQ(r.status, 201) << r.body;
        auto doc = parsed(r);
        return doc.IsObject() && doc.HasMember("id") ? doc["id"].GetString() : "";
    }

    std::vector<Act> actions(std::int64_t since_us = 0) {
        http::Request request;
        request.url = fleet_->url() + "/fleet/actions?since_us=" + std::to_string(since_us);
        auto r = client_.send(request);
        std::vector<Act> out;
        if (!r) return out;
        auto doc = json::parseObject(r->body, "actions");
        if (!doc) return out;
        for (const auto& a : (*doc)["actions"].GetArray())
            out.push_back({a["node"].GetString(), a["role"].GetString(), a["kind"].GetString(),
                           a["time_us"].GetInt64()});
        return out;
    }

    std::map<std::string, int> restartCounts() {
        std::map<std::string, int> counts;
        for (const auto& a : actions())
            if (a.kind == "restart") counts[a.node]++;
        return counts;
    }

    void failNodes(const std::string& body) {
        http::Request request;
        request.method = "POST";
        request.url = fleet_->url() + "/fleet/fail";
        request.body = body;
        auto r = client_.send(request);
        ASSERT_TRUE(r && r->ok());
    }

    process::Outcome cluster(std::vector<std::string> args,
                             const std::string& token = "admin-secret") {
        args.insert(args.begin(), CLUSTER_BIN);
        return testing::run(args, {{"CLUSTER_URL", coordinator_->url()}, {"CLUSTER_TOKEN", token}},
                            std::chrono::seconds(90));
    }

    static std::int64_t nowUs() {
        return std::chrono::duration_cast<std::chrono::microseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
    }

    TempFolder dir_;
    std::string private_pem_;
    std::unique_ptr<ServerProcess> repo_;
    std::unique_ptr<ServerProcess> coordinator_;
    std::unique_ptr<ServerProcess> fleet_;
    http::Client client_;
};

/// Checks the order over the fleet's log: masters one at a time and all before any agent;
/// never more than max_parallel agents between their restart and their healthy report.
void expectOrder(const std::vector<Act>& acts, int max_parallel) {
    std::int64_t last_master_done = 0;
    std::int64_t first_agent_restart = INT64_MAX;
    int masters_in_flight = 0;
    int agents_in_flight = 0;
    int max_agents = 0;
    for (const auto& a : acts) {
        bool finish = a.kind == "healthy" || a.kind == "rolled_back";
        if (a.role == "master") {
            if (a.kind == "restart") {
                ++masters_in_flight;
                EXPECT_LE(masters_in_flight, 1) << "two masters at once: " << a.node;
            } else if (finish) {
                --masters_in_flight;
                last_master_done = std::max(last_master_done, a.time_us);
            }
        } else if (a.role == "agent") {
            if (a.kind == "restart") {
                first_agent_restart = std::min(first_agent_restart, a.time_us);
                max_agents = std::max(max_agents, ++agents_in_flight);
            } else if (finish) {
                --agents_in_flight;
            }
        }
    }
    EXPECT_LT(last_master_done, first_agent_restart)
        << "an agent restarted before the masters were done";
    EXPECT_LE(max_agents, max_parallel);
    EXPECT_GE(max_agents, 1);
}

TEST_F(Coordinator, RollsOutMastersFirstThenAgentsNeverMoreThanMaxParallel) {
    startCoordinator();
    startFleet(3, 7, 300);
    // The plan touches nothing.
    auto plan = cluster({"plan", "2.0.0", "--max-parallel", "3"});
    EXPECT_EQ(plan.exit_code, 0) << plan.err;
    EXPECT_NE(plan.out.find("wave 1 (master, 1): master-1"), std::string::npos) << plan.out;
    EXPECT_NE(plan.out.find("wave 4 (agent, 3): agent-1 agent-2 agent-3"), std::string::npos)
        << plan.out;
    EXPECT_NE(plan.out.find("+mesos--2.0.0"), std::string::npos) << plan.out;
    EXPECT_NE(plan.out.find("-mesos--1.0.0"), std::string::npos) << plan.out;
    EXPECT_NE(plan.out.find("=metrics--1.0"), std::string::npos) << plan.out;
    EXPECT_TRUE(restartCounts().empty());

    auto upgrade = cluster({"upgrade", "2.0.0", "--max-parallel", "3"});
    ASSERT_EQ(upgrade.exit_code, 0) << upgrade.out << upgrade.err;
    EXPECT_NE(upgrade.out.find("d-1 2.0.0 done"), std::string::npos) << upgrade.out;
    auto acts = actions();
    expectOrder(acts, 3);
    auto counts = restartCounts();
    EXPECT_EQ(counts.size(), 10u);
    for (const auto& [node, n] : counts) EXPECT_EQ(n, 1) << node;
    // Staging reached every node before the first restart.
    std::int64_t last_stage = 0;
    std::int64_t first_restart = INT64_MAX;
    for (const auto& a : acts) {
        if (a.kind == "stage") last_stage = std::max(last_stage, a.time_us);
        if (a.kind == "restart") first_restart = std::min(first_restart, a.time_us);
    }
    EXPECT_LT(last_stage, first_restart);
    auto nodes = parsed(call("GET", "/v1/nodes"));
    ASSERT_EQ(nodes["nodes"].Size(), 10u);
    for (const auto& n : nodes["nodes"].GetArray()) EXPECT_STREQ(n["release"].GetString(), "2.0.0");
    // The audit log names who did what to which node.
    auto history = cluster({"history", "--events", "--limit", "200"});
    EXPECT_NE(history.out.find("admin  deployment start  d-1"), std::string::npos) << history.out;
    EXPECT_NE(history.out.find("coordinator  restart  d-1  agent-7  to generation 2"),
              std::string::npos);
    // Metrics.
    auto metrics = call("GET", "/metrics", "", "");
    EXPECT_NE(metrics.body.find("hoist_coordinator_node_actions_total 20"), std::string::npos)
        << metrics.body;
    // Upgrading to the version every node runs is refused, creating no deployment.
    auto again = call("POST", "/v1/deployments", R"({"version":"2.0.0"})");
    EXPECT_EQ(again.status, 409) << again.body;
    EXPECT_NE(again.body.find("nothing to do: every node already runs 2.0.0"), std::string::npos)
        << again.body;
    EXPECT_EQ(deploymentState("d-2"), "");
    auto plan_again = cluster({"plan", "2.0.0"});
    EXPECT_NE(plan_again.out.find("nothing to do: every node already runs 2.0.0"),
              std::string::npos)
        << plan_again.out;
    EXPECT_EQ(plan_again.out.find("wave 1"), std::string::npos) << plan_again.out;
    EXPECT_EQ(restartCounts().size(), 10u);
}

TEST_F(Coordinator, RefusesBadReleasesAndBadCallersChangingNothing) {
    startCoordinator();
    startFleet(1, 2, 100);
    auto r = call("POST", "/v1/deployments", R"({"version":"9.0.0"})");
    EXPECT_EQ(r.status, 401);
    EXPECT_NE(r.body.find("release 9.0.0 is not signed (use --allow-unsigned to accept it)"),
              std::string::npos)
        << r.body;
    r = call("POST", "/v1/deployments", R"({"version":"7.7.7"})");
    EXPECT_EQ(r.status, 404);
    EXPECT_NE(r.body.find("release 7.7.7 is not in the repository"), std::string::npos) << r.body;
    r = call("POST", "/v1/deployments", R"({"version":"3.0.0"})");
    EXPECT_EQ(r.status, 409);
    EXPECT_NE(
        r.body.find(
            "release 3.0.0 may not upgrade these nodes (upgrade_from: 2.*): agent-1 runs '1.0.0'"),
        std::string::npos)
        << r.body;
    r = call("POST", "/v1/deployments", R"({"version":"2.0.0","max_parallel":"0"})");
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.body.find("max_parallel '0' must be a positive count or a percentage such as 10%"),
              std::string::npos);
    r = call("POST", "/v1/deployments", R"({"version":"2.0.0","max_paralel":2})");
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.body.find("unknown field 'max_paralel'"), std::string::npos) << r.body;
    r = call("POST", "/v1/deployments",
             R"({"version":"2.0.0","min_healthy_ms":9223372036854775807})");
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.body.find("field 'min_healthy_ms' must be 0 to 86400000 (24 h), not "
                          "9223372036854775807"),
              std::string::npos)
        << r.body;
    // A tampered manifest fails its signature.
    auto path = dir_ / "repo" / "releases" / "2.0.0.json";
    auto text = testing::readFile(path);
    testing::writeFile(path, text + " ");
    r = call("POST", "/v1/deployments", R"({"version":"2.0.0"})");
    EXPECT_EQ(r.status, 422) << r.body;
    EXPECT_NE(r.body.find("release 2.0.0"), std::string::npos) << r.body;
    // Monitors may halt but neither deploy nor clear; nobody without a token does anything.
    EXPECT_EQ(call("POST", "/v1/deployments", R"({"version":"2.0.0"})", "halt-secret").status, 401);
    EXPECT_EQ(call("GET", "/v1/nodes", "", "").status, 401);
    EXPECT_EQ(call("POST", "/v1/halt", R"({"reason":"x"})", "node-secret").status, 401);
    EXPECT_EQ(
        call("POST", "/v1/halt", R"({"reason":"slo burn","source":"sla"})", "halt-secret").status,
        201);
    EXPECT_EQ(call("DELETE", "/v1/halt", "", "halt-secret").status, 401);
    EXPECT_EQ(call("DELETE", "/v1/halt/sla").status, 200);
    EXPECT_EQ(call("DELETE", "/v1/halt/sla").status, 404);
    auto deployments = parsed(call("GET", "/v1/deployments"));
    EXPECT_EQ(deployments["deployments"].Size(), 0u);
    EXPECT_TRUE(actions().empty());
}

TEST_F(Coordinator, HostileJsonIsRefusedClearlyAndTheServerLives) {
    startCoordinator();
    std::string objects;
    for (int i = 0; i < 150'000; ++i) objects += "{\"a\":";
    // Each of these killed the recursive parser (SIGSEGV) or was silently accepted.
    struct Case {
        std::string path, token, body, needle;
    };
    std::vector<Case> cases = {
        {"/v1/halt", "halt-secret", std::string(200 * 1024, '['), "nested deeper than 128 levels"},
        {"/v1/nodes/register", "node-secret", objects, "nested deeper than 128 levels"},
        {"/v1/halt", "halt-secret", R"({"reason":"a","reason":"b"})", "duplicate key 'reason'"},
        {"/v1/halt", "halt-secret", "{\"reason\":\"\xff\xfe\"}", "invalid UTF-8"},
    };
    for (const auto& c : cases) {
        http::Request request;
        request.method = "POST";
        request.url = coordinator_->url() + c.path;
        request.body = c.body;
        request.headers = {http::bearer(c.token), {"Content-Type", "application/json"}};
        auto sent = client_.send(request);
        ASSERT_OK(sent);
        const auto& r = *sent;
        // The halt route is fail safe: with the halt token every body halts, and what could
        // not be read is named in the reply's warning. Other routes refuse.
        int expected = c.path == "/v1/halt" ? 201 : 400;
        EXPECT_EQ(r.status, expected) << c.path << ": " << r.body.substr(0, 200);
        EXPECT_NE(r.body.find(c.needle), std::string::npos) << r.body.substr(0, 200);
        EXPECT_EQ(call("GET", "/healthz", "", "").status, 200);
    }
    auto holds = parsed(call("GET", "/v1/halt"));
    ASSERT_EQ(holds["holds"].Size(), 1u);
    EXPECT_STREQ(holds["holds"][0]["source"].GetString(), "webhook");
    ASSERT_EQ(call("DELETE", "/v1/halt").status, 200);
    // An unsigned nested manifest in the repository is refused before it is parsed; a signed
    // one (a trusted key gone bad) is parsed within the limits.
    testing::writeFile(dir_ / "repo" / "releases" / "6.0.0.json", std::string(300 * 1024, '['));
    auto r = call("GET", "/v1/plan?version=6.0.0", "", "halt-secret");
    EXPECT_EQ(r.status, 401) << r.body;
    EXPECT_NE(r.body.find("release 6.0.0 is not signed"), std::string::npos) << r.body;
    auto sig = pkgmgr::signRelease(std::string(300 * 1024, '['), private_pem_);
    ASSERT_OK(sig);
    testing::writeFile(dir_ / "repo" / "releases" / "6.0.0.json.sig", *sig);
    r = call("GET", "/v1/plan?version=6.0.0", "", "halt-secret");
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.body.find("nested deeper than 128 levels"), std::string::npos) << r.body;
    EXPECT_EQ(call("GET", "/healthz", "", "").status, 200);
}

TEST_F(Coordinator, StopsWhenTheFailureBudgetIsSpentLeavingTheRestUntouched) {
    startCoordinator();
    startFleet(1, 6, 200);
    failNodes(R"({"nodes":["agent-2","agent-3"]})");
    auto upgrade = cluster({"upgrade", "2.0.0", "--max-parallel", "1", "--max-failures", "1"});
    EXPECT_EQ(upgrade.exit_code, exitCode(Errc::Unhealthy)) << upgrade.out << upgrade.err;
    EXPECT_NE(upgrade.err.find("ended held"), std::string::npos) << upgrade.err;
    auto d = parsed(call("GET", "/v1/deployments/d-1"));
    EXPECT_STREQ(d["state"].GetString(), "held");
    EXPECT_NE(std::string(d["waiting_on"].GetString())
                  .find("failure budget: 2 nodes failed, more than max_failures 1"),
              std::string::npos)
        << d["waiting_on"].GetString();
    auto counts = restartCounts();
    EXPECT_EQ(counts, (std::map<std::string, int>{
                          {"master-1", 1}, {"agent-1", 1}, {"agent-2", 1}, {"agent-3", 1}}));
    std::map<std::string, std::string> states;
    for (const auto& n : d["nodes"].GetArray())
        states[n["node"].GetString()] = n["state"].GetString();
    EXPECT_EQ(states["agent-2"], "failed");
    EXPECT_EQ(states["agent-3"], "failed");
    EXPECT_EQ(states["agent-4"], "staged");
    EXPECT_EQ(states["agent-1"], "done");
    // A rollback puts the upgraded nodes back, agents before masters.
    auto rollback = cluster({"rollback"});
    EXPECT_EQ(rollback.exit_code, 0) << rollback.err;
    ASSERT_TRUE(waitState("d-1", "rolled_back", 20s)) << deploymentState("d-1");
    counts = restartCounts();
    EXPECT_EQ(counts["agent-1"], 2);
    EXPECT_EQ(counts["master-1"], 2);
    EXPECT_EQ(counts["agent-2"], 1);
    EXPECT_EQ(counts.count("agent-4"), 0u);
    std::int64_t agent_revert = 0;
    std::int64_t master_revert = 0;
    int seen_agent = 0;
    int seen_master = 0;
    for (const auto& a : actions()) {
        if (a.kind != "restart") continue;
        if (a.node == "agent-1" && ++seen_agent == 2) agent_revert = a.time_us;
        if (a.node == "master-1" && ++seen_master == 2) master_revert = a.time_us;
    }
    EXPECT_LT(agent_revert, master_revert);
}

TEST_F(Coordinator, AHaltStopsNodeActionsSurvivesAKillAndOnlyTheAdminClearsIt) {
    startCoordinator();
    int port = coordinator_->port();
    startFleet(1, 8, 400);
    auto id = start(R"({"version":"2.0.0","max_parallel":2})");
    ASSERT_TRUE(testing::waitFor(
        [&] {
            auto counts = restartCounts();
            return counts.count("agent-1") + counts.count("agent-2") > 0;
        },
        20s));
    auto halt = call("POST", "/v1/halt", R"({"reason":"error budget burning","source":"sla"})",
                     "halt-secret");
    auto replied = nowUs();
    ASSERT_EQ(halt.status, 201) << halt.body;
    std::this_thread::sleep_for(1500ms);  // longer than a swap and a poll: anything would show
    for (const auto& a : actions(replied))
        EXPECT_NE(a.kind, "restart") << a.node << " restarted after the halt";
    auto d = parsed(call("GET", "/v1/deployments/" + id + "?nodes=0"));
    EXPECT_STREQ(d["waiting_on"].GetString(), "hold: sla (error budget burning)");
    auto refused = call("POST", "/v1/deployments", R"({"version":"2.0.1"})");
    EXPECT_EQ(refused.status, 423);
    EXPECT_NE(refused.body.find("halted by sla (error budget burning)"), std::string::npos)
        << refused.body;
    auto provision = call("POST", "/v1/cluster/nodes", R"({"role":"agent","count":1})");
    EXPECT_EQ(provision.status, 423);
    EXPECT_NE(provision.body.find("provisioning refused: halted by sla"), std::string::npos)
        << provision.body;
    EXPECT_EQ(call("DELETE", "/v1/halt", "", "halt-secret").status, 401);
    auto status = cluster({"status"}, "halt-secret");
    EXPECT_NE(status.out.find("HALTED by sla"), std::string::npos) << status.out << status.err;

    coordinator_->kill(SIGKILL);
    std::this_thread::sleep_for(200ms);
    startCoordinator(port);
    auto holds = parsed(call("GET", "/v1/halt"));
    EXPECT_TRUE(holds["halted"].GetBool());
    std::this_thread::sleep_for(2500ms);  // past poll-after: polls run, actions do not
    for (const auto& a : actions(replied))
        EXPECT_NE(a.kind, "restart") << a.node << " restarted while held";

    // resume does not clear a hold (that is unhalt's alone); it names the verb that does.
    auto resume = cluster({"resume"});
    EXPECT_EQ(resume.exit_code, exitCode(Errc::Halted)) << resume.out << resume.err;
    EXPECT_NE(resume.err.find("cluster unhalt --reason"), std::string::npos) << resume.err;
    EXPECT_TRUE(parsed(call("GET", "/v1/halt"))["halted"].GetBool());
    auto unhalt = cluster({"unhalt", "--reason", "p99 back under 200ms"});
    EXPECT_EQ(unhalt.exit_code, 0) << unhalt.err;
    EXPECT_NE(unhalt.out.find("cleared 1 hold(s): sla"), std::string::npos) << unhalt.out;
    ASSERT_TRUE(waitState(id, "done", 30s)) << deploymentState(id);
    auto counts = restartCounts();
    EXPECT_EQ(counts.size(), 9u);
    for (const auto& [node, n] : counts) EXPECT_EQ(n, 1) << node;
    expectOrder(actions(), 2);
    auto events = parsed(call("GET", "/v1/events?limit=500"));
    bool halted = false;
    bool cleared = false;
    for (const auto& e : events["events"].GetArray()) {
        std::string action = e["action"].GetString();
        if (action == "halt" && std::string(e["actor"].GetString()) == "monitor") halted = true;
        if (action == "halt cleared" && std::string(e["actor"].GetString()) == "admin" &&
            std::string(e["detail"].GetString()).ends_with("cleared because: p99 back under 200ms"))
            cleared = true;
    }
    EXPECT_TRUE(halted);
    EXPECT_TRUE(cleared);
}

TEST_F(Coordinator, AKillMidRolloutResumesWithEveryNodeRestartedExactlyOnce) {
    startCoordinator();
    int port = coordinator_->port();
    startFleet(2, 10, 400);
    auto id = start(R"({"version":"2.0.0","max_parallel":3})");
    ASSERT_TRUE(testing::waitFor([&] { return restartCounts().size() >= 4; }, 20s));
    coordinator_->kill(SIGKILL);
    std::this_thread::sleep_for(300ms);
    startCoordinator(port);
    ASSERT_TRUE(waitState(id, "done", 40s))
        << deploymentState(id) << testing::readFile(dir_ / "coord.log");
    auto counts = restartCounts();
    EXPECT_EQ(counts.size(), 12u);
    for (const auto& [node, n] : counts) EXPECT_EQ(n, 1) << node;
    expectOrder(actions(), 3);
    auto nodes = parsed(call("GET", "/v1/nodes"));
    for (const auto& n : nodes["nodes"].GetArray()) EXPECT_STREQ(n["release"].GetString(), "2.0.0");
}

// Halts are written to their own file beside the state file (state_holds.cpp). SIGKILLed at
// random moments while halts and clears come one after another and a rollout writes its
// steps, the coordinator keeps every hold it answered 201 for and not one it answered a clear
// for, and each answered halt has its audit event exactly once.
TEST_F(Coordinator, HoldsAnsweredBeforeASigkillAtAnyMomentAreKeptWithTheirEventsOnce) {
    startCoordinator();
    int port = coordinator_->port();
    startFleet(1, 8, 300);
    auto id = start(R"({"version":"2.0.0","max_parallel":2})");
    std::map<std::string, bool> expected;  // source -> held, for every answered request
    std::set<std::string> halted;          // sources whose halt was answered 201
    std::mt19937 rng{std::random_device{}()};
    for (int round = 0; round < 4; ++round) {
        std::string url = coordinator_->url();
        std::atomic<bool> stop{false};
        std::thread writer([&, url, round] {
            http::Client client;
            for (int i = 0; !stop.load(); ++i) {
                std::string source = "k" + std::to_string(round) + "-" + std::to_string(i);
                http::Request halt;
                halt.method = "POST";
                halt.url = url + "/v1/halt";
                halt.headers = {http::bearer("halt-secret"), {"Content-Type", "application/json"}};
                halt.body = R"({"reason":"kill test","source":")" + source + "\"}";
                auto put = client.send(halt);
                if (!put || put->status != 201) return;
                expected[source] = true;
                halted.insert(source);
                if (i % 2 == 1) continue;  // every other hold stays
                http::Request clear;
                clear.method = "DELETE";
                clear.url = url + "/v1/halt/" + source;
                clear.headers = {http::bearer("admin-secret")};
                auto cleared = client.send(clear);
                if (!cleared || cleared->status != 200) {
                    expected.erase(source);  // cut off mid-clear: either state is right
                    return;
                }
                expected[source] = false;
            }
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 250));
        coordinator_->kill(SIGKILL);
        stop = true;
        writer.join();
        startCoordinator(port);
        auto holds = parsed(call("GET", "/v1/halt"));
        std::set<std::string> standing;
        for (const auto& h : holds["holds"].GetArray()) standing.insert(h["source"].GetString());
        for (const auto& [source, held] : expected)
            EXPECT_EQ(standing.contains(source), held) << source << " after round " << round;
    }
    EXPECT_GT(halted.size(), 4u) << "too few halts were answered to show anything";
    auto events = parsed(call("GET", "/v1/events?limit=5000"));
    std::map<std::string, int> halt_events;
    for (const auto& e : events["events"].GetArray()) {
        if (std::string(e["action"].GetString()) != "halt") continue;
        std::string detail = e["detail"].GetString();
        halt_events[detail.substr(0, detail.find(':'))]++;
    }
    for (const auto& source : halted) EXPECT_EQ(halt_events[source], 1) << source;
    // Cleared, the rollout finishes: the holds file never stood in its way.
    (void)call("DELETE", "/v1/halt");
    ASSERT_TRUE(waitState(id, "done", 60s)) << deploymentState(id);
}

// SQLite mode: one coordinator per state file. A second one exits at once naming the file and
// the pid holding it, touching nothing (not even with --init); a SIGKILLed holder leaves no
// stale lock behind.
TEST_F(Coordinator, ASecondCoordinatorOnTheSameStateFileExitsNamingTheHolder) {
    startCoordinator();
    auto state = (dir_ / "state.db").string();
    for (bool init : {false, true}) {
        std::vector<std::string> argv = {COORDINATOR_BIN,
                                         "--state",
                                         state,
                                         "--listen",
                                         "127.0.0.1:0",
                                         "--port-file",
                                         (dir_ / "second.port").string(),
                                         "--repo",
                                         repo_->url() + "/repo",
                                         "--allow-unsigned",
                                         "--admin-token-file",
                                         (dir_ / "admin.token").string(),
                                         "--halt-token-file",
                                         (dir_ / "halt.token").string(),
                                         "--node-token-file",
                                         (dir_ / "node.token").string()};
        if (init) argv.push_back("--init");
        process::Options options;
        options.timeout = 20s;
        auto second = process::run(argv, options);
        ASSERT_OK(second);
        EXPECT_FALSE(second->timed_out) << "the second coordinator kept running";
        EXPECT_EQ(second->exit_code, exitCode(Errc::Busy)) << second->err;
        EXPECT_NE(second->err.find("state file " + state + " is in use by pid " +
                                   std::to_string(coordinator_->pid())),
                  std::string::npos)
            << second->err;
        EXPECT_NE(second->err.find("another deploy-coordinator runs on it"), std::string::npos)
            << second->err;
        EXPECT_FALSE(fs::exists(dir_ / "second.port"));
    }
    // The first one is untouched: its state file is where it was, and it still answers.
    const std::set<std::string> expected = {
        "state.db",           "state.db-shm",       "state.db-wal",
        "state.db-journal",   "state.db.lock",      "state.db.holds",
        "state.db.holds-shm", "state.db.holds-wal", "state.db.holds-journal"};
    EXPECT_TRUE(fs::exists(dir_ / "state.db"));
    for (const auto& entry : fs::directory_iterator(dir_.path())) {
        auto name = entry.path().filename().string();
        if (name.starts_with("state.db")) {
            EXPECT_TRUE(expected.contains(name)) << name;
        }
    }
    EXPECT_EQ(call("GET", "/v1/nodes").status, 200);

    // SIGKILL releases the lock: the next one starts on the same file.
    coordinator_->kill(SIGKILL);
    startCoordinator();
    EXPECT_EQ(call("GET", "/v1/nodes").status, 200);
    EXPECT_EQ(testing::readFile(dir_ / "state.db.lock"),
              std::to_string(coordinator_->pid()) + "\n");
}

// The fake fleet fences as a real node does (pkgmgr/epoch.hpp), so an HA test can send it a
// deposed leader's command: a lower epoch is refused with 409 naming both and recorded as
// "stale_<verb>"; accepted actions carry their epoch.
TEST_F(Coordinator, TheFakeFleetRefusesALowerEpochAndRecordsEachEpoch) {
    startCoordinator();
    startFleet(0, 1, 100);
    auto send = [&](const std::string& route, const std::string& body) {
        http::Request request;
        request.method = "POST";
        request.url = fleet_->url() + "/n/agent-1" + route;
        request.body = body;
        request.headers.push_back(http::bearer("node-secret"));
        auto r = client_.send(request);
        EXPECT_TRUE(r.has_value());
        return r ? *r : http::Response{};
    };
    EXPECT_EQ(send("/v1/stage", R"({"release":"2.0.0","epoch":5})").status, 200);
    auto stale = send("/v1/restart", R"({"generation":2,"epoch":4})");
    EXPECT_EQ(stale.status, 409);
    EXPECT_NE(
        stale.body.find("carries coordinator epoch 4, but this node has already seen epoch 5"),
        std::string::npos)
        << stale.body;
    EXPECT_EQ(send("/v1/restart", R"({"generation":2,"epoch":5})").status, 202);

    http::Request request;
    request.url = fleet_->url() + "/fleet/actions";
    auto r = client_.send(request);
    ASSERT_TRUE(r.has_value());
    auto doc = parsed(*r);
    std::vector<std::pair<std::string, std::int64_t>> seen;
    for (const auto& a : doc["actions"].GetArray()) {
        std::string kind = a["kind"].GetString();
        if (kind == "stage" || kind == "restart" || kind.starts_with("stale_"))
            seen.emplace_back(kind, a["epoch"].GetInt64());
    }
    EXPECT_EQ(seen, (std::vector<std::pair<std::string, std::int64_t>>{
                        {"stage", 5}, {"stale_restart", 4}, {"restart", 5}}));
}

// The SLA monitor in practice: a real Alertmanager whose webhook receiver points at the halt
// endpoint with the halt token, sending its own body, unchanged.
TEST_F(Coordinator, AnAlertmanagerAlertHaltsARolloutAndItsResolveKeepsTheHold) {
    if (!fs::exists(ALERTMANAGER_BIN))
        GTEST_SKIP() << ALERTMANAGER_BIN << " is not installed (tools/setup-deps installs "
                     << "prometheus-alertmanager)";
    startCoordinator();
    startFleet(1, 8, 400);
    int am_port = testing::freeLoopbackPort();
    std::string am_url = "http://127.0.0.1:" + std::to_string(am_port);
    testing::writeFile(dir_ / "alertmanager.yml",
                       "route:\n"
                       "  receiver: hoist\n"
                       "  group_by: [alertname]\n"
                       "  group_wait: 1s\n"
                       "  group_interval: 1s\n"
                       "  repeat_interval: 1h\n"
                       "receivers:\n"
                       "  - name: hoist\n"
                       "    webhook_configs:\n"
                       "      - url: " +
                           coordinator_->url() +
                           "/v1/halt\n"
                           "        send_resolved: true\n"
                           "        http_config:\n"
                           "          authorization:\n"
                           "            type: Bearer\n"
                           "            credentials_file: " +
                           (dir_ / "halt.token").string() + "\n");
    ServerProcess alertmanager(
        {ALERTMANAGER_BIN, "--config.file=" + (dir_ / "alertmanager.yml").string(),
         "--storage.path=" + (dir_ / "am").string(),
         "--web.listen-address=127.0.0.1:" + std::to_string(am_port),
         "--cluster.listen-address=", "--log.level=warn"},
        am_port, "/-/ready", dir_ / "alertmanager.log");
    ASSERT_TRUE(alertmanager.started());

    auto id = start(R"({"version":"2.0.0","max_parallel":1})");
    ASSERT_TRUE(testing::waitFor([&] { return restartCounts().size() >= 2; }, 20s));
    auto postAlert = [&](const std::string& ends_at) {
        http::Request request;
        request.method = "POST";
        request.url = am_url + "/api/v2/alerts";
        request.headers.push_back({"Content-Type", "application/json"});
        request.body = R"([{"labels":{"alertname":"HighErrorRate","severity":"page"},)"
                       R"("annotations":{"summary":"error rate 7% on agents"},"endsAt":")" +
                       ends_at + R"("}])";
        auto r = client_.send(request);
        ASSERT_TRUE(r && r->status == 200) << (r ? r->body : r.error().describe());
    };
    auto injected = nowUs();
    postAlert("2099-01-01T00:00:00Z");
    const std::string source = "alertmanager/hoist/HighErrorRate";
    auto holdOf = [&]() -> json::Document {
        auto holds = parsed(call("GET", "/v1/halt"));
        json::Document out;
        out.SetObject();
        if (!holds.IsObject()) return out;
        for (auto& h : holds["holds"].GetArray())
            if (std::string(h["source"].GetString()) == source) out.CopyFrom(h, out.GetAllocator());
        return out;
    };
    ASSERT_TRUE(testing::waitFor([&] { return holdOf().HasMember("source"); }, 30s))
        << testing::readFile(dir_ / "alertmanager.log");
    auto held = nowUs();
    std::printf("alert -> hold latency: %.0f ms (group_wait 1s)\n",
                static_cast<double>(held - injected) / 1000.0);
    auto hold = holdOf();
    EXPECT_STREQ(hold["reason"].GetString(), "error rate 7% on agents");
    EXPECT_STREQ(hold["by"].GetString(), "monitor");
    ASSERT_EQ(hold["alerts"].Size(), 1u);
    EXPECT_STREQ(hold["alerts"][0]["labels"]["severity"].GetString(), "page");
    std::this_thread::sleep_for(1500ms);  // longer than a swap and a poll: anything would show
    for (const auto& a : actions(held))
        EXPECT_NE(a.kind, "restart") << a.node << " restarted after the hold stood";
    auto d = parsed(call("GET", "/v1/deployments/" + id + "?nodes=0"));
    EXPECT_EQ(std::string(d["waiting_on"].GetString()),
              "hold: " + source + " (error rate 7% on agents)");

    // Resolved: Alertmanager tells us, the hold stays and says so.
    postAlert("2000-01-01T00:00:00Z");
    ASSERT_TRUE(testing::waitFor(
        [&] {
            auto h = holdOf();
            return h.HasMember("resolved") && std::string(h["resolved"].GetString()) != "";
        },
        30s))
        << testing::readFile(dir_ / "alertmanager.log");
    EXPECT_TRUE(parsed(call("GET", "/v1/halt"))["halted"].GetBool());
    EXPECT_EQ(deploymentState(id), "rolling");
    auto status = cluster({"status"}, "halt-secret");
    EXPECT_NE(status.out.find("resolved by the monitor at"), std::string::npos) << status.out;
    EXPECT_NE(status.out.find("cluster unhalt --source " + source), std::string::npos)
        << status.out;
    for (const auto& a : actions(held))
        EXPECT_NE(a.kind, "restart") << a.node << " restarted after a resolve";

    auto resume = cluster({"unhalt", "--source", source, "--reason", "alert resolved"});
    EXPECT_EQ(resume.exit_code, 0) << resume.err;
    ASSERT_TRUE(waitState(id, "done", 40s)) << deploymentState(id);
    auto counts = restartCounts();
    EXPECT_EQ(counts.size(), 9u);
    for (const auto& [node, n] : counts) EXPECT_EQ(n, 1) << node;
}

TEST_F(Coordinator, EveryBodyWithTheHaltTokenHaltsAndAWrongTokenChangesNothing) {
    startCoordinator();
    EXPECT_EQ(call("POST", "/v1/halt", "not json at all", "wrong-token").status, 401);
    EXPECT_FALSE(parsed(call("GET", "/v1/halt"))["halted"].GetBool());
    auto empty = call("POST", "/v1/halt", "", "halt-secret");
    EXPECT_EQ(empty.status, 201) << empty.body;
    auto garbage = call("POST", "/v1/halt", "disk full!", "halt-secret");
    EXPECT_EQ(garbage.status, 201) << garbage.body;
    EXPECT_NE(garbage.body.find("\"warning\":\"halt request: invalid JSON"), std::string::npos)
        << garbage.body;
    auto holds = parsed(call("GET", "/v1/halt"));
    std::set<std::string> sources;
    for (const auto& h : holds["holds"].GetArray()) sources.insert(h["source"].GetString());
    EXPECT_EQ(sources, (std::set<std::string>{"monitor", "webhook"}));
    auto events = parsed(call("GET", "/v1/events?limit=50"));
    bool kept = false;
    for (const auto& e : events["events"].GetArray())
        if (std::string(e["detail"].GetString()).find("body: disk full!") != std::string::npos)
            kept = true;
    EXPECT_TRUE(kept);
}

// The dead man's switch with a real Alertmanager: its always-firing Watchdog alert is routed to
// the heartbeat route; when Alertmanager dies mid-rollout, a hold follows within the allowance.
TEST_F(Coordinator, ASilentWatchdogHoldsARolloutWithinItsAllowance) {
    if (!fs::exists(ALERTMANAGER_BIN))
        GTEST_SKIP() << ALERTMANAGER_BIN << " is not installed (tools/setup-deps installs "
                     << "prometheus-alertmanager)";
    startCoordinator();
    startFleet(1, 8, 800);
    int am_port = testing::freeLoopbackPort();
    testing::writeFile(dir_ / "alertmanager.yml",
                       "route:\n"
                       "  receiver: watchdog\n"
                       "  group_wait: 0s\n"
                       "  group_interval: 1s\n"
                       "  repeat_interval: 1s\n"
                       "receivers:\n"
                       "  - name: watchdog\n"
                       "    webhook_configs:\n"
                       "      - url: " +
                           coordinator_->url() +
                           "/v1/monitors/alertmanager/heartbeat?allowance=3s\n"
                           "        http_config:\n"
                           "          authorization:\n"
                           "            type: Bearer\n"
                           "            credentials_file: " +
                           (dir_ / "halt.token").string() + "\n");
    auto alertmanager = std::make_unique<ServerProcess>(
        std::vector<std::string>{ALERTMANAGER_BIN,
                                 "--config.file=" + (dir_ / "alertmanager.yml").string(),
                                 "--storage.path=" + (dir_ / "am").string(),
                                 "--web.listen-address=127.0.0.1:" + std::to_string(am_port),
                                 "--cluster.listen-address=", "--log.level=warn"},
        am_port, "/-/ready", dir_ / "alertmanager.log");
    ASSERT_TRUE(alertmanager->started());
    http::Request watchdog;
    watchdog.method = "POST";
    watchdog.url = "http://127.0.0.1:" + std::to_string(am_port) + "/api/v2/alerts";
    watchdog.headers.push_back({"Content-Type", "application/json"});
    watchdog.body = R"([{"labels":{"alertname":"Watchdog"},"endsAt":"2099-01-01T00:00:00Z"}])";
    auto posted = client_.send(watchdog);
    ASSERT_TRUE(posted && posted->status == 200);
    auto lastBeat = [&]() -> std::string {
        auto doc = parsed(call("GET", "/v1/monitors", "", "halt-secret"));
        if (!doc.IsObject()) return "";
        for (const auto& m : doc["monitors"].GetArray())
            if (std::string(m["name"].GetString()) == "alertmanager")
                return m["last_beat"].GetString();
        return "";
    };
    ASSERT_TRUE(testing::waitFor([&] { return !lastBeat().empty(); }, 20s))
        << testing::readFile(dir_ / "alertmanager.log");
    auto first = lastBeat();
    ASSERT_TRUE(testing::waitFor([&] { return lastBeat() != first; }, 20s))
        << "Alertmanager repeats the Watchdog notification";

    auto id = start(R"({"version":"2.0.0","max_parallel":1})");
    ASSERT_TRUE(testing::waitFor([&] { return restartCounts().size() >= 1; }, 20s));
    EXPECT_FALSE(parsed(call("GET", "/v1/halt"))["halted"].GetBool()) << "a beating monitor";
    alertmanager->kill(SIGKILL);
    auto killed = nowUs();
    ASSERT_TRUE(testing::waitFor(
        [&] {
            auto holds = parsed(call("GET", "/v1/halt"));
            for (const auto& h : holds["holds"].GetArray())
                if (std::string(h["source"].GetString()) == "heartbeat/alertmanager") return true;
            return false;
        },
        15s));
    auto held = nowUs();
    std::printf("Alertmanager killed -> heartbeat hold: %.1f s (allowance 3 s, beats every 1 s)\n",
                static_cast<double>(held - killed) / 1e6);
    EXPECT_LT(held - killed, 3'000'000 + 3'000'000)
        << "the allowance and a beat interval, with slack";
    std::this_thread::sleep_for(1500ms);
    for (const auto& a : actions(held))
        EXPECT_NE(a.kind, "restart") << a.node << " restarted after the heartbeat hold";
    EXPECT_NE(deploymentState(id), "done");

    // Going on without the monitor is the admin's call: forget it, then clear.
    EXPECT_EQ(call("DELETE", "/v1/monitors/alertmanager", "", "halt-secret").status, 401);
    EXPECT_EQ(call("DELETE", "/v1/monitors/alertmanager").status, 200);
    auto resume = cluster({"unhalt", "--reason", "going on without alertmanager"});
    EXPECT_EQ(resume.exit_code, 0) << resume.err;
    ASSERT_TRUE(waitState(id, "done", 60s)) << deploymentState(id);
    for (const auto& [node, n] : restartCounts()) EXPECT_EQ(n, 1) << node;
}

TEST_F(Coordinator, ARehearsalPredictsTheBudgetStopAndTouchesNothing) {
    startCoordinator();
    startFleet(3, 4, 200);
    auto bad = cluster({"upgrade", "2.0.0", "--rehearse", "--inject", "master-1:explode"});
    EXPECT_EQ(bad.exit_code, exitCode(Errc::Invalid)) << bad.out << bad.err;
    EXPECT_NE(bad.err.find("unknown fault 'explode'"), std::string::npos) << bad.err;
    auto text = cluster({"upgrade", "2.0.0", "--rehearse", "--inject", "master-1:health_fail"});
    EXPECT_EQ(text.exit_code, 0) << text.err;
    EXPECT_NE(text.out.find("wave 1  master  master-1"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("master-1 fails (injected health_fail"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("wave 2  master  master-2  not reached"), std::string::npos)
        << text.out;
    EXPECT_NE(text.out.find("the failure budget stops the rollout (held): 1 node failed, more "
                            "than max_failures 0"),
              std::string::npos)
        << text.out;
    EXPECT_NE(text.out.find("outcome: held"), std::string::npos) << text.out;
    auto json_run = cluster({"--json", "upgrade", "2.0.0", "--rehearse", "--max-parallel", "2"});
    ASSERT_EQ(json_run.exit_code, 0) << json_run.err;
    auto doc = json::parse(json_run.out, "rehearsal");
    ASSERT_OK(doc);
    EXPECT_STREQ((*doc)["outcome"].GetString(), "done");
    EXPECT_EQ((*doc)["waves"].Size(), 5u);  // 3 masters, agents 2 + 2
    EXPECT_TRUE((*doc)["budget_stop_ms"].IsNull());
    EXPECT_GT((*doc)["total_ms"].GetInt64(), 5 * 20000);
    // Nothing was started, nothing was sent.
    EXPECT_EQ(parsed(call("GET", "/v1/deployments"))["deployments"].Size(), 0u);
    EXPECT_TRUE(actions().empty());
}

TEST_F(Coordinator, StatusShowsTheDeploymentActingNotTheNewest) {
    startCoordinator();
    startFleet(1, 2, 200);
    ASSERT_TRUE(waitState(start(R"({"version":"2.0.0"})"), "done", 20s));
    failNodes(R"({"nodes":["agent-1"]})");
    auto d2 = start(R"({"version":"3.0.0"})");
    ASSERT_TRUE(waitState(d2, "held", 20s)) << deploymentState(d2);
    // d-1 is rolled back while d-2, the newest, is held: refused, naming what to do.
    auto refused = call("POST", "/v1/deployments/d-1/rollback");
    EXPECT_EQ(refused.status, 409);
    EXPECT_NE(refused.body.find("cluster abort d-2"), std::string::npos) << refused.body;
    auto status = cluster({"status"});
    EXPECT_NE(status.out.find("d-2 3.0.0 held"), std::string::npos) << status.out;
    EXPECT_EQ(cluster({"abort"}).exit_code, 0);
    ASSERT_TRUE(waitState(d2, "aborted", 10s));
    // Roll d-1 back: the rollback acts, and status shows it (not the aborted d-2).
    ASSERT_EQ(call("POST", "/v1/deployments/d-1/rollback").status, 200);
    status = cluster({"status"});
    EXPECT_NE(status.out.find("(rollback of d-1)"), std::string::npos) << status.out;
    auto list = parsed(call("GET", "/v1/deployments"));
    EXPECT_STREQ(list["deployments"][0]["id"].GetString(), "d-3");
    EXPECT_EQ(deploymentState("d-2"), "aborted");
}

TEST_F(Coordinator, ARollbackIsItsOwnDeploymentAndTheUndoneOneKeepsItsOutcome) {
    startCoordinator();
    startFleet(1, 2, 200);
    ASSERT_TRUE(waitState(start(R"({"version":"2.0.0"})"), "done", 20s));
    auto rollback = cluster({"rollback"});
    ASSERT_EQ(rollback.exit_code, 0) << rollback.err;
    EXPECT_NE(rollback.out.find("d-2 1.0.0 reverting"), std::string::npos) << rollback.out;
    ASSERT_TRUE(waitState("d-2", "rolled_back", 20s)) << deploymentState("d-2");
    EXPECT_EQ(deploymentState("d-1"), "done");
    auto d2 = parsed(call("GET", "/v1/deployments/d-2"));
    EXPECT_STREQ(d2["kind"].GetString(), "rollback");
    EXPECT_STREQ(d2["undoes"].GetString(), "d-1");
    auto nodes = parsed(call("GET", "/v1/nodes"));
    for (const auto& n : nodes["nodes"].GetArray()) EXPECT_STREQ(n["release"].GetString(), "1.0.0");
    // Nothing is left to roll back: d-1 is undone and d-2 is a rollback.
    auto again = cluster({"rollback"});
    EXPECT_NE(again.exit_code, 0);
    EXPECT_NE(again.err.find("no deployment changed any node"), std::string::npos) << again.err;
    auto twice = call("POST", "/v1/deployments/d-1/rollback");
    EXPECT_EQ(twice.status, 409);
    EXPECT_NE(twice.body.find("already rolled back by d-2"), std::string::npos) << twice.body;
    // Back to a named release: the generations d-1 left.
    // With an Idempotency-Key, as `cluster rollback --to` sends one: a retry is the same
    // rollback, not a second one (nor a 409).
    auto rollbackTo = [&] {
        http::Request request;
        request.method = "POST";
        request.url = coordinator_->url() + "/v1/rollbacks";
        request.body = R"({"to":"2.0.0"})";
        request.headers.push_back(http::bearer("admin-secret"));
        request.headers.push_back({"Idempotency-Key", "rollback-to-2"});
        auto response = client_.send(request);
        return response ? *response : http::Response{};
    };
    auto to = rollbackTo();
    ASSERT_EQ(to.status, 201) << to.body;
    EXPECT_STREQ(parsed(to)["id"].GetString(), "d-3");
    auto to_again = rollbackTo();
    EXPECT_EQ(to_again.status, 201) << to_again.body;
    EXPECT_STREQ(parsed(to_again)["id"].GetString(), "d-3");
    ASSERT_TRUE(waitState("d-3", "rolled_back", 20s)) << deploymentState("d-3");
    EXPECT_EQ(rollbackTo().status, 201) << "still the same rollback once it has ended";
    nodes = parsed(call("GET", "/v1/nodes"));
    for (const auto& n : nodes["nodes"].GetArray()) EXPECT_STREQ(n["release"].GetString(), "2.0.0");
    auto history = cluster({"history"});
    EXPECT_NE(history.out.find("d-1"), std::string::npos) << history.out;
    EXPECT_NE(history.out.find("d-3"), std::string::npos) << history.out;
}

// Without one of the coordinator's tokens, no body is read: the refusal comes as soon as the
// headers are in, though a megabyte was announced and none of it sent.
TEST_F(Coordinator, ACallerWithoutATokenCannotMakeTheCoordinatorReadABody) {
    startCoordinator();
    for (const char* path : {"/v1/deployments", "/v1/halt", "/v1/nodes/register"}) {
        testing::RawConnection c(coordinator_->port());
        ASSERT_TRUE(c.connected());
        ASSERT_TRUE(c.send(std::string("POST ") + path +
                           " HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n"
                           "Authorization: Bearer not-a-token\r\n\r\n"));
        auto reply = c.readAll(5s);
        EXPECT_TRUE(reply.starts_with("HTTP/1.1 401")) << path << ": " << reply;
        EXPECT_NE(reply.find("wrong bearer token"), std::string::npos) << reply;
    }
    EXPECT_FALSE(parsed(call("GET", "/v1/halt"))["halted"].GetBool());
    // With a token, the same request is read and answered by its route.
    auto halted = call("POST", "/v1/halt", R"({"reason":"x","source":"sla"})", "halt-secret");
    EXPECT_EQ(halted.status, 201) << halted.body;
}

// A registration with a role no layout knows once blocked every later upgrade ("release has no
// packages for role 'bogus'"); it is refused, and the fleet still upgrades.
TEST_F(Coordinator, ARoleTheLayoutsDoNotKnowCannotRegister) {
    startCoordinator();
    auto bogus =
        call("POST", "/v1/nodes/register",
             R"({"id":"bogus-1","role":"bogus","address":"http://127.0.0.1:1"})", "node-secret");
    EXPECT_EQ(bogus.status, 400) << bogus.body;
    EXPECT_NE(bogus.body.find("role 'bogus' is not a role the coordinator's layouts know"),
              std::string::npos)
        << bogus.body;
    EXPECT_EQ(parsed(call("GET", "/v1/nodes"))["nodes"].Size(), 0u);
    startFleet(1, 2, 200);
    auto id = start(R"({"version":"2.0.0"})");
    ASSERT_TRUE(waitState(id, "done", 30s)) << deploymentState(id);
}

/// What a terminal shows after `bytes`: where the cursor went, how often a line was longer than
/// the width (and wrapped), how often the program moved the cursor back up to redraw.
struct TerminalTrace {
    int max_row = 0;
    int wraps = 0;
    int redraws = 0;
};

TerminalTrace traceTerminal(const std::string& bytes, int width) {
    TerminalTrace t;
    int row = 0;
    int col = 0;
    for (size_t i = 0; i < bytes.size(); ++i) {
        unsigned char ch = static_cast<unsigned char>(bytes[i]);
        if (ch == 0x1b && i + 1 < bytes.size() && bytes[i + 1] == '[') {
            size_t j = i + 2;
            int n = 0;
            while (j < bytes.size() && std::isdigit(static_cast<unsigned char>(bytes[j])))
                n = n * 10 + (bytes[j++] - '0');
            if (j < bytes.size() && bytes[j] == 'A') {
                row -= std::max(n, 1);
                ++t.redraws;
            }
            i = j;
        } else if (ch == '\r') {
            col = 0;
        } else if (ch == '\n') {
            t.max_row = std::max(t.max_row, ++row);
        } else if (ch >= 0x20 && (ch & 0xC0) != 0x80) {
            if (++col > width) {
                ++t.wraps;
                col = 1;
                t.max_row = std::max(t.max_row, ++row);
            }
        }
    }
    return t;
}

TEST_F(Coordinator, ProgressOnAn80ColumnTerminalRedrawsInPlaceAndNamesTheFailedNode) {
    startCoordinator();
    startFleet(2, 8, 200);
    failNodes(R"({"nodes":["agent-5"]})");
    // script(1) gives the CLI a terminal; stty makes it 80 columns wide.
    std::string command = std::string("stty cols 80 rows 60; exec ") + CLUSTER_BIN +
                          " upgrade 2.0.0 --max-parallel 2 --auto-revert";
    auto outcome = testing::run(
        {"script", "-qfec", command, (dir_ / "upgrade.tty").string()},
        {{"CLUSTER_URL", coordinator_->url()}, {"CLUSTER_TOKEN", "admin-secret"}}, 90s);
    EXPECT_EQ(outcome.exit_code, exitCode(Errc::Unhealthy)) << outcome.out << outcome.err;
    std::string tty = testing::readFile(dir_ / "upgrade.tty");
    // script(1) may frame the session with its own lines: look at what the CLI wrote.
    auto begin = tty.find("started d-1");
    ASSERT_NE(begin, std::string::npos) << tty;
    auto trace = traceTerminal(tty.substr(begin), 80);
    EXPECT_EQ(trace.wraps, 0) << "a line wider than 80 columns:\n" << tty;
    EXPECT_GE(trace.redraws, 3) << tty;
    // Redrawn in place: the rows used stay a handful (the progress lines, the failed node and
    // the exit message), however many times it was drawn.
    EXPECT_LE(trace.max_row, 12) << tty;
    EXPECT_LT(trace.max_row, trace.redraws + 8) << tty;
    EXPECT_NE(tty.find("d-1 2.0.0 reverted"), std::string::npos) << tty;
    EXPECT_EQ(tty.find("100%"), std::string::npos) << "a reverted rollout is never at 100%";
    auto failed = tty.find("agent-5 (agent) failed: ");
    ASSERT_NE(failed, std::string::npos) << tty;
    EXPECT_EQ(tty.find("no reason recorded", failed), std::string::npos) << tty;
    EXPECT_NE(tty.find("deployment d-1 ended reverted"), std::string::npos) << tty;
}

TEST_F(Coordinator, FollowCarriesOnWhenTheCoordinatorRestarts) {
    startCoordinator();
    int port = coordinator_->port();
    startFleet(1, 6, 400);
    auto id = start(R"({"version":"2.0.0"})");
    process::Options options;
    options.env = {{"CLUSTER_URL", coordinator_->url()}, {"CLUSTER_TOKEN", "admin-secret"}};
    options.stdout_file = dir_ / "follow.out";
    options.stderr_file = dir_ / "follow.err";
    auto follower = process::Child::start({CLUSTER_BIN, "follow"}, options);
    ASSERT_OK(follower);
    ASSERT_TRUE(testing::waitFor(
        [&] { return testing::readFile(dir_ / "follow.out").find(id) != std::string::npos; }, 20s));
    coordinator_->kill(SIGKILL);
    // The coordinator stays away for a second, as a restart or a failover would.
    std::this_thread::sleep_for(1s);
    EXPECT_TRUE(follower->running()) << testing::readFile(dir_ / "follow.err");
    startCoordinator(port);
    auto outcome = follower->wait(60s);
    ASSERT_OK(outcome);
    auto out = testing::readFile(dir_ / "follow.out");
    auto err = testing::readFile(dir_ / "follow.err");
    EXPECT_EQ(outcome->exit_code, 0) << out << err;
    EXPECT_NE(out.find(id + " 2.0.0 done"), std::string::npos) << out;
    EXPECT_NE(err.find("unreachable"), std::string::npos) << err;
    EXPECT_NE(err.find("retrying for up to 60s"), std::string::npos) << err;
    EXPECT_NE(err.find("answers again"), std::string::npos) << err;
}

TEST_F(Coordinator, AStartRetriedWithItsIdempotencyKeyGetsTheSameDeploymentAcrossARestart) {
    startCoordinator();
    int port = coordinator_->port();
    startFleet(1, 2, 300);
    auto post = [&](const std::string& body, const std::string& key) {
        http::Request request;
        request.method = "POST";
        request.url = coordinator_->url() + "/v1/deployments";
        request.body = body;
        request.headers.push_back(http::bearer("admin-secret"));
        request.headers.push_back({"Idempotency-Key", key});
        auto response = client_.send(request);
        EXPECT_TRUE(response.has_value());
        return response ? *response : http::Response{};
    };
    auto first = post(R"({"version":"2.0.0"})", "retry-me-1");
    ASSERT_EQ(first.status, 201) << first.body;
    auto again = post(R"({"version":"2.0.0"})", "retry-me-1");
    EXPECT_EQ(again.status, 201) << again.body;
    EXPECT_STREQ(parsed(again)["id"].GetString(), "d-1");
    // Another key is another request: refused while d-1 runs.
    EXPECT_EQ(post(R"({"version":"2.0.0"})", "retry-me-2").status, 409);
    auto other = post(R"({"version":"3.0.0"})", "retry-me-1");
    EXPECT_EQ(other.status, 409) << other.body;
    EXPECT_NE(other.body.find("already started a deployment of 2.0.0"), std::string::npos)
        << other.body;
    EXPECT_EQ(post(R"({"version":"2.0.0"})", "not a key!").status, 400);
    ASSERT_TRUE(waitState("d-1", "done", 30s)) << deploymentState("d-1");
    // The key is kept with the deployment: a restart forgets nothing.
    coordinator_->kill(SIGKILL);
    startCoordinator(port);
    auto after = post(R"({"version":"2.0.0"})", "retry-me-1");
    EXPECT_EQ(after.status, 201) << after.body;
    EXPECT_STREQ(parsed(after)["id"].GetString(), "d-1");
    EXPECT_STREQ(parsed(after)["state"].GetString(), "done");
    EXPECT_EQ(parsed(call("GET", "/v1/deployments"))["deployments"].Size(), 1u);
    // The CLI sends its own key: `upgrade --idempotency-key` twice is one deployment.
    auto up = cluster({"upgrade", "3.0.0", "--detach", "--idempotency-key", "k-3"});
    ASSERT_EQ(up.exit_code, 0) << up.err;
    auto up_again = cluster({"upgrade", "3.0.0", "--detach", "--idempotency-key", "k-3"});
    ASSERT_EQ(up_again.exit_code, 0) << up_again.err;
    EXPECT_NE(up_again.out.find("started d-2"), std::string::npos) << up_again.out;
}

TEST_F(Coordinator, TheClusterCliBasicsAgainstARealCoordinator) {
    startCoordinator();
    startFleet(1, 2, 200);
    // Global flags after the verb, and every --json answer is one object.
    for (const auto& args : std::vector<std::vector<std::string>>{{"nodes", "--json"},
                                                                  {"status", "--json"},
                                                                  {"history", "--json"},
                                                                  {"history", "--events", "--json"},
                                                                  {"monitors", "--json"},
                                                                  {"plan", "2.0.0", "--json"}}) {
        auto r = cluster(args);
        EXPECT_EQ(r.exit_code, 0) << args[0] << ": " << r.err;
        auto doc = json::parse(r.out, "reply");
        ASSERT_OK(doc);
        EXPECT_TRUE(doc->IsObject()) << args[0] << ": " << r.out;
    }
    // resume with nothing to resume is refused, in JSON mode too, and says what to do.
    auto resume = cluster({"resume", "--json"});
    EXPECT_EQ(resume.exit_code, exitCode(Errc::Conflict)) << resume.out << resume.err;
    EXPECT_NE(resume.err.find("nothing to resume"), std::string::npos) << resume.err;
    // Monitors: listed, then removed.
    http::Request beat;
    beat.method = "POST";
    beat.url = coordinator_->url() + "/v1/monitors/am-1/heartbeat?allowance=5m";
    beat.headers.push_back(http::bearer("halt-secret"));
    ASSERT_TRUE(client_.send(beat).has_value());
    auto list = cluster({"monitors"});
    EXPECT_NE(list.out.find("am-1  allowance 5m"), std::string::npos) << list.out << list.err;
    auto removed = cluster({"monitors", "remove", "am-1"});
    EXPECT_EQ(removed.exit_code, 0) << removed.err;
    EXPECT_NE(cluster({"monitors"}).out.find("no monitor is watched"), std::string::npos);
    // The upgrade's deadlines reach the deployment.
    auto up = cluster({"upgrade", "2.0.0", "--node-deadline", "2m", "--progress-deadline", "1h",
                       "--min-healthy", "1500ms", "--json"});
    ASSERT_EQ(up.exit_code, 0) << up.err;
    auto d = parsed(call("GET", "/v1/deployments/d-1"));
    EXPECT_EQ(d["node_deadline_ms"].GetInt64(), 120000);
    EXPECT_EQ(d["progress_deadline_ms"].GetInt64(), 3600000);
    EXPECT_EQ(d["min_healthy_ms"].GetInt64(), 1500);
    auto doc = json::parse(up.out, "upgrade");
    ASSERT_OK(doc);
    EXPECT_STREQ((*doc)["deployment"]["state"].GetString(), "done");
    EXPECT_TRUE((*doc)["failed"].IsArray());
    // A refusal names the next verb.
    auto busy = cluster({"rollback", "--to", "9.9.9"});
    EXPECT_NE(busy.exit_code, 0);
    EXPECT_NE(busy.err.find("cluster history"), std::string::npos) << busy.err;
    // node forget calls DELETE /v1/nodes/ID with the admin token and the reason; an unknown
    // node is reported naming the verb that lists them, and a reason is required.
    auto unknown = cluster({"node", "forget", "agent-99", "--reason", "typo"});
    EXPECT_NE(unknown.exit_code, 0);
    EXPECT_NE(unknown.err.find("cluster nodes"), std::string::npos) << unknown.err;
    auto no_reason = cluster({"node", "forget", "agent-1"});
    EXPECT_NE(no_reason.exit_code, 0);
    EXPECT_NE(no_reason.err.find("--reason"), std::string::npos) << no_reason.err;
    auto forget = cluster({"node", "forget", "agent-1", "--reason", "replaced by agent-6"});
    EXPECT_EQ(forget.exit_code, 0) << forget.err;
    auto events = cluster({"history", "--events", "--json"});
    EXPECT_NE(events.out.find("replaced by agent-6"), std::string::npos) << events.out;
}

TEST_F(Coordinator, TheClusterCliTrustsAPrivateCaGivenWithCaFile) {
    if (process::findProgram("openssl").empty()) GTEST_SKIP() << "no openssl command";
    auto cert = (dir_ / "cert.pem").string();
    auto made = testing::run({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                              (dir_ / "key.pem").string(), "-out", cert, "-days", "1", "-subj",
                              "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"},
                             {}, 60s);
    ASSERT_EQ(made.exit_code, 0) << made.err;
    startCoordinator(0, {"--tls-cert", cert, "--tls-key", (dir_ / "key.pem").string()});
    std::string https = "https://127.0.0.1:" + std::to_string(coordinator_->port());
    auto run = [&](std::vector<std::string> args,
                   std::vector<std::pair<std::string, std::string>> env = {}) {
        args.insert(args.begin(), CLUSTER_BIN);
        env.push_back({"CLUSTER_URL", https});
        env.push_back({"CLUSTER_TOKEN", "admin-secret"});
        return testing::run(args, env, 60s);
    };
    auto untrusted = run({"nodes", "--retry-for", "0s"});
    EXPECT_NE(untrusted.exit_code, 0) << untrusted.out;
    EXPECT_NE(untrusted.err.find("certificate"), std::string::npos) << untrusted.err;
    auto trusted = run({"nodes", "--ca-file", cert, "--json"});
    EXPECT_EQ(trusted.exit_code, 0) << trusted.err;
    EXPECT_NE(trusted.out.find("\"nodes\""), std::string::npos) << trusted.out;
    auto bundle = run({"status"}, {{"CURL_CA_BUNDLE", cert}});
    EXPECT_EQ(bundle.exit_code, 0) << bundle.err;
}

static std::string registration(const std::string& id, const std::string& address) {
    return R"({"id":")" + id + R"(","role":"agent","address":")" + address + R"("})";
}

// A registry row goes only by the admin's hand, with a reason, into the audit log; it stays
// gone across a restart.
TEST_F(Coordinator, OnlyTheAdminForgetsANodeWithAReasonAudited) {
    startCoordinator();
    auto reg = call("POST", "/v1/nodes/register", registration("agent-9", "http://127.0.0.1:1"),
                    "node-secret");
    ASSERT_EQ(reg.status, 200) << reg.body;
    EXPECT_EQ(call("DELETE", "/v1/nodes/agent-9?reason=gone", "", "node-secret").status, 401);
    EXPECT_EQ(call("DELETE", "/v1/nodes/agent-9?reason=gone", "", "halt-secret").status, 401);
    auto no_reason = call("DELETE", "/v1/nodes/agent-9");
    EXPECT_EQ(no_reason.status, 400) << no_reason.body;
    EXPECT_NE(no_reason.body.find("a reason is required"), std::string::npos) << no_reason.body;
    EXPECT_EQ(parsed(call("GET", "/v1/nodes"))["nodes"].Size(), 1u);
    auto forgot = call("DELETE", "/v1/nodes/agent-9", R"({"reason":"bogus registration"})");
    EXPECT_EQ(forgot.status, 200) << forgot.body;
    EXPECT_EQ(parsed(call("GET", "/v1/nodes"))["nodes"].Size(), 0u);
    auto again = call("DELETE", "/v1/nodes/agent-9?reason=twice");
    EXPECT_EQ(again.status, 404) << again.body;
    auto events = call("GET", "/v1/events");
    EXPECT_NE(events.body.find("node forgotten"), std::string::npos) << events.body;
    EXPECT_NE(events.body.find("bogus registration (was agent at http://127.0.0.1:1, up)"),
              std::string::npos)
        << events.body;
    startCoordinator();
    EXPECT_EQ(parsed(call("GET", "/v1/nodes"))["nodes"].Size(), 0u);
}

// A stolen shared node token cannot take over a node: an id bound to its own secret answers
// only to that secret (or the admin token), on registration, pings and asks alike. A node from
// before per-node secrets keeps working, and is moved elsewhere while up only by the admin.
TEST_F(Coordinator, ASharedNodeTokenCannotImpersonateANode) {
    startCoordinator();
    const std::string secret(64, 'a');
    const std::string other(64, 'b');
    auto reg = call("POST", "/v1/nodes/register", registration("agent-1", "http://127.0.0.1:1"),
                    "node-secret", secret);
    ASSERT_EQ(reg.status, 200) << reg.body;
    EXPECT_EQ(reg.body.find(secret), std::string::npos);
    for (const auto& presented : {std::string(), other}) {
        auto taken = call("POST", "/v1/nodes/register",
                          registration("agent-1", "http://127.0.0.1:2"), "node-secret", presented);
        EXPECT_EQ(taken.status, 401) << taken.body;
        EXPECT_NE(taken.body.find("cluster node forget agent-1"), std::string::npos) << taken.body;
        auto asked = call("GET", "/v1/nodes/agent-1/desired", "", "node-secret", presented);
        EXPECT_EQ(asked.status, 401) << asked.body;
        auto pinged = call("POST", "/v1/nodes/agent-1/status",
                           R"({"node":"agent-1","deployment":"d-1","seq":1,"state":"healthy"})",
                           "node-secret", presented);
        EXPECT_EQ(pinged.status, 401) << pinged.body;
    }
    EXPECT_EQ(call("POST", "/v1/nodes/register", registration("agent-1", "http://127.0.0.1:1"),
                   "node-secret", "short")
                  .status,
              400);
    auto nodes = parsed(call("GET", "/v1/nodes"));
    ASSERT_EQ(nodes["nodes"].Size(), 1u);
    EXPECT_STREQ(nodes["nodes"][0]["address"].GetString(), "http://127.0.0.1:1");
    // With its secret, the node is itself: asks pass the check (a push node is then told it
    // is pushed to), and it may move.
    EXPECT_EQ(call("GET", "/v1/nodes/agent-1/desired", "", "node-secret", secret).status, 409);
    auto moved = call("POST", "/v1/nodes/register", registration("agent-1", "http://127.0.0.1:3"),
                      "node-secret", secret);
    EXPECT_EQ(moved.status, 200) << moved.body;
    // The binding survives a restart (only its hash is stored).
    startCoordinator();
    EXPECT_EQ(call("POST", "/v1/nodes/register", registration("agent-1", "http://127.0.0.1:4"),
                   "node-secret")
                  .status,
              401);
    EXPECT_EQ(testing::readFile(dir_ / "state.db").find(secret), std::string::npos);
    // The admin may re-register it (a reinstalled node that lost its secret).
    auto by_admin = call("POST", "/v1/nodes/register",
                         registration("agent-1", "http://127.0.0.1:4"), "admin-secret", other);
    EXPECT_EQ(by_admin.status, 200) << by_admin.body;
    EXPECT_EQ(call("GET", "/v1/nodes/agent-1/desired", "", "node-secret", other).status, 409);

    // A node from before per-node secrets presents none: it keeps working where it is ...
    auto legacy = call("POST", "/v1/nodes/register", registration("agent-2", "http://127.0.0.1:5"),
                       "node-secret");
    ASSERT_EQ(legacy.status, 200) << legacy.body;
    EXPECT_EQ(call("POST", "/v1/nodes/register", registration("agent-2", "http://127.0.0.1:5"),
                   "node-secret")
                  .status,
              200);
    EXPECT_EQ(call("GET", "/v1/nodes/agent-2/desired", "", "node-secret").status, 409);
    // ... but while it is up, only the admin registers its id from another address.
    auto elsewhere = call("POST", "/v1/nodes/register",
                          registration("agent-2", "http://127.0.0.1:6"), "node-secret");
    EXPECT_EQ(elsewhere.status, 409) << elsewhere.body;
    EXPECT_NE(elsewhere.body.find("needs the admin token"), std::string::npos) << elsewhere.body;
    EXPECT_NE(elsewhere.body.find("cluster node forget agent-2"), std::string::npos)
        << elsewhere.body;
    EXPECT_EQ(call("POST", "/v1/nodes/register", registration("agent-2", "http://127.0.0.1:6"),
                   "admin-secret")
                  .status,
              200);
}

// With open registration (no node token), a caller without a token may send only a node's own
// messages, small and with their length declared: it cannot make the coordinator read more.
TEST_F(Coordinator, OpenRegistrationReadsOnlySmallDeclaredBodiesWithoutAToken) {
    startCoordinator(0, {}, true);
    auto reg =
        call("POST", "/v1/nodes/register", registration("agent-1", "http://127.0.0.1:1"), "");
    EXPECT_EQ(reg.status, 200) << reg.body;
    struct Case {
        std::string request;
        std::string status;
        std::string says;
    };
    const std::vector<Case> cases = {
        {"POST /v1/nodes/register HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n", "400",
         "at most 16384 bytes"},
        {"POST /v1/nodes/register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", "400",
         "must declare its length"},
        {"POST /v1/nodes/agent-1/status HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n",
         "400", "at most 16384 bytes"},
        {"POST /v1/deployments HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", "401",
         "missing bearer token"},
    };
    for (const auto& c : cases) {
        testing::RawConnection raw(coordinator_->port());
        ASSERT_TRUE(raw.connected());
        ASSERT_TRUE(raw.send(c.request));
        auto reply = raw.readAll(5s);
        EXPECT_TRUE(reply.starts_with("HTTP/1.1 " + c.status)) << c.request << reply;
        EXPECT_NE(reply.find(c.says), std::string::npos) << reply;
    }
    // The admin token still counts as the admin's: it moves an up node elsewhere.
    EXPECT_EQ(call("POST", "/v1/nodes/register", registration("agent-1", "http://127.0.0.1:2"), "")
                  .status,
              409);
    EXPECT_EQ(
        call("POST", "/v1/nodes/register", registration("agent-1", "http://127.0.0.1:2")).status,
        200);
}

}  // namespace
}  // namespace hoist
