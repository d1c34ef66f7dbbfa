// config-gen release: composition rules, signing, and a composed release that pkgmgr accepts.

#include <gtest/gtest.h>

#include <sstream>

#include "config_gen/cli.hpp"
#include "config_gen/release.hpp"
#include "core/crypto.hpp"
#include "support.hpp"
#include "testing.hpp"

namespace hoist::config_gen {
namespace {

using testing::readFile;
using testing::TempFolder;
using testing::writeFile;

/// Packages and keys shared by the tests: mesos 1.0.0 and 1.1.0, a config package per role,
/// an agent config that loads module mod-a, the module itself, and a base release 1.0.0.
class ReleaseTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto keys = crypto::ed25519Generate();
        ASSERT_OK(keys);
        writeFile(tmp_ / "release.key", keys->private_pem);
        writeFile(tmp_ / "release.pub", keys->public_pem);
        private_pem_ = keys->private_pem;
        public_pem_ = keys->public_pem;

        test::makeMesosDir(tmp_ / "src/mesos-1.0.0", "1.0.0");
        test::makeMesosDir(tmp_ / "src/mesos-1.1.0", "1.1.0");
        test::makeModuleDir(tmp_ / "src/mod-a", "mod-a", "1.0.0", "org_example_A",
                            R"({"level": "3"})");
        test::makePlainDir(tmp_ / "src/tool", "hoist-tool", "1.0", "tool");
        mesos_ = test::pack(tmp_ / "src/mesos-1.0.0", tmp_ / "pkgs/mesos-1.0.0.tar.zst").ref;
        mesos_new_ = test::pack(tmp_ / "src/mesos-1.1.0", tmp_ / "pkgs/mesos-1.1.0.tar.zst").ref;
        module_ = test::pack(tmp_ / "src/mod-a", tmp_ / "pkgs/mod-a.tar.zst").ref;
        tool_ = test::pack(tmp_ / "src/tool", tmp_ / "pkgs/tool.tar.zst").ref;

