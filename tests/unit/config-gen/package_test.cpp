// config-gen package: rendering, module handling and byte-reproducibility.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <sstream>

#include "config_gen/cli.hpp"
#include "config_gen/package.hpp"
#include "core/crypto.hpp"
#include "core/json.hpp"
#include "pkgmgr/store.hpp"
#include "support.hpp"
#include "testing.hpp"

namespace hoist::config_gen {
namespace {

using test::cli;
using test::schema;
using testing::readFile;
using testing::TempFolder;
using testing::writeFile;

/// Sets the umask for a scope (it is process-wide: the tests in this binary run serially).
class ScopedUmask {
public:
    explicit ScopedUmask(mode_t mask) : old_(::umask(mask)) {}
    ~ScopedUmask() { ::umask(old_); }

private:
    mode_t old_;
};

void setMtimeRecursively(const fs::path& root, fs::file_time_type when) {
    fs::last_write_time(root, when);
    for (const auto& entry : fs::recursive_directory_iterator(root))
        fs::last_write_time(entry.path(), when);
}

PackageSource readOk(const fs::path& path) {
    auto pkg = readPackage(path);
    EXPECT_TRUE(pkg.has_value()) << (pkg ? "" : pkg.error().describe());
    return pkg ? *pkg : PackageSource{};
}

TEST(RenderConfig, WritesFlagsEnvironmentAndModulesExactly) {
    TempFolder tmp;
    test::makeModuleDir(tmp / "mod-a", "mod-a", "1.0.0", "org_example_A",
                        R"({"b": "2", "a": "1"})");
    PackageRequest request;
    request.role = "agent";
    request.options_json = R"({"master": "10.0.0.1:5050", "resources": "mem:1024;cpus:2",
        "attributes": {"rack": "r1"}, "environment": {"GLOG_v": "1", "EXTRA_OPTS": "a b"}})";
    request.modules.push_back(readOk(tmp / "mod-a"));
    auto content = renderConfig(schema(), request);
    ASSERT_OK(content);

    EXPECT_EQ(content->files.at("etc/mesos/flags"),
              "--attributes=rack:r1\n"
              "--containerizers=mesos\n"
              "--executor_registration_timeout=1mins\n"
              "--executor_shutdown_grace_period=5secs\n"
              "--fetcher_cache_size=2GB\n"
              "--gc_delay=1weeks\n"
              "--hostname_lookup=true\n"
              "--isolation=posix/cpu,posix/mem\n"
              "--logging_level=INFO\n"
              "--master=10.0.0.1:5050\n"
              "--modules=file://${PKG}/etc/mesos/modules.json\n"
              "--port=5051\n"
              "--recover=reconnect\n"
              "--resources=cpus:2;mem:1024\n"
              "--strict=true\n"
              "--switch_user=true\n"
              "--work_dir=${STATE}/mesos\n"
              "--zk_session_timeout=10secs\n");
    EXPECT_EQ(content->files.at("etc/mesos/environment"),
              "EXTRA_OPTS=\"a b\"\n"
              "GLOG_v=1\n"
              "MESOS_ATTRIBUTES=rack:r1\n"
              "MESOS_CONTAINERIZERS=mesos\n"
              "MESOS_EXECUTOR_REGISTRATION_TIMEOUT=1mins\n"
              "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD=5secs\n"
              "MESOS_FETCHER_CACHE_SIZE=2GB\n"
              "MESOS_GC_DELAY=1weeks\n"
              "MESOS_HOSTNAME_LOOKUP=true\n"
              "MESOS_ISOLATION=posix/cpu,posix/mem\n"
              "MESOS_LOGGING_LEVEL=INFO\n"
              "MESOS_MASTER=10.0.0.1:5050\n"
              "MESOS_MODULES=file://${PKG}/etc/mesos/modules.json\n"
              "MESOS_PORT=5051\n"
              "MESOS_RECOVER=reconnect\n"
              "MESOS_RESOURCES=cpus:2;mem:1024\n"
              "MESOS_STRICT=true\n"
              "MESOS_SWITCH_USER=true\n"
              "MESOS_WORK_DIR=${STATE}/mesos\n"
              "MESOS_ZK_SESSION_TIMEOUT=10secs\n");
    auto modules = json::parse(content->files.at("etc/mesos/modules.json"), "modules.json");
    ASSERT_OK(modules);
    EXPECT_EQ(
        json::toString(*modules),
        R"({"libraries":[{"file":"/opt/hoist/current/lib/libmod-a.so","modules":[{"name":)"
        R"("org_example_A","parameters":[{"key":"b","value":"2"},{"key":"a","value":"1"}]}]}]})");

