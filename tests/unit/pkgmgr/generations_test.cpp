// Generations on a real node root: stage, activate, rollback, gc, recover, the lock, upgrade_from,
// and the set and release CLI verbs.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>
#include <thread>

#include "core/crypto.hpp"
#include "core/files.hpp"
#include "core/strings.hpp"
#include "pkgmgr/cli.hpp"
#include "pkgmgr/generations.hpp"
#include "pkgmgr/release.hpp"
#include "sets_fixtures.hpp"
#include "testing.hpp"

namespace hoist::pkgmgr {
namespace {

using namespace sets_testing;
using hoist::testing::readFile;
using hoist::testing::writeFile;

class GenerationsTest : public NodeRootTest {
protected:
    std::string add(const PkgSpec& spec) {
        auto added = addSpec(*store, tmp.path() / "work", spec);
        EXPECT_TRUE(added.has_value()) << added.error().describe();
        return added ? added->ref.sha256 : "";
    }

    std::vector<std::string> baseSet(const std::string& mesos_version = "1.11.0") {
        return {add(mesos(mesos_version)), add(config())};
    }

    // Runs the pkgmgr CLI in-process against this root.
    int cli(std::vector<std::string> args, std::string* out = nullptr, std::string* err = nullptr) {
        args.insert(args.begin(), {"pkgmgr", "--root", layout.root.string()});
        std::ostringstream o, e;
        int rc = runCli(args, o, e);
        if (out) *out = o.str();
        if (err) *err = e.str();
        return rc;
    }

    std::vector<std::string> listing(const fs::path& dir) {
        std::vector<std::string> names;
        std::error_code ec;
        for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
             it.increment(ec))
            names.push_back(it->path().filename().string());
        std::sort(names.begin(), names.end());
        return names;
    }
};

TEST_F(GenerationsTest, StageBuildsTheGeneration) {
    auto set = baseSet();
    set.push_back(add(module("mod-a", "1.0.0", 3)));
    auto gen = gens->stage(set, rules, "");
    ASSERT_OK(gen);
    EXPECT_EQ(gen->number, 1);
    auto dir = layout.generation(1);
    EXPECT_EQ(gen->path, dir);
    // Links resolve into the store, relative to the root.
    EXPECT_EQ(readFile(dir / "bin/mesos-master"), "#!/bin/sh\necho master 1.11.0\n");
    EXPECT_EQ(readFile(dir / "etc/mesos/master.conf"), "quorum=1 # 1.0.0");
    EXPECT_EQ(readFile(dir / "units/mesos.service"), "[Service]\n");
    EXPECT_EQ(readFile(dir / "lib/mesos/modules/mod-a/f2.so"), "mod-a1.0.02");
    // A folder only one package holds is one link to it (bin/: mesos; lib/mesos/: mod-a);
    // a shared folder (lib/) is a real folder with a link per entry. Links go through
    // .p/<index> (one link per package into the store), so every other target is short
    // enough to live in the inode (under 60 bytes on ext4).
    EXPECT_EQ(fs::read_symlink(dir / ".p/0").string(), "../../../store/" + set[0]);
    EXPECT_EQ(fs::read_symlink(dir / "bin").string(), ".p/0/bin");
    EXPECT_EQ(fs::canonical(dir / "bin/mesos-master"),
              fs::canonical(layout.storeEntry(set[0]) / "bin/mesos-master"));
    EXPECT_FALSE(fs::is_symlink(dir / "lib"));
    EXPECT_EQ(fs::read_symlink(dir / "lib/libmesos.so").string(), "../.p/0/lib/libmesos.so");
    EXPECT_EQ(fs::read_symlink(dir / "lib/mesos").string(), "../.p/2/lib/mesos");
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
        if (e.is_symlink() && e.path().parent_path().filename() != ".p") {
            EXPECT_LT(fs::read_symlink(e.path()).string().size(), 60u) << e.path();
        }
    }
    // The merged environment, expanded.
    EXPECT_EQ(readFile(dir / "environment"), "MESOS_HOME=" + layout.storeEntry(set[0]).string() +
                                                 "\nMESOS_WORK=" + layout.state().string() +
                                                 "/mesos\n");
    auto loaded = gens->load(1);
    ASSERT_OK(loaded);
    EXPECT_EQ(loaded->role, "master");
    EXPECT_EQ(loaded->packages.size(), 3u);
    EXPECT_EQ(loaded->packages[0].id, "mesos--1.11.0");
    auto service = loaded->service(*store, rules);
    ASSERT_OK(service);
    EXPECT_EQ(service->first.id, "mesos--1.11.0");
    EXPECT_EQ(service->second.exec, std::vector<std::string>{"bin/mesos-master"});
    // Staging does not switch.
    auto current = gens->current();
    ASSERT_OK(current);
    EXPECT_FALSE(current->has_value());
    EXPECT_TRUE(checkNode(layout, false).empty());
}

