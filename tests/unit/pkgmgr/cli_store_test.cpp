// The store verbs through runCli (and the real binary where a process boundary matters).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <sstream>

#include "core/crypto.hpp"
#include "core/files.hpp"
#include "core/json.hpp"
#include "pkgmgr/cli.hpp"
#include "pkgmgr/release.hpp"
#include "store_fixtures.hpp"

namespace hoist::pkgmgr {
namespace {

struct CliResult {
    int code = 0;
    std::string out;
    std::string err;
};

class StoreCli : public ::testing::Test, public store_testing::StoreFixture {
protected:
    CliResult cli(std::vector<std::string> args) {
        args.insert(args.begin(), {"pkgmgr", "--root", layout.root.string()});
        std::ostringstream out, err;
        int code = runCli(args, out, err);
        return {code, out.str(), err.str()};
    }
    fs::path packageFolder(const std::string& version = "1.0") {
        auto dir = tmp / ("src-" + version);
        testing::writeFile(dir / "pkginfo.json",
                           R"({"name": "hello", "version": ")" + version + R"(", "kind": "tool"})");
        testing::writeFile(dir / "bin/hello", "#!/bin/sh\necho hello " + version + "\n",
                           fs::perms(0755));
        testing::writeFile(dir / "share/hello/greeting", "hello\n");
        return dir;
    }
    std::string packed(const std::string& version = "1.0") {
        auto out = tmp / ("hello-" + version + ".tar.zst");
        auto r = cli({"pack", packageFolder(version).string(), "-o", out.string()});
        EXPECT_EQ(r.code, 0) << r.err;
        return out.string();
    }
};

TEST(PkgmgrCli, HelpExitsZero) {
    std::ostringstream out, err;
    EXPECT_EQ(runCli({"pkgmgr", "--help"}, out, err), 0);
    EXPECT_NE(out.str().find("pkgmgr"), std::string::npos);
    for (const auto& verb : {"pack", "add", "fetch", "list", "info", "remove", "verify"})
        EXPECT_NE(out.str().find(verb), std::string::npos) << verb;
    std::ostringstream out2, err2;
    EXPECT_EQ(runCli({"pkgmgr", "add", "--help"}, out2, err2), 0);
    EXPECT_NE(out2.str().find("--max-unpacked-bytes"), std::string::npos);
}

TEST(PkgmgrCli, BinaryHelp) {
    auto r = testing::run({PKGMGR_BIN, "--help"});
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_NE(r.out.find("verify"), std::string::npos);
}

// Hostile manifests through the real binary: each of these exited 139 (a stack overflow in
// the recursive parser) or was read with the first of two keys.
TEST(PkgmgrCli, HostileManifestsAreRefusedClearly) {
    testing::TempFolder tmp;
    auto keys = crypto::ed25519Generate();
    ASSERT_OK(keys);
    testing::writeFile(tmp.path() / "release.pub", keys->public_pem);
    testing::writeFile(tmp.path() / "release.key", keys->private_pem);
    std::string objects;
    for (int i = 0; i < 150'000; ++i) objects += "{\"a\":";
    struct Case {
        std::string name, bytes, needle;
    };
    std::vector<Case> cases = {
        {"brackets.json", std::string(200 * 1024, '['), "nested deeper than 128 levels"},
        {"objects.json", objects, "nested deeper than 128 levels"},
        {"dup.json", R"({"version": "1.0.0", "version": "6.6.6", "roles": {}})",
         "duplicate key 'version'"},
        {"utf8.json", "{\"version\": \"1.0.0\xff\", \"roles\": {}}", "invalid UTF-8"},
    };
    for (const auto& c : cases) {
        auto file = (tmp.path() / c.name).string();
        testing::writeFile(file, c.bytes);
        // Unsigned: refused before any parsing.
        auto unsigned_verify = testing::run({PKGMGR_BIN, "release", "verify", "--key",
                                             (tmp.path() / "release.pub").string(), file});
        EXPECT_EQ(unsigned_verify.exit_code, exitCode(Errc::Unauthorized))
            << c.name << unsigned_verify.err;
        EXPECT_NE(unsigned_verify.err.find("is not signed"), std::string::npos)
            << unsigned_verify.err;
        // Signing refuses to sign what it cannot read.
        auto sign = testing::run(
            {PKGMGR_BIN, "release", "sign", "--key", (tmp.path() / "release.key").string(), file});
        EXPECT_EQ(sign.exit_code, exitCode(Errc::Invalid)) << c.name << sign.err;
        EXPECT_NE(sign.err.find(c.needle), std::string::npos) << sign.err;
        // Signed by a trusted key: the signature holds, the parser refuses it within its limits.
        auto sig = signRelease(c.bytes, keys->private_pem);
        ASSERT_OK(sig);
        testing::writeFile(file + ".sig", *sig);
        auto verify = testing::run({PKGMGR_BIN, "release", "verify", "--key",
                                    (tmp.path() / "release.pub").string(), file});
        EXPECT_EQ(verify.exit_code, exitCode(Errc::Invalid)) << c.name << verify.err;
        EXPECT_NE(verify.err.find(c.needle), std::string::npos) << verify.err;
        auto check = testing::run({PKGMGR_BIN, "--root", (tmp.path() / "root").string(), "check",
                                   "--role", "master", "--release", file, "--allow-unsigned"});
        EXPECT_EQ(check.exit_code, exitCode(Errc::Invalid)) << c.name << check.err;
        EXPECT_NE(check.err.find(c.needle), std::string::npos) << check.err;
    }
}

TEST_F(StoreCli, PackAddListInfoVerifyRemove) {
    auto pack = cli({"pack", packageFolder().string(), "-o", (tmp / "h.tar.zst").string()});
    ASSERT_EQ(pack.code, 0) << pack.err;
    auto sha = crypto::sha256File(tmp / "h.tar.zst");
    ASSERT_OK(sha);
    EXPECT_EQ(pack.out, R"({"id":"hello--1.0","sha256":")" + *sha + R"(","size":)" +
                            std::to_string(fs::file_size(tmp / "h.tar.zst")) + "}\n");

    auto add = cli({"add", (tmp / "h.tar.zst").string()});
    ASSERT_EQ(add.code, 0) << add.err;
    EXPECT_EQ(add.out, "hello--1.0 " + *sha + "\n");

    auto list = cli({"list", "--json"});
    ASSERT_EQ(list.code, 0) << list.err;
    EXPECT_EQ(list.out, R"([{"id":"hello--1.0","sha256":")" + *sha + R"(","size":)" +
                            std::to_string(fs::file_size(tmp / "h.tar.zst")) +
                            R"(,"kind":"tool"}])" + "\n");
    auto text = cli({"list"});
    EXPECT_NE(text.out.find("hello--1.0  " + *sha), std::string::npos) << text.out;

    auto info = cli({"info", "hello--1.0", "--json"});
    ASSERT_EQ(info.code, 0) << info.err;
    auto doc = json::parseObject(info.out, "info");
    ASSERT_OK(doc);
    EXPECT_EQ(*json::getString(*doc, "sha256", "info"), *sha);
    EXPECT_EQ(*json::getString(*doc, "path", "info"), layout.storeEntry(*sha).string());
    auto info_text = cli({"info", *sha});
    EXPECT_NE(info_text.out.find("kind:     tool"), std::string::npos) << info_text.out;

    auto verify = cli({"verify"});
    EXPECT_EQ(verify.code, 0) << verify.err;
    EXPECT_EQ(verify.out, "ok      hello--1.0 " + *sha + "\n");

    auto remove = cli({"remove", *sha});
    EXPECT_EQ(remove.code, 0) << remove.err;
    EXPECT_EQ(remove.out, "removed hello--1.0 " + *sha + "\n");
    EXPECT_EQ(cli({"list", "--json"}).out, "[]\n");
}

// A mistyped --root: every verb that reads or changes an existing node fails naming the path
// and creates nothing there (`pkgmgr list` used to create /opt/hoist/store and print nothing).
TEST(PkgmgrCli, VerbsOnAPathWithNoNodeRootFailAndCreateNothing) {
    testing::TempFolder tmp;
    auto missing = tmp / "no-such-root";
    auto empty = tmp / "empty";
    fs::create_directories(empty);
    for (const auto& root : {missing, empty}) {
        for (std::vector<std::string> verb :
             std::vector<std::vector<std::string>>{{"list"},
                                                   {"info", "mesos"},
                                                   {"verify"},
                                                   {"active"},
                                                   {"generations"},
                                                   {"check", "mesos--1.0", "--role", "agent"},
                                                   {"stage", "mesos--1.0", "--role", "agent"},
                                                   {"activate", "1"},
                                                   {"rollback"},
                                                   {"gc", "--dry-run"},
                                                   {"recover"},
                                                   {"remove", std::string(64, 'a')}}) {
            SCOPED_TRACE(verb.front());
            verb.insert(verb.begin(), {"pkgmgr", "--root", root.string()});
            std::ostringstream out, err;
            EXPECT_EQ(runCli(verb, out, err), exitCode(Errc::NotFound)) << err.str();
            EXPECT_EQ(out.str(), "");
            EXPECT_NE(err.str().find("pkgmgr: no hoist node root at " + root.string() + " ("),
                      std::string::npos)
                << err.str();
        }
        EXPECT_FALSE(fs::exists(missing));
        EXPECT_TRUE(fs::is_empty(empty));
    }
}

// `pkgmgr info NAME`: the versions of NAME the store holds, in version order.
TEST_F(StoreCli, InfoOfABareNameListsTheVersionsTheStoreHolds) {
    auto added = cli({"add", packed("1.10"), packed("1.9"), packed("1.0")});
    ASSERT_EQ(added.code, 0) << added.err;
    auto info = cli({"info", "hello"});
    ASSERT_EQ(info.code, 0) << info.err;
    auto first = info.out.find("hello--1.0 ");
    auto second = info.out.find("hello--1.9 ");
    auto third = info.out.find("hello--1.10 ");
    EXPECT_TRUE(first != std::string::npos && second != std::string::npos &&
                third != std::string::npos && first < second && second < third)
        << info.out;
    EXPECT_TRUE(info.out.starts_with("hello: 3 version(s) in the store\n")) << info.out;

    auto as_json = cli({"info", "hello", "--json"});
    ASSERT_EQ(as_json.code, 0) << as_json.err;
    auto doc = json::parseObject(as_json.out, "info");
    ASSERT_OK(doc);
    ASSERT_EQ((*doc)["versions"].Size(), 3u);
    EXPECT_STREQ((*doc)["versions"][2]["version"].GetString(), "1.10");
    EXPECT_STREQ((*doc)["versions"][2]["id"].GetString(), "hello--1.10");

    auto none = cli({"info", "nosuch"});
    EXPECT_EQ(none.code, exitCode(Errc::NotFound));
    EXPECT_EQ(none.err,
              "pkgmgr: no version of package 'nosuch' is in the store (pkgmgr list shows what it "
              "holds)\n");
    // One version by its id still shows that package.
    auto one = cli({"info", "hello--1.9"});
    ASSERT_EQ(one.code, 0) << one.err;
    EXPECT_NE(one.out.find("id:       hello--1.9\n"), std::string::npos) << one.out;
}

// Numeric flags: a readable refusal naming the flag and the rule, not CLI11's range with a
// 310-digit upper bound.
TEST_F(StoreCli, NumericFlagErrorsAreReadable) {
    for (const auto& [args, expected] :
         std::vector<std::pair<std::vector<std::string>, std::string>>{
             {{"gc", "--keep", "-1"},
              "pkgmgr: --keep: must be a whole number of at least 0, not '-1'"},
             {{"gc", "--keep", "two"},
              "pkgmgr: --keep: must be a whole number of at least 0, not 'two'"},
             {{"rollback", "--lock-wait", "-5"},
              "pkgmgr: --lock-wait: must be a whole number of at least 0, not '-5'"},
             {{"fetch", "--repo", "file:///x", "--parallel", "0", std::string(64, 'a')},
              "pkgmgr: --parallel: must be a whole number from 1 to 256, not '0'"}}) {
        SCOPED_TRACE(args.front());
        auto r = cli(args);
        EXPECT_EQ(r.code, exitCode(Errc::Invalid));
        EXPECT_TRUE(r.err.starts_with(expected)) << r.err;
        EXPECT_LT(r.err.size(), 200u) << r.err;
    }
}

TEST_F(StoreCli, VerifyFailsWhenAFileChangedAtRest) {
    auto add = cli({"add", packed()});
    ASSERT_EQ(add.code, 0) << add.err;
    auto sha = add.out.substr(add.out.find(' ') + 1, 64);
    auto file = layout.storeEntry(sha) / "share/hello/greeting";
    ::chmod(file.c_str(), 0644);
    testing::writeFile(file, "HELLO\n");
    ::chmod(file.c_str(), 0444);
    auto verify = cli({"verify", sha});
    EXPECT_EQ(verify.code, exitCode(Errc::Corrupt));
    EXPECT_EQ(verify.out,
              "CHANGED hello--1.0 " + sha + "\n  share/hello/greeting: content changed\n");
    EXPECT_EQ(verify.err, "pkgmgr: verify: 1 of 1 packages changed at rest\n");
    auto json_out = cli({"verify", "--json"});
    EXPECT_EQ(json_out.code, exitCode(Errc::Corrupt));
    EXPECT_EQ(json_out.out,
              R"([{"id":"hello--1.0","sha256":")" + sha +
                  R"(","ok":false,"problems":["share/hello/greeting: content changed"]}])"
                  "\n");
}

