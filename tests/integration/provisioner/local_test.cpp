// The local backend end to end: the provisioner boots node roots under a folder with
// `restart-helper bootstrap` (from a signed file:// repository holding the stand-in mesos),
// runs `pkgmgr serve` for each on a loopback port, and decommissions them.
#include "core/json.hpp"
#include "node/node_fixture.hpp"

namespace hoist::testing {
namespace {

class ProvisionerLocalTest : public NodeFixture {
protected:
    void SetUp() override {
        NodeFixture::SetUp();
        publishRelease("1.0.0", {}, {mesosPackage("1.0.0"), configPackage("1.0.0", {})});
        writeFile(tmp_ / "prov.token", "prov-token\n", fs::perms(0600));
        coordinator_ = std::make_unique<RecordingCoordinator>();
        server_ = std::make_unique<ServerProcess>(
            std::vector<std::string>{HOIST_PROVISIONER,   "serve",
                                     "--listen",          "127.0.0.1:0",
                                     "--port-file",       (tmp_ / "prov.port").string(),
                                     "--token-file",      (tmp_ / "prov.token").string(),
                                     "--state",           (tmp_ / "prov.db").string(),
                                     "--backend",         "local",
                                     "--nodes-dir",       (tmp_ / "nodes").string(),
                                     "--restart-helper",  RESTART_HELPER_BIN,
                                     "--pkgmgr",          PKGMGR_BIN,
                                     "--repo-url",        repoUrl(),
                                     "--coordinator-url", coordinator_->url(),
                                     "--release",         "1.0.0",
                                     "--trusted-key",     publicKeyFile().string()},
            tmp_ / "prov.port", tmp_ / "prov.log");
        ASSERT_TRUE(server_->started()) << readFile(tmp_ / "prov.log");
    }

    void TearDown() override {
        // Decommission what is left, so no node's processes outlive the test.
        if (server_ && server_->started()) {
            auto doc = nodes();
            for (const auto& n : doc["nodes"].GetArray())
                (void)call("DELETE", std::string("/v1/nodes/") + n["id"].GetString());
        }
        server_.reset();
        NodeFixture::TearDown();
    }

    std::optional<http::Response> call(const std::string& method, const std::string& path,
                                       const std::string& body = "") {
        return httpSend(method, server_->url() + path, body, "prov-token");
    }
    json::Document nodes() {
        auto reply = httpGet(server_->url() + "/v1/nodes");
        auto doc = json::parseObject(reply ? reply->body : "{}", "nodes");
        if (!doc || !doc->HasMember("nodes")) {
            json::Document empty;
            empty.Parse(R"({"nodes":[]})");
            return empty;
        }
        return std::move(*doc);
    }
    bool allIn(const std::string& state, size_t count) {
        auto doc = nodes();
        if (doc["nodes"].Size() != count) return false;
        for (const auto& n : doc["nodes"].GetArray())
            if (std::string(n["state"].GetString()) != state) return false;
        return true;
    }
    pid_t servicePidOf(const fs::path& root) {
        auto text = files::readFile(root / "run/service.pid");
        if (!text) return 0;
        auto doc = json::parseObject(*text, "service.pid");
        if (!doc) return 0;
        auto pid = json::getInt(*doc, "pid", "service.pid");
        return pid ? static_cast<pid_t>(*pid) : 0;
    }

    std::unique_ptr<RecordingCoordinator> coordinator_;
    std::unique_ptr<ServerProcess> server_;
};

TEST_F(ProvisionerLocalTest, TwoAgentsBootAndOneIsDecommissioned) {
    auto added = call("POST", "/v1/nodes", R"({"role":"agent","count":2,"idempotency_key":"l-1"})");
    ASSERT_TRUE(added.has_value());
    ASSERT_EQ(added->status, 201) << added->body;
    auto doc = json::parseObject(added->body, "reply");
    ASSERT_OK(doc);
    ASSERT_EQ((*doc)["nodes"].Size(), 2u);
    std::string first = (*doc)["nodes"][0]["id"].GetString();
    std::string second = (*doc)["nodes"][1]["id"].GetString();
    EXPECT_TRUE(first.starts_with("agent-"));

    ASSERT_TRUE(waitFor([&] { return allIn("running", 2); }, std::chrono::seconds(90)))
        << json::toString(nodes()) << "\nlog of " << first << ":\n"
        << readFile(tmp_ / "nodes" / (first + ".log"));

    // Each node answers on its own loopback port as the node it was told to be.
    auto listed = nodes();
    for (const auto& n : listed["nodes"].GetArray()) {
        std::string address = n["address"].GetString();
        auto node = httpGet("http://" + address + "/v1/node");
        ASSERT_TRUE(node.has_value()) << address;
        EXPECT_EQ(node->status, 200);
        EXPECT_NE(node->body.find(n["id"].GetString()), std::string::npos) << node->body;
        EXPECT_TRUE(fs::exists(tmp_ / "nodes" / n["id"].GetString() / "node.json"));
    }
    EXPECT_TRUE(waitFor(
        [&] {
            std::string all;
            for (const auto& r : coordinator_->registrations()) all += r.body;
            return all.find(first) != std::string::npos && all.find(second) != std::string::npos;
        },
        std::chrono::seconds(20)))
        << "both nodes register with the coordinator";

    // A repeated request changes nothing.
    auto replay =
        call("POST", "/v1/nodes", R"({"role":"agent","count":2,"idempotency_key":"l-1"})");
    ASSERT_TRUE(replay.has_value());
    EXPECT_EQ(replay->status, 200);
    EXPECT_EQ(nodes()["nodes"].Size(), 2u);

    fs::path root = tmp_ / "nodes" / first;
    pid_t service = servicePidOf(root);
    ASSERT_GT(service, 0);
    EXPECT_TRUE(process::alive(service));
    std::string address;
    for (const auto& n : listed["nodes"].GetArray())
        if (first == n["id"].GetString()) address = n["address"].GetString();

    auto removed = call("DELETE", "/v1/nodes/" + first);
    ASSERT_TRUE(removed.has_value());
    ASSERT_EQ(removed->status, 200) << removed->body;
    EXPECT_NE(removed->body.find(R"("state":"terminated")"), std::string::npos);
    EXPECT_FALSE(fs::exists(root));
    EXPECT_TRUE(waitFor([&] { return !process::alive(service); }, std::chrono::seconds(10)))
        << "the node's service is stopped";
    EXPECT_FALSE(httpGet("http://" + address + "/v1/node").has_value())
        << "the node's endpoint is gone";
    auto left = nodes();
    ASSERT_EQ(left["nodes"].Size(), 1u);
    EXPECT_EQ(std::string(left["nodes"][0]["id"].GetString()), second);
}

TEST_F(ProvisionerLocalTest, AFailedBootIsReported) {
    auto added = call("POST", "/v1/nodes",
                      R"({"role":"agent","count":1,"idempotency_key":"l-2","release":"9.9.9"})");
    ASSERT_TRUE(added.has_value());
    ASSERT_EQ(added->status, 201) << added->body;
    ASSERT_TRUE(waitFor([&] { return allIn("failed", 1); }, std::chrono::seconds(30)))
        << json::toString(nodes());
    std::string message = nodes()["nodes"][0]["message"].GetString();
    EXPECT_NE(message.find("boot process exited"), std::string::npos) << message;
}

}  // namespace
}  // namespace hoist::testing
