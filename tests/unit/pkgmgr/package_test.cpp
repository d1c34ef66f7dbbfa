// The package model: ids, names, versions, package references and pkginfo.json.
#include <gtest/gtest.h>

#include "core/json.hpp"
#include "pkgmgr/package.hpp"
#include "testing.hpp"

namespace hoist::pkgmgr {
namespace {

std::string errorOf(const Result<PkgInfo>& r) {
    return r ? std::string("ok") : r.error().message;
}

constexpr const char* kFullPkgInfo = R"({
  "name": "mesos",
  "version": "1.11.0",
  "kind": "mesos",
  "requires": ["libev"],
  "compatible": {"mesos": ">=1.10.0 <1.12.0"},
  "environment": {"MESOS_LAUNCHER_DIR": "${PKG}/libexec/mesos"},
  "service": {
    "exec": ["bin/mesos-master", "--work_dir=${STATE}/mesos"],
    "health": {"http": "http://127.0.0.1:5050/health", "interval_ms": 200,
               "timeout_ms": 1000, "healthy_after_ms": 2000, "deadline_ms": 60000},
    "stop_timeout_ms": 10000
  }
})";

TEST(PackageId, ParsesNameAndVersion) {
    auto id = PackageId::parse("mesos--1.11.0");
    ASSERT_OK(id);
    EXPECT_EQ(id->name, "mesos");
    EXPECT_EQ(id->version, "1.11.0");
    EXPECT_EQ(id->str(), "mesos--1.11.0");

    auto odd = PackageId::parse("mesos-config--2.0.0+build.1~rc_2-x");
    ASSERT_OK(odd);
    EXPECT_EQ(odd->name, "mesos-config");
    EXPECT_EQ(odd->version, "2.0.0+build.1~rc_2-x");
    // A version may start with '-': the first "--" separates, names cannot end with '-'.
    auto dash = PackageId::parse("a---1");
    ASSERT_OK(dash);
    EXPECT_EQ(dash->name, "a");
    EXPECT_EQ(dash->version, "-1");
}

TEST(PackageId, RefusalsNameThePartAndTheRule) {
    struct Case {
        std::string text;
        std::string message;
    };
    std::vector<Case> cases = {
        {"mesos", "package id 'mesos': must be <name>--<version>"},
        {"Mesos--1.0", "package id 'Mesos--1.0': name 'Mesos' may hold only a-z, 0-9 and '-'"},
        {"--1.0", "package id '--1.0': name must not be empty"},
        {"mesos--", "package id 'mesos--': version must not be empty"},
        {"-mesos--1.0", "package id '-mesos--1.0': name '-mesos' must start with a-z or 0-9"},
        {"mesos--1.0--2", "package id 'mesos--1.0--2': version '1.0--2' must not contain '--'"},
        {"mesos--1 0",
         "package id 'mesos--1 0': version '1 0' may hold only A-Z, a-z, 0-9 and "
         "'.', '_', '+', '~', '-'"},
        {"mesos--1/0",
         "package id 'mesos--1/0': version '1/0' may hold only A-Z, a-z, 0-9 and "
         "'.', '_', '+', '~', '-'"},
        {std::string(65, 'a') + "--1", "package id '" + std::string(65, 'a') + "--1': name '" +
                                           std::string(65, 'a') + "' is longer than 64 characters"},
        {"a--" + std::string(65, '1'), "package id 'a--" + std::string(65, '1') + "': version '" +
                                           std::string(65, '1') + "' is longer than 64 characters"},
    };
    for (const auto& c : cases) {
        auto r = PackageId::parse(c.text);
        ASSERT_FALSE(r) << c.text;
        EXPECT_EQ(r.error().code, Errc::Invalid);
        EXPECT_EQ(r.error().message, c.message);
    }
}

TEST(PackageId, NameRules) {
    EXPECT_OK(validateName("a"));
    EXPECT_OK(validateName("0ab-c9"));
    EXPECT_OK(validateName(std::string(64, 'z')));
    ASSERT_ERROR(validateName("a--b"), Errc::Invalid, "name 'a--b' must not contain '--'");
    ASSERT_ERROR(validateName("ab-"), Errc::Invalid, "name 'ab-' must not end with '-'");
    ASSERT_ERROR(validateName("a_b"), Errc::Invalid, "name 'a_b' may hold only a-z, 0-9 and '-'");
    EXPECT_OK(validateVersion("1.0.0-rc1+b~2_x"));
    ASSERT_ERROR(validateVersion("1.0!"), Errc::Invalid, "version '1.0!' may hold only");
}