TEST_F(StoreCli, BadInputIsOneLineAndChangesNothing) {
    auto good = packed();
    testing::writeFile(tmp / "junk.tar.zst", "this is not a tarball");
    testing::writeFile(layout.lock(), "");  // made by the first mutating verb, kept after
    auto before = store_testing::snapshot(layout.root);

    auto junk = cli({"add", (tmp / "junk.tar.zst").string()});
    EXPECT_EQ(junk.code, exitCode(Errc::Invalid));
    EXPECT_EQ(junk.out, "");
    EXPECT_EQ(junk.err, "pkgmgr: package archive '" + (tmp / "junk.tar.zst").string() +
                            "': not a package (a tar archive, uncompressed or zstd, xz or gzip): "
                            "Unrecognized archive format\n");

    // All or nothing: the good package before the bad one is not kept.
    auto mixed = cli({"add", good, (tmp / "junk.tar.zst").string()});
    EXPECT_EQ(mixed.code, exitCode(Errc::Invalid));
    EXPECT_EQ(mixed.out, "");

    auto missing = cli({"remove", std::string(64, 'a')});
    EXPECT_EQ(missing.code, exitCode(Errc::NotFound));
    EXPECT_EQ(missing.err, "pkgmgr: package " + std::string(64, 'a') + " is not in the store\n");

    auto bad_sha = cli({"remove", "nope"});
    EXPECT_EQ(bad_sha.code, exitCode(Errc::Invalid));
    EXPECT_EQ(bad_sha.err, "pkgmgr: 'nope' is not a sha256 (64 lowercase hex digits)\n");

    auto bad_fetch = cli({"fetch", "--repo", "http://127.0.0.1:1", "XYZ"});
    EXPECT_EQ(bad_fetch.code, exitCode(Errc::Invalid));
    EXPECT_EQ(bad_fetch.err, "pkgmgr: 'XYZ' is not a sha256 (64 lowercase hex digits)\n");

    auto info = cli({"info", "hello--9"});
    EXPECT_EQ(info.code, exitCode(Errc::NotFound));
    EXPECT_EQ(info.err, "pkgmgr: package 'hello--9' is not in the store\n");

    auto pack = cli({"pack", (tmp / "nowhere").string()});
    EXPECT_EQ(pack.code, exitCode(Errc::NotFound));
    EXPECT_EQ(pack.err, "pkgmgr: pack '" + (tmp / "nowhere").string() + "': not a folder\n");

    EXPECT_EQ(store_testing::snapshot(layout.root), before);
}