TEST_F(GenerationsTest, StageIsIdempotent) {
    auto set = baseSet();
    ASSERT_OK(gens->stage(set, rules, ""));
    std::reverse(set.begin(), set.end());
    auto again = gens->stage(set, rules, "");
    ASSERT_OK(again);
    EXPECT_EQ(again->number, 1);
    EXPECT_EQ(listing(layout.generations()), std::vector<std::string>{"1"});
}

TEST_F(GenerationsTest, StageRefusalChangesNothing) {
    auto set = baseSet();
    set.push_back(add(PkgSpec{"mod-x", "1.0", "module", {{"bin/mesos-master", "x"}}, ""}));
    ASSERT_ERROR(gens->stage(set, rules, ""), Errc::Invalid,
                 "set: packages 'mesos--1.11.0' and 'mod-x--1.0' both provide 'bin/mesos-master'");
    std::string missing(64, 'a');
    ASSERT_ERROR(gens->stage({set[0], set[1], missing}, rules, ""), Errc::NotFound,
                 "set: package " + missing + " is not in the store (fetch or add it first)");
    ASSERT_ERROR(gens->stage({set[0], set[0], set[1]}, rules, ""), Errc::Invalid,
                 "set: package " + set[0] + " is listed twice");
    EXPECT_TRUE(listing(layout.generations()).empty());
}

/// Flips one byte of a stored file (the store keeps files read-only, as a disk fault ignores).
void flipByte(const fs::path& file, std::size_t at) {
    ::chmod(file.c_str(), 0644);
    auto bytes = readFile(file);
    ASSERT_LT(at, bytes.size());
    bytes[at] = static_cast<char>(bytes[at] ^ 0x01);
    writeFile(file, bytes);
    ::chmod(file.c_str(), 0444);
}

TEST_F(GenerationsTest, StageRefusesAPackageWithAFlippedByte) {
    auto set = baseSet();
    flipByte(layout.storeEntry(set[0]) / "lib/libmesos.so", 3);
    ASSERT_ERROR(gens->stage(set, rules, ""), Errc::Corrupt,
                 "package mesos--1.11.0 (" + set[0] +
                     ") differs from what was added, so it is not used: lib/libmesos.so: content "
                     "changed (see 'pkgmgr verify " +
                     set[0] + "')");
    EXPECT_TRUE(listing(layout.generations()).empty());

    // An already staged set is refused too, rather than handed back.
    auto clean = baseSet("1.12.0");
    ASSERT_OK(gens->stage(clean, rules, ""));
    flipByte(layout.storeEntry(clean[0]) / "bin/mesos-master", 0);
    auto again = gens->stage(clean, rules, "");
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code, Errc::Corrupt);
    EXPECT_NE(again.error().message.find("bin/mesos-master: content changed"), std::string::npos)
        << again.error().message;
}