TEST(PackageRef, RoundTripsWithFixedKeyOrder) {
    PackageRef ref{"mesos--1.11.0", std::string(64, 'a'), 1234};
    EXPECT_EQ(ref.toJson(),
              R"({"id":"mesos--1.11.0","sha256":")" + std::string(64, 'a') + R"(","size":1234})");
    auto doc = json::parseObject(ref.toJson(), "ref");
    ASSERT_OK(doc);
    auto back = PackageRef::fromJson(*doc, "release 2.0.0");
    ASSERT_OK(back);
    EXPECT_EQ(*back, ref);
}

TEST(PackageRef, Refusals) {
    auto check = [](const std::string& text, const std::string& message) {
        auto doc = json::parse(text, "test");
        ASSERT_OK(doc);
        auto r = PackageRef::fromJson(*doc, "release 2.0.0");
        ASSERT_FALSE(r) << text;
        EXPECT_EQ(r.error().code, Errc::Invalid);
        EXPECT_EQ(r.error().message, message);
    };
    std::string sha(64, 'b');
    check(R"(["x"])",
          "release 2.0.0: a package reference must be an object with id, sha256 and size");
    check(R"({"sha256": ")" + sha + R"(", "size": 1})", "release 2.0.0: field 'id' is required");
    check(R"({"id": "Mesos--1", "sha256": ")" + sha + R"(", "size": 1})",
          "release 2.0.0: package id 'Mesos--1': name 'Mesos' may hold only a-z, 0-9 and '-'");
    check(R"({"id": "mesos--1", "sha256": "ABC", "size": 1})",
          "release 2.0.0: field 'sha256' must be 64 lowercase hex digits, not 'ABC'");
    check(R"({"id": "mesos--1", "sha256": ")" + std::string(64, 'B') + R"(", "size": 1})",
          "release 2.0.0: field 'sha256' must be 64 lowercase hex digits, not '" +
              std::string(64, 'B') + "'");
    check(R"({"id": "mesos--1", "sha256": ")" + sha + R"(", "size": -1})",
          "release 2.0.0: field 'size' must be a non-negative integer");
    check(R"({"id": "mesos--1", "sha256": ")" + sha + R"("})",
          "release 2.0.0: field 'size' is required");
    check(R"({"id": "mesos--1", "sha256": ")" + sha + R"(", "size": 1, "sizee": 2})",
          "release 2.0.0: unknown field 'sizee' (did you mean 'size'?)");
}

TEST(PkgInfo, ParsesTheDesignExample) {
    auto info = PkgInfo::parse(kFullPkgInfo);
    ASSERT_OK(info);
    EXPECT_EQ(info->id().str(), "mesos--1.11.0");
    EXPECT_EQ(info->kind, "mesos");
    EXPECT_EQ(info->requires_names, std::vector<std::string>{"libev"});
    ASSERT_EQ(info->compatible.size(), 1u);
    EXPECT_EQ(info->compatible[0].second, ">=1.10.0 <1.12.0");
    // A hyphen range is a range like any other.
    std::string hyphen = kFullPkgInfo;
    hyphen.replace(hyphen.find(">=1.10.0 <1.12.0"), 16, "1.10.0 - 1.12");
    ASSERT_OK(PkgInfo::parse(hyphen));
    ASSERT_EQ(info->environment.size(), 1u);
    EXPECT_EQ(info->environment[0].first, "MESOS_LAUNCHER_DIR");
    ASSERT_TRUE(info->service);
    EXPECT_EQ(info->service->exec.size(), 2u);
    ASSERT_TRUE(info->service->health);
    EXPECT_EQ(info->service->health->http, "http://127.0.0.1:5050/health");
    EXPECT_EQ(info->service->health->deadline_ms, 60000);
    EXPECT_EQ(info->service->stop_timeout_ms, 10000);
}

