// Three deploy-coordinator replicas on a three-member etcd cluster (Debian's etcd-server), a
// simulated fleet, and faults during rollouts: the leading replica SIGKILLed (twice) and
// SIGSTOPped past its lease, the etcd raft leader SIGKILLed, a halt posted to a follower while
// no replica leads. Every rollout must finish, every node be restarted exactly once forward,
// and no node action start while a hold stands.

#include <algorithm>
#include <csignal>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "core/crypto.hpp"
#include "core/http_client.hpp"
#include "core/json.hpp"
#include "etcd_cluster.hpp"
#include "pkgmgr/release.hpp"
#include "testing.hpp"

namespace hoist {
namespace {

using testing::ServerProcess;
using testing::TempFolder;
using namespace std::chrono_literals;

constexpr int kReplicas = 3;
constexpr int kLeaseTtlS = 3;

struct Act {
    std::string node;
    std::string kind;
    std::string deployment;
    std::int64_t time_us = 0;
    std::int64_t epoch = 0;
};

std::int64_t nowUs() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

class Ha : public ::testing::Test {
protected:
    void SetUp() override {
        if (testing::EtcdCluster::binary().empty())
            GTEST_SKIP() << "etcd is not installed (apt-get install etcd-server)";
        testing::writeFile(dir_ / "admin.token", "admin-secret\n");
        testing::writeFile(dir_ / "halt.token", "halt-secret\n");
        testing::writeFile(dir_ / "node.token", "node-secret\n");
        auto keys = crypto::ed25519Generate();
        ASSERT_OK(keys);
        testing::writeFile(dir_ / "trusted.pem", keys->public_pem);
        publish("1.0.0", {}, keys->private_pem);
        publish("2.0.0", {"1.*"}, keys->private_pem);
        publish("3.0.0", {"2.*"}, keys->private_pem);
        repo_ = std::make_unique<ServerProcess>(
            std::vector<std::string>{FAKE_FLEET_BIN, "--masters", "0", "--agents", "0",
                                     "--repo-dir", (dir_ / "repo").string(), "--port-file",
                                     (dir_ / "repo.port").string()},
            dir_ / "repo.port", dir_ / "repo.log");
        ASSERT_TRUE(repo_->started());
        // Timeouts raised over etcd's defaults: a busy CI machine must not cause elections.
        etcd_ = std::make_unique<testing::EtcdCluster>(dir_.path(), 3, 200ms, 2000ms);
        ASSERT_TRUE(etcd_->waitHealthy(60s)) << etcd_->logTails();
        for (int i = 0; i < kReplicas; ++i) ports_.push_back(testing::freeLoopbackPort());
        replicas_.resize(kReplicas);
        for (int i = 0; i < kReplicas; ++i) startReplica(i);
    }

    void publish(const std::string& version, std::vector<std::string> from,
                 const std::string& private_pem) {
        pkgmgr::Release release;
        release.version = version;
        release.upgrade_from = std::move(from);
        auto ref = [](const std::string& id) {
            return pkgmgr::PackageRef{id, crypto::sha256Hex(id), 100};
        };
        release.roles["master"] = {ref("mesos--" + version)};
        release.roles["agent"] = {ref("mesos--" + version), ref("metrics--1.0")};
        auto bytes = release.toJson();
        testing::writeFile(dir_ / "repo" / "releases" / (version + ".json"), bytes);
        auto sig = pkgmgr::signRelease(bytes, private_pem);
        ASSERT_OK(sig);
        testing::writeFile(dir_ / "repo" / "releases" / (version + ".json.sig"), *sig);
    }

    std::string replicaUrl(int i) const {
        return "http://127.0.0.1:" + std::to_string(ports_.at(static_cast<std::size_t>(i)));
    }

    void startReplica(int i) {
        auto name = "r" + std::to_string(i);
        replicas_[static_cast<std::size_t>(i)] = std::make_unique<ServerProcess>(
            std::vector<std::string>{
                COORDINATOR_BIN, "--state", etcd_->stateUrl("hoist"), "--replica-id", name,
                "--lease-ttl", std::to_string(kLeaseTtlS), "--listen",
                "127.0.0.1:" + std::to_string(ports_.at(static_cast<std::size_t>(i))),
                "--port-file", (dir_ / (name + ".port")).string(), "--repo", repo_->url() + "/repo",
                "--trusted-key", (dir_ / "trusted.pem").string(), "--admin-token-file",
                (dir_ / "admin.token").string(), "--halt-token-file",
                (dir_ / "halt.token").string(), "--node-token-file", (dir_ / "node.token").string(),
                "--poll-after-ms", "1500",
                // Small txns: a rollout's waves are staged steps and its start puts its rows
                // in place before it commits (etcd_staged.cpp), so the leader is killed
                // between the parts of some of them.
                "--etcd-max-txn-ops", "8"},
            dir_ / (name + ".port"), dir_ / (name + ".log"));
        ASSERT_TRUE(replicas_[static_cast<std::size_t>(i)]->started())
            << testing::readFile(dir_ / (name + ".log"));
    }