    const auto& info = content->info;
    EXPECT_EQ(info.name, "mesos-config-agent");
    EXPECT_EQ(info.kind, "mesos-config");
    EXPECT_EQ(info.requires_names, std::vector<std::string>{"mod-a"});
    ASSERT_EQ(info.version.size(), std::string("0.0.0+").size() + 12);
    EXPECT_TRUE(info.version.starts_with("0.0.0+")) << info.version;
    EXPECT_EQ(info.environment.front(), (std::pair<std::string, std::string>{"EXTRA_OPTS", "a b"}));
    // The pkginfo environment carries the same variables as etc/mesos/environment.
    EXPECT_EQ(info.environment.size(), 20u);
}

TEST(RenderConfig, NoModulesMeansNoModulesFlag) {
    PackageRequest request;
    request.role = "master";
    request.version = "1.0.0";
    auto content = renderConfig(schema(), request);
    ASSERT_OK(content);
    EXPECT_EQ(content->info.version, "1.0.0");
    EXPECT_EQ(content->info.id().str(), "mesos-config-master--1.0.0");
    EXPECT_EQ(content->files.at("etc/mesos/flags").find("--modules"), std::string::npos);
    EXPECT_EQ(content->files.at("etc/mesos/modules.json"), "{\n  \"libraries\": []\n}\n");
    EXPECT_TRUE(content->info.requires_names.empty());
}

TEST(RenderConfig, VersionFollowsTheContent) {
    PackageRequest a;
    a.role = "master";
    a.options_json = R"({"port": 5050})";
    PackageRequest b = a;
    b.options_json = R"({"port": 5052})";
    PackageRequest c = a;
    c.options_json = "{}";  // the default is 5050 as well
    auto ra = renderConfig(schema(), a);
    auto rb = renderConfig(schema(), b);
    auto rc = renderConfig(schema(), c);
    ASSERT_OK(ra);
    ASSERT_OK(rb);
    ASSERT_OK(rc);
    EXPECT_NE(ra->info.version, rb->info.version);
    EXPECT_EQ(ra->info.version, rc->info.version);
}

TEST(RenderConfig, RefusesBadModules) {
    TempFolder tmp;
    test::makeModuleDir(tmp / "a", "mod-a", "1.0.0", "org_example_A");
    test::makeModuleDir(tmp / "a2", "mod-a", "2.0.0", "org_example_A2");
    test::makeModuleDir(tmp / "b", "mod-b", "1.0.0", "org_example_A");
    test::makePlainDir(tmp / "tool", "tool-x", "1.0", "tool");
    test::makeModuleDir(tmp / "nolib", "mod-c", "1.0.0", "org_example_C");
    fs::remove(tmp / "nolib/lib/libmod-c.so");
    writeFile(tmp / "rootlib/pkginfo.json",
              R"({"name": "mod-d", "version": "1", "kind": "module",
                  "module": {"name": "org_d", "library": "libd.so"}})");
    writeFile(tmp / "rootlib/lib/x", "");

    auto render = [&](std::vector<std::string> dirs) {
        PackageRequest request;
        request.role = "master";
        for (const auto& d : dirs) request.modules.push_back(readOk(tmp / d));
        return renderConfig(schema(), request);
    };
    ASSERT_ERROR(render({"tool"}), Errc::Invalid,
                 (tmp / "tool").string() + ": package 'tool-x--1.0' is of kind 'tool', not module");
    ASSERT_ERROR(
        render({"nolib"}), Errc::Invalid,
        (tmp / "nolib").string() +
            ": package 'mod-c--1.0.0': module library 'lib/libmod-c.so' is not in the package");
    ASSERT_ERROR(
        render({"a", "b"}), Errc::Invalid,
        "modules 'mod-a--1.0.0' and 'mod-b--1.0.0' both define Mesos module 'org_example_A'");
    ASSERT_ERROR(
        render({"a", "a2"}), Errc::Invalid,
        "modules 'mod-a--1.0.0' and 'mod-a--2.0.0' are the same package; enable one version only");
    ASSERT_ERROR(
        render({"rootlib"}), Errc::Invalid,
        "module library 'libd.so' must be a relative path under one of the package's folders");

    PackageRequest request;
    request.role = "master";
    request.lib_prefix = "opt/hoist";
    ASSERT_ERROR(renderConfig(schema(), request), Errc::Invalid,
                 "--lib-prefix 'opt/hoist' must be an absolute path");
}

