// pkgmgr serve: every route of the node endpoint, with the real restart helper behind it.

#include <csignal>

#include "core/crypto.hpp"
#include "core/json.hpp"
#include "node_fixture.hpp"
#include "pkgmgr/node_config.hpp"
#include "pkgmgr/outbox.hpp"
#include "restart_helper/helper.hpp"

namespace hoist::testing {
namespace {

using restart_helper::kExitHealthy;

class ServeTest : public NodeFixture {
protected:
    void SetUp() override {
        NodeFixture::SetUp();
        mesos1_ = mesosPackage("1.0.0");
        config1_ = configPackage("1.0.0", {});
        publishRelease("1.0.0", {}, {mesos1_, config1_});
        // The node runs release 1.0.0 (staged from the repository, as bootstrap would).
        auto config = pkgmgr::NodeConfig::load(layout_);
        ASSERT_OK(config);
        config->trusted_keys = {"keys/release.pub"};
        ASSERT_OK(config->save(layout_));
        writeFile(root_ / "keys/release.pub", readFile(publicKeyFile()));
    }

    void TearDown() override {
        // Let a helper we started through the endpoint finish before the service is stopped.
        waitFor([this] { return !fs::exists(layout_.txn()); }, std::chrono::seconds(20));
        serve_.reset();
        NodeFixture::TearDown();
    }

    void startServe(const std::vector<std::string>& extra = {}) {
        std::vector<std::string> argv = {PKGMGR_BIN,         "--root",
                                         root_.string(),     "serve",
                                         "--port-file",      (tmp_ / "serve.port").string(),
                                         "--restart-helper", RESTART_HELPER_BIN};
        argv.insert(argv.end(), extra.begin(), extra.end());
        serve_ = std::make_unique<ServerProcess>(argv, tmp_ / "serve.port", tmp_ / "serve.log");
        ASSERT_TRUE(serve_->started()) << readFile(tmp_ / "serve.log");
        url_ = serve_->url();
    }

    json::Document body(const std::optional<http::Response>& response) {
        EXPECT_TRUE(response.has_value());
        if (!response) return {};
        auto doc = json::parse(response->body, "response");
        EXPECT_OK(doc);
        return doc ? std::move(*doc) : json::Document();
    }

    std::optional<http::Response> post(const std::string& path, const std::string& json_body) {
        return httpSend("POST", url_ + path, json_body, token_);
    }

    // Stages release 1.0.0 through the endpoint and swaps to it.
    void runRelease1() {
        auto staged = post("/v1/stage", "{\"release\":\"1.0.0\"}");
        ASSERT_TRUE(staged);
        ASSERT_EQ(staged->status, 200) << staged->body;
        ASSERT_EQ(helper({"swap", "--to", "1"}).exit_code, kExitHealthy);
    }

    // Polls GET /v1/transaction?operation=op until the helper is done; returns its state.
    std::string waitForOperation(const std::string& op) {
        std::string state;
        bool done = waitFor(
            [&] {
                auto response = httpGet(url_ + "/v1/transaction?operation=" + op);
                if (!response || response->status != 200) return false;
                auto doc = json::parseObject(response->body, "transaction");
                if (!doc || (*doc)["active"].GetBool()) return false;
                state = (*doc)["transaction"]["state"].GetString();
                return true;
            },
            std::chrono::seconds(30), std::chrono::milliseconds(50));
        EXPECT_TRUE(done) << "operation " << op << " did not finish; helper log:\n"
                          << readFile(root_ / "run/helper.log");
        return state;
    }