    http::Response call(int replica, const std::string& method, const std::string& path,
                        const std::string& body = "", const std::string& token = "admin-secret") {
        http::Request request;
        request.method = method;
        request.url = replicaUrl(replica) + path;
        request.body = body;
        request.timeout = 10s;
        request.headers.push_back(http::bearer(token));
        auto response = client_.send(request);
        return response ? *response : http::Response{};
    }

    /// The leading replica's index as the replicas report it (-1 while none leads).
    int leader() {
        for (int i = 0; i < kReplicas; ++i) {
            auto r = call(i, "GET", "/v1/cluster/coordinators");
            if (r.status != 200) continue;
            auto doc = json::parseObject(r.body, "coordinators");
            if (!doc) continue;
            auto id = json::getString(*doc, "leader", "coordinators");
            if (!id || id->size() < 2) continue;
            // The leader itself must say so: a follower's view may lag.
            int index = (*id)[1] - '0';
            auto own = call(index, "GET", "/metrics");
            if (own.status == 200 &&
                own.body.find("\nhoist_coordinator_is_leader 1\n") != std::string::npos)
                return index;
        }
        return -1;
    }

    /// Waits until `replica`'s own metrics say it does not lead (a leader that was paused or
    /// cut off from etcd steps down).
    bool saysItDoesNotLead(int replica) {
        return testing::waitFor(
            [&] {
                auto m = call(replica, "GET", "/metrics");
                return m.status == 200 &&
                       m.body.find("\nhoist_coordinator_is_leader 0\n") != std::string::npos;
            },
            30s, 50ms);
    }

    int waitLeader(std::chrono::milliseconds timeout = 30s) {
        int found = -1;
        testing::waitFor([&] { return (found = leader()) >= 0; }, timeout, 50ms);
        return found;
    }

    /// Any replica's answer (a follower forwards to the leader); retried through failovers.
    http::Response anyReplica(const std::string& method, const std::string& path,
                              const std::string& body = "") {
        http::Response out;
        testing::waitFor(
            [&] {
                for (int i = 0; i < kReplicas; ++i) {
                    out = call(i, method, path, body);
                    if (out.status != 0 && out.status != 503) return true;
                }
                return false;
            },
            30s, 100ms);
        return out;
    }

    std::string deploymentState(const std::string& id) {
        auto r = anyReplica("GET", "/v1/deployments/" + id + "?nodes=0&events=0");
        auto doc = json::parseObject(r.body, "deployment");
        if (!doc) return "";
        return json::getString(*doc, "state", "deployment").value_or("");
    }

    std::string start(const std::string& version) {
        auto r = anyReplica("POST", "/v1/deployments",
                            R"({"version":")" + version + R"(","max_parallel":3})");
        EXPECT_EQ(r.status, 201) << r.body;
        auto doc = json::parseObject(r.body, "deployment");
        return doc ? json::getString(*doc, "id", "deployment").value_or("") : "";
    }

    std::vector<Act> actions() {
        http::Request request;
        request.url = fleet_->url() + "/fleet/actions?since_us=0";
        auto r = client_.send(request);
        std::vector<Act> out;
        if (!r) return out;
        auto doc = json::parseObject(r->body, "actions");
        if (!doc) return out;
        auto list = json::getArray(*doc, "actions", "actions");
        if (!list) return out;
        for (const auto& a : (*list)->GetArray())
            out.push_back({json::getString(a, "node", "a").value_or(""),
                           json::getString(a, "kind", "a").value_or(""),
                           json::getString(a, "deployment", "a").value_or(""),
                           json::getInt(a, "time_us", "a").value_or(0),
                           json::getInt(a, "epoch", "a").value_or(0)});
        return out;
    }

    static int countOf(const std::string& text, const std::string& what) {
        int n = 0;
        for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
        return n;
    }