TEST(ReadPackage, ReadsTarballsAndFoldersAlike) {
    TempFolder tmp;
    test::makeModuleDir(tmp / "mod", "mod-a", "1.0.0", "org_example_A", R"({"k": "v"})");
    auto packed = test::pack(tmp / "mod", tmp / "mod.tar.zst");
    auto folder = readOk(tmp / "mod");
    auto tarball = readOk(tmp / "mod.tar.zst");
    EXPECT_EQ(folder.info.toJson(), tarball.info.toJson());
    EXPECT_FALSE(folder.ref.has_value());
    ASSERT_TRUE(tarball.ref.has_value());
    EXPECT_EQ(*tarball.ref, packed.ref);
    EXPECT_TRUE(tarball.hasFile("lib/libmod-a.so"));
    EXPECT_TRUE(folder.hasFile("lib/libmod-a.so"));
    EXPECT_FALSE(tarball.hasFile("lib/other.so"));

    ASSERT_ERROR(readPackage(tmp / "absent"), Errc::NotFound, "no such file or folder");
    writeFile(tmp / "junk.tar", "this is not a tarball");
    ASSERT_ERROR(readPackage(tmp / "junk.tar"), Errc::Invalid, "not a package tarball");
    fs::create_directories(tmp / "empty");
    ASSERT_ERROR(readPackage(tmp / "empty"), Errc::Invalid, "no pkginfo.json at the package root");
}

