// restart-helper bootstrap: an empty root becomes a running node, from a file:// repository
// and from repo-server on loopback.

#include "core/crypto.hpp"
#include "core/files.hpp"
#include "node_fixture.hpp"
#include "pkgmgr/node_config.hpp"
#include "restart_helper/helper.hpp"

namespace hoist::testing {
namespace {

using restart_helper::kExitFailed;
using restart_helper::kExitHealthy;

class BootstrapTest : public NodeFixture {
protected:
    void SetUp() override {
        NodeFixture::SetUp();
        // Packages are built with the fixture's node; bootstrap goes to an empty root.
        root_ = tmp_ / "fresh";
        layout_ = pkgmgr::NodeLayout::at(root_);
    }

    std::vector<std::string> bootstrapArgs(const std::string& repo) {
        return {"bootstrap",
                "--repo",
                repo,
                "--release",
                "1.0.0",
                "--role",
                "agent",
                "--id",
                "agent-7",
                "--trusted-key",
                publicKeyFile().string()};
    }
};

TEST_F(BootstrapTest, FromAFileRepository) {
    publishRelease("1.0.0", {}, {mesosPackage("1.0.0"), configPackage("1.0.0", {})});
    ASSERT_FALSE(fs::exists(root_));
    auto boot = helper(bootstrapArgs(repoUrl()));
    ASSERT_EQ(boot.exit_code, kExitHealthy) << boot.err;
    EXPECT_EQ(boot.out, "healthy: generation 0 -> 1\n");
    EXPECT_EQ(runningVersion(), "1.0.0");
    EXPECT_EQ(currentGeneration(), 1);
    auto config = pkgmgr::NodeConfig::load(layout_);
    ASSERT_OK(config);
    EXPECT_EQ(config->id, "agent-7");
    EXPECT_EQ(config->role, "agent");
    EXPECT_EQ(config->release, "1.0.0");
    EXPECT_EQ(config->repository, repoUrl());
    EXPECT_EQ(config->trusted_keys, std::vector<std::string>{"keys/release-0.pub"});
    EXPECT_EQ(readFile(root_ / "keys/release-0.pub"), readFile(publicKeyFile()));
    auto token = config->nodeToken(layout_);
    ASSERT_OK(token);
    EXPECT_EQ(token->size(), 64u);
    EXPECT_EQ(fs::status(root_ / "node.token").permissions() & fs::perms::all, fs::perms(0600));
    EXPECT_TRUE(fs::exists(root_ / "releases/1.0.0.json.sig"));
    EXPECT_EQ(lastSteps(),
              (std::vector<std::string>{"bootstrapping", "starting", "checking", "healthy"}));

    // A second bootstrap refuses: the root holds a node now.
    auto again = helper(bootstrapArgs(repoUrl()));
    EXPECT_EQ(again.exit_code, exitCode(Errc::Conflict));
    EXPECT_NE(again.err.find("already runs generation 1; bootstrap needs an empty root"),
              std::string::npos)
        << again.err;
}

TEST_F(BootstrapTest, FromRepoServerOnLoopback) {
    publishRelease("1.0.0", {}, {mesosPackage("1.0.0"), configPackage("1.0.0", {})});
    writeFile(tmp_ / "repo.token", "repo-token\n", fs::perms(0600));
    ServerProcess repo({REPO_SERVER_BIN, "--root", (tmp_ / "repo").string(), "--listen",
                        "127.0.0.1:0", "--port-file", (tmp_ / "repo.port").string(), "--token-file",
                        (tmp_ / "repo.token").string()},
                       tmp_ / "repo.port", tmp_ / "repo.log");
    ASSERT_TRUE(repo.started()) << readFile(tmp_ / "repo.log");
    auto boot = helper(bootstrapArgs(repo.url()));
    ASSERT_EQ(boot.exit_code, kExitHealthy) << boot.err;
    EXPECT_EQ(runningVersion(), "1.0.0");
    EXPECT_TRUE(serviceHealthy());
    auto config = pkgmgr::NodeConfig::load(layout_);
    ASSERT_OK(config);
    EXPECT_EQ(config->repository, repo.url());
}

TEST_F(BootstrapTest, RefusesABadSignatureAndChangesNothing) {
    publishRelease("1.0.0", {}, {mesosPackage("1.0.0"), configPackage("1.0.0", {})});
    auto other = crypto::ed25519Generate();
    ASSERT_OK(other);
    writeFile(tmp_ / "other.pub", other->public_pem);
    auto boot = helper({"bootstrap", "--repo", repoUrl(), "--release", "1.0.0", "--role", "agent",
                        "--trusted-key", (tmp_ / "other.pub").string()});
    EXPECT_EQ(boot.exit_code, exitCode(Errc::Corrupt)) << boot.err;
    EXPECT_FALSE(fs::exists(root_ / "node.json"));
    EXPECT_FALSE(fs::exists(root_ / "current"));
    EXPECT_FALSE(runningVersion().has_value());
}

TEST_F(BootstrapTest, RefusesAnUnsignedReleaseUnlessAllowed) {
    publishRelease("1.0.0", {}, {mesosPackage("1.0.0"), configPackage("1.0.0", {})},
                   /*sign=*/false);
    auto boot = helper(bootstrapArgs(repoUrl()));
    EXPECT_EQ(boot.exit_code, exitCode(Errc::Unauthorized)) << boot.err;
    EXPECT_NE(boot.err.find("release 1.0.0 is not signed"), std::string::npos) << boot.err;
    EXPECT_FALSE(fs::exists(root_ / "node.json"));

    auto allowed = helper({"bootstrap", "--repo", repoUrl(), "--release", "1.0.0", "--role",
                           "agent", "--allow-unsigned"});
    ASSERT_EQ(allowed.exit_code, kExitHealthy) << allowed.err;
    EXPECT_EQ(runningVersion(), "1.0.0");
}

TEST_F(BootstrapTest, NeedsAKeyOrAllowUnsigned) {
    auto boot = helper({"bootstrap", "--repo", repoUrl(), "--release", "1.0.0", "--role", "agent"});
    EXPECT_EQ(boot.exit_code, exitCode(Errc::Invalid));
    EXPECT_EQ(boot.err,
              "restart-helper: bootstrap: give --trusted-key FILE to verify the release, "
              "or --allow-unsigned\n");
}

TEST_F(BootstrapTest, UnhealthyServiceEndsFailed) {
    publishRelease("1.0.0", {},
                   {mesosPackage("1.0.0", HealthSpec{.deadline_ms = 600}),
                    configPackage("1.0.0", Behaviour{.health = "fail"})});
    auto boot = helper(bootstrapArgs(repoUrl()));
    EXPECT_EQ(boot.exit_code, kExitFailed) << boot.err;
    EXPECT_EQ(lastState(), "failed");
    EXPECT_NE(lastMessage().find("no other generation to go back to"), std::string::npos)
        << lastMessage();
}

}  // namespace
}  // namespace hoist::testing