TEST(PkgInfo, MinimalAndDefaults) {
    auto info = PkgInfo::parse(R"({"name": "tool", "version": "1", "kind": "tool"})");
    ASSERT_OK(info);
    EXPECT_TRUE(info->requires_names.empty());
    EXPECT_FALSE(info->service);
    auto svc = PkgInfo::parse(
        R"({"name": "m", "version": "1", "kind": "mesos", "service": {"exec": ["bin/m"],
            "health": {"command": ["bin/check"]}}})");
    ASSERT_OK(svc);
    EXPECT_EQ(svc->service->stop_timeout_ms, 10000);
    EXPECT_EQ(svc->service->health->interval_ms, 200);
    EXPECT_EQ(svc->service->health->command, std::vector<std::string>{"bin/check"});
}

TEST(PkgInfo, ToJsonRoundTrips) {
    auto info = PkgInfo::parse(kFullPkgInfo);
    ASSERT_OK(info);
    auto again = PkgInfo::parse(info->toJson());
    ASSERT_OK(again);
    EXPECT_EQ(again->toJson(), info->toJson());
    auto module = PkgInfo::parse(
        R"({"name": "testmod", "version": "1", "kind": "module",
            "module": {"name": "org_apache_mesos_TestModule", "library": "lib/libtest.so",
                       "parameters": {"b": "2", "a": "1"}}})");
    ASSERT_OK(module);
    ASSERT_TRUE(module->module);
    EXPECT_EQ(module->module->parameters[0].first, "b");  // file order kept
    EXPECT_EQ(
        module->toJson(),
        R"({"name":"testmod","version":"1","kind":"module","module":{"name":)"
        R"("org_apache_mesos_TestModule","library":"lib/libtest.so","parameters":{"b":"2","a":"1"}}})");
    auto module_again = PkgInfo::parse(module->toJson());
    ASSERT_OK(module_again);
    EXPECT_EQ(module_again->toJson(), module->toJson());
}

