#pragma once

// A real fleet for the coordinator's integration tests: repo-server serving signed releases of
// the stand-in mesos, the real deploy-coordinator, and nodes bootstrapped by the real restart
// helper running `pkgmgr serve` (pushed to, or pulling their desired state). Its targets define
// COORDINATOR_BIN, RESTART_HELPER_BIN, PKGMGR_BIN and REPO_SERVER_BIN.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.hpp"
#include "node/node_fixture.hpp"
#include "pkgmgr/release.hpp"
#include "pkgmgr/service.hpp"
#include "restart_helper/helper.hpp"

namespace hoist::testing {

inline constexpr std::string_view kFleetNodeToken = "node-secret";
inline constexpr std::string_view kFleetAdminToken = "admin-secret";

struct FleetNode {
    std::string id;
    std::string role;
    bool pull = false;
    fs::path root;
    std::unique_ptr<ServerProcess> serve;
};

class FleetFixture : public NodeFixture {
protected:
    /// The tokens; a test's SetUp then publishes its releases and calls startRepo().
    void SetUp() override {
        NodeFixture::SetUp();
        writeFile(tmp_ / "admin.token", std::string(kFleetAdminToken) + "\n");
        writeFile(tmp_ / "halt.token", "halt-secret\n");
        writeFile(tmp_ / "node.token", std::string(kFleetNodeToken) + "\n", fs::perms(0600));
        writeFile(tmp_ / "repo.token", "repo-token\n", fs::perms(0600));
    }

    /// repo-server serving tmp/repo.
    void startRepo() {
        repo_ = std::make_unique<ServerProcess>(
            std::vector<std::string>{REPO_SERVER_BIN, "--root", (tmp_ / "repo").string(),
                                     "--listen", "127.0.0.1:0", "--port-file",
                                     (tmp_ / "repo.port").string(), "--token-file",
                                     (tmp_ / "repo.token").string()},
            tmp_ / "repo.port", tmp_ / "repo.log");
        ASSERT_TRUE(repo_->started()) << readFile(tmp_ / "repo.log");
    }

    /// Stops every node's endpoint and service.
    void TearDown() override {
        for (auto& n : nodes_) {
            n.serve.reset();
            auto manager = pkgmgr::makeProcessManager(pkgmgr::NodeLayout::at(n.root));
            EXPECT_OK(manager->stop(std::chrono::seconds(5)));
        }
        NodeFixture::TearDown();
    }

    /// A signed release naming the stand-in mesos and its config (behaving so) for both roles.
    void publishBothRoles(const std::string& version, const std::vector<std::string>& from,
                          const Behaviour& behaviour = {}) {
        std::vector<BuiltPackage> packages = {mesosPackage(version),
                                              configPackage(version, behaviour)};
        publish(packages);
        pkgmgr::Release release;
        release.version = version;
        release.upgrade_from = from;
        for (const char* role : {"master", "agent"})
            for (const auto& p : packages) release.roles[role].push_back(p.ref);
        auto text = release.toJson();
        writeFile(tmp_ / "repo/releases" / (version + ".json"), text);
        publicKeyFile();
        auto signature = pkgmgr::signRelease(text, readFile(tmp_ / "release.key"));
        ASSERT_OK(signature);
        writeFile(tmp_ / "repo/releases" / (version + ".json.sig"), *signature + "\n");
    }

    /// (Re)starts the coordinator on `port` (0: a free one) with the fixture's tokens.
    void startCoordinator(const std::vector<std::string>& extra = {}, int port = 0) {
        coordinator_.reset();
        std::vector<std::string> argv{COORDINATOR_BIN,
                                      "--state",
                                      (tmp_ / "state.db").string(),
                                      "--listen",
                                      "127.0.0.1:" + std::to_string(port),
                                      "--port-file",
                                      (tmp_ / "coord.port").string(),
                                      "--repo",
                                      repo_->url(),
                                      "--trusted-key",
                                      publicKeyFile().string(),
                                      "--admin-token-file",
                                      (tmp_ / "admin.token").string(),
                                      "--halt-token-file",
                                      (tmp_ / "halt.token").string(),
                                      "--node-token-file",
                                      (tmp_ / "node.token").string(),
                                      "--poll-after-ms",
                                      "1500"};
        argv.insert(argv.end(), extra.begin(), extra.end());
        coordinator_ =
            std::make_unique<ServerProcess>(argv, tmp_ / "coord.port", tmp_ / "coord.log");
        ASSERT_TRUE(coordinator_->started()) << readFile(tmp_ / "coord.log");
    }

    /// Bootstraps a node on 1.0.0 and starts its endpoint. A pull node registers an address
    /// nothing listens on: any call the coordinator made to it would fail.
    void addNode(const std::string& id, const std::string& role, bool pull = false) {
        FleetNode n{id, role, pull, tmp_ / "nodes" / id, nullptr};
        auto boot =
            run({RESTART_HELPER_BIN, "--root", n.root.string(), "bootstrap", "--repo", repo_->url(),
                 "--release", "1.0.0", "--role", role, "--id", id, "--trusted-key",
                 publicKeyFile().string(), "--coordinator", coordinator_->url(),
                 "--coordinator-token-file", (tmp_ / "node.token").string()});
        ASSERT_EQ(boot.exit_code, restart_helper::kExitHealthy) << boot.err;
        // The token the coordinator presents to node endpoints.
        writeFile(n.root / "node.token", std::string(kFleetNodeToken) + "\n", fs::perms(0600));
        auto port_file = tmp_ / (id + ".port");
        std::vector<std::string> argv = {
            PKGMGR_BIN,    "--root",           n.root.string(),    "serve",
            "--port-file", port_file.string(), "--restart-helper", RESTART_HELPER_BIN};
        if (pull) {
            argv.insert(argv.end(), {"--pull-interval-ms", "150", "--advertise-url",
                                     "http://127.0.0.1:1/unreachable/" + id});
        }
        n.serve = std::make_unique<ServerProcess>(argv, port_file, tmp_ / (id + ".log"));
        ASSERT_TRUE(n.serve->started()) << readFile(tmp_ / (id + ".log"));
        nodes_.push_back(std::move(n));
    }

    /// A request to the coordinator, as admin unless another token is given.
    http::Response call(const std::string& method, const std::string& path,
                        const std::string& body = "", std::string_view token = kFleetAdminToken) {
        auto r = httpSend(method, coordinator_->url() + path, body, std::string(token));
        EXPECT_TRUE(r.has_value()) << method << " " << path;
        return r ? *r : http::Response{};
    }

    json::Document parsed(const http::Response& r) {
        auto doc = json::parse(r.body, "reply");
        EXPECT_TRUE(doc.has_value()) << r.body;
        return doc ? std::move(*doc) : json::Document{};
    }

    /// The coordinator lists `count` nodes within 20 s.
    bool waitRegistered(size_t count) {
        return waitFor(
            [&] {
                auto doc = parsed(call("GET", "/v1/nodes"));
                return doc.IsObject() && doc["nodes"].Size() == count;
            },
            std::chrono::seconds(20));
    }

    std::unique_ptr<ServerProcess> repo_;
    std::unique_ptr<ServerProcess> coordinator_;
    std::vector<FleetNode> nodes_;
};

}  // namespace hoist::testing