    /// Puts a raw value under a key through etcd's gateway (as a damaged or foreign writer).
    void putRaw(const std::string& key, const std::string& value) {
        http::Request request;
        request.method = "POST";
        request.url = etcd_->endpoints().front() + "/v3/kv/put";
        request.body = R"({"key":")" + crypto::base64Encode(key) + R"(","value":")" +
                       crypto::base64Encode(value) + R"("})";
        auto r = client_.send(request);
        ASSERT_OK(r);
        ASSERT_EQ(r->status, 200) << r->body;
    }

    void startFleet(int via, int nodes, int swap_ms) {
        fleet_ = std::make_unique<ServerProcess>(
            std::vector<std::string>{FAKE_FLEET_BIN, "--coordinator", replicaUrl(via), "--masters",
                                     "1", "--agents", std::to_string(nodes - 1), "--swap-ms",
                                     std::to_string(swap_ms), "--node-token-file",
                                     (dir_ / "node.token").string(), "--port-file",
                                     (dir_ / "fleet.port").string()},
            dir_ / "fleet.port", dir_ / "fleet.log");
        ASSERT_TRUE(fleet_->started()) << testing::readFile(dir_ / "fleet.log");
    }

    int restartsIn(const std::string& deployment) {
        int n = 0;
        for (const auto& a : actions())
            if (a.kind == "restart" && a.deployment == deployment) ++n;
        return n;
    }

    void killLeaderAndRestartIt() {
        int l = waitLeader();
        ASSERT_GE(l, 0) << "no leader";
        auto& p = *replicas_[static_cast<std::size_t>(l)];
        p.kill(SIGKILL);
        ASSERT_OK(p.child().wait(10s));
        auto killed = std::chrono::steady_clock::now();
        // Started again at once as a follower, on its port (pings sent to it are forwarded).
        startReplica(l);
        int next = waitLeader(30s);
        ASSERT_GE(next, 0);
        takeovers_.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - killed));
    }

    TempFolder dir_;
    std::unique_ptr<ServerProcess> repo_;
    std::unique_ptr<testing::EtcdCluster> etcd_;
    std::vector<int> ports_;
    std::vector<std::unique_ptr<ServerProcess>> replicas_;
    std::unique_ptr<ServerProcess> fleet_;
    std::vector<std::chrono::milliseconds> takeovers_;
    http::Client client_;
};

