// Pull mode end to end: the real deploy-coordinator, repo-server and `pkgmgr serve` nodes
// (bootstrapped by the real restart helper, running the stand-in mesos), some pushed to, some
// asking for their desired state because the coordinator cannot reach them.

#include <algorithm>
#include <csignal>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "coordinator/fleet_fixture.hpp"
#include "core/files.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"
#include "pkgmgr/generations.hpp"
#include "pkgmgr/node_config.hpp"
#include "pkgmgr/release.hpp"
#include "pkgmgr/service.hpp"
#include "pkgmgr/wire.hpp"
#include "restart_helper/helper.hpp"

namespace hoist::testing {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view kNodeToken = kFleetNodeToken;

class PullFleet : public FleetFixture {
protected:
    void SetUp() override {
        FleetFixture::SetUp();
        publishBothRoles("1.0.0", {});
        publishBothRoles("2.0.0", {"1.*"});
        startRepo();
    }

    /// GET `path` as node `id` would: the shared node token and the node's own secret.
    http::Response askAs(const std::string& id, const std::string& path) {
        auto secret = pkgmgr::nodeSecret(pkgmgr::NodeLayout::at(tmp_ / "nodes" / id), false);
        EXPECT_TRUE(secret && !secret->empty()) << id << " has no secret";
        auto r = httpGet(coordinator_->url() + path,
                         {http::bearer(std::string(kNodeToken)),
                          {std::string(pkgmgr::kNodeSecretHeader), secret ? *secret : ""}});
        EXPECT_TRUE(r.has_value()) << path;
        return r ? *r : http::Response{};
    }

    std::string deploymentState(const std::string& id) {
        auto doc = parsed(call("GET", "/v1/deployments/" + id + "?nodes=0&events=0"));
        return doc.IsObject() && doc.HasMember("state") ? doc["state"].GetString() : "";
    }

    std::map<std::string, std::string> nodeStates(const std::string& id) {
        std::map<std::string, std::string> out;
        auto doc = parsed(call("GET", "/v1/deployments/" + id + "?events=0"));
        if (!doc.IsObject() || !doc.HasMember("nodes")) return out;
        for (const auto& n : doc["nodes"].GetArray())
            out[n["node"].GetString()] = n["state"].GetString();
        return out;
    }

    static long generationOf(const FleetNode& n) {
        auto gens = pkgmgr::Generations::open(pkgmgr::NodeLayout::at(n.root));
        if (!gens) return -1;
        auto cur = gens->current();
        return cur ? cur->value_or(0) : -1;
    }

    /// How many restart helpers the node's endpoint launched (push and pull alike).
    static int helpersLaunched(const FleetNode& n) {
        auto r = httpGet(n.serve->url() + "/metrics");
        if (!r) return -1;
        for (const auto& line : strings::split(r->body, '\n'))
            if (line.starts_with("hoist_node_restarts_total "))
                return std::stoi(std::string(line.substr(26)));
        return 0;
    }

    /// Every node of the deployment is done, restarted exactly once (by the coordinator's
    /// count and by its own endpoint's), onto a new generation on `release`.
    void expectEveryNodeRestartedOnce(const std::string& id, const std::string& release) {
        auto d = parsed(call("GET", "/v1/deployments/" + id + "?events=0"));
        for (const auto& n : d["nodes"].GetArray()) {
            EXPECT_STREQ(n["state"].GetString(), "done") << n["node"].GetString();
            EXPECT_EQ(n["restarts"].GetInt64(), 1) << n["node"].GetString();
        }
        for (const auto& n : nodes_) {
            EXPECT_EQ(helpersLaunched(n), 1) << n.id;
            auto config = pkgmgr::NodeConfig::load(pkgmgr::NodeLayout::at(n.root));
            ASSERT_OK(config);
            EXPECT_EQ(config->release, release) << n.id;
            EXPECT_GT(generationOf(n), 1) << n.id;
        }
    }

