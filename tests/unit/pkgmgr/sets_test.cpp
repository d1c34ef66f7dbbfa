// Role rules, version ranges and set validation: every rule, with the exact refusal.
#include <gtest/gtest.h>

#include <cstdlib>

#include "core/crypto.hpp"
#include "pkgmgr/sets.hpp"
#include "testing.hpp"

namespace hoist::pkgmgr {
namespace {

using hoist::testing::TempFolder;
using hoist::testing::writeFile;

RoleRules master() {
    auto rules = RoleRules::load("master");
    EXPECT_TRUE(rules.has_value());
    return *rules;
}

// A store entry built by hand: validateSet only reads the info and the files under path.
StoredPackage pkg(const std::string& name, const std::string& version, const std::string& kind,
                  const fs::path& root = {}) {
    StoredPackage p;
    p.info.name = name;
    p.info.version = version;
    p.info.kind = kind;
    p.ref.id = name + "--" + version;
    p.ref.sha256 = crypto::sha256Hex(p.ref.id);
    p.path = root.empty() ? fs::path("/nonexistent") / p.ref.sha256 : root / p.ref.id;
    return p;
}

std::vector<StoredPackage> baseSet() {
    return {pkg("mesos", "1.11.0", "mesos"), pkg("mesos-config", "1.0.0", "mesos-config")};
}

std::string refusal(const std::vector<StoredPackage>& set, const RoleRules& rules) {
    auto result = validateSet(set, rules);
    EXPECT_FALSE(result.has_value());
    if (result) return "";
    EXPECT_EQ(result.error().code, Errc::Invalid);
    return result.error().message;
}

// --- role rules ------------------------------------------------------------------------------

TEST(RoleRules, EmbeddedMasterAndAgent) {
    for (const char* role : {"master", "agent"}) {
        auto rules = RoleRules::load(role);
        ASSERT_OK(rules);
        EXPECT_EQ(rules->role, role);
        EXPECT_EQ(rules->service_kind, "mesos");
        EXPECT_EQ(rules->kinds.at("mesos").min, 1);
        EXPECT_EQ(rules->kinds.at("mesos").max, 1);
        EXPECT_EQ(rules->kinds.at("mesos-config").min, 1);
        EXPECT_EQ(rules->kinds.at("mesos-config").max, 1);
        EXPECT_EQ(rules->kinds.at("module").min, 0);
        EXPECT_EQ(rules->kinds.at("module").max, -1);
    }
}

TEST(RoleRules, EmbeddedCopyMatchesLayoutsFolder) {
    for (const char* role : {"master", "agent"}) {
        auto embedded = RoleRules::load(role);
        auto from_dir = RoleRules::load(role, fs::path(HOIST_SOURCE_DIR) / "layouts");
        ASSERT_OK(embedded);
        ASSERT_OK(from_dir);
        EXPECT_EQ(embedded->kinds.size(), from_dir->kinds.size());
        EXPECT_EQ(embedded->service_kind, from_dir->service_kind);
    }
}

TEST(RoleRules, UnknownRole) {
    ASSERT_ERROR(RoleRules::load("gateway"), Errc::NotFound,
                 "no rules for role 'gateway' (known roles: master, agent)");
    ASSERT_ERROR(RoleRules::load("../etc"), Errc::Invalid, "role '../etc' must match");
}

TEST(RoleRules, ReadsAnotherFolderAndTheEnvironment) {
    TempFolder dir;
    writeFile(
        dir / "roles/edge.json",
        R"({"role": "edge", "service_kind": "tool", "kinds": {"tool": {"min": 1, "max": 1}}})");
    auto rules = RoleRules::load("edge", dir.path());
    ASSERT_OK(rules);
    EXPECT_EQ(rules->service_kind, "tool");
    ASSERT_ERROR(RoleRules::load("edge"), Errc::NotFound, "no rules for role 'edge'");
    ::setenv("HOIST_LAYOUTS", dir.path().c_str(), 1);
    auto from_env = RoleRules::load("edge");
    ::unsetenv("HOIST_LAYOUTS");
    ASSERT_OK(from_env);
    writeFile(dir / "roles/other.json",
              R"({"role": "edge", "kinds": {"mesos": {"min": 1, "max": 1}}})");
    ASSERT_ERROR(RoleRules::load("other", dir.path()), Errc::Invalid,
                 "field 'role' is 'edge' but the file is for role 'other'");
}

TEST(RoleRules, ParseRefusals) {
    ASSERT_ERROR(RoleRules::parse(R"({"role": "m", "kinds": {"daemon": {}}})", "r.json"),
                 Errc::Invalid,
                 "r.json: kind 'daemon' is not a package kind (one of mesos, mesos-config, "
                 "module, library, tool)");
    ASSERT_ERROR(RoleRules::parse(R"({"role": "m", "kinds": {"module": {}}})", "r.json"),
                 Errc::Invalid, "r.json: the service kind 'mesos' is not among the role's kinds");
    ASSERT_ERROR(RoleRules::parse(R"({"role": "m", "kinds": {"mesos": {"min": 1}}})", "r.json"),
                 Errc::Invalid, "r.json: the service kind 'mesos' must have \"max\": 1");
    ASSERT_ERROR(
        RoleRules::parse(R"({"role": "m", "kinds": {"mesos": {"min": 2, "max": 1}}})", "r.json"),
        Errc::Invalid, "r.json: kind 'mesos': 'max' must be at least 'min'");
    ASSERT_ERROR(
        RoleRules::parse(R"({"role": "m", "kinds": {"mesos": {"mni": 1, "max": 1}}})", "r.json"),
        Errc::Invalid, "unknown field 'mni' (did you mean 'min'?)");
    ASSERT_ERROR(RoleRules::parse(R"({"role": "m", "kind": {}})", "r.json"), Errc::Invalid,
                 "unknown field 'kind'");
}

// --- versions --------------------------------------------------------------------------------

TEST(Versions, Compare) {
    EXPECT_EQ(compareVersions("1.11.0", "1.11.0"), 0);
    EXPECT_LT(compareVersions("1.9.0", "1.10.0"), 0);
    EXPECT_GT(compareVersions("2.0.0", "1.99.99"), 0);
    EXPECT_EQ(compareVersions("1.2", "1.2.0"), 0);
    EXPECT_EQ(compareVersions("1", "1.0.0"), 0);
    EXPECT_EQ(compareVersions("1.0.0+build.5", "1.0.0+build.9"), 0);
    EXPECT_EQ(compareVersions("v1.2.3", "1.2.3"), 0);
    EXPECT_LT(compareVersions("1.2.3.4", "1.2.3.5"), 0);
    // semver.org 11.4: 1.0.0-alpha < 1.0.0-alpha.1 < 1.0.0-alpha.beta < 1.0.0-beta
    // < 1.0.0-beta.2 < 1.0.0-beta.11 < 1.0.0-rc.1 < 1.0.0.
    std::vector<std::string> ordered = {"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta",
                                        "1.0.0-beta",  "1.0.0-beta.2",  "1.0.0-beta.11",
                                        "1.0.0-rc.1",  "1.0.0",         "1.0.1-rc1",
                                        "1.0.1",       "1.1.0",         "10.0.0"};
    for (size_t i = 0; i + 1 < ordered.size(); ++i) {
        EXPECT_LT(compareVersions(ordered[i], ordered[i + 1]), 0)
            << ordered[i] << " < " << ordered[i + 1];
        EXPECT_GT(compareVersions(ordered[i + 1], ordered[i]), 0);
    }
    EXPECT_LT(compareVersions("2.0~rc1", "2.0"), 0);
}

TEST(Versions, Ranges) {
    struct Case {
        const char* version;
        const char* range;
        bool expected;
    };
    std::vector<Case> cases = {
        {"1.11.0", ">=1.10.0 <1.12.0", true},
        {"1.12.0", ">=1.10.0 <1.12.0", false},
        {"1.9.9", ">=1.10.0 <1.12.0", false},
        {"1.10.0", ">=1.10.0 <1.12.0", true},
        {"2.0.0", "=2.0.0", true},
        {"2.0.1", "=2.0.0", false},
        {"2.0.0", "2.0.0", true},
        {"2.0.0", "2.0", true},
        {"2.0.0", ">= 1.0", true},
        {"1.5.0", ">1.5.0", false},
        {"1.5.1", ">1.5.0", true},
        {"1.5.0", "<=1.5.0", true},
        {"1.5.0", "!=1.5.0", false},
        {"1.2.9", "^1.2.3", true},
        {"1.9.0", "^1.2.3", true},
        {"2.0.0", "^1.2.3", false},
        {"0.2.5", "^0.2.3", true},
        {"0.3.0", "^0.2.3", false},
        {"1.2.9", "~1.2.3", true},
        {"1.3.0", "~1.2.3", false},
        {"1.4.2", "1.x", true},
        {"2.0.0", "1.x", false},
        {"1.2.7", "1.2.*", true},
        {"1.3.0", "1.2.*", false},
        {"7.0.0", "*", true},
        {"3.0.0", "<2.0.0 || >=3.0.0", true},
        {"2.5.0", "<2.0.0 || >=3.0.0", false},
        // A pre-release only satisfies a range naming a pre-release of the same version.
        {"1.12.0-rc1", ">=1.10.0 <1.12.0", false},
        {"2.0.0-rc.2", ">=2.0.0-rc.1", true},
        {"2.1.0-rc.1", ">=2.0.0-rc.1", false},
        {"2.0.0-rc.1", ">=2.0.0", false},
        {"2.0.0", ">=2.0.0-rc.1", true},
    };
    for (const auto& c : cases) {
        auto result = versionSatisfies(c.version, c.range);
        ASSERT_OK(result);
        EXPECT_EQ(*result, c.expected) << c.version << " in '" << c.range << "'";
    }
}

TEST(Versions, BadRanges) {
    ASSERT_ERROR(versionSatisfies("1.0.0", ">=abc"), Errc::Invalid,
                 "version range '>=abc': '>=abc' is not a comparator");
    ASSERT_ERROR(versionSatisfies("1.0.0", ">="), Errc::Invalid,
                 "version range '>=': '>=' is not followed by a version");
    ASSERT_ERROR(versionSatisfies("1.0.0", "1.0 ||"), Errc::Invalid, "an alternative is empty");
    ASSERT_ERROR(versionSatisfies("1.0.0", "1.x.3"), Errc::Invalid,
                 "has a number after a wildcard");
}

// --- set validation: one test per rule ------------------------------------------------------

TEST(ValidateSet, AValidSet) {
    auto set = baseSet();
    set.push_back(pkg("mod-a", "1.0", "module"));
    set.push_back(pkg("mod-b", "1.0", "module"));
    set.push_back(pkg("libev", "4.33", "library"));
    EXPECT_OK(validateSet(set, master()));
}

TEST(ValidateSet, Empty) {
    EXPECT_EQ(refusal({}, master()), "set: the set is empty");
}

TEST(ValidateSet, UniqueNames) {
    auto set = baseSet();
    set.push_back(pkg("mod-a", "1.0", "module"));
    set.push_back(pkg("mod-a", "1.1", "module"));
    EXPECT_EQ(refusal(set, master()),
              "set: name 'mod-a' appears 2 times ('mod-a--1.0', 'mod-a--1.1'); names in a set "
              "must be unique");
}

TEST(ValidateSet, KindCounts) {
    std::vector<StoredPackage> no_config = {pkg("mesos", "1.11.0", "mesos")};
    EXPECT_EQ(refusal(no_config, master()),
              "set: role 'master' needs exactly 1 package(s) of kind 'mesos-config', the set "
              "holds none");
    auto two = baseSet();
    two.push_back(pkg("mesos-fork", "1.0", "mesos"));
    EXPECT_EQ(refusal(two, master()),
              "set: role 'master' needs exactly 1 package(s) of kind 'mesos', the set holds 2 "
              "('mesos--1.11.0', 'mesos-fork--1.0')");
    auto rules = *RoleRules::parse(
        R"({"role": "slim", "kinds": {"mesos": {"min": 1, "max": 1}, "mesos-config": {"min": 1, "max": 1}}})",
        "slim.json");
    auto with_tool = baseSet();
    with_tool.push_back(pkg("htop", "3.0", "tool"));
    EXPECT_EQ(refusal(with_tool, rules),
              "set: role 'slim' does not allow packages of kind 'tool' ('htop--3.0')");
}

TEST(ValidateSet, ServiceOnlyOnTheServiceKind) {
    auto set = baseSet();
    auto mod = pkg("mod-a", "1.0", "module");
    mod.info.service = ServiceSpec{{"bin/x"}, std::nullopt, 1000};
    set.push_back(mod);
    EXPECT_EQ(refusal(set, master()),
              "set: package 'mod-a--1.0' of kind 'module' declares a service, but role 'master' "
              "runs only the service of the 'mesos' kind");
}

TEST(ValidateSet, Requires) {
    auto set = baseSet();
    set[0].info.requires_names = {"libev"};
    EXPECT_EQ(refusal(set, master()),
              "set: package 'mesos--1.11.0' requires 'libev', which the set does not hold");
    set.push_back(pkg("libev", "4.33", "library"));
    EXPECT_OK(validateSet(set, master()));
}

TEST(ValidateSet, Compatible) {
    auto set = baseSet();
    auto mod = pkg("mod-a", "1.0", "module");
    mod.info.compatible = {{"mesos", ">=1.10.0 <1.11.0"}};
    set.push_back(mod);
    EXPECT_EQ(refusal(set, master()),
              "set: package 'mod-a--1.0' is compatible only with 'mesos' >=1.10.0 <1.11.0, but "
              "the set holds 'mesos--1.11.0'");
    set.back().info.compatible = {{"mesos", ">=1.10.0 <1.12.0"}, {"absent", "9.9"}};
    EXPECT_OK(validateSet(set, master()));
    set.back().info.compatible = {{"mesos", ">>1"}};
    EXPECT_EQ(refusal(set, master()),
              "set: package 'mod-a--1.0': version range '>>1': '>>1' is not a comparator (use "
              ">=, <=, >, <, =, !=, ^ or ~ before a version)");
}

TEST(ValidateSet, Environment) {
    auto set = baseSet();
    set[0].info.environment = {{"MESOS_HOME", "${PKG}"}};
    set[1].info.environment = {{"MESOS_HOME", "/etc"}};
    EXPECT_EQ(refusal(set, master()),
              "set: packages 'mesos--1.11.0' and 'mesos-config--1.0.0' both set the environment "
              "variable 'MESOS_HOME'");
}

TEST(ValidateSet, Paths) {
    TempFolder dir;
    auto set = std::vector<StoredPackage>{pkg("mesos", "1.11.0", "mesos", dir.path()),
                                          pkg("mesos-config", "1.0.0", "mesos-config", dir.path()),
                                          pkg("mod-a", "1.0", "module", dir.path())};
    writeFile(dir / "mesos--1.11.0/bin/mesos-master", "#!/bin/sh\n");
    writeFile(dir / "mesos--1.11.0/lib/mesos/modules/core.so", "x");
    writeFile(dir / "mesos-config--1.0.0/etc/mesos/master.conf", "x");
    // Sharing a folder is fine; sharing a file is not.
    writeFile(dir / "mod-a--1.0/lib/mesos/modules/a.so", "x");
    EXPECT_OK(validateSet(set, master()));
    writeFile(dir / "mod-a--1.0/bin/mesos-master", "#!/bin/sh\n");
    EXPECT_EQ(refusal(set, master()),
              "set: packages 'mesos--1.11.0' and 'mod-a--1.0' both provide 'bin/mesos-master' (no "
              "two packages may put the same path into a well-known folder)");
    fs::remove(dir / "mod-a--1.0/bin/mesos-master");
    // A file in one package where another has a folder.
    writeFile(dir / "mod-a--1.0/etc/mesos", "x");
    EXPECT_EQ(refusal(set, master()),
              "set: packages 'mesos-config--1.0.0' and 'mod-a--1.0' both provide 'etc/mesos' (no "
              "two packages may put the same path into a well-known folder)");
}

TEST(ValidateSet, PathsClashDeepInSharedFolders) {
    TempFolder dir;
    auto set = std::vector<StoredPackage>{pkg("mesos", "1.11.0", "mesos", dir.path()),
                                          pkg("mesos-config", "1.0.0", "mesos-config", dir.path()),
                                          pkg("mod-a", "1.0", "module", dir.path()),
                                          pkg("mod-b", "1.0", "module", dir.path())};
    writeFile(dir / "mesos--1.11.0/lib/mesos/modules/core.so", "x");
    writeFile(dir / "mesos-config--1.0.0/etc/mesos/master.conf", "x");
    writeFile(dir / "mod-a--1.0/lib/mesos/modules/a/a.so", "x");
    writeFile(dir / "mod-b--1.0/lib/mesos/modules/b/b.so", "x");
    EXPECT_OK(validateSet(set, master()));
    // Three packages share lib/mesos/modules; two of them provide the same file in it, and
    // one a folder where another has a file.
    writeFile(dir / "mod-b--1.0/lib/mesos/modules/core.so", "y");
    writeFile(dir / "mod-a--1.0/lib/mesos/modules/b", "z");
    EXPECT_EQ(refusal(set, master()),
              "set: packages 'mod-a--1.0' and 'mod-b--1.0' both provide 'lib/mesos/modules/b' "
              "(no two packages may put the same path into a well-known folder); "
              "packages 'mesos--1.11.0' and 'mod-b--1.0' both provide "
              "'lib/mesos/modules/core.so' (no two packages may put the same path into a "
              "well-known folder)");
}

TEST(ValidateSet, ReportsEveryProblem) {
    auto set = baseSet();
    set[0].info.requires_names = {"libev", "zk"};
    EXPECT_EQ(refusal(set, master()),
              "set: package 'mesos--1.11.0' requires 'libev', which the set does not hold; "
              "package 'mesos--1.11.0' requires 'zk', which the set does not hold");
}

}  // namespace
}  // namespace hoist::pkgmgr