TEST_F(Ha, RolloutsFinishThroughFailoversWithEachNodeRestartedOnce) {
    constexpr int kNodes = 10;
    int first = waitLeader();
    ASSERT_GE(first, 0) << testing::readFile(dir_ / "r0.log");
    // The fleet registers through a follower: registration is forwarded to the leader.
    int follower = (first + 1) % kReplicas;
    fleet_ = std::make_unique<ServerProcess>(
        std::vector<std::string>{FAKE_FLEET_BIN, "--coordinator", replicaUrl(follower), "--masters",
                                 "1", "--agents", std::to_string(kNodes - 1), "--swap-ms", "400",
                                 "--node-token-file", (dir_ / "node.token").string(), "--port-file",
                                 (dir_ / "fleet.port").string()},
        dir_ / "fleet.port", dir_ / "fleet.log");
    ASSERT_TRUE(fleet_->started()) << testing::readFile(dir_ / "fleet.log");

    // Rollout 1: the leader SIGKILLed twice while nodes swap.
    auto d1 = start("2.0.0");
    ASSERT_FALSE(d1.empty());
    ASSERT_TRUE(testing::waitFor([&] { return restartsIn(d1) >= 1; }, 30s, 20ms));
    // The start (ten rows and more, over --etcd-max-txn-ops 8) was a staged step.
    {
        auto m = call(waitLeader(), "GET", "/metrics");
        EXPECT_EQ(m.body.find("\nhoist_coordinator_store_staged_steps_total 0\n"),
                  std::string::npos)
            << "no step was staged";
        EXPECT_NE(m.body.find("\nhoist_coordinator_store_staged_steps_total "), std::string::npos);
    }
    killLeaderAndRestartIt();
    // A halt to a follower while the leader acts: forwarded, answered once nothing can start.
    {
        int l = waitLeader();
        ASSERT_GE(l, 0);
        auto r = call((l + 1) % kReplicas, "POST", "/v1/halt",
                      R"({"source":"canary","reason":"errors"})", "halt-secret");
        ASSERT_EQ(r.status, 201) << r.body;
        auto answered_us = nowUs();
        std::this_thread::sleep_for(1s);  // the window in which a started action would show
        for (const auto& a : actions())
            EXPECT_FALSE((a.kind == "restart" || a.kind == "stage") && a.time_us > answered_us)
                << a.kind << " of " << a.node << " started under the canary hold";
        ASSERT_EQ(anyReplica("DELETE", "/v1/halt/canary").status, 200);
    }
    ASSERT_TRUE(testing::waitFor([&] { return restartsIn(d1) >= 5; }, 60s, 20ms));
    killLeaderAndRestartIt();
    ASSERT_TRUE(testing::waitFor([&] { return deploymentState(d1) == "done"; }, 90s, 100ms))
        << deploymentState(d1);

    // Rollout 2: the leader SIGSTOPped past its lease, then the etcd raft leader killed, then
    // the leader killed and a halt posted to a follower while no replica leads.
    auto d2 = start("3.0.0");
    ASSERT_FALSE(d2.empty());
    ASSERT_TRUE(testing::waitFor([&] { return restartsIn(d2) >= 1; }, 30s, 20ms));
    int paused = waitLeader();
    ASSERT_GE(paused, 0);
    // What the leader says of the finished rollout and the fleet, before it stops.
    auto d1_by_leader = call(paused, "GET", "/v1/deployments/" + d1 + "?nodes=1&events=0");
    ASSERT_EQ(d1_by_leader.status, 200) << d1_by_leader.body;
    replicas_[static_cast<std::size_t>(paused)]->kill(SIGSTOP);
    auto stopped = std::chrono::steady_clock::now();
    // Reads come from the store: a follower answers them at once, while the leader is stopped
    // and no other has taken over yet, and says what the leader said.
    {
        int reader = (paused + 1) % kReplicas;
        auto d1_by_follower = call(reader, "GET", "/v1/deployments/" + d1 + "?nodes=1&events=0");
        EXPECT_EQ(d1_by_follower.status, 200) << d1_by_follower.body;
        EXPECT_EQ(d1_by_follower.body, d1_by_leader.body);
        auto nodes = call(reader, "GET", "/v1/nodes");
        EXPECT_EQ(nodes.status, 200) << nodes.body;
        EXPECT_EQ(countOf(nodes.body, "\"node\":"), kNodes) << nodes.body;
        auto list = call(reader, "GET", "/v1/deployments");
        EXPECT_EQ(list.status, 200) << list.body;
        EXPECT_NE(list.body.find("\"acting\":\"" + d2 + "\""), std::string::npos) << list.body;
        auto d2_now = call(reader, "GET", "/v1/deployments/" + d2 + "?nodes=1&events=5");
        EXPECT_EQ(d2_now.status, 200) << d2_now.body;
        EXPECT_NE(d2_now.body.find("\"total\":" + std::to_string(kNodes)), std::string::npos)
            << d2_now.body;
        auto events = call(reader, "GET", "/v1/events?limit=5");
        EXPECT_EQ(events.status, 200) << events.body;
        // Within the lease TTL of the stop, no other replica can have taken over yet.
        EXPECT_LT(std::chrono::steady_clock::now() - stopped, std::chrono::seconds(kLeaseTtlS))
            << "the reads above were too slow to show they need no leader";
    }
    // Another replica takes over once the paused one's lease expires.
    int took = -1;
    ASSERT_TRUE(testing::waitFor(
        [&] {
            took = leader();
            return took >= 0 && took != paused;
        },
        30s, 50ms));
    replicas_[static_cast<std::size_t>(paused)]->kill(SIGCONT);
    // Woken, it finds its renewal overdue and steps down (it restarts itself as a follower).
    ASSERT_TRUE(saysItDoesNotLead(paused))
        << testing::readFile(dir_ / ("r" + std::to_string(paused) + ".log"));

    int raft = etcd_->raftLeader();
    ASSERT_GE(raft, 0);
    etcd_->kill(raft);
    ASSERT_TRUE(testing::waitFor([&] { return restartsIn(d2) >= 4; }, 60s, 20ms));
    etcd_->restart(raft);

    int l = waitLeader();
    ASSERT_GE(l, 0);
    replicas_[static_cast<std::size_t>(l)]->kill(SIGKILL);
    ASSERT_OK(replicas_[static_cast<std::size_t>(l)]->child().wait(10s));
    int other = (l + 1) % kReplicas;
    auto halted =
        call(other, "POST", "/v1/halt", R"({"source":"sla","reason":"p99 high"})", "halt-secret");
    ASSERT_EQ(halted.status, 201) << halted.body;
    auto halted_us = nowUs();
    startReplica(l);
    ASSERT_GE(waitLeader(), 0);
    // Held: nothing starts for a while, across the takeover.
    std::this_thread::sleep_for(std::chrono::seconds(kLeaseTtlS + 1));
    for (const auto& a : actions())
        EXPECT_FALSE((a.kind == "restart" || a.kind == "stage") && a.time_us > halted_us)
            << a.kind << " of " << a.node << " started under a hold";
    auto holds = anyReplica("GET", "/v1/halt");
    EXPECT_NE(holds.body.find("\"halted\":true"), std::string::npos) << holds.body;
    auto cleared = anyReplica("DELETE", "/v1/halt");
    ASSERT_EQ(cleared.status, 200) << cleared.body;
    ASSERT_TRUE(testing::waitFor([&] { return deploymentState(d2) == "done"; }, 90s, 100ms))
        << deploymentState(d2);

    // Every node restarted exactly once forward in each rollout.
    std::map<std::string, std::map<std::string, int>> restarts;
    std::set<std::string> nodes;
    for (const auto& a : actions()) {
        if (a.kind == "restart") restarts[a.deployment][a.node]++;
        nodes.insert(a.node);
    }
    for (const auto& d : {d1, d2}) {
        EXPECT_EQ(restarts[d].size(), static_cast<std::size_t>(kNodes)) << d;
        for (const auto& [node, count] : restarts[d])
            EXPECT_EQ(count, 1) << node << " restarted " << count << " times in " << d;
    }
    // The epochs nodes were sent (when commands carry one) never go back: no deposed leader
    // reached a node after its successor did.
    auto acts = actions();
    std::sort(acts.begin(), acts.end(),
              [](const Act& a, const Act& b) { return a.time_us < b.time_us; });
    std::int64_t highest = 0;
    for (const auto& a : acts) {
        if (a.epoch == 0) continue;
        EXPECT_GE(a.epoch, highest) << a.kind << " of " << a.node << " carried an older epoch";
        highest = std::max(highest, a.epoch);
    }
    for (auto t : takeovers_)
        std::cout << "takeover after SIGKILL of the leader: " << t.count() << " ms\n";
}