// The set's metadata comes from the store index, not from the entries' files: a pkginfo.json
// changed after the add (here its version, 1.11.0 made 1.11.1) is not what the lookup answers,
// and the check before use refuses the package for it.
TEST_F(GenerationsTest, StageRefusesAPackageWhosePkginfoChangedThoughTheIndexAnswers) {
    auto set = baseSet();
    ASSERT_OK(store->list());  // the index holds every entry
    auto pkginfo = layout.storeEntry(set[0]) / "pkginfo.json";
    auto at = readFile(pkginfo).find("1.11.0");
    ASSERT_NE(at, std::string::npos);
    flipByte(pkginfo, at + 5);
    auto found = store->get(set[0]);
    ASSERT_OK(found);
    EXPECT_EQ(found->info.id().str(), "mesos--1.11.0");
    ASSERT_ERROR(gens->stage(set, rules, ""), Errc::Corrupt,
                 "package mesos--1.11.0 (" + set[0] +
                     ") differs from what was added, so it is not used: pkginfo.json: content "
                     "changed (see 'pkgmgr verify " +
                     set[0] + "')");
    EXPECT_TRUE(listing(layout.generations()).empty());
}

// The verified stamp spares a stage the re-hash only while nothing in the package changed: a
// byte changed behind a stamp in force, with its mtime put back, is still refused.
TEST_F(GenerationsTest, StageRefusesATamperedFileBehindAVerifiedStamp) {
    auto set = baseSet("1.13.0");
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (const auto& sha : set) {
        // A stamp is not written within the filesystem clock's tick of the add: poll.
        while (std::chrono::steady_clock::now() < deadline) {
            auto rehashed = store->requireIntact(sha);
            ASSERT_OK(rehashed);
            if (!*rehashed) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    }
    std::string err;
    ASSERT_EQ(cli({"stage", "--role", "master", strings::join(set, ",")}, nullptr, &err), 0) << err;
    for (const auto& sha : set) {
        auto rehashed = store->requireIntact(sha);
        ASSERT_OK(rehashed);
        EXPECT_FALSE(*rehashed) << "the stamp of " << sha << " does not stand";
    }

    auto file = layout.storeEntry(set[0]) / "bin/mesos-master";
    struct stat before {};
    ASSERT_EQ(::stat(file.c_str(), &before), 0);
    flipByte(file, 0);
    timespec times[2] = {before.st_atim, before.st_mtim};
    ASSERT_EQ(::utimensat(AT_FDCWD, file.c_str(), times, 0), 0);
    ASSERT_EQ(cli({"stage", "--role", "master", strings::join(set, ",")}, nullptr, &err),
              exitCode(Errc::Corrupt));
    EXPECT_NE(err.find("bin/mesos-master: content changed"), std::string::npos) << err;
}

TEST_F(GenerationsTest, ActivateRollbackAndHistory) {
    auto g1 = gens->stage(baseSet("1.11.0"), rules, "");
    auto g2 = gens->stage(baseSet("1.11.1"), rules, "");
    ASSERT_OK(g1);
    ASSERT_OK(g2);
    ASSERT_ERROR(gens->rollback(), Errc::NotFound, "rollback: no previous generation");
    ASSERT_ERROR(gens->activate(7), Errc::NotFound, "generation 7 does not exist");
    ASSERT_OK(gens->activate(1));
    EXPECT_EQ(fs::read_symlink(layout.current()).string(), "generations/1");
    EXPECT_EQ(readFile(layout.current() / "bin/mesos-master"), "#!/bin/sh\necho master 1.11.0\n");
    ASSERT_OK(gens->activate(2));
    EXPECT_EQ(readFile(layout.current() / "bin/mesos-master"), "#!/bin/sh\necho master 1.11.1\n");
    auto prev = gens->previous();
    ASSERT_OK(prev);
    EXPECT_EQ(*prev, std::optional<long>(1));
    auto back = gens->rollback();
    ASSERT_OK(back);
    EXPECT_EQ(*back, 1);
    auto cur = gens->current();
    ASSERT_OK(cur);
    EXPECT_EQ(*cur, std::optional<long>(1));
    // Rolling back again returns to the generation that was current before.
    prev = gens->previous();
    ASSERT_OK(prev);
    EXPECT_EQ(*prev, std::optional<long>(2));
    // Activating the current generation again is a no-op.
    ASSERT_OK(gens->activate(1));
    EXPECT_TRUE(checkNode(layout).empty());
    // Nothing but the link and the history changed at the root.
    EXPECT_EQ(listing(layout.root),
              (std::vector<std::string>{"current", "downloads", "generations", "lock", "outbox",
                                        "run", "state", "store"}));
}

TEST_F(GenerationsTest, GcKeepsCurrentPreviousAndPending) {
    std::vector<std::vector<std::string>> sets;
    for (int i = 0; i < 5; ++i) {
        auto set = baseSet("1.11." + std::to_string(i));
        set.push_back(add(module("mod-" + std::to_string(i))));
        auto gen = gens->stage(set, rules, "");
        ASSERT_OK(gen);
        if (i < 4) ASSERT_OK(gens->activate(gen->number));
        sets.push_back(set);
    }
    auto unused = add(module("never-used"));
    // current 4, previous 3 (keep 1), pending 5.
    auto dry = gens->gc(1, true);
    ASSERT_OK(dry);
    EXPECT_EQ(dry->generations_removed, (std::vector<long>{1, 2}));
    EXPECT_EQ(dry->packages_removed.size(), 5u);          // 2 mesos + 2 modules + never-used
    EXPECT_EQ(listing(layout.generations()).size(), 6u);  // 5 + history.json
    EXPECT_TRUE(store->has(unused));
    auto in_use = gens->packagesInUse(1);
    ASSERT_OK(in_use);
    EXPECT_EQ(in_use->size(), 7u);  // config shared + 3 mesos + 3 modules

    auto report = gens->gc(1, false);
    ASSERT_OK(report);
    EXPECT_EQ(report->generations_removed, (std::vector<long>{1, 2}));
    EXPECT_EQ(listing(layout.generations()),
              (std::vector<std::string>{"3", "4", "5", "history.json"}));
    EXPECT_FALSE(store->has(unused));
    EXPECT_FALSE(store->has(sets[0][0]));
    EXPECT_TRUE(store->has(sets[2][0]));
    EXPECT_TRUE(store->has(sets[4][2]));
    EXPECT_TRUE(checkNode(layout).empty());
    // keep 0: only current and the pending one.
    ASSERT_OK(gens->gc(0, false));
    EXPECT_EQ(listing(layout.generations()), (std::vector<std::string>{"4", "5", "history.json"}));
    // Numbers are never reused.
    ASSERT_OK(gens->activate(5));
    auto next = gens->stage(sets[0], rules, "");
    ASSERT_FALSE(next.has_value());  // its packages were collected
    ASSERT_OK(gens->gc(2, false));
    EXPECT_TRUE(checkNode(layout).empty());
}

TEST_F(GenerationsTest, RecoverRemovesLeftoversAndRepairsCurrent) {
    ASSERT_OK(gens->stage(baseSet(), rules, ""));
    ASSERT_OK(gens->activate(1));
    writeFile(layout.generations() / ".tmp-2-abcdef/bin/x", "half");
    ASSERT_EQ(::symlink("generations/2", (layout.root / ".tmp-current-0123").c_str()), 0);
    writeFile(layout.store() / ".tmp-extract/pkginfo.json", "{}");
    auto report = gens->recover();
    ASSERT_OK(report);
    EXPECT_EQ(report->actions.size(), 3u);
    EXPECT_TRUE(checkNode(layout).empty());
    // A current that points at nothing goes back to the newest generation that ran.
    ASSERT_OK(files::swapSymlink(layout.current(), "generations/9"));
    report = gens->recover();
    ASSERT_OK(report);
    EXPECT_EQ(report->actions, std::vector<std::string>{"pointed current at generation 1"});
    EXPECT_EQ(fs::read_symlink(layout.current()).string(), "generations/1");
    report = gens->recover();
    ASSERT_OK(report);
    EXPECT_TRUE(report->actions.empty());
}

// A helper killed inside an atomic write leaves its temporary file at the root (or in run/);
// recover removes them and nothing else.
TEST_F(GenerationsTest, RecoverRemovesTemporaryFilesOfKilledWrites) {
    writeFile(layout.root / ".tmp-txn.json-0a1b2c", "{\"operation\":");
    writeFile(layout.root / ".tmp-node.json-3d4e5f", "{");
    writeFile(layout.run() / ".tmp-service.pid-777777", "");
    writeFile(layout.root / "keep.me", "x");
    auto report = gens->recover();
    ASSERT_OK(report);
    std::sort(report->actions.begin(), report->actions.end());
    EXPECT_EQ(report->actions, (std::vector<std::string>{"removed .tmp-node.json-3d4e5f",
                                                         "removed .tmp-txn.json-0a1b2c",
                                                         "removed run/.tmp-service.pid-777777"}))
        << strings::join(report->actions, ", ");
    EXPECT_FALSE(fs::exists(layout.root / ".tmp-txn.json-0a1b2c"));
    EXPECT_FALSE(fs::exists(layout.root / ".tmp-node.json-3d4e5f"));
    EXPECT_FALSE(fs::exists(layout.run() / ".tmp-service.pid-777777"));
    EXPECT_TRUE(fs::exists(layout.root / "keep.me"));
}

// Files that processes without the node lock write while recover runs (the service's port
// file, the epoch) keep their temporary files: those may be a live write.
TEST_F(GenerationsTest, RecoverLeavesTemporaryFilesOfWritersWithoutTheNodeLock) {
    writeFile(layout.run() / ".tmp-service.port-0a1b2c", "4242\n");
    writeFile(layout.run() / ".tmp-epoch.json-3d4e5f", "{\"epoch\":");
    writeFile(layout.run() / ".tmp-service.pid-777777", "");
    auto report = gens->recover();
    ASSERT_OK(report);
    EXPECT_EQ(report->actions, std::vector<std::string>{"removed run/.tmp-service.pid-777777"})
        << strings::join(report->actions, ", ");
    EXPECT_TRUE(fs::exists(layout.run() / ".tmp-service.port-0a1b2c"));
    EXPECT_TRUE(fs::exists(layout.run() / ".tmp-epoch.json-3d4e5f"));
}

TEST_F(GenerationsTest, MutationsNeedTheLock) {
    auto set = baseSet();
    ASSERT_OK(gens->stage(set, rules, ""));
    {
        auto held = files::FileLock::acquire(layout.lock(), std::chrono::milliseconds(0), "test");
        ASSERT_OK(held);
        ASSERT_ERROR(gens->activate(1), Errc::Busy, "busy: another operation holds the lock");
        ASSERT_ERROR(gens->stage(baseSet("2.0.0"), rules, ""), Errc::Busy, "(stage)");
        ASSERT_ERROR(gens->rollback(), Errc::Busy, "(rollback)");
        ASSERT_ERROR(gens->gc(2, false), Errc::Busy, "(gc)");
        ASSERT_ERROR(gens->recover(), Errc::Busy, "(recover)");
        EXPECT_OK(gens->gc(2, true));  // a dry run reads only
        // The real binary says so too, and exits with Busy's code.
        auto outcome = testing::run({PKGMGR_BIN, "--root", layout.root.string(), "activate", "1"});
        EXPECT_EQ(outcome.exit_code, exitCode(Errc::Busy));
        EXPECT_NE(outcome.err.find("busy: another operation holds the lock"), std::string::npos)
            << outcome.err;
        // The caller that holds the lock says so.
        auto helper = Generations::open(layout);
        ASSERT_OK(helper);
        helper->setCallerHoldsLock(true);
        ASSERT_OK(helper->activate(1));
    }
    EXPECT_EQ(listing(layout.generations()), (std::vector<std::string>{"1", "history.json"}));
    // Waiting: the lock is released while the second caller waits.
    std::optional<files::FileLock> held;
    auto acquired = files::FileLock::acquire(layout.lock(), std::chrono::milliseconds(0), "test");
    ASSERT_OK(acquired);
    held.emplace(std::move(*acquired));
    std::thread releaser([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        held.reset();
    });
    gens->setLockWait(std::chrono::seconds(20));
    EXPECT_OK(gens->stage(baseSet("2.0.0"), rules, ""));
    releaser.join();
}

TEST_F(GenerationsTest, TwoProcessesNeverBothWrite) {
    // Many sets staged by concurrent processes: each either stages or fails with "busy";
    // every generation built is complete and numbers never collide.
    std::vector<std::vector<std::string>> sets;
    for (int i = 0; i < 6; ++i) {
        auto set = baseSet();
        set.push_back(add(module("par-" + std::to_string(i), "1.0.0", 50)));
        sets.push_back(set);
    }
    int staged = 0, busy = 0;
    for (int round = 0; round < 3; ++round) {
        std::vector<process::Child> children;
        for (int i = round * 2; i < round * 2 + 2; ++i) {
            process::Options options;
            options.stdout_file = tmp.path() / ("out-" + std::to_string(i));
            options.stderr_file = tmp.path() / ("err-" + std::to_string(i));
            auto child = process::Child::start(
                {PKGMGR_BIN, "--root", layout.root.string(), "stage", "--role", "master",
                 strings::join(sets[static_cast<size_t>(i)], ",")},
                options);
            ASSERT_OK(child);
            children.push_back(std::move(*child));
        }
        for (size_t k = 0; k < children.size(); ++k) {
            auto outcome = children[k].wait(std::chrono::seconds(60));
            ASSERT_OK(outcome);
            auto err =
                readFile(tmp.path() / ("err-" + std::to_string(round * 2 + static_cast<int>(k))));
            if (outcome->exit_code == 0) {
                ++staged;
            } else {
                EXPECT_EQ(outcome->exit_code, exitCode(Errc::Busy)) << err;
                EXPECT_NE(err.find("busy: another operation holds the lock"), std::string::npos)
                    << err;
                ++busy;
            }
        }
    }
    auto all = gens->list();
    ASSERT_OK(all);
    EXPECT_EQ(static_cast<int>(all->size()), staged);
    for (size_t i = 0; i < all->size(); ++i) EXPECT_EQ((*all)[i].number, static_cast<long>(i + 1));
    EXPECT_EQ(staged + busy, 6);
    EXPECT_TRUE(checkNode(layout, false).empty());
}

TEST_F(GenerationsTest, ReleasesAndUpgradeFrom) {
    auto v1 = baseSet("1.11.0");
    auto v2 = baseSet("1.12.0");
    auto refs = [&](const std::vector<std::string>& shas) {
        std::string out;
        for (const auto& sha : shas) {
            auto pkg = store->get(sha);
            EXPECT_TRUE(pkg.has_value());
            out += (out.empty() ? "" : ",") + pkg->ref.toJson();
        }
        return out;
    };
    auto release = [&](const std::string& version, const std::string& from,
                       const std::vector<std::string>& shas) {
        auto parsed =
            Release::parse(R"({"version": ")" + version + R"(", "upgrade_from": [)" + from +
                           R"(], "roles": {"master": {"packages": [)" + refs(shas) + "]}}}");
        EXPECT_TRUE(parsed.has_value()) << parsed.error().describe();
        return *parsed;
    };
    auto r1 = release("1.0.0", "", v1);
    auto r2_bad = release("2.0.0", R"("0.*")", v2);
    auto r2 = release("2.0.1", R"("1.*")", v2);
    auto g1 = gens->stage(r1, rules);
    ASSERT_OK(g1);
    EXPECT_EQ(g1->release, "1.0.0");
    ASSERT_OK(gens->activate(g1->number));
    ASSERT_ERROR(gens->check(r2_bad, rules), Errc::Conflict,
                 "transition: release 2.0.0 does not allow upgrading from release 1.0.0 "
                 "(upgrade_from: 0.*; current generation 1)");
    ASSERT_ERROR(gens->stage(r2_bad, rules), Errc::Conflict, "does not allow upgrading");
    auto g2 = gens->stage(r2, rules);
    ASSERT_OK(g2);
    ASSERT_OK(gens->activate(g2->number));
    // Going back is always allowed.
    ASSERT_OK(gens->activate(g1->number));
    ASSERT_OK(gens->activate(g2->number));
    // A release naming a hash the store holds under another id is refused.
    auto mixed = Release::parse(
        R"({"version": "3.0.0", "upgrade_from": ["*"], "roles": {"master": {"packages": [{"id": "mesos--9.9.9", "sha256": ")" +
        v2[0] + R"(", "size": 1}]}}})");
    ASSERT_OK(mixed);
    ASSERT_ERROR(gens->check(*mixed, rules), Errc::Corrupt,
                 "release 3.0.0 names 'mesos--9.9.9' with sha256 " + v2[0] +
                     ", but the store holds 'mesos--1.12.0' under that hash");
    ASSERT_ERROR(gens->check(r1, *RoleRules::load("agent")), Errc::NotFound,
                 "release 1.0.0 has no packages for role 'agent'");
}

