// `cluster module install|remove`: a change that changes nothing, or a removal a remaining
// package still requires, is refused before anything is uploaded or published.

#include <sstream>

#include <gtest/gtest.h>

#include "core/crypto.hpp"
#include "local_repo.hpp"
#include "module_release.hpp"
#include "pkgmgr/pack.hpp"
#include "pkgmgr/release.hpp"
#include "testing.hpp"

namespace hoist::cluster {
namespace {

using hoist::testing::TempFolder;

class ModuleRelease : public ::testing::Test {
protected:
    void SetUp() override {
        auto keys = crypto::ed25519Generate();
        ASSERT_OK(keys);
        testing::writeFile(dir_ / "release.key", keys->private_pem);
        module_ =
            pack("sample-module", "module",
                 R"(, "module": {"name": "org_hoist_Sample", "library": "lib/libs.so"})", true);
        config_ = pack("mesos-config-master", "mesos-config", R"(, "requires": ["sample-module"])",
                       false);
        pkgmgr::Release release;
        release.version = "1.0.0";
        release.roles["master"] = {config_, module_};
        release.roles["agent"] = {module_};
        auto bytes = release.toJson();
        testing::writeFile(dir_ / "repo/releases/1.0.0.json", bytes);
        auto sig = pkgmgr::signRelease(bytes, keys->private_pem);
        ASSERT_OK(sig);
        testing::writeFile(dir_ / "repo/releases/1.0.0.json.sig", *sig);
    }

    pkgmgr::PackageRef pack(const std::string& name, const std::string& kind,
                            const std::string& extra, bool library) {
        auto src = dir_ / "src" / name;
        testing::writeFile(src / "pkginfo.json", R"({"name": ")" + name +
                                                     R"(", "version": "1.0.0", "kind": ")" + kind +
                                                     "\"" + extra + "}");
        if (library) testing::writeFile(src / "lib/libs.so", "not a real library\n");
        auto packed = pkgmgr::packDirectory(src, dir_ / "pkgs" / (name + "--1.0.0.tar.zst"));
        EXPECT_TRUE(packed.has_value()) << packed.error().describe();
        auto ref = packed->ref;
        std::filesystem::create_directories(dir_ / "repo/packages");
        std::filesystem::copy_file(packed->file, dir_ / "repo/packages" / ref.sha256);
        return ref;
    }

    ModuleOptions options(bool install, const std::string& package) {
        ModuleOptions o;
        o.install = install;
        o.package = package;
        o.repo_url = "file://" + (dir_ / "repo").string();
        o.signing_key_file = (dir_ / "release.key").string();
        o.base_version = "1.0.0";
        return o;
    }

    /// What the repository holds besides the base release and the two packages.
    size_t published() {
        size_t n = 0;
        for (const auto& e : std::filesystem::recursive_directory_iterator(dir_ / "repo"))
            if (e.is_regular_file()) ++n;
        return n - 4;
    }

    TempFolder dir_;
    pkgmgr::PackageRef module_;
    pkgmgr::PackageRef config_;
};

TEST_F(ModuleRelease, InstallingAModuleTheReleaseHoldsIsNothingToDo) {
    std::ostringstream log;
    auto o = options(true, (dir_ / "pkgs/sample-module--1.0.0.tar.zst").string());
    ASSERT_ERROR(publishModuleRelease(o, log), Errc::Conflict,
                 "nothing to do: release 1.0.0 already holds sample-module--1.0.0 in every "
                 "chosen role");
    EXPECT_EQ(published(), 0u);
    EXPECT_EQ(log.str(), "");
}

TEST_F(ModuleRelease, RemovingAModuleAnotherPackageRequiresIsRefusedBeforePublishing) {
    std::ostringstream log;
    ASSERT_ERROR(publishModuleRelease(options(false, "sample-module"), log), Errc::Invalid,
                 "role master: package 'mesos-config-master--1.0.0' requires 'sample-module', "
                 "which release 1.0.0+no-sample-module would not hold");
    EXPECT_EQ(published(), 0u);
    // Only from the agents, where nothing requires it: the check passes and the release goes
    // to the repository (which, being a file:// one here, takes no upload).
    auto agents = options(false, "sample-module");
    agents.roles = {"agent"};
    auto version = publishModuleRelease(agents, log);
    ASSERT_FALSE(version.has_value());
    EXPECT_NE(version.error().message.find("releases/1.0.0+no-sample-module.json"),
              std::string::npos)
        << version.error().message;
    EXPECT_EQ(version.error().message.find("requires"), std::string::npos);
    // Removing what is not there is nothing to do.
    auto again = options(false, "metrics");
    ASSERT_ERROR(publishModuleRelease(again, log), Errc::Conflict,
                 "nothing to do: release 1.0.0 holds no package named 'metrics'");
}

TEST_F(ModuleRelease, InstallUploadsThePackageThenTheSignedReleaseThroughTheRepositoryClient) {
    auto other = pack("other-module", "module",
                      R"(, "module": {"name": "org_hoist_Other", "library": "lib/libs.so"})", true);
    std::filesystem::remove(dir_ / "repo/packages" / other.sha256);
    testing::LocalRepo repo(dir_ / "repo");
    ASSERT_EQ(repo.error(), "");
    auto o = options(true, (dir_ / "pkgs/other-module--1.0.0.tar.zst").string());
    o.repo_url = repo.url();

    // A wrong token: refused with the repository's code and words, and nothing is published.
    testing::writeFile(dir_ / "wrong.token", "wrong\n");
    o.repo_token_file = (dir_ / "wrong.token").string();
    std::ostringstream log;
    ASSERT_ERROR(publishModuleRelease(o, log), Errc::Unauthorized,
                 "uploading other-module--1.0.0: PUT " + repo.url() + "/packages/" + other.sha256 +
                     ": HTTP 401: wrong bearer token");
    EXPECT_FALSE(std::filesystem::exists(dir_ / "repo/packages" / other.sha256));
    EXPECT_FALSE(std::filesystem::exists(dir_ / "repo/releases/1.0.0+other-module.json"));

    o.repo_token_file = (dir_ / "repo.token").string();
    auto version = publishModuleRelease(o, log);
    ASSERT_OK(version);
    EXPECT_EQ(*version, "1.0.0+other-module");
    EXPECT_EQ(log.str(), "uploaded other-module--1.0.0 (" + other.sha256 + ")\n");
    EXPECT_TRUE(std::filesystem::exists(dir_ / "repo/packages" / other.sha256));
    auto manifest = testing::readFile(dir_ / "repo/releases/1.0.0+other-module.json");
    auto release = pkgmgr::Release::parse(manifest);
    ASSERT_OK(release);
    EXPECT_EQ(release->roles.at("agent").size(), 2u);
    EXPECT_EQ(release->upgrade_from, std::vector<std::string>{"1.0.0"});
    EXPECT_TRUE(std::filesystem::exists(dir_ / "repo/releases/1.0.0+other-module.json.sig"));

    // Installing it again on the derived release is nothing to do, refused before any upload.
    o.base_version = "1.0.0+other-module";
    o.new_version = "1.0.1";
    std::ostringstream quiet;
    auto same = publishModuleRelease(o, quiet);
    ASSERT_FALSE(same.has_value());
    EXPECT_EQ(same.error().code, Errc::Conflict) << same.error().describe();
}

}  // namespace
}  // namespace hoist::cluster