TEST_F(Ha, ReplicasAnswerTheCoordinatorsListAndRefuseWithoutEtcd) {
    int l = waitLeader();
    ASSERT_GE(l, 0);
    auto r = call((l + 1) % kReplicas, "GET", "/v1/cluster/coordinators");
    ASSERT_EQ(r.status, 200) << r.body;
    auto doc = json::parseObject(r.body, "coordinators");
    ASSERT_OK(doc);
    EXPECT_EQ(json::getString(*doc, "leader", "c").value_or(""), "r" + std::to_string(l));
    EXPECT_GT(json::getInt(*doc, "epoch", "c").value_or(0), 0);
    auto list = json::getArray(*doc, "replicas", "c");
    ASSERT_OK(list);
    EXPECT_EQ((*list)->Size(), static_cast<rapidjson::SizeType>(kReplicas));
    // A hold written to etcd by a follower (as when no leader answers it) reaches the leader
    // through its watch, and the follower answers only once the leader has it in force: the
    // leader reports it at once and refuses to start a deployment.
    auto writeThrough = [&](int replica, const std::string& source) {
        http::Request direct;
        direct.method = "POST";
        direct.url = replicaUrl(replica) + "/v1/halt";
        direct.body = R"({"source":")" + source + R"(","reason":"written by a follower"})";
        direct.timeout = 30s;
        direct.headers.push_back(http::bearer("halt-secret"));
        direct.headers.push_back({"X-Hoist-Forwarded-By", "test"});
        return client_.send(direct);
    };
    {
        auto written = writeThrough((l + 1) % kReplicas, "direct");
        ASSERT_OK(written);
        ASSERT_EQ(written->status, 201) << written->body;
        EXPECT_NE(call(l, "GET", "/v1/halt").body.find("\"direct\""), std::string::npos);
        auto refused_start = call(l, "POST", "/v1/deployments", R"({"version":"2.0.0"})");
        EXPECT_EQ(refused_start.status, 423) << refused_start.body;
    }
    // The leader paused (its watch cannot raise its gate): the follower's answer waits until
    // the paused leader's lease is gone and a successor has the hold in force.
    {
        auto& paused = *replicas_[static_cast<std::size_t>(l)];
        paused.kill(SIGSTOP);
        int writer = (l + 1) % kReplicas;
        auto written = writeThrough(writer, "paused");
        ASSERT_OK(written);
        EXPECT_EQ(written->status, 201) << written->body;
        int successor = -1;
        for (int i = 0; i < kReplicas; ++i) {
            if (i == l) continue;
            auto m = call(i, "GET", "/metrics");
            if (m.body.find("\nhoist_coordinator_is_leader 1\n") != std::string::npos)
                successor = i;
        }
        EXPECT_GE(successor, 0) << "answered 201 while the paused replica still led";
        if (successor >= 0) {
            EXPECT_NE(call(successor, "GET", "/v1/halt").body.find("\"paused\""),
                      std::string::npos);
        }
        paused.kill(SIGCONT);
        ASSERT_TRUE(saysItDoesNotLead(l));
        l = waitLeader();
        ASSERT_GE(l, 0);
    }
    // etcd gone: the API says which store it is waiting for.
    for (int m = 0; m < 3; ++m) etcd_->kill(m);
    ASSERT_TRUE(testing::waitFor(
        [&] {
            auto answer = call((l + 1) % kReplicas, "GET", "/v1/deployments");
            return answer.status == 503 && answer.body.find("etcd") != std::string::npos;
        },
        30s, 100ms));
    // A replica cannot start without etcd.
    auto refused = testing::run(
        {COORDINATOR_BIN, "--state", etcd_->stateUrl("hoist"), "--listen", "127.0.0.1:0",
         "--admin-token-file", (dir_ / "admin.token").string(), "--halt-token-file",
         (dir_ / "halt.token").string(), "--node-token-file", (dir_ / "node.token").string()},
        {}, 30s);
    EXPECT_NE(refused.exit_code, 0);
    EXPECT_NE(refused.err.find("unreachable"), std::string::npos) << refused.err;
}

/// The leading replica among `candidates` (a stopped replica would hold each request to its
/// timeout, so it is left out); -1 while none of them leads.
int leaderAmong(const std::function<http::Response(int, const std::string&)>& get,
                const std::vector<int>& candidates) {
    for (int i : candidates) {
        auto own = get(i, "/metrics");
        if (own.status == 200 &&
            own.body.find("\nhoist_coordinator_is_leader 1\n") != std::string::npos)
            return i;
    }
    return -1;
}