TEST(PkgInfo, EachRefusalNamesTheFieldAndTheRule) {
    struct Case {
        std::string text;
        std::string message;
    };
    const std::string base = R"("name": "m", "version": "1", "kind": "mesos")";
    std::vector<Case> cases = {
        {"[]", "pkginfo.json: must be a JSON object"},
        {"{", "pkginfo.json: invalid JSON at offset 1: Missing a name for object member."},
        {R"({"version": "1", "kind": "tool"})", "pkginfo.json: field 'name' is required"},
        {R"({"name": 5, "version": "1", "kind": "tool"})",
         "pkginfo.json: field 'name' must be a string"},
        {R"({"name": "M", "version": "1", "kind": "tool"})",
         "pkginfo.json: field 'name': name 'M' may hold only a-z, 0-9 and '-'"},
        {R"({"name": "m", "kind": "tool"})", "pkginfo.json: field 'version' is required"},
        {R"({"name": "m", "version": "1--2", "kind": "tool"})",
         "pkginfo.json: field 'version': version '1--2' must not contain '--'"},
        {R"({"name": "m", "version": "1"})", "pkginfo.json: field 'kind' is required"},
        {R"({"name": "m", "version": "1", "kind": "daemon"})",
         "pkginfo.json: field 'kind' must be one of mesos, mesos-config, module, library, tool, "
         "not 'daemon'"},
        {"{" + base + R"(, "kinds": 1})",
         "pkginfo.json: unknown field 'kinds' (did you mean 'kind'?)"},
        {"{" + base + R"(, "colour": 1})", "pkginfo.json: unknown field 'colour'"},
        {"{" + base + R"(, "requires": "libev"})",
         "pkginfo.json: field 'requires' must be an array"},
        {"{" + base + R"(, "requires": [1]})",
         "pkginfo.json: field 'requires' must be an array of strings"},
        {"{" + base + R"(, "requires": ["Libev"]})",
         "pkginfo.json: field 'requires': name 'Libev' may hold only a-z, 0-9 and '-'"},
        {"{" + base + R"(, "requires": ["m"]})",
         "pkginfo.json: field 'requires': a package must not require itself ('m')"},
        {"{" + base + R"(, "requires": ["a", "a"]})",
         "pkginfo.json: field 'requires': 'a' is listed twice"},
        {"{" + base + R"(, "compatible": []})",
         "pkginfo.json: field 'compatible' must be an object"},
        {"{" + base + R"(, "compatible": {"x": 1}})",
         "pkginfo.json: field 'compatible': 'x' must be a string"},
        {"{" + base + R"(, "compatible": {"x": " "}})",
         "pkginfo.json: field 'compatible': the range for 'x' must not be empty"},
        {"{" + base + R"(, "compatible": {"x": "~>1.11"}})",
         "pkginfo.json: field 'compatible': the range for 'x': version range '~>1.11': '~>1.11': "
         "'~>' means different things to npm and Ruby; write ~ (same MINOR) or ^ (same MAJOR)"},
        {"{" + base + R"(, "compatible": {"x": ">=1.0.0 <99999999999999999999"}})",
         "pkginfo.json: field 'compatible': the range for 'x': version range '>=1.0.0 "
         "<99999999999999999999': '<99999999999999999999': 99999999999999999999 is larger than "
         "9007199254740991, the largest version number semver tools agree on"},
        {"{" + base + R"(, "compatible": {"X": ">=1"}})",
         "pkginfo.json: field 'compatible': name 'X' may hold only a-z, 0-9 and '-'"},
        {"{" + base + R"(, "environment": {"1A": "x"}})",
         "pkginfo.json: field 'environment': '1A' is not a variable name (letters, digits and '_', "
         "not starting with a digit)"},
        {"{" + base + R"(, "environment": {"A": 1}})",
         "pkginfo.json: field 'environment': 'A' must be a string"},
        {"{" + base + R"(, "service": []})", "pkginfo.json: field 'service' must be an object"},
        {"{" + base + R"(, "service": {}})", "pkginfo.json service: field 'exec' is required"},
        {"{" + base + R"(, "service": {"exec": []}})",
         "pkginfo.json service: field 'exec' must name a program"},
        {"{" + base + R"(, "service": {"exec": ["x"], "restart": true}})",
         "pkginfo.json service: unknown field 'restart'"},
        {"{" + base + R"(, "service": {"exec": ["x"], "stop_timeout_ms": 0}})",
         "pkginfo.json service: field 'stop_timeout_ms' must be a positive integer"},
        {"{" + base + R"(, "service": {"exec": ["x"], "health": {}}})",
         "pkginfo.json service.health: exactly one of 'http' or 'command' must be given"},
        {"{" + base +
             R"(, "service": {"exec": ["x"], "health": {"http": "http://a", "command": ["c"]}}})",
         "pkginfo.json service.health: exactly one of 'http' or 'command' must be given"},
        {"{" + base + R"(, "service": {"exec": ["x"], "health": {"http": "ftp://a"}}})",
         "pkginfo.json service.health: field 'http' must be an http:// or https:// URL, not "
         "'ftp://a'"},
        {"{" + base + R"(, "service": {"exec": ["x"], "health": {"command": []}}})",
         "pkginfo.json service.health: field 'command' must not be empty"},
        {"{" + base +
             R"(, "service": {"exec": ["x"], "health": {"command": ["c"], "interval_ms": -5}}})",
         "pkginfo.json service.health: field 'interval_ms' must be a positive integer"},
        {"{" + base +
             R"(, "service": {"exec": ["x"], "health": {"command": ["c"], "deadline_ms": "1"}}})",
         "pkginfo.json service.health: field 'deadline_ms' must be an integer"},
        {"{" + base + R"(, "module": {"name": "x", "library": "lib/x.so"}})",
         "pkginfo.json: field 'module' is allowed only with kind 'module', not 'mesos'"},
        {R"({"name": "x", "version": "1", "kind": "module", "module": {"library": "lib/x.so"}})",
         "pkginfo.json module: field 'name' is required"},
        {R"({"name": "x", "version": "1", "kind": "module", "module": {"name": "n", "library": "/lib/x.so"}})",
         "pkginfo.json module: field 'library' must be a path inside the package, not '/lib/x.so'"},
        {R"({"name": "x", "version": "1", "kind": "module", "module": {"name": "n", "library": "lib/../../x.so"}})",
         "pkginfo.json module: field 'library' must be a path inside the package without '.', '..' "
         "or "
         "'//', not 'lib/../../x.so'"},
    };
    for (const auto& c : cases) {
        auto r = PkgInfo::parse(c.text);
        EXPECT_EQ(errorOf(r), c.message) << c.text;
        if (!r) {
            EXPECT_EQ(r.error().code, Errc::Invalid) << c.text;
        }
    }
}

}  // namespace
}  // namespace hoist::pkgmgr