TEST_F(GenerationsTest, CliVerbs) {
    auto set = baseSet();
    std::string out, err;
    EXPECT_EQ(cli({"check", "--role", "master", set[0] + "," + set[1]}, &out, &err), 0) << err;
    EXPECT_EQ(out, "ok: the set of 2 package(s) is valid for role 'master'\n");
    EXPECT_EQ(cli({"check", "--role", "master", "mesos--1.11.0"}, &out, &err),
              exitCode(Errc::Invalid));
    EXPECT_EQ(err,
              "pkgmgr: set: role 'master' needs exactly 1 package(s) of kind 'mesos-config', the "
              "set holds none\n");
    EXPECT_EQ(cli({"check", "mesos--1.11.0"}, &out, &err), exitCode(Errc::Invalid));
    EXPECT_EQ(err, "pkgmgr: no role: give --role ROLE (or write node.json with a role)\n");
    EXPECT_TRUE(listing(layout.generations()).empty());

    EXPECT_EQ(
        cli({"stage", "--role", "master", "mesos--1.11.0", "mesos-config--1.0.0"}, &out, &err), 0)
        << err;
    EXPECT_EQ(out, "1\n");
    EXPECT_EQ(cli({"active"}, &out, &err), exitCode(Errc::NotFound));
    EXPECT_EQ(err, "pkgmgr: no active generation on this node\n");
    EXPECT_EQ(cli({"activate", "1"}, &out, &err), 0) << err;
    EXPECT_EQ(out, "active: generation 1\n");
    EXPECT_EQ(cli({"active", "--json"}, &out, &err), 0) << err;
    EXPECT_EQ(out.rfind(R"({"generation":1,"role":"master","release":"",)", 0), 0u) << out;
    EXPECT_EQ(cli({"generations", "--json"}, &out, &err), 0) << err;
    EXPECT_EQ(out.rfind(R"([{"number":1,"current":true,"role":"master")", 0), 0u) << out;
    EXPECT_EQ(cli({"rollback"}, &out, &err), exitCode(Errc::NotFound));
    EXPECT_EQ(cli({"gc", "--dry-run", "--json"}, &out, &err), 0) << err;
    EXPECT_EQ(out,
              R"({"dry_run":true,"generations_removed":[],"packages_removed":[],"bytes_freed":0})"
              "\n");
    EXPECT_EQ(cli({"recover"}, &out, &err), 0) << err;
    EXPECT_EQ(out, "nothing to recover\n");
}