// Reads that need no leader. With the leader SIGSTOPped, a follower answers the plan (a dry
// run it computes from etcd and the repository itself) and the monitors as the leader
// answered them; once another replica takes over, it counts each monitor's silence from its
// takeover, and a follower shows the same.
TEST_F(Ha, AFollowerAnswersThePlanAndTheMonitorsWhileTheLeaderIsStopped) {
    constexpr int kNodes = 6;
    int l = waitLeader();
    ASSERT_GE(l, 0);
    int f = (l + 1) % kReplicas;
    startFleet(f, kNodes, 500);
    ASSERT_TRUE(testing::waitFor(
        [&] { return countOf(call(l, "GET", "/v1/nodes").body, "\"node\":") == kNodes; }, 30s,
        50ms));
    auto held =
        call(f, "POST", "/v1/halt", R"({"source":"plan-test","reason":"held"})", "halt-secret");
    ASSERT_EQ(held.status, 201) << held.body;
    ASSERT_TRUE(testing::waitFor(
        [&] { return call(l, "GET", "/v1/halt").body.find("plan-test") != std::string::npos; }, 5s,
        20ms));
    const std::string plan = "/v1/plan?version=2.0.0&max_parallel=2";
    auto leader_plan = call(l, "GET", plan);
    ASSERT_EQ(leader_plan.status, 200) << leader_plan.body;
    EXPECT_NE(leader_plan.body.find("\"halted\":true"), std::string::npos) << leader_plan.body;
    EXPECT_NE(leader_plan.body.find("\"nodes\":[\"agent-1\",\"agent-2\"]"), std::string::npos)
        << leader_plan.body;
    EXPECT_EQ(call(f, "GET", plan).body, leader_plan.body);

    // m-short goes silent; m-long does not.
    ASSERT_EQ(
        call(l, "POST", "/v1/monitors/m-short/heartbeat?allowance=5s", "", "halt-secret").status,
        200);
    ASSERT_EQ(
        call(l, "POST", "/v1/monitors/m-long/heartbeat?allowance=1h", "", "halt-secret").status,
        200);
    ASSERT_TRUE(testing::waitFor(
        [&] {
            return call(l, "GET", "/v1/monitors").body.find("\"silent\":true") != std::string::npos;
        },
        15s, 50ms));
    auto leader_monitors = call(l, "GET", "/v1/monitors");
    ASSERT_EQ(leader_monitors.status, 200);
    EXPECT_EQ(countOf(leader_monitors.body, "\"silent\":true"), 1) << leader_monitors.body;
    EXPECT_EQ(call(f, "GET", "/v1/monitors").body, leader_monitors.body);

    auto& stopped = *replicas_[static_cast<std::size_t>(l)];
    stopped.kill(SIGSTOP);
    // Before this change these were forwarded to the stopped leader and timed out.
    auto during_plan = call(f, "GET", plan);
    auto during_monitors = call(f, "GET", "/v1/monitors");
    EXPECT_EQ(during_plan.status, 200) << during_plan.body;
    EXPECT_EQ(during_plan.body, leader_plan.body);
    EXPECT_EQ(during_monitors.status, 200) << during_monitors.body;
    // Unless another replica already took over (a stalled machine), silence is still counted
    // as the stopped leader counted it.
    auto list = call(f, "GET", "/v1/cluster/coordinators").body;
    if (list.find("\"leader\":\"r" + std::to_string(l) + "\"") != std::string::npos ||
        list.find("\"leader\":null") != std::string::npos) {
        EXPECT_EQ(during_monitors.body, leader_monitors.body) << list;
    }

    // Another replica takes over and gives each monitor one allowance from its takeover: a
    // follower says so too.
    auto get = [&](int i, const std::string& path) { return call(i, "GET", path); };
    std::vector<int> others{f, (l + 2) % kReplicas};
    int n = -1;
    ASSERT_TRUE(testing::waitFor([&] { return (n = leaderAmong(get, others)) >= 0; }, 30s, 20ms));
    int g = n == f ? (l + 2) % kReplicas : f;
    // The follower knows the new leader, and the leader's entry says since when it leads.
    ASSERT_TRUE(testing::waitFor(
        [&] {
            auto doc = json::parseObject(call(g, "GET", "/v1/cluster/coordinators").body, "c");
            if (!doc) return false;
            auto entries = json::getArray(*doc, "replicas", "c");
            if (!entries) return false;
            for (const auto& r : (*entries)->GetArray())
                if (json::getString(r, "id", "r").value_or("") == "r" + std::to_string(n))
                    return json::getBool(r, "leader", "r").value_or(false) &&
                           json::getInt(r, "epoch", "r").value_or(0) > 0;
            return false;
        },
        10s, 20ms));
    auto follower_after = call(g, "GET", "/v1/monitors");
    auto leader_after = call(n, "GET", "/v1/monitors");
    EXPECT_EQ(follower_after.status, 200) << follower_after.body;
    EXPECT_EQ(countOf(follower_after.body, "\"silent\":true"), 0) << follower_after.body;
    EXPECT_EQ(follower_after.body, leader_after.body);
    EXPECT_EQ(call(g, "GET", plan).body, leader_plan.body);
    stopped.kill(SIGCONT);
}