    BuiltPackage mesos1_, config1_;
    std::unique_ptr<ServerProcess> serve_;
    std::string url_;
};

TEST_F(ServeTest, NodeReportsIdentityGenerationAndHealth) {
    startServe({"--no-register"});
    runRelease1();
    auto doc = body(httpGet(url_ + "/v1/node"));
    EXPECT_STREQ(doc["id"].GetString(), "node-1");
    EXPECT_STREQ(doc["role"].GetString(), "agent");
    EXPECT_STREQ(doc["release"].GetString(), "1.0.0");
    EXPECT_EQ(doc["generation"].GetInt64(), 1);
    EXPECT_TRUE(doc["service"]["running"].GetBool());
    EXPECT_STREQ(doc["service"]["manager"].GetString(), "process");
    EXPECT_TRUE(doc["healthy"].GetBool());
    EXPECT_TRUE(doc["transaction"].IsNull());

    auto active = body(httpGet(url_ + "/v1/active"));
    EXPECT_EQ(active["generation"].GetInt64(), 1);
    EXPECT_STREQ(active["release"].GetString(), "1.0.0");
    EXPECT_EQ(active["packages"].Size(), 2u);

    auto metrics = httpGet(url_ + "/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_NE(metrics->body.find("hoist_node_generation 1"), std::string::npos) << metrics->body;
    EXPECT_NE(metrics->body.find("hoist_node_service_running 1"), std::string::npos);
    EXPECT_NE(metrics->body.find("hoist_node_stages_total{result=\"ok\"} 1"), std::string::npos);
}

TEST_F(ServeTest, MutatingRoutesNeedTheBearerToken) {
    startServe({"--no-register"});
    auto sha = mesos1_.ref.sha256;
    struct Call {
        std::string method, path, body;
    };
    std::vector<Call> calls = {{"PUT", "/v1/packages/" + sha, "{}"},
                               {"DELETE", "/v1/packages/" + sha, ""},
                               {"POST", "/v1/stage", "{\"release\":\"1.0.0\"}"},
                               {"POST", "/v1/restart", "{\"generation\":1}"},
                               {"POST", "/v1/rollback", "{}"}};
    for (const auto& c : calls) {
        auto none = httpSend(c.method, url_ + c.path, c.body, "");
        ASSERT_TRUE(none);
        EXPECT_EQ(none->status, 401) << c.path;
        EXPECT_EQ(none->body, "{\"error\":\"missing bearer token\"}");
        auto wrong = httpSend(c.method, url_ + c.path, c.body, "not-the-token");
        ASSERT_TRUE(wrong);
        EXPECT_EQ(wrong->status, 401) << c.path;
        EXPECT_EQ(wrong->body, "{\"error\":\"wrong bearer token\"}");
    }
    // Nothing changed.
    EXPECT_FALSE(fs::exists(root_ / "generations/1"));
    EXPECT_TRUE(fs::is_empty(root_ / "store") || !fs::exists(root_ / "store" / sha));
}

TEST_F(ServeTest, StageIsIdempotentAndFetchesFromTheRepository) {
    startServe({"--no-register"});
    auto first = post("/v1/stage", "{\"release\":\"1.0.0\"}");
    ASSERT_TRUE(first);
    ASSERT_EQ(first->status, 200) << first->body;
    auto doc = body(first);
    EXPECT_EQ(doc["generation"].GetInt64(), 1);
    EXPECT_STREQ(doc["release"].GetString(), "1.0.0");
    auto second = post("/v1/stage", "{\"release\":\"1.0.0\"}");
    ASSERT_TRUE(second);
    EXPECT_EQ(second->status, 200);
    EXPECT_EQ(body(second)["generation"].GetInt64(), 1);
    EXPECT_FALSE(fs::exists(root_ / "generations/2"));

    // A bare package list works too (and is a different generation: no release).
    auto refs = "[" + mesos1_.ref.toJson() + "," + config1_.ref.toJson() + "]";
    auto bare = post("/v1/stage", "{\"packages\":" + refs + "}");
    ASSERT_TRUE(bare);
    EXPECT_EQ(bare->status, 200) << bare->body;

    // Refusals name the rule and change nothing.
    auto both = post("/v1/stage", "{\"release\":\"1.0.0\",\"packages\":" + refs + "}");
    ASSERT_TRUE(both);
    EXPECT_EQ(both->status, 400);
    EXPECT_EQ(both->body, "{\"error\":\"stage: give exactly one of 'release' or 'packages'\"}");
    auto missing = post("/v1/stage", "{\"release\":\"9.9.9\"}");
    ASSERT_TRUE(missing);
    EXPECT_EQ(missing->status, 404);
    EXPECT_NE(missing->body.find("release 9.9.9 is not in the repository"), std::string::npos);
    auto typo = post("/v1/stage", "{\"relase\":\"1.0.0\"}");
    ASSERT_TRUE(typo);
    EXPECT_EQ(typo->status, 400);
    EXPECT_NE(typo->body.find("unknown field 'relase'"), std::string::npos) << typo->body;
}

TEST_F(ServeTest, StageRefusesAReleaseThatDoesNotUpgradeFromTheCurrentOne) {
    startServe({"--no-register"});
    runRelease1();
    publishRelease("3.0.0", {"2.*"}, {mesosPackage("3.0.0"), configPackage("3.0.0", {})});
    auto refused = post("/v1/stage", "{\"release\":\"3.0.0\"}");
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->status, 409) << refused->body;
    EXPECT_NE(refused->body.find("1.0.0"), std::string::npos) << refused->body;
    EXPECT_FALSE(fs::exists(root_ / "generations/2"));
}

TEST_F(ServeTest, RestartSwapsThroughTheDetachedHelper) {
    RecordingCoordinator coordinator;
    startServe({"--no-register"});
    runRelease1();
    publishRelease("2.0.0", {"1.*"}, {mesosPackage("2.0.0"), configPackage("2.0.0", {})});
    auto staged = post("/v1/stage", "{\"release\":\"2.0.0\"}");
    ASSERT_TRUE(staged);
    ASSERT_EQ(staged->status, 200) << staged->body;
    EXPECT_EQ(body(staged)["generation"].GetInt64(), 2);

    auto restart = post("/v1/restart", "{\"generation\":2,\"deployment\":\"d-9\",\"report_to\":\"" +
                                           coordinator.url() + "\"}");
    ASSERT_TRUE(restart);
    ASSERT_EQ(restart->status, 202) << restart->body;
    std::string op = body(restart)["operation"].GetString();
    // One transaction at a time.
    auto second = post("/v1/restart", "{\"generation\":2}");
    ASSERT_TRUE(second);
    EXPECT_EQ(second->status, 409) << second->body;

    EXPECT_EQ(waitForOperation(op), "healthy");
    EXPECT_EQ(runningVersion(), "2.0.0");
    auto node = body(httpGet(url_ + "/v1/node"));
    EXPECT_EQ(node["generation"].GetInt64(), 2);
    EXPECT_STREQ(node["release"].GetString(), "2.0.0");
    EXPECT_TRUE(waitFor([&] { return coordinator.pings().size() == 5; }, std::chrono::seconds(10)));

    // Rollback goes to the previous generation. The swap's helper may still be running for a
    // moment after its journal closed (its courier stops once the outbox is empty, and serve's
    // courier may be the one that emptied it): until it exits, a new restart is refused.
    std::optional<http::Response> rollback;
    ASSERT_TRUE(waitFor(
        [&] {
            rollback = post("/v1/rollback", "{\"deployment\":\"d-9\"}");
            return !rollback ||
                   rollback->body.find("a restart helper is still running") == std::string::npos;
        },
        std::chrono::seconds(10)));
    ASSERT_TRUE(rollback);
    ASSERT_EQ(rollback->status, 202) << rollback->body;
    auto rb = body(rollback);
    EXPECT_EQ(rb["generation"].GetInt64(), 1);
    EXPECT_EQ(waitForOperation(rb["operation"].GetString()), "healthy");
    EXPECT_EQ(runningVersion(), "1.0.0");
}

// Fencing: once a node has seen a coordinator epoch, a command under a lower one is refused
// with 409 naming both, before anything is fetched or stopped, also after serve restarts.
TEST_F(ServeTest, ACommandUnderALowerCoordinatorEpochIsRefusedAcrossRestarts) {
    startServe({"--no-register"});
    runRelease1();
    publishRelease("2.0.0", {"1.*"}, {mesosPackage("2.0.0"), configPackage("2.0.0", {})});
    auto staged = post("/v1/stage", R"({"release":"2.0.0","epoch":5})");
    ASSERT_TRUE(staged);
    ASSERT_EQ(staged->status, 200) << staged->body;
    EXPECT_EQ(body(httpGet(url_ + "/v1/node"))["epoch"].GetInt64(), 5);

    const std::string stale =
        "refused: it carries coordinator epoch 4, but this node has already seen epoch 5";
    for (const auto& [path, request] : std::vector<std::pair<std::string, std::string>>{
             {"/v1/stage", R"({"release":"2.0.0","epoch":4})"},
             {"/v1/restart", R"({"generation":2,"epoch":4})"},
             {"/v1/rollback", R"({"epoch":4})"}}) {
        auto refused = post(path, request);
        ASSERT_TRUE(refused);
        EXPECT_EQ(refused->status, 409) << path;
        EXPECT_NE(refused->body.find(stale), std::string::npos) << path << ": " << refused->body;
    }
    EXPECT_FALSE(fs::exists(layout_.txn()));
    EXPECT_EQ(currentGeneration(), 1);

    // A restart of serve (even a SIGKILL) keeps what it has seen.
    serve_->kill(SIGKILL);
    serve_.reset();
    startServe({"--no-register"});
    EXPECT_EQ(body(httpGet(url_ + "/v1/node"))["epoch"].GetInt64(), 5);
    auto after = post("/v1/restart", R"({"generation":2,"epoch":3})");
    ASSERT_TRUE(after);
    EXPECT_EQ(after->status, 409) << after->body;
    EXPECT_NE(after->body.find("epoch 3, but this node has already seen epoch 5"),
              std::string::npos)
        << after->body;
    EXPECT_EQ(currentGeneration(), 1);

    // A newer leader is obeyed, and from then on its epoch is the floor.
    auto restart = post("/v1/restart", R"({"generation":2,"epoch":6})");
    ASSERT_TRUE(restart);
    ASSERT_EQ(restart->status, 202) << restart->body;
    EXPECT_EQ(waitForOperation(body(restart)["operation"].GetString()), "healthy");
    EXPECT_EQ(runningVersion(), "2.0.0");
    EXPECT_EQ(body(httpGet(url_ + "/v1/node"))["epoch"].GetInt64(), 6);

    // The restart helper keeps the same floor when run by hand with an epoch, before it
    // stops anything.
    auto by_hand = helper({"swap", "--to", "1", "--epoch", "5"});
    EXPECT_EQ(by_hand.exit_code, exitCode(Errc::Conflict)) << by_hand.err;
    EXPECT_NE(by_hand.err.find("epoch 5, but this node has already seen epoch 6"),
              std::string::npos)
        << by_hand.err;
    EXPECT_EQ(runningVersion(), "2.0.0");
    EXPECT_EQ(currentGeneration(), 2);
}

TEST_F(ServeTest, RestartRefusesAnUnknownGeneration) {
    startServe({"--no-register"});
    auto restart = post("/v1/restart", "{\"generation\":7}");
    ASSERT_TRUE(restart);
    EXPECT_EQ(restart->status, 404);
    EXPECT_EQ(restart->body, "{\"error\":\"generation 7 does not exist\"}");
    auto bad = post("/v1/restart", "{\"generation\":\"7\"}");
    ASSERT_TRUE(bad);
    EXPECT_EQ(bad->status, 400);
    auto none = post("/v1/rollback", "");
    ASSERT_TRUE(none);
    EXPECT_EQ(none->status, 404);
    EXPECT_EQ(none->body, "{\"error\":\"rollback: no previous generation to go back to\"}");
}

TEST_F(ServeTest, TheSwapOutlivesTheEndpoint) {
    startServe({"--no-register"});
    runRelease1();
    publishRelease("2.0.0", {"1.*"}, {mesosPackage("2.0.0"), configPackage("2.0.0", {})});
    ASSERT_EQ(post("/v1/stage", "{\"release\":\"2.0.0\"}")->status, 200);
    auto restart = post("/v1/restart", "{\"generation\":2}");
    ASSERT_TRUE(restart);
    ASSERT_EQ(restart->status, 202);
    std::string op = body(restart)["operation"].GetString();
    serve_->kill(SIGKILL);
    serve_.reset();
    EXPECT_TRUE(waitFor([&] { return lastOperation() == op && !fs::exists(layout_.txn()); },
                        std::chrono::seconds(30)))
        << readFile(root_ / "run/helper.log");
    EXPECT_EQ(lastState(), "healthy");
    EXPECT_EQ(runningVersion(), "2.0.0");
}

/// The names in store/ that start with ".tmp-" (staging folders of unfinished adds).
std::vector<std::string> storeLeftovers(const pkgmgr::NodeLayout& layout) {
    std::vector<std::string> names;
    std::error_code ec;
    for (fs::directory_iterator it(layout.store(), ec), end; !ec && it != end; it.increment(ec))
        if (it->path().filename().string().starts_with(".tmp-"))
            names.push_back(it->path().filename().string());
    return names;
}

// serve killed in the middle of a stage leaves a staging folder; the next serve removes it at
// start, and a stage removes any that appear while it runs.
TEST_F(ServeTest, StagingLeftoversOfAKilledServeAreRemoved) {
    std::vector<std::string> argv = {PKGMGR_BIN,
                                     "--root",
                                     root_.string(),
                                     "serve",
                                     "--no-register",
                                     "--port-file",
                                     (tmp_ / "crash.port").string(),
                                     "--restart-helper",
                                     RESTART_HELPER_BIN};
    {
        ServerProcess crashing(argv, tmp_ / "crash.port", tmp_ / "crash.log",
                               {{"HOIST_CRASH_AT", "store-add-before-rename"}});
        ASSERT_TRUE(crashing.started());
        (void)httpSend("POST", crashing.url() + "/v1/stage", "{\"release\":\"1.0.0\"}", token_);
        auto outcome = crashing.child().wait(std::chrono::seconds(30));
        ASSERT_TRUE(outcome.has_value()) << readFile(tmp_ / "crash.log");
        ASSERT_EQ(outcome->exit_code, kCrashExitCode);
    }
    ASSERT_FALSE(storeLeftovers(layout_).empty()) << "the crash left no staging folder";

    startServe({"--no-register"});
    EXPECT_EQ(storeLeftovers(layout_), std::vector<std::string>{});

    fs::create_directories(layout_.store() / ".tmp-killed-stage/share");
    auto staged = post("/v1/stage", "{\"release\":\"1.0.0\"}");
    ASSERT_TRUE(staged) << readFile(tmp_ / "serve.log");
    ASSERT_EQ(staged->status, 200) << staged->body;
    EXPECT_EQ(storeLeftovers(layout_), std::vector<std::string>{});
}

// A truncated journal: serve says so (GET /v1/transaction and /v1/node) and refuses restarts
// until `restart-helper recover` has set it aside.
TEST_F(ServeTest, ADamagedJournalIsReportedAndBlocksRestartsUntilRecover) {
    startServe({"--no-register"});
    runRelease1();
    writeFile(layout_.txn(), "{\"operation\":\"op-1\",\"kind\":\"sw");

    auto txn = body(httpGet(url_ + "/v1/transaction"));
    EXPECT_TRUE(txn["active"].GetBool());
    ASSERT_TRUE(txn.HasMember("damaged"));
    EXPECT_NE(std::string(txn["damaged"].GetString()).find("the transaction journal is damaged"),
              std::string::npos);
    auto node = body(httpGet(url_ + "/v1/node"));
    ASSERT_TRUE(node["transaction"].IsObject());
    EXPECT_NE(
        std::string(node["transaction"]["damaged"].GetString()).find("restart-helper recover"),
        std::string::npos);
    auto restart = post("/v1/restart", "{\"generation\":1}");
    ASSERT_TRUE(restart);
    EXPECT_EQ(restart->status, 422) << restart->body;
    EXPECT_NE(restart->body.find("the transaction journal is damaged"), std::string::npos)
        << restart->body;

    // The helper refuses it too, naming the way out.
    for (const auto& verb :
         std::vector<std::vector<std::string>>{{"status"}, {"swap", "--to", "1"}}) {
        auto refused = helper(verb);
        EXPECT_EQ(refused.exit_code, exitCode(Errc::Corrupt)) << verb[0] << ": " << refused.err;
        EXPECT_NE(refused.err.find("run 'restart-helper recover' to set it aside"),
                  std::string::npos)
            << verb[0] << ": " << refused.err;
    }

    auto recovered = helper({"recover"});
    EXPECT_EQ(recovered.exit_code, kExitHealthy) << recovered.out << recovered.err;
    EXPECT_FALSE(fs::exists(layout_.txn()));
    EXPECT_TRUE(serviceHealthy());
    auto after = post("/v1/restart", "{\"generation\":1}");
    ASSERT_TRUE(after);
    ASSERT_EQ(after->status, 202) << after->body;
    EXPECT_EQ(waitForOperation(body(after)["operation"].GetString()), "healthy");
}

TEST_F(ServeTest, PackagesCanBeFetchedListedAndDeleted) {
    startServe({"--no-register"});
    runRelease1();
    auto extra = configPackage("9.0.0", {});
    publish({extra});
    auto sha = extra.ref.sha256;
    auto put =
        httpSend("PUT", url_ + "/v1/packages/" + sha, "{\"id\":\"mesos-config--9.0.0\"}", token_);
    ASSERT_TRUE(put);
    EXPECT_EQ(put->status, 201) << put->body;
    auto again =
        httpSend("PUT", url_ + "/v1/packages/" + sha, "{\"id\":\"mesos-config--9.0.0\"}", token_);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->status, 200);
    auto wrong_id =
        httpSend("PUT", url_ + "/v1/packages/" + sha, "{\"id\":\"mesos--9.0.0\"}", token_);
    ASSERT_TRUE(wrong_id);
    EXPECT_EQ(wrong_id->status, 422);
    EXPECT_EQ(wrong_id->body,
              "{\"error\":\"package " + sha + " is 'mesos-config--9.0.0', not 'mesos--9.0.0'\"}");