TEST_F(StoreCli, MutatingVerbsRefuseWhileAnotherHoldsTheLock) {
    auto good = packed();
    ASSERT_OK(files::makeDirs(layout.root));
    auto held = files::FileLock::acquire(layout.lock(), std::chrono::milliseconds(0), "test");
    ASSERT_OK(held);
    // A separate process: flock conflicts between open files, as between two pkgmgr runs.
    auto r = testing::run({PKGMGR_BIN, "--root", layout.root.string(), "add", good});
    EXPECT_EQ(r.exit_code, exitCode(Errc::Busy));
    EXPECT_NE(r.err.find("another operation holds the lock"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("pkgmgr add"), std::string::npos) << r.err;
    auto listed = store.list();
    ASSERT_OK(listed);
    EXPECT_TRUE(listed->empty());
    // Reading needs no lock.
    auto list = testing::run({PKGMGR_BIN, "--root", layout.root.string(), "list"});
    EXPECT_EQ(list.exit_code, 0) << list.err;
}

TEST_F(StoreCli, FetchFromAFileRepository) {
    auto tarball = packed();
    auto sha = crypto::sha256File(tarball);
    ASSERT_OK(sha);
    testing::writeFile(tmp / "repo/packages" / *sha, testing::readFile(tarball));
    auto r = cli({"fetch", "--repo", "file://" + (tmp / "repo").string(), *sha, "--json"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, R"([{"id":"hello--1.0","sha256":")" + *sha + R"(","size":)" +
                         std::to_string(fs::file_size(tarball)) + "}]\n");
    EXPECT_TRUE(store.has(*sha));
}

// A root without run/ gets it from its first add, with the stamp that spares the package's
// first use a re-hash; a refused add on such a root leaves no run/ behind.
TEST_F(StoreCli, AddOnAFreshRootStampsWhatItAdded) {
    auto tarball = packed();
    testing::writeFile(tmp / "junk.tar.zst", "this is not a tarball");
    auto refused = cli({"add", tarball, (tmp / "junk.tar.zst").string()});
    EXPECT_EQ(refused.code, exitCode(Errc::Invalid));
    EXPECT_FALSE(fs::exists(layout.run()));

    auto r = cli({"add", tarball});
    ASSERT_EQ(r.code, 0) << r.err;
    auto sha = crypto::sha256File(tarball);
    ASSERT_OK(sha);
    EXPECT_TRUE(fs::exists(layout.run() / "verified" / *sha));
    auto rehashed = store.requireIntact(*sha);
    ASSERT_OK(rehashed);
    EXPECT_FALSE(*rehashed) << "the first use after pkgmgr add re-hashed the package";
}

TEST_F(StoreCli, AddTakesLimits) {
    auto tarball = packed();
    auto r = cli({"add", tarball, "--max-entries", "2"});
    EXPECT_EQ(r.code, exitCode(Errc::Invalid));
    EXPECT_EQ(r.err, "pkgmgr: package archive '" + tarball +
                         "': the archive holds more than 2 entries (the limit)\n");
}

}  // namespace
}  // namespace hoist::pkgmgr