// A stream opened on a follower follows the rollout from etcd, and keeps going through a
// failover (SIGKILL of the leader): every audit event the store holds after its hello arrives
// exactly once, in id order, and it reports the deployment done.
TEST_F(Ha, AStreamOnAFollowerGoesOnThroughAFailover) {
    constexpr int kNodes = 6;
    int l = waitLeader();
    ASSERT_GE(l, 0);
    int f = (l + 1) % kReplicas;
    startFleet(f, kNodes, 800);
    testing::RawConnection conn(ports_.at(static_cast<std::size_t>(f)));
    conn.send(
        "GET /v1/events/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer admin-secret\r\n\r\n");
    std::string got;
    ASSERT_TRUE(conn.readUntil(got, "event: hello\n", 5s)) << got;
    auto hello_at = got.find("event: hello\n");
    auto id_at = got.rfind("id: ", hello_at);
    ASSERT_NE(id_at, std::string::npos) << got;
    std::int64_t hello_id = std::stoll(got.substr(id_at + 4));

    auto d1 = start("2.0.0");
    ASSERT_FALSE(d1.empty());
    ASSERT_TRUE(conn.readUntil(got, "{\"id\":\"" + d1 + "\",\"version\":\"2.0.0\"", 10s)) << got;
    ASSERT_TRUE(testing::waitFor([&] { return restartsIn(d1) >= 1; }, 30s, 20ms));
    killLeaderAndRestartIt();
    // The deployment's row as done (a node row's state is followed by node_state instead).
    ASSERT_TRUE(conn.readUntil(got, "\"state\":\"done\",\"waiting_on\"", 120s)) << got;

    // Every audit event after the hello, once, in order.
    std::vector<std::int64_t> streamed;
    for (auto at = got.find("\nevent: audit\n"); at != std::string::npos;
         at = got.find("\nevent: audit\n", at + 1)) {
        auto line = got.rfind("id: ", at);
        streamed.push_back(std::stoll(got.substr(line + 4)));
    }
    ASSERT_FALSE(streamed.empty()) << got;
    EXPECT_TRUE(std::is_sorted(streamed.begin(), streamed.end()));
    EXPECT_EQ(std::adjacent_find(streamed.begin(), streamed.end()), streamed.end());
    // The audit log as the store holds it, up to the last event streamed.
    auto events = anyReplica("GET", "/v1/events?limit=1000");
    auto doc = json::parseObject(events.body, "events");
    ASSERT_OK(doc);
    auto list = json::getArray(*doc, "events", "events");
    ASSERT_OK(list);
    std::vector<std::int64_t> stored;
    for (const auto& e : (*list)->GetArray()) {
        auto id = json::getInt(e, "id", "event").value_or(0);
        if (id > hello_id && id <= streamed.back()) stored.push_back(id);
    }
    std::sort(stored.begin(), stored.end());
    EXPECT_EQ(streamed, stored);
}