    auto list = body(httpGet(url_ + "/v1/packages"));
    ASSERT_EQ(list["packages"].Size(), 3u);
    int in_use = 0;
    for (const auto& p : list["packages"].GetArray()) in_use += p["in_use"].GetBool() ? 1 : 0;
    EXPECT_EQ(in_use, 2);

    auto used = httpSend("DELETE", url_ + "/v1/packages/" + mesos1_.ref.sha256, "", token_);
    ASSERT_TRUE(used);
    EXPECT_EQ(used->status, 409);
    EXPECT_NE(used->body.find("is used by a generation that is kept"), std::string::npos);
    EXPECT_TRUE(fs::exists(root_ / "store" / mesos1_.ref.sha256));

    auto removed = httpSend("DELETE", url_ + "/v1/packages/" + sha, "", token_);
    ASSERT_TRUE(removed);
    EXPECT_EQ(removed->status, 200) << removed->body;
    EXPECT_FALSE(fs::exists(root_ / "store" / sha));
    auto gone = httpSend("DELETE", url_ + "/v1/packages/" + sha, "", token_);
    ASSERT_TRUE(gone);
    EXPECT_EQ(gone->status, 404);
}

TEST_F(ServeTest, RegistersWithTheCoordinator) {
    RecordingCoordinator coordinator;
    reportTo(coordinator.url());
    startServe();
    ASSERT_TRUE(
        waitFor([&] { return !coordinator.registrations().empty(); }, std::chrono::seconds(10)));
    auto reg = coordinator.registrations().front();
    EXPECT_EQ(reg.authorization, "Bearer coord-secret");
    auto doc = json::parseObject(reg.body, "register");
    ASSERT_OK(doc);
    EXPECT_STREQ((*doc)["id"].GetString(), "node-1");
    EXPECT_STREQ((*doc)["role"].GetString(), "agent");
    EXPECT_EQ(std::string((*doc)["address"].GetString()), url_);
    EXPECT_EQ(coordinator.registrations().size(), 1u);
}

// Pings queued before the node is registered (a bootstrap queues its own) go out only once the
// coordinator knows the node, even when the first registration attempts fail; none is refused
// or dropped. When the coordinator later forgets the node, it registers again and delivers.
TEST_F(ServeTest, RegistersBeforeAnyPingAndAgainWhenForgotten) {
    RecordingCoordinator coordinator;
    coordinator.refuseUnregistered();
    coordinator.failRegistrations(2);
    auto config = pkgmgr::NodeConfig::load(layout_);
    ASSERT_OK(config);
    config->coordinator = coordinator.url();
    ASSERT_OK(config->save(layout_));
    auto outbox = pkgmgr::Outbox::open(layout_);
    ASSERT_OK(outbox);
    auto url = pkgmgr::Outbox::statusUrl(coordinator.url(), "node-1");
    for (auto state : {"bootstrapping", "starting", "checking", "healthy"}) {
        pkgmgr::StatusPing ping;
        ping.state = state;
        ping.node = "node-1";
        ASSERT_OK(outbox->enqueue(ping, url));
    }
    startServe();
    auto accepted = [&] {
        std::vector<RecordingCoordinator::Record> out;
        for (const auto& r : coordinator.pings())
            if (r.status == 200) out.push_back(r);
        return out;
    };
    ASSERT_TRUE(waitFor([&] { return accepted().size() == 4; }, std::chrono::seconds(20)))
        << readFile(tmp_ / "serve.log");
    auto records = coordinator.records();
    ASSERT_GE(records.size(), 7u);
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(records[i].path, "/v1/nodes/register") << i;
    EXPECT_EQ(records[2].status, 200);
    for (const auto& r : coordinator.pings()) EXPECT_EQ(r.status, 200) << r.body;
    auto pings = accepted();
    for (size_t i = 0; i < pings.size(); ++i)
        EXPECT_EQ(pkgmgr::StatusPing::fromJson(pings[i].body)->seq,
                  static_cast<std::int64_t>(i + 1));
    // The coordinator's 200 comes before the courier drops the ping from the outbox.
    EXPECT_TRUE(waitFor([&] { return outbox->pending()->empty(); }, std::chrono::seconds(10)));

    // The coordinator loses its registry: the next ping is refused, kept, and delivered after
    // serve has registered again.
    coordinator.forget();
    pkgmgr::StatusPing later;
    later.state = "healthy";
    later.node = "node-1";
    ASSERT_OK(outbox->enqueue(later, url));
    ASSERT_TRUE(waitFor([&] { return accepted().size() == 5; }, std::chrono::seconds(30)))
        << readFile(tmp_ / "serve.log");
    EXPECT_EQ(coordinator.registrations().size(), 4u);
    EXPECT_EQ(pkgmgr::StatusPing::fromJson(accepted().back().body)->seq, 5);
    // The coordinator's 200 comes before the courier drops the ping from the outbox.
    EXPECT_TRUE(waitFor([&] { return outbox->pending()->empty(); }, std::chrono::seconds(10)));
}

TEST_F(ServeTest, RefusesToStartWithoutAToken) {
    fs::remove(root_ / "node.token");
    auto outcome = run({PKGMGR_BIN, "--root", root_.string(), "serve", "--no-register"});
    EXPECT_EQ(outcome.exit_code, exitCode(Errc::Invalid));
    EXPECT_NE(outcome.err.find("no node token: write one to"), std::string::npos) << outcome.err;
}

}  // namespace
}  // namespace hoist::testing