// The whole point: the same inputs give the same bytes, however and whenever they are made.
TEST(PackageReproducibility, SameInputsGiveSameSha256) {
    TempFolder tmp;
    const std::string options_a = R"({
        "master": "zk://10.0.0.1:2181,10.0.0.2:2181/mesos",
        "resources": {"cpus": 8, "mem": 16384, "ports": "[31000-32000]"},
        "attributes": {"rack": "r7", "zone": "eu-west-1b"},
        "isolation": ["filesystem/linux", "cgroups/cpu", "cgroups/mem"],
        "environment": {"GLOG_v": "2"},
        "executor_registration_timeout": "3mins"
    })";
    // Same options: other key order, other layout, string forms of the same values.
    const std::string options_b =
        R"({"executor_registration_timeout":"3mins","environment":{"GLOG_v":"2"},)"
        R"("isolation":"filesystem/linux,cgroups/cpu,cgroups/mem",)"
        R"("attributes":"zone:eu-west-1b;rack:r7","resources":"ports:[31000-32000];mem:16384;cpus:8",)"
        R"("master":"zk://10.0.0.1:2181,10.0.0.2:2181/mesos"})";

    // Run A: in-process, umask 022, modules as folders in order a, b, old file times.
    fs::path ref_a_file;
    std::string out_a;
    {
        ScopedUmask mask(022);
        writeFile(tmp / "a/options.json", options_a);
        test::makeModuleDir(tmp / "a/mod-a", "mod-a", "1.0.0", "org_example_A",
                            R"({"x": "1", "y": "2"})");
        test::makeModuleDir(tmp / "a/mod-b", "mod-b", "2.1.0", "org_example_B");
        setMtimeRecursively(tmp / "a",
                            fs::file_time_type::clock::now() - std::chrono::hours(24 * 400));
        auto r = cli({"package", "--role", "agent", "--options", (tmp / "a/options.json").string(),
                      "--module", (tmp / "a/mod-a").string(), "--module",
                      (tmp / "a/mod-b").string(), "-o", (tmp / "a/out").string()});
        ASSERT_EQ(r.code, 0) << r.err;
        out_a = r.out;
    }
    // Run B: the binary, umask 077, another time zone, files created in the other order with
    // other times, modules as tarballs given in the other order.
    std::string out_b;
    {
        ScopedUmask mask(077);
        test::makeModuleDir(tmp / "b/mod-b", "mod-b", "2.1.0", "org_example_B", "{}", true);
        test::makeModuleDir(tmp / "b/mod-a", "mod-a", "1.0.0", "org_example_A",
                            R"({"x": "1", "y": "2"})", true);
        setMtimeRecursively(tmp / "b", fs::file_time_type::clock::now() + std::chrono::hours(5));
        test::pack(tmp / "b/mod-a", tmp / "b/mod-a.tar.zst");
        test::pack(tmp / "b/mod-b", tmp / "b/mod-b.tar.zst");
        writeFile(tmp / "b/options.json", options_b);
        auto r = testing::run(
            {CONFIG_GEN_BIN, "package", "--module", (tmp / "b/mod-b.tar.zst").string(), "--options",
             (tmp / "b/options.json").string(), "--role", "agent", "--module",
             (tmp / "b/mod-a.tar.zst").string(), "-o", (tmp / "b/out").string()},
            {{"TZ", "Asia/Tokyo"}, {"LC_ALL", "C"}});
        ASSERT_EQ(r.exit_code, 0) << r.err;
        out_b = r.out;
    }
    EXPECT_EQ(out_a, out_b);
    auto ref = json::parseObject(out_a, "ref");
    ASSERT_OK(ref);
    auto parsed = pkgmgr::PackageRef::fromJson(*ref, "ref");
    ASSERT_OK(parsed);
    const fs::path file_a = tmp / "a/out" / (parsed->id + ".tar.zst");
    const fs::path file_b = tmp / "b/out" / (parsed->id + ".tar.zst");
    auto sha_a = crypto::sha256File(file_a);
    auto sha_b = crypto::sha256File(file_b);
    ASSERT_OK(sha_a);
    ASSERT_OK(sha_b);
    EXPECT_EQ(*sha_a, parsed->sha256);
    EXPECT_EQ(*sha_a, *sha_b);
    EXPECT_EQ(fs::file_size(file_a), parsed->size);
    EXPECT_EQ(readFile(file_a), readFile(file_b));
    // Nothing but the package is left in the output folders.
    for (const auto& dir : {tmp / "a/out", tmp / "b/out"}) {
        int entries = 0;
        for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++entries;
        EXPECT_EQ(entries, 1) << dir;
    }
}