    static bool swapUnderWay(const FleetNode& n) {
        return fs::exists(pkgmgr::NodeLayout::at(n.root).txn());
    }
};

struct Action {
    std::int64_t id = 0;
    std::string node;
    std::string action;
    std::string detail;
};

TEST_F(PullFleet, AMixedFleetUpgradesMastersFirstAndAHoldStopsThePullNodes) {
    startCoordinator();
    // Pushed to: master-1, agent-1, agent-2. Pulling: master-2, agent-3, agent-4.
    addNode("master-1", "master", false);
    addNode("master-2", "master", true);
    addNode("agent-1", "agent", false);
    addNode("agent-2", "agent", false);
    addNode("agent-3", "agent", true);
    addNode("agent-4", "agent", true);
    ASSERT_TRUE(waitRegistered(6));
    {
        auto nodes = parsed(call("GET", "/v1/nodes"));
        for (const auto& n : nodes["nodes"].GetArray()) {
            std::string id = n["node"].GetString();
            bool pull = id == "master-2" || id == "agent-3" || id == "agent-4";
            EXPECT_STREQ(n["mode"].GetString(), pull ? "pull" : "push") << id;
        }
    }
    // A pull node asking with the node token and its own secret; nothing to do yet.
    auto idle = parsed(askAs("agent-3", "/v1/nodes/agent-3/desired"));
    EXPECT_STREQ(idle["action"].GetString(), "none");
    EXPECT_FALSE(idle["held"].GetBool());
    auto bad_mode = call("POST", "/v1/nodes/register",
                         R"({"id":"agent-9","role":"agent","address":"http://127.0.0.1:1",)"
                         R"("mode":"sideways"})",
                         kNodeToken);
    EXPECT_EQ(bad_mode.status, 400);
    EXPECT_NE(bad_mode.body.find("registration: field 'mode' must be 'push' or 'pull', not "
                                 "'sideways'"),
              std::string::npos)
        << bad_mode.body;
    EXPECT_EQ(call("GET", "/v1/nodes/agent-3/desired", "", "wrong-token").status, 401);
    // The shared node token alone no longer speaks for a node bound to its secret.
    auto stolen = call("GET", "/v1/nodes/agent-3/desired", "", kNodeToken);
    EXPECT_EQ(stolen.status, 401) << stolen.body;
    auto taken =
        call("POST", "/v1/nodes/register",
             R"({"id":"agent-1","role":"agent","address":"http://127.0.0.1:1"})", kNodeToken);
    EXPECT_EQ(taken.status, 401) << taken.body;
    for (const auto& n : nodes_) {
        auto file = pkgmgr::NodeLayout::at(n.root).coordinatorSecret();
        EXPECT_EQ(fs::status(file).permissions() & fs::perms::all,
                  fs::perms::owner_read | fs::perms::owner_write)
            << file;
    }
    auto push_asks = askAs("agent-1", "/v1/nodes/agent-1/desired");
    EXPECT_EQ(push_asks.status, 409);
    EXPECT_NE(push_asks.body.find("node 'agent-1' is registered in push mode"), std::string::npos)
        << push_asks.body;

    auto started = call("POST", "/v1/deployments", R"({"version":"2.0.0","max_parallel":1})");
    ASSERT_EQ(started.status, 201) << started.body;
    // Once the first master is done, halt: the agents, pull ones included, are still to come.
    ASSERT_TRUE(waitFor([&] { return nodeStates("d-1")["master-1"] == "done"; }, 30s))
        << readFile(tmp_ / "coord.log");
    auto halt =
        call("POST", "/v1/halt", R"({"reason":"error budget","source":"sla"})", "halt-secret");
    ASSERT_EQ(halt.status, 201) << halt.body;
    std::int64_t last_event_before = 0;
    for (const auto& e : parsed(call("GET", "/v1/events?limit=1000"))["events"].GetArray())
        last_event_before = std::max(last_event_before, e["id"].GetInt64());
    // A swap that began before the halt finishes (reported and off disk); then nothing moves.
    ASSERT_TRUE(waitFor(
        [&] {
            for (const auto& [node, state] : nodeStates("d-1"))
                if (state == "restarting" || state == "restarted" || state == "settling")
                    return false;
            for (const auto& n : nodes_)
                if (swapUnderWay(n)) return false;
            return true;
        },
        20s));
    std::map<std::string, long> generations;
    std::map<std::string, int> launched;
    for (const auto& n : nodes_) {
        generations[n.id] = generationOf(n);
        launched[n.id] = helpersLaunched(n);
    }
    auto held = parsed(askAs("agent-4", "/v1/nodes/agent-4/desired"));
    EXPECT_STREQ(held["action"].GetString(), "none");
    EXPECT_TRUE(held["held"].GetBool());
    std::this_thread::sleep_for(1500ms);  // ten pull intervals: an action would show
    for (const auto& n : nodes_) {
        if (!n.pull) continue;
        EXPECT_EQ(generationOf(n), generations[n.id]) << n.id << " changed while held";
        EXPECT_EQ(helpersLaunched(n), launched[n.id]) << n.id << " restarted while held";
    }
    for (const auto& e : parsed(call("GET", "/v1/events?limit=1000"))["events"].GetArray()) {
        std::string action = e["action"].GetString();
        if (e["id"].GetInt64() <= last_event_before) continue;
        EXPECT_TRUE(action != "restart" && action != "stage")
            << action << " " << e["node"].GetString() << " while held";
    }
    EXPECT_EQ(generationOf(nodes_[4]), 1) << "agent-3 cannot have been restarted yet";
    EXPECT_EQ(generationOf(nodes_[5]), 1) << "agent-4 cannot have been restarted yet";

    auto cleared = call("DELETE", "/v1/halt");
    ASSERT_EQ(cleared.status, 200) << cleared.body;
    ASSERT_TRUE(waitFor([&] { return deploymentState("d-1") == "done"; }, 60s))
        << deploymentState("d-1") << readFile(tmp_ / "coord.log");

    expectEveryNodeRestartedOnce("d-1", "2.0.0");
    auto nodes = parsed(call("GET", "/v1/nodes"));
    for (const auto& n : nodes["nodes"].GetArray())
        EXPECT_STREQ(n["release"].GetString(), "2.0.0") << n["node"].GetString();

    // Order, from the audit log: one restart per node, masters one at a time and both done
    // before the first agent restarts.
    std::vector<Action> acts;
    for (const auto& e : parsed(call("GET", "/v1/events?limit=1000"))["events"].GetArray())
        acts.push_back({e["id"].GetInt64(), e["node"].GetString(), e["action"].GetString(),
                        e["detail"].GetString()});
    std::map<std::string, int> restarts;
    std::int64_t last_master_done = 0;
    std::int64_t first_agent_restart = INT64_MAX;
    std::int64_t master2_restart = 0;
    std::int64_t master1_done = 0;
    for (const auto& a : acts) {
        bool master = a.node.starts_with("master");
        if (a.action == "restart") {
            restarts[a.node]++;
            if (!master) first_agent_restart = std::min(first_agent_restart, a.id);
            if (a.node == "master-2") master2_restart = a.id;
            bool pull = a.node == "master-2" || a.node == "agent-3" || a.node == "agent-4";
            EXPECT_EQ(a.detail.find("handed out on request") != std::string::npos, pull)
                << a.node << ": " << a.detail;
        }
        if (a.action == "node done" && master) {
            last_master_done = std::max(last_master_done, a.id);
            if (a.node == "master-1") master1_done = a.id;
        }
    }
    EXPECT_EQ(restarts.size(), 6u);
    for (const auto& [node, count] : restarts) EXPECT_EQ(count, 1) << node;
    EXPECT_LT(master1_done, master2_restart) << "two masters at once";
    EXPECT_LT(last_master_done, first_agent_restart) << "an agent restarted before the masters";
    // The pull nodes' addresses lead nowhere, so every action they took they asked for; and
    // asking kept them up.
    auto metrics = call("GET", "/metrics", "", "");
    EXPECT_NE(metrics.body.find("hoist_coordinator_nodes{status=\"up\"} 6"), std::string::npos)
        << metrics.body;
}

/// The rehearsal's prediction, per node: mode, final state, and when its restart goes out.
struct Predicted {
    std::string mode;
    std::string state;
    std::int64_t start_ms = -1;
    std::string interval_source;
    std::int64_t interval_ms = 0;
};

// The issue's rule: the real upgrade then does what the rehearsal said, pull nodes included.
// A rehearsal on the same fleet and inputs predicts the outcome, each node's end, the order of
// the restarts, and which nodes act only when they ask; the real upgrade is held to each.
TEST_F(PullFleet, TheRealUpgradeDoesWhatTheRehearsalSaidPullNodesIncluded) {
    // 2.0.1's new generation never turns healthy: the helper rolls it back at the deadline.
    publishBothRoles("2.0.1", {"1.*"}, Behaviour{.health = "fail"});
    startCoordinator();
    addNode("master-1", "master", true);
    addNode("master-2", "master", false);
    addNode("agent-1", "agent", false);
    addNode("agent-2", "agent", true);
    ASSERT_TRUE(waitRegistered(4));

    auto rehearse = [&](const std::string& body) {
        std::map<std::string, Predicted> out;
        auto r = call("POST", "/v1/rehearsals", body);
        EXPECT_EQ(r.status, 200) << r.body;
        auto doc = parsed(r);
        if (!doc.IsObject()) return std::pair{std::string(), out};
        for (const auto& n : doc["nodes"].GetArray()) {
            Predicted p;
            p.mode = n["mode"].GetString();
            p.state = n["state"].GetString();
            p.start_ms = n["start_ms"].IsNull() ? -1 : n["start_ms"].GetInt64();
            if (p.mode == "pull") {
                p.interval_source = n["pull_interval_source"].GetString();
                p.interval_ms = n["pull_interval_ms"].GetInt64();
            }
            out[n["node"].GetString()] = p;
        }
        return std::pair{
            std::string(doc["outcome"].GetString()) + ": " + doc["message"].GetString(), out};
    };
    // The coordinator measures a pull node's interval between two asks with nothing to do.
    const std::string failing =
        R"({"version":"2.0.1","max_parallel":1,"max_failures":0,"inject":"master-1:health_fail"})";
    std::map<std::string, Predicted> predicted;
    std::string outcome;
    ASSERT_TRUE(waitFor(
        [&] {
            std::tie(outcome, predicted) = rehearse(failing);
            return predicted["master-1"].interval_source == "recorded" &&
                   predicted["agent-2"].interval_source == "recorded";
        },
        10s))
        << outcome;
    for (const char* id : {"master-1", "agent-2"}) {
        EXPECT_EQ(predicted[id].mode, "pull") << id;
        // Asked every 150 ms (plus the request): measured, not the 10 s default.
        EXPECT_GE(predicted[id].interval_ms, 140) << id;
        EXPECT_LT(predicted[id].interval_ms, 3000) << id;
    }
    for (const char* id : {"master-2", "agent-1"}) EXPECT_EQ(predicted[id].mode, "push") << id;
    // The first master (a pull node) fails, the budget stops the rollout, nothing else restarts.
    EXPECT_EQ(outcome, "held: 1 node failed, more than max_failures 0");
    EXPECT_EQ(predicted["master-1"].state, "failed");
    for (const char* id : {"master-2", "agent-1", "agent-2"}) {
        EXPECT_EQ(predicted[id].state, "staged") << id;
        EXPECT_EQ(predicted[id].start_ms, -1) << id;
    }

    auto started = call("POST", "/v1/deployments", R"({"version":"2.0.1","max_parallel":1})");
    ASSERT_EQ(started.status, 201) << started.body;
    ASSERT_TRUE(waitFor([&] { return deploymentState("d-1") == "held"; }, 60s))
        << deploymentState("d-1") << readFile(tmp_ / "coord.log");
    auto d1 = parsed(call("GET", "/v1/deployments/d-1?nodes=0&events=0"));
    EXPECT_EQ(std::string("held: ") + d1["message"].GetString(), outcome);
    auto real = nodeStates("d-1");
    for (const auto& [id, p] : predicted) EXPECT_EQ(real[id], p.state) << id;
    EXPECT_EQ(generationOf(nodes_[0]), 1) << "master-1 is back on its old generation";
    for (size_t i = 1; i < nodes_.size(); ++i)
        EXPECT_EQ(helpersLaunched(nodes_[i]), 0) << nodes_[i].id << " was restarted";
    ASSERT_EQ(call("POST", "/v1/deployments/d-1/abort").status, 200);

    // A good release: every node done, masters first, in the predicted order; the pull nodes'
    // actions are handed out when they ask.
    std::tie(outcome, predicted) = rehearse(R"({"version":"2.0.0","max_parallel":1})");
    EXPECT_TRUE(outcome.starts_with("done")) << outcome;
    std::vector<std::pair<std::int64_t, std::string>> order;
    for (const auto& [id, p] : predicted) {
        EXPECT_EQ(p.state, "done") << id;
        order.emplace_back(p.start_ms, id);
    }
    std::sort(order.begin(), order.end());
    std::vector<std::string> predicted_order;
    for (const auto& [at, id] : order) predicted_order.push_back(id);
    EXPECT_EQ(predicted_order,
              (std::vector<std::string>{"master-1", "master-2", "agent-1", "agent-2"}));

    started = call("POST", "/v1/deployments", R"({"version":"2.0.0","max_parallel":1})");
    ASSERT_EQ(started.status, 201) << started.body;
    ASSERT_TRUE(waitFor([&] { return deploymentState("d-2") == "done"; }, 60s))
        << deploymentState("d-2") << readFile(tmp_ / "coord.log");
    real = nodeStates("d-2");
    for (const auto& [id, p] : predicted) EXPECT_EQ(real[id], p.state) << id;
    std::vector<std::string> real_order;
    auto events = parsed(call("GET", "/v1/events?limit=1000"));
    std::vector<std::pair<std::int64_t, const json::Value*>> d2;
    for (const auto& e : events["events"].GetArray())
        if (std::string(e["deployment"].GetString()) == "d-2")
            d2.emplace_back(e["id"].GetInt64(), &e);
    std::sort(d2.begin(), d2.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
    for (const auto& [id, e] : d2) {
        if (std::string((*e)["action"].GetString()) != "restart") continue;
        std::string node = (*e)["node"].GetString();
        real_order.push_back(node);
        bool handed = std::string((*e)["detail"].GetString()).find("handed out on request") !=
                      std::string::npos;
        EXPECT_EQ(handed, predicted[node].mode == "pull") << node;
    }
    EXPECT_EQ(real_order, predicted_order);
}

TEST_F(PullFleet, PullNodesResumeAfterTheCoordinatorIsKilledRestartingEachNodeOnce) {
    startCoordinator();
    int port = coordinator_->port();
    addNode("master-1", "master", true);
    addNode("agent-1", "agent", true);
    addNode("agent-2", "agent", true);
    addNode("agent-3", "agent", true);
    ASSERT_TRUE(waitRegistered(4));
    auto started = call("POST", "/v1/deployments", R"({"version":"2.0.0","max_parallel":2})");
    ASSERT_EQ(started.status, 201) << started.body;
    // Kill it while the agents' restarts are in flight.
    ASSERT_TRUE(waitFor(
        [&] {
            auto states = nodeStates("d-1");
            return states["agent-1"] == "restarting" || states["agent-1"] == "restarted" ||
                   states["agent-2"] == "restarting" || states["agent-2"] == "restarted";
        },
        30s, 5ms));
    coordinator_->kill(SIGKILL);
    std::this_thread::sleep_for(300ms);
    startCoordinator({}, port);
    ASSERT_TRUE(waitFor([&] { return deploymentState("d-1") == "done"; }, 60s))
        << deploymentState("d-1") << readFile(tmp_ / "coord.log");
    expectEveryNodeRestartedOnce("d-1", "2.0.0");
}

/// Stands in for the coordinator towards one pull node: answers GET .../desired with a
/// scripted answer (the same one, however often it is asked) and records status pings.
class ScriptedCoordinator {
public:
    ScriptedCoordinator() {
        http::ServerOptions options;
        options.component = "scripted-coordinator";
        options.threads = 4;
        options.access_log = false;
        auto created = http::Server::create(options);
        EXPECT_OK(created);
        server_ = std::move(*created);
        // No keep-alive: a few threads serve the node, the helper and the test.
        auto reply = [](std::string body) {
            auto r = http::ServerReply::json(200, std::move(body));
            r.headers.push_back({"Connection", "close"});
            return r;
        };
        server_->route("POST", "/v1/nodes/register",
                       [reply](const http::ServerRequest&) { return reply("{}"); });
        server_->route("POST", "/v1/nodes/([^/]+)/status",
                       [this, reply](const http::ServerRequest& r) {
                           std::lock_guard lock(mutex_);
                           if (auto ping = pkgmgr::StatusPing::fromJson(r.body))
                               pings_.push_back(*ping);
                           return reply("{}");
                       });
        server_->route("GET", "/v1/nodes/([^/]+)/desired",
                       [this, reply](const http::ServerRequest&) {
                           std::lock_guard lock(mutex_);
                           ++asks_;
                           return reply(answer_);
                       });
        auto port = server_->bind();
        EXPECT_OK(port);
        port_ = port.value_or(0);
        thread_ = std::thread([this] { server_->run(); });
    }
    ~ScriptedCoordinator() {
        server_->stop();
        if (thread_.joinable()) thread_.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    void answer(const std::string& action, const std::string& release, long generation) {
        json::Writer w;
        w.beginObject()
            .field("action", action)
            .field("deployment", "d-9")
            .field("release", release)
            .field("generation", static_cast<std::int64_t>(generation))
            .field("held", false)
            .endObject();
        std::lock_guard lock(mutex_);
        answer_ = w.str();
    }
    std::vector<pkgmgr::StatusPing> pings() {
        std::lock_guard lock(mutex_);
        return pings_;
    }
    int asks() {
        std::lock_guard lock(mutex_);
        return asks_;
    }
    /// Waits for a ping in `state`; returns it.
    std::optional<pkgmgr::StatusPing> waitPing(const std::string& state,
                                               std::string_view message = {}) {
        std::optional<pkgmgr::StatusPing> found;
        waitFor(
            [&] {
                for (const auto& p : pings())
                    if (p.state == state && p.message.find(message) != std::string::npos) {
                        found = p;
                        return true;
                    }
                return false;
            },
            20s);
        return found;
    }

private:
    std::unique_ptr<http::Server> server_;
    std::thread thread_;
    int port_ = 0;
    std::mutex mutex_;
    std::string answer_ =
        R"({"action":"none","deployment":"","release":"","generation":0,"held":false})";
    std::vector<pkgmgr::StatusPing> pings_;
    int asks_ = 0;
};

TEST_F(PullFleet, ANodeAskedTheSameActionAgainActsOnceAndReportsWhereItStands) {
    // 3.0.0 never comes up: its swap rolls back.
    std::vector<BuiltPackage> broken = {mesosPackage("3.0.0"),
                                        configPackage("3.0.0", {.crash_at_start = true})};
    publish(broken);
    {
        pkgmgr::Release release;
        release.version = "3.0.0";
        release.upgrade_from = {"1.*", "2.*"};
        for (const auto& p : broken) release.roles["agent"].push_back(p.ref);
        auto text = release.toJson();
        writeFile(tmp_ / "repo/releases/3.0.0.json", text);
        auto signature = pkgmgr::signRelease(text, readFile(tmp_ / "release.key"));
        ASSERT_OK(signature);
        writeFile(tmp_ / "repo/releases/3.0.0.json.sig", *signature + "\n");
    }
    ScriptedCoordinator coordinator;
    coordinator_ = nullptr;
    // addNode bootstraps against coordinator_->url(): do it by hand for the scripted one.
    FleetNode n{"agent-1", "agent", true, tmp_ / "nodes/agent-1", nullptr};
    auto boot =
        run({RESTART_HELPER_BIN, "--root", n.root.string(), "bootstrap", "--repo", repo_->url(),
             "--release", "1.0.0", "--role", "agent", "--id", n.id, "--trusted-key",
             publicKeyFile().string(), "--coordinator", coordinator.url()});
    ASSERT_EQ(boot.exit_code, restart_helper::kExitHealthy) << boot.err;
    n.serve = std::make_unique<ServerProcess>(
        std::vector<std::string>{PKGMGR_BIN, "--root", n.root.string(), "serve", "--port-file",
                                 (tmp_ / "agent-1.port").string(), "--restart-helper",
                                 RESTART_HELPER_BIN, "--pull-interval-ms", "100"},
        tmp_ / "agent-1.port", tmp_ / "agent-1.log");
    ASSERT_TRUE(n.serve->started()) << readFile(tmp_ / "agent-1.log");
    nodes_.push_back(std::move(n));
    const auto& node = nodes_.back();

    // A stage is reported once, however often it is asked for.
    coordinator.answer("stage", "2.0.0", 0);
    auto staged = coordinator.waitPing("staged");
    ASSERT_TRUE(staged) << readFile(tmp_ / "agent-1.log");
    EXPECT_EQ(staged->deployment, "d-9");
    EXPECT_EQ(staged->release, "2.0.0");
    EXPECT_EQ(staged->from_generation, 1);
    EXPECT_EQ(staged->to_generation, 2);
    EXPECT_EQ(generationOf(node), 1) << "staging switches nothing";

    // The same restart, asked for again and again: one swap, then "already on it".
    coordinator.answer("restart", "2.0.0", staged->to_generation);
    ASSERT_TRUE(coordinator.waitPing("healthy", "already on generation 2"))
        << readFile(tmp_ / "agent-1.log");
    int asks = coordinator.asks();
    ASSERT_TRUE(waitFor([&] { return coordinator.asks() >= asks + 10; }, 10s));
    EXPECT_EQ(helpersLaunched(node), 1);
    EXPECT_EQ(generationOf(node), 2);
    int already = 0;
    for (const auto& p : coordinator.pings())
        already += p.message.starts_with("already on generation") ? 1 : 0;
    EXPECT_LE(already, 2) << "asking again is quiet: at most one report per 5 s";

    // A restart that rolled back is reported, not tried again.
    coordinator.answer("stage", "3.0.0", 0);
    ASSERT_TRUE(waitFor(
        [&] {
            for (const auto& p : coordinator.pings())
                if (p.state == "staged" && p.release == "3.0.0") return true;
            return false;
        },
        20s));
    long broken_generation = 0;
    for (const auto& p : coordinator.pings())
        if (p.state == "staged" && p.release == "3.0.0") broken_generation = p.to_generation;
    ASSERT_GT(broken_generation, 2);
    coordinator.answer("restart", "3.0.0", broken_generation);
    ASSERT_TRUE(coordinator.waitPing("rolled_back", "ended rolled_back"))
        << readFile(tmp_ / "agent-1.log");
    asks = coordinator.asks();
    ASSERT_TRUE(waitFor([&] { return coordinator.asks() >= asks + 10; }, 10s));
    EXPECT_EQ(helpersLaunched(node), 2);
    EXPECT_EQ(generationOf(node), 2);

    // A stage the node cannot do is reported as failed, naming why.
    coordinator.answer("stage", "7.7.7", 0);
    auto refused = coordinator.waitPing("failed", "7.7.7");
    ASSERT_TRUE(refused) << readFile(tmp_ / "agent-1.log");
    EXPECT_NE(refused->message.find("release 7.7.7 is not in the repository"), std::string::npos)
        << refused->message;
}

TEST_F(PullFleet, ServeRefusesPullModeWithoutACoordinator) {
    // The fixture's node.json names no coordinator.
    auto outcome =
        run({PKGMGR_BIN, "--root", root_.string(), "serve", "--pull-interval-ms", "100"});
    EXPECT_NE(outcome.exit_code, 0);
    EXPECT_NE(outcome.err.find("pull mode (--pull-interval-ms) needs a coordinator in " +
                               (root_ / "node.json").string()),
              std::string::npos)
        << outcome.err;
    outcome = run({PKGMGR_BIN, "--root", root_.string(), "serve", "--pull-interval-ms", "-5"});
    EXPECT_NE(outcome.exit_code, 0);
    EXPECT_NE(outcome.err.find("--pull-interval-ms"), std::string::npos) << outcome.err;
    outcome = run({PKGMGR_BIN, "--root", root_.string(), "serve", "--advertise-url", "node-1:80"});
    EXPECT_NE(outcome.exit_code, 0);
    EXPECT_NE(outcome.err.find("advertise URL 'node-1:80' must be an http:// or https:// URL"),
              std::string::npos)
        << outcome.err;
}

}  // namespace
}  // namespace hoist::testing