// etcd lost mid-rollout: the leader stops acting, every replica (the one that led included)
// answers 503 naming the store, and once etcd is back nothing acknowledged is lost: the holds
// and registrations answered before the outage are there, and the rollout finishes with each
// node restarted exactly once.
TEST_F(Ha, NothingAcknowledgedIsLostWhenEtcdComesBack) {
    constexpr int kNodes = 9;
    int first = waitLeader();
    ASSERT_GE(first, 0);
    startFleet((first + 1) % kReplicas, kNodes, 1500);
    auto d1 = start("2.0.0");
    ASSERT_FALSE(d1.empty());
    ASSERT_TRUE(testing::waitFor([&] { return restartsIn(d1) >= 1; }, 30s, 20ms));
    // Acknowledged just before the outage: a registration and a halt, through followers.
    int l = waitLeader();
    ASSERT_GE(l, 0);
    auto registered =
        call((l + 1) % kReplicas, "POST", "/v1/nodes/register",
             R"({"id":"late-1","role":"agent","address":"http://127.0.0.1:9"})", "node-secret");
    ASSERT_TRUE(registered.status == 200 || registered.status == 201) << registered.body;
    auto halted = call((l + 2) % kReplicas, "POST", "/v1/halt",
                       R"({"source":"before-outage","reason":"acknowledged"})", "halt-secret");
    ASSERT_EQ(halted.status, 201) << halted.body;

    for (int m = 0; m < 3; ++m) etcd_->kill(m);
    // Every replica answers 503 naming the store; the one that led steps down and is back on
    // its port answering the same (it does not refuse connections).
    for (int i = 0; i < kReplicas; ++i)
        EXPECT_TRUE(testing::waitFor(
            [&] {
                auto answer = call(i, "GET", "/v1/deployments");
                return answer.status == 503 &&
                       answer.body.find("state store etcd") != std::string::npos;
            },
            30s, 100ms))
            << "replica " << i << ": " << call(i, "GET", "/v1/deployments").body;
    EXPECT_TRUE(saysItDoesNotLead(l));
    // A halt cannot be acknowledged without the store.
    auto refused = call((l + 1) % kReplicas, "POST", "/v1/halt",
                        R"({"source":"during","reason":"x"})", "halt-secret");
    EXPECT_EQ(refused.status, 503) << refused.body;
    auto restarts_in_outage = restartsIn(d1);

    for (int m = 0; m < 3; ++m) etcd_->restart(m);
    ASSERT_TRUE(etcd_->waitHealthy(60s)) << etcd_->logTails();
    ASSERT_GE(waitLeader(60s), 0);
    // Read from a follower: the hold and the late registration are there.
    int now = waitLeader();
    int reader = (now + 1) % kReplicas;
    auto holds = call(reader, "GET", "/v1/halt");
    EXPECT_NE(holds.body.find("\"before-outage\""), std::string::npos) << holds.body;
    auto nodes = call(reader, "GET", "/v1/nodes");
    EXPECT_NE(nodes.body.find("\"late-1\""), std::string::npos) << nodes.body;
    EXPECT_EQ(countOf(nodes.body, "\"node\":"), kNodes + 1) << nodes.body;
    EXPECT_EQ(restartsIn(d1), restarts_in_outage) << "a node was restarted under the hold";
    auto cleared = anyReplica("DELETE", "/v1/halt");
    ASSERT_EQ(cleared.status, 200) << cleared.body;
    ASSERT_TRUE(testing::waitFor([&] { return deploymentState(d1) == "done"; }, 120s, 100ms))
        << deploymentState(d1);
    std::map<std::string, int> restarts;
    for (const auto& a : actions())
        if (a.kind == "restart" && a.deployment == d1) restarts[a.node]++;
    EXPECT_EQ(restarts.size(), static_cast<std::size_t>(kNodes));
    for (const auto& [node, count] : restarts)
        EXPECT_EQ(count, 1) << node << " restarted " << count << " times";
}

// A value under the prefix that a replica cannot read, met while taking over: the replica stops
// acting with an error naming the key, gives the lead up and stays a follower; it neither
// restarts itself nor campaigns again and again.
TEST_F(Ha, ADamagedValueStopsTheTakeoverNamingItsKey) {
    int l = waitLeader();
    ASSERT_GE(l, 0);
    const std::string key = "/hoist/deployments/d-damaged";
    putRaw(key, R"({"schema":"someone-else/3","id":"d-damaged"})");
    replicas_[static_cast<std::size_t>(l)]->kill(SIGKILL);
    ASSERT_OK(replicas_[static_cast<std::size_t>(l)]->child().wait(10s));
    auto log = [&](int i) { return testing::readFile(dir_ / ("r" + std::to_string(i) + ".log")); };
    // Each of the other two wins in turn and refuses, naming the key.
    for (int k = 1; k < kReplicas; ++k) {
        int i = (l + k) % kReplicas;
        EXPECT_TRUE(testing::waitFor(
            [&] { return log(i).find("refusing to lead") != std::string::npos; }, 30s, 100ms))
            << log(i);
        EXPECT_NE(log(i).find(key), std::string::npos) << log(i);
    }
    // The API says why nothing leads.
    http::Response answer;
    EXPECT_TRUE(testing::waitFor(
        [&] {
            answer = call((l + 1) % kReplicas, "POST", "/v1/deployments", R"({"version":"2.0.0"})");
            return answer.status == 503 && answer.body.find(key) != std::string::npos;
        },
        10s, 100ms))
        << answer.status << " " << answer.body;
    // No spinning: over three lease TTLs, no replica campaigns or refuses again.
    std::this_thread::sleep_for(std::chrono::seconds(3 * kLeaseTtlS));
    for (int k = 1; k < kReplicas; ++k) {
        int i = (l + k) % kReplicas;
        EXPECT_EQ(countOf(log(i), "refusing to lead"), 1) << log(i);
        EXPECT_EQ(countOf(log(i), "campaigning"), 1) << log(i);
        EXPECT_EQ(call(i, "GET", "/healthz").status != 0, true) << "replica " << i << " is gone";
    }
    EXPECT_EQ(leader(), -1);
    // Both refusing replicas are still listed, each saying why it does not lead.
    auto listed = call((l + 1) % kReplicas, "GET", "/v1/cluster/coordinators");
    ASSERT_EQ(listed.status, 200) << listed.body;
    EXPECT_NE(listed.body.find("\"leader\":null"), std::string::npos) << listed.body;
    for (int k = 1; k < kReplicas; ++k)
        EXPECT_NE(listed.body.find("\"id\":\"r" + std::to_string((l + k) % kReplicas) + "\""),
                  std::string::npos)
            << listed.body;
    EXPECT_EQ(countOf(listed.body, "\"refused\":\"replica r"), kReplicas - 1) << listed.body;
    EXPECT_EQ(countOf(listed.body, key), kReplicas - 1) << listed.body;
}

}  // namespace
}  // namespace hoist