TEST(PackageCli, PackageInstallsIntoAStoreWithItsFiles) {
    TempFolder tmp;
    test::makeModuleDir(tmp / "mod", "mod-a", "1.0.0", "org_example_A", R"({"k": "v"})");
    writeFile(tmp / "options.json",
              R"({"zk": "zk://zk1:2181/mesos", "quorum": 2, "cluster": "prod"})");
    auto r = cli({"package", "--role", "master", "--options", (tmp / "options.json").string(),
                  "--module", (tmp / "mod").string(), "--version", "2.0.0", "-o",
                  (tmp / "out").string()});
    ASSERT_EQ(r.code, 0) << r.err;
    const fs::path tarball = tmp / "out/mesos-config-master--2.0.0.tar.zst";
    ASSERT_TRUE(fs::exists(tarball));

    auto store = pkgmgr::Store::open(pkgmgr::NodeLayout::at(tmp / "node"));
    ASSERT_OK(store);
    auto stored = store->add(tarball);
    ASSERT_OK(stored);
    EXPECT_EQ(r.out, stored->ref.toJson() + "\n");
    EXPECT_EQ(stored->info.kind, "mesos-config");
    EXPECT_EQ(stored->info.requires_names, std::vector<std::string>{"mod-a"});
    auto flags = readFile(stored->path / "etc/mesos/flags");
    EXPECT_NE(flags.find("--cluster=prod\n"), std::string::npos) << flags;
    EXPECT_NE(flags.find("--quorum=2\n"), std::string::npos) << flags;
    EXPECT_NE(readFile(stored->path / "etc/mesos/modules.json")
                  .find("/opt/hoist/current/lib/libmod-a.so"),
              std::string::npos);
}

TEST(PackageCli, OneIdNeverNamesTwoContents) {
    TempFolder tmp;
    writeFile(tmp / "a.json", R"({"port": 5050})");
    writeFile(tmp / "b.json", R"({"port": 5060})");
    auto args = [&](const std::string& options) {
        return std::vector<std::string>{
            "package",   "--role", "master", "--options",           (tmp / options).string(),
            "--version", "7",      "-o",     (tmp / "out").string()};
    };
    auto first = cli(args("a.json"));
    ASSERT_EQ(first.code, 0) << first.err;
    const std::string bytes = readFile(tmp / "out/mesos-config-master--7.tar.zst");
    auto again = cli(args("a.json"));
    EXPECT_EQ(again.code, 0) << again.err;
    EXPECT_EQ(again.out, first.out);
    auto other = cli(args("b.json"));
    EXPECT_EQ(other.code, exitCode(Errc::Conflict));
    EXPECT_EQ(other.err, "config-gen: " + (tmp / "out/mesos-config-master--7.tar.zst").string() +
                             " already exists with other content; choose another --version\n");
    EXPECT_EQ(readFile(tmp / "out/mesos-config-master--7.tar.zst"), bytes);
    int entries = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(tmp / "out")) ++entries;
    EXPECT_EQ(entries, 1);
}

TEST(PackageCli, BadOptionsChangeNothingAndExitNonZero) {
    TempFolder tmp;
    writeFile(tmp / "options.json", R"({"port": 5050, "qourum": 3})");
    fs::create_directories(tmp / "out");
    auto r = cli({"package", "--role", "master", "--options", (tmp / "options.json").string(), "-o",
                  (tmp / "out").string()});
    EXPECT_EQ(r.code, exitCode(Errc::Invalid));
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "config-gen: " + (tmp / "options.json").string() +
                         ": unknown option 'qourum' (did you mean 'quorum'?)\n");
    EXPECT_TRUE(fs::is_empty(tmp / "out"));

    r = cli({"package", "--role", "master", "--options", (tmp / "missing.json").string(), "-o",
             (tmp / "out").string()});
    EXPECT_EQ(r.code, exitCode(Errc::NotFound));
    EXPECT_NE(r.err.find("--options " + (tmp / "missing.json").string()), std::string::npos)
        << r.err;

    r = cli({"package", "--role", "master", "--options", (tmp / "options.json").string(),
             "--module", (tmp / "nope").string(), "-o", (tmp / "out").string()});
    EXPECT_EQ(r.code, exitCode(Errc::NotFound));
    EXPECT_EQ(r.err,
              "config-gen: --module: " + (tmp / "nope").string() + ": no such file or folder\n");

    r = cli(
        {"package", "--options", (tmp / "options.json").string(), "-o", (tmp / "out").string()});
    EXPECT_EQ(r.code, exitCode(Errc::Invalid));
    EXPECT_NE(r.err.find("--role is required"), std::string::npos) << r.err;
    EXPECT_TRUE(fs::is_empty(tmp / "out"));
}

}  // namespace
}  // namespace hoist::config_gen