TEST_F(GenerationsTest, CheckReadsPartialVersionsAsSemverDoes) {
    auto set = baseSet("1.11.2");
    // node-semver: 1.11, =1.11, <=1.11 and 1 hold 1.11.2; >1.11 means >=1.12.0.
    std::vector<std::pair<std::string, bool>> cases = {
        {"1.11", true}, {"=1.11", true}, {"<=1.11", true}, {">1.11", false}, {"1", true}};
    for (size_t i = 0; i < cases.size(); ++i) {
        const auto& [range, holds] = cases[i];
        auto spec = module("mod-" + std::to_string(i));
        spec.extra = R"("compatible": {"mesos": ")" + range + R"("})";
        auto mod = add(spec);
        ASSERT_FALSE(mod.empty()) << range;
        auto outcome = testing::run({PKGMGR_BIN, "--root", layout.root.string(), "check", "--role",
                                     "master", set[0] + "," + set[1] + "," + mod});
        if (holds) {
            EXPECT_EQ(outcome.exit_code, 0) << range << ": " << outcome.err;
        } else {
            EXPECT_EQ(outcome.exit_code, exitCode(Errc::Invalid)) << range;
            EXPECT_NE(outcome.err.find("is compatible only with 'mesos' >1.11 (>=1.12.0), but the "
                                       "set holds 'mesos--1.11.2'"),
                      std::string::npos)
                << outcome.err;
        }
    }
}