        auto schema = Schema::embedded();
        ASSERT_OK(schema);
        auto config = [&](const std::string& role, const std::string& options, bool with_module,
                          const std::string& version) {
            PackageRequest request;
            request.role = role;
            request.options_json = options;
            request.version = version;
            if (with_module) request.modules.push_back(*readPackage(tmp_ / "src/mod-a"));
            auto content = renderConfig(*schema, request);
            EXPECT_TRUE(content.has_value()) << content.error().describe();
            auto packed = writeConfigPackage(*content, tmp_ / "pkgs");
            EXPECT_TRUE(packed.has_value()) << packed.error().describe();
            return packed->ref;
        };
        master_config_ =
            config("master", R"({"zk": "zk://zk1:2181/mesos", "quorum": 1})", false, "1.0.0");
        agent_config_ = config("agent", R"({"master": "zk://zk1:2181/mesos"})", false, "1.0.0");
        agent_config_mod_ = config("agent", R"({"master": "zk://zk1:2181/mesos"})", true, "2.0.0");

        base_.version = "1.0.0";
        base_.upgrade_from = {"0.*"};
        base_.roles["master"] = {mesos_, master_config_};
        base_.roles["agent"] = {mesos_, agent_config_};
        writeFile(tmp_ / "base/1.0.0.json", base_.toJson());
    }

    fs::path pkg(const std::string& name) const { return tmp_ / "pkgs" / name; }
    fs::path configTarball(const pkgmgr::PackageRef& ref) const { return pkg(ref.id + ".tar.zst"); }

    PackageSource source(const fs::path& path) {
        auto read = readPackage(path);
        EXPECT_TRUE(read.has_value()) << read.error().describe();
        return *read;
    }

    TempFolder tmp_;
    std::string private_pem_, public_pem_;
    pkgmgr::PackageRef mesos_, mesos_new_, module_, tool_, master_config_, agent_config_,
        agent_config_mod_;
    pkgmgr::Release base_;
};

TEST_F(ReleaseTest, ComposesReplacementsAndModules) {
    ReleaseChanges changes;
    changes.version = "1.1.0";
    changes.replace = {source(pkg("mesos-1.1.0.tar.zst")),
                       source(configTarball(agent_config_mod_))};
    changes.add_modules = {source(pkg("mod-a.tar.zst"))};
    auto composed = composeRelease(base_, changes);
    ASSERT_OK(composed);
    const auto& r = composed->release;
    EXPECT_EQ(r.version, "1.1.0");
    EXPECT_EQ(r.upgrade_from, (std::vector<std::string>{"1.*", "0.*"}));
    EXPECT_EQ(r.roles.at("master"),
              (std::vector<pkgmgr::PackageRef>{mesos_new_, master_config_, module_}));
    EXPECT_EQ(r.roles.at("agent"),
              (std::vector<pkgmgr::PackageRef>{mesos_new_, agent_config_mod_, module_}));
    EXPECT_EQ(composed->changes,
              (std::vector<std::string>{
                  "agent: replaced mesos--1.0.0 with mesos--1.1.0",
                  "master: replaced mesos--1.0.0 with mesos--1.1.0",
                  "agent: replaced mesos-config-agent--1.0.0 with mesos-config-agent--2.0.0",
                  "agent: added mod-a--1.0.0",
                  "master: added mod-a--1.0.0",
              }));
    // The base is untouched.
    EXPECT_EQ(base_.roles.at("agent"), (std::vector<pkgmgr::PackageRef>{mesos_, agent_config_}));
}

TEST_F(ReleaseTest, RoleRestrictionRemovalAndUpgradeFromOverride) {
    ReleaseChanges add;
    add.version = "1.0.1";
    add.add_modules = {source(pkg("mod-a.tar.zst"))};
    add.roles = {"agent"};
    add.upgrade_from = {"1.0.*"};
    auto added = composeRelease(base_, add);
    ASSERT_OK(added);
    EXPECT_EQ(added->release.upgrade_from, std::vector<std::string>{"1.0.*"});
    EXPECT_EQ(added->release.roles.at("master"), base_.roles.at("master"));
    EXPECT_EQ(added->release.roles.at("agent").back(), module_);

    ReleaseChanges remove;
    remove.version = "2.0.0";
    remove.remove_modules = {"mod-a"};
    auto removed = composeRelease(added->release, remove);
    ASSERT_OK(removed);
    EXPECT_EQ(removed->release.roles.at("agent"), base_.roles.at("agent"));
    EXPECT_EQ(removed->release.upgrade_from, (std::vector<std::string>{"1.*", "1.0.*"}));
    EXPECT_EQ(removed->changes, std::vector<std::string>{"agent: removed mod-a--1.0.0"});

    // Ranges are accepted beside globs; anything else is refused before the release is built.
    ReleaseChanges ranged = remove;
    ranged.upgrade_from = {">=1.0 <2", "^1.0"};
    auto with_range = composeRelease(added->release, ranged);
    ASSERT_OK(with_range);
    EXPECT_TRUE(with_range->release.allowsUpgradeFrom("1.0.1"));
    EXPECT_FALSE(with_range->release.allowsUpgradeFrom("2.0.0"));
    ranged.upgrade_from = {"~>1.0"};
    ASSERT_ERROR(composeRelease(added->release, ranged), Errc::Invalid,
                 "--upgrade-from: upgrade_from pattern '~>1.0' is neither a glob");
}

TEST_F(ReleaseTest, RefusesWithMessagesNamingThePackageAndTheRule) {
    auto compose = [&](auto edit) {
        ReleaseChanges changes;
        changes.version = "1.1.0";
        edit(changes);
        return composeRelease(base_, changes);
    };
    const std::string mesos_path = pkg("mesos-1.1.0.tar.zst").string();
    const std::string module_path = pkg("mod-a.tar.zst").string();

    ASSERT_ERROR(compose([](ReleaseChanges& c) { c.version = "1.0.0"; }), Errc::Invalid,
                 "release version '1.0.0' must be newer than the base's version '1.0.0'");
    ASSERT_ERROR(compose([](ReleaseChanges& c) { c.version = "0.9.9"; }), Errc::Invalid,
                 "release version '0.9.9' must be newer than the base's version '1.0.0'");
    ASSERT_ERROR(compose([](ReleaseChanges& c) { c.version = "1.1--0"; }), Errc::Invalid, "'--'");
    ASSERT_ERROR(compose([](ReleaseChanges& c) { c.roles = {"worker"}; }), Errc::Invalid,
                 "--role 'worker': base release 1.0.0 has no such role (it has agent, master)");
    ASSERT_ERROR(
        compose([&](ReleaseChanges& c) { c.replace = {source(module_path)}; }), Errc::Invalid,
        "--replace " + module_path +
            ": no role (agent, master) of release 1.0.0 holds a package named 'mod-a' (use "
            "--add-module to add a module)");
    ASSERT_ERROR(compose([&](ReleaseChanges& c) {
                     c.replace = {source(mesos_path), source(mesos_path)};
                 }),
                 Errc::Invalid, "--replace " + mesos_path + ": package 'mesos' is given twice");
    ASSERT_ERROR(
        compose([&](ReleaseChanges& c) { c.add_modules = {source(mesos_path)}; }), Errc::Invalid,
        "--add-module " + mesos_path + ": package 'mesos--1.1.0' is of kind 'mesos', not module");
    ASSERT_ERROR(compose([&](ReleaseChanges& c) { c.add_modules = {source(pkg("tool.tar.zst"))}; }),
                 Errc::Invalid, "package 'hoist-tool--1.0' is of kind 'tool', not module");
    ASSERT_ERROR(compose([&](ReleaseChanges& c) { c.add_modules = {source(tmp_ / "src/mod-a")}; }),
                 Errc::Invalid,
                 "--add-module " + (tmp_ / "src/mod-a").string() + ": must be a package tarball");
    ASSERT_ERROR(
        compose([](ReleaseChanges& c) { c.remove_modules = {"mod-x"}; }), Errc::Invalid,
        "--remove-module 'mod-x': no role (agent, master) of release 1.0.0 holds a package of "
        "that name");
    ASSERT_ERROR(compose([](ReleaseChanges& c) { c.remove_modules = {"mesoss"}; }), Errc::Invalid,
                 "holds a package of that name (did you mean 'mesos'?)");
    // The new agent config loads mod-a, so mod-a must come with it.
    ASSERT_ERROR(
        compose([&](ReleaseChanges& c) { c.replace = {source(configTarball(agent_config_mod_))}; }),
        Errc::Invalid,
        "role agent: package 'mesos-config-agent--2.0.0' requires 'mod-a', which release 1.1.0 "
        "does not hold");

    ReleaseChanges twice;
    twice.version = "1.1.0";
    twice.add_modules = {source(module_path)};
    auto with_module = composeRelease(base_, twice);
    ASSERT_OK(with_module);
    twice.version = "1.2.0";
    ASSERT_ERROR(
        composeRelease(with_module->release, twice), Errc::Invalid,
        "--add-module " + module_path +
            ": role agent already holds 'mod-a--1.0.0' (use --replace to change its version)");
}

TEST_F(ReleaseTest, WritesSignedManifestAndRefusesToOverwriteOtherContent) {
    ReleaseChanges changes;
    changes.version = "1.1.0";
    changes.replace = {source(pkg("mesos-1.1.0.tar.zst"))};
    auto composed = composeRelease(base_, changes);
    ASSERT_OK(composed);
    auto written = writeSignedRelease(composed->release, private_pem_, tmp_ / "out");
    ASSERT_OK(written);
    EXPECT_EQ(written->manifest, tmp_ / "out/1.1.0.json");
    const std::string bytes = readFile(written->manifest);
    EXPECT_EQ(bytes, composed->release.toJson());
    EXPECT_OK(pkgmgr::verifyReleaseSignature(bytes, readFile(written->signature), {public_pem_}));
    // The same release again is fine (Ed25519 signatures are deterministic).
    ASSERT_OK(writeSignedRelease(composed->release, private_pem_, tmp_ / "out"));
    EXPECT_EQ(readFile(written->manifest), bytes);

    auto other = composed->release;
    other.upgrade_from = {"0.*"};
    ASSERT_ERROR(writeSignedRelease(other, private_pem_, tmp_ / "out"), Errc::Conflict,
                 (tmp_ / "out/1.1.0.json").string() +
                     " already exists with other content; choose another version");
    EXPECT_EQ(readFile(written->manifest), bytes);
    ASSERT_ERROR(writeSignedRelease(composed->release, "not a key", tmp_ / "out2"), Errc::Invalid,
                 "");
    EXPECT_FALSE(fs::exists(tmp_ / "out2/1.1.0.json"));
}

process::Outcome pkgmgr(const fs::path& root, std::vector<std::string> args) {
    std::vector<std::string> argv{PKGMGR_BIN, "--root", root.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::run(argv);
}

// End to end through the binaries: config-gen composes and signs; pkgmgr verifies the
// signature and checks each role's set in a node store.
TEST_F(ReleaseTest, ComposedReleasePassesPkgmgrVerifyAndCheck) {
    auto r =
        testing::run({CONFIG_GEN_BIN, "release", "--base", (tmp_ / "base/1.0.0.json").string(),
                      "--version", "1.1.0", "--replace", pkg("mesos-1.1.0.tar.zst").string(),
                      "--replace", configTarball(agent_config_mod_).string(), "--add-module",
                      pkg("mod-a.tar.zst").string(), "--sign-key", (tmp_ / "release.key").string(),
                      "-o", (tmp_ / "releases").string(), "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find(R"("upgrade_from":["1.*","0.*"])"), std::string::npos) << r.out;
    const fs::path manifest = tmp_ / "releases/1.1.0.json";

    auto verify =
        pkgmgr(tmp_ / "unused-root",
               {"release", "verify", "--key", (tmp_ / "release.pub").string(), manifest.string()});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;

    const std::map<std::string, std::vector<fs::path>> sets = {
        {"master",
         {pkg("mesos-1.1.0.tar.zst"), configTarball(master_config_), pkg("mod-a.tar.zst")}},
        {"agent",
         {pkg("mesos-1.1.0.tar.zst"), configTarball(agent_config_mod_), pkg("mod-a.tar.zst")}},
    };
    for (const auto& [role, tarballs] : sets) {
        const fs::path root = tmp_ / ("node-" + role);
        for (const auto& tarball : tarballs) {
            auto added = pkgmgr(root, {"add", tarball.string()});
            ASSERT_EQ(added.exit_code, 0) << added.out << added.err;
        }
        auto check = pkgmgr(root, {"check", "--release", manifest.string(), "--role", role, "--key",
                                   (tmp_ / "release.pub").string()});
        EXPECT_EQ(check.exit_code, 0) << role << ": " << check.out << check.err;
    }

    // A release that drops the module the agent config loads fails pkgmgr check on the agent:
    // the check above is a real one.
    r = testing::run({CONFIG_GEN_BIN, "release", "--base", manifest.string(), "--base-key",
                      (tmp_ / "release.pub").string(), "--version", "1.2.0", "--remove-module",
                      "mod-a", "--sign-key", (tmp_ / "release.key").string(), "-o",
                      (tmp_ / "releases").string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out,
              "release 1.2.0 from 1.1.0: 2 change(s)\n"
              "  agent: removed mod-a--1.0.0\n"
              "  master: removed mod-a--1.0.0\n"
              "upgrade_from: 1.*, 0.*\n"
              "wrote " +
                  (tmp_ / "releases/1.2.0.json").string() + " and " +
                  (tmp_ / "releases/1.2.0.json.sig").string() + "\n");
    auto check =
        pkgmgr(tmp_ / "node-agent", {"check", "--release", (tmp_ / "releases/1.2.0.json").string(),
                                     "--role", "agent", "--key", (tmp_ / "release.pub").string()});
    EXPECT_NE(check.exit_code, 0);
    EXPECT_NE((check.out + check.err).find("mod-a"), std::string::npos) << check.out << check.err;
    auto master_check = pkgmgr(tmp_ / "node-master",
                               {"check", "--release", (tmp_ / "releases/1.2.0.json").string(),
                                "--role", "master", "--key", (tmp_ / "release.pub").string()});
    EXPECT_EQ(master_check.exit_code, 0) << master_check.out << master_check.err;

    // A tampered manifest fails verification.
    writeFile(tmp_ / "releases/1.2.0.json", readFile(tmp_ / "releases/1.2.0.json") + " ");
    verify =
        pkgmgr(tmp_ / "unused-root", {"release", "verify", "--key", (tmp_ / "release.pub").string(),
                                      (tmp_ / "releases/1.2.0.json").string()});
    EXPECT_NE(verify.exit_code, 0);
}

TEST_F(ReleaseTest, CliRefusalsExitNonZeroAndWriteNothing) {
    std::ostringstream out, err;
    int code = runCli({"config-gen", "release", "--base", (tmp_ / "base/1.0.0.json").string(),
                       "--version", "1.1.0", "--remove-module", "nothing-here", "--sign-key",
                       (tmp_ / "release.key").string(), "-o", (tmp_ / "releases").string()},
                      out, err);
    EXPECT_EQ(code, exitCode(Errc::Invalid));
    EXPECT_EQ(
        err.str(),
        "config-gen: --remove-module 'nothing-here': no role (agent, master) of release 1.0.0 "
        "holds a package of that name\n");
    EXPECT_FALSE(fs::exists(tmp_ / "releases"));

    // --base-key holds the base to a signature.
    std::ostringstream out3, err3;
    code =
        runCli({"config-gen", "release", "--base", (tmp_ / "base/1.0.0.json").string(),
                "--base-key", (tmp_ / "release.pub").string(), "--version", "1.1.0", "--sign-key",
                (tmp_ / "release.key").string(), "-o", (tmp_ / "releases").string()},
               out3, err3);
    EXPECT_EQ(code, exitCode(Errc::Unauthorized));
    EXPECT_EQ(err3.str(), "config-gen: " + (tmp_ / "base/1.0.0.json").string() +
                              ": the base release is not signed (no " +
                              (tmp_ / "base/1.0.0.json").string() +
                              ".sig), and --base-key asks for a signature\n");
    auto other_keys = crypto::ed25519Generate();
    ASSERT_OK(other_keys);
    auto signature = pkgmgr::signRelease(base_.toJson(), other_keys->private_pem);
    ASSERT_OK(signature);
    writeFile(tmp_ / "base/1.0.0.json.sig", *signature + "\n");
    std::ostringstream out4, err4;
    code =
        runCli({"config-gen", "release", "--base", (tmp_ / "base/1.0.0.json").string(),
                "--base-key", (tmp_ / "release.pub").string(), "--version", "1.1.0", "--sign-key",
                (tmp_ / "release.key").string(), "-o", (tmp_ / "releases").string()},
               out4, err4);
    EXPECT_EQ(code, exitCode(Errc::Corrupt)) << err4.str();
    EXPECT_NE(err4.str().find("1.0.0.json: base release: the release signature does not verify"),
              std::string::npos)
        << err4.str();
    EXPECT_FALSE(fs::exists(tmp_ / "releases"));

    std::ostringstream out2, err2;
    code =
        runCli({"config-gen", "release", "--base", (tmp_ / "base/1.0.0.json").string(), "--version",
                "1.1.0", "--replace", (tmp_ / "src/mesos-1.1.0").string(), "--sign-key",
                (tmp_ / "release.key").string(), "-o", (tmp_ / "releases").string()},
               out2, err2);
    EXPECT_EQ(code, exitCode(Errc::Invalid));
    EXPECT_EQ(err2.str(), "config-gen: --replace " + (tmp_ / "src/mesos-1.1.0").string() +
                              ": must be a package tarball, not a folder\n");
    EXPECT_FALSE(fs::exists(tmp_ / "releases"));
}

}  // namespace
}  // namespace hoist::config_gen