TEST_F(GenerationsTest, CliSignedReleases) {
    auto set = baseSet();
    std::string manifest =
        R"({"version": "1.0.0", "upgrade_from": [], "roles": {"master": {"packages": [)";
    for (size_t i = 0; i < set.size(); ++i)
        manifest += (i ? "," : "") + store->get(set[i])->ref.toJson();
    manifest += "]}}}";
    auto file = tmp.path() / "1.0.0.json";
    writeFile(file, manifest);
    std::string out, err;
    auto key = (tmp.path() / "release").string();
    auto other = (tmp.path() / "other").string();
    ASSERT_EQ(cli({"keygen", "--out", key}, &out, &err), 0) << err;
    ASSERT_EQ(cli({"keygen", "--out", other}, &out, &err), 0) << err;
    EXPECT_EQ(fs::status(key + ".key").permissions() & fs::perms::all, fs::perms(0600));
    EXPECT_EQ(cli({"keygen", "--out", key}, &out, &err), exitCode(Errc::Conflict));

    // Unsigned: refused unless --allow-unsigned.
    EXPECT_EQ(cli({"check", "--role", "master", "--release", file.string(), "--key", key + ".pub"},
                  &out, &err),
              exitCode(Errc::Unauthorized));
    EXPECT_EQ(err, "pkgmgr: release manifest " + file.string() +
                       " is not signed (use --allow-unsigned to accept it)\n");
    EXPECT_EQ(cli({"check", "--role", "master", "--release", file.string(), "--allow-unsigned"},
                  &out, &err),
              0)
        << err;
    EXPECT_EQ(out, "ok: the set of 2 package(s) is valid for role 'master' (release 1.0.0)\n");

    // A pattern that is neither a glob nor a range is refused before anything is signed.
    auto bad = tmp.path() / "bad.json";
    std::string bad_manifest = manifest;
    bad_manifest.replace(bad_manifest.find("[]"), 2, R"([">=r4"])");
    writeFile(bad, bad_manifest);
    EXPECT_EQ(cli({"release", "sign", "--key", key + ".key", bad.string()}, &out, &err),
              exitCode(Errc::Invalid));
    EXPECT_EQ(err,
              "pkgmgr: release 1.0.0: upgrade_from pattern '>=r4' is neither a glob (version "
              "characters and '*') nor a version range: version range '>=r4': '>=r4' is not a "
              "comparator (use >=, <=, >, <, =, !=, ^ or ~ before a version)\n");
    EXPECT_FALSE(fs::exists(bad.string() + ".sig"));

    ASSERT_EQ(cli({"release", "sign", "--key", key + ".key", file.string()}, &out, &err), 0) << err;
    EXPECT_TRUE(fs::exists(file.string() + ".sig"));
    EXPECT_EQ(cli({"release", "verify", "--key", key + ".pub", file.string()}, &out, &err), 0)
        << err;
    EXPECT_EQ(out, "ok: release 1.0.0 is signed by a trusted key\n");
    EXPECT_EQ(cli({"release", "verify", "--key", other + ".pub", file.string()}, &out, &err),
              exitCode(Errc::Corrupt));
    EXPECT_NE(err.find("does not verify with any trusted key"), std::string::npos) << err;
    // Badly signed: refused even with --allow-unsigned.
    EXPECT_EQ(cli({"stage", "--role", "master", "--release", file.string(), "--key", other + ".pub",
                   "--allow-unsigned"},
                  &out, &err),
              exitCode(Errc::Corrupt));
    EXPECT_TRUE(listing(layout.generations()).empty());
    // A changed byte breaks the signature.
    writeFile(file, manifest + " ");
    EXPECT_EQ(cli({"release", "verify", "--key", key + ".pub", file.string()}, &out, &err),
              exitCode(Errc::Corrupt));
    writeFile(file, manifest);
    EXPECT_EQ(cli({"stage", "--role", "master", "--release", file.string(), "--key", key + ".pub"},
                  &out, &err),
              0)
        << err;
    EXPECT_EQ(out, "1\n");
    auto gen = gens->load(1);
    ASSERT_OK(gen);
    EXPECT_EQ(gen->release, "1.0.0");
}

}  // namespace
}  // namespace hoist::pkgmgr
