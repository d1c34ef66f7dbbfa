// The store: safe extraction of valid packages, lookups, removal, verify, recovery.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <map>
#include <thread>

#include "core/crypto.hpp"
#include "core/files.hpp"
#include "store_fixtures.hpp"

namespace hoist::pkgmgr {
namespace {

using testing::ArchiveBuilder;
using Compression = ArchiveBuilder::Compression;

class StoreTest : public ::testing::Test, public store_testing::StoreFixture {};

unsigned modeOf(const fs::path& p) {
    struct stat st {};
    ::lstat(p.c_str(), &st);
    return static_cast<unsigned>(st.st_mode & 07777);
}

TEST_F(StoreTest, AddsAValidPackageReadOnlyWithItsHashAndSize) {
    auto bytes = store_testing::validPackage();
    auto tarball = writeTarball("demo.tar.zst", bytes);
    auto added = store.add(tarball);
    ASSERT_OK(added);
    EXPECT_EQ(added->ref.id, "demo--1.0");
    EXPECT_EQ(added->ref.sha256, crypto::sha256Hex(bytes));
    EXPECT_EQ(added->ref.size, bytes.size());
    EXPECT_EQ(added->info.kind, "tool");
    EXPECT_EQ(added->path, layout.storeEntry(added->ref.sha256));

    const auto& p = added->path;
    EXPECT_EQ(testing::readFile(p / "bin/demo"), "#!/bin/sh\necho demo 1.0\n");
    EXPECT_EQ(testing::readFile(p / "bin/demo-again"), "#!/bin/sh\necho demo 1.0\n");
    EXPECT_EQ(testing::readFile(p / "bin/demo-lib"), "library bytes 1.0");
    EXPECT_EQ(fs::read_symlink(p / "lib/demo/libdemo.so"), "libdemo.so.1");
    EXPECT_EQ(testing::readFile(p / "share/doc/README"), "implicit parent folders\n");
    EXPECT_EQ(modeOf(p / "bin/demo"), 0555u);
    EXPECT_EQ(modeOf(p / "lib/demo/libdemo.so.1"), 0444u);
    EXPECT_EQ(modeOf(p / "lib"), 0555u);
    EXPECT_EQ(modeOf(p / "share/doc"), 0555u);
    EXPECT_EQ(modeOf(p), 0555u);
    EXPECT_TRUE(fs::exists(p / ".hoist/manifest.json"));
    // Nothing left behind in the store but the entry.
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(layout.store()))
        names.push_back(e.path().filename());
    EXPECT_EQ(names, std::vector<std::string>{added->ref.sha256});
}

TEST_F(StoreTest, DetectsCompressionByContent) {
    std::set<std::string> shas;
    for (auto c : {Compression::None, Compression::Gzip, Compression::Xz, Compression::Zstd}) {
        // Misleading names on purpose: the content decides.
        auto tarball = writeTarball("pkg-" + std::to_string(static_cast<int>(c)) + ".tar.gz",
                                    store_testing::validPackage(c));
        auto added = store.add(tarball);
        ASSERT_OK(added);
        EXPECT_EQ(testing::readFile(added->path / "bin/demo"), "#!/bin/sh\necho demo 1.0\n");
        shas.insert(added->ref.sha256);
    }
    EXPECT_EQ(shas.size(), 4u);
    for (auto f : {ArchiveBuilder::Format::Ustar, ArchiveBuilder::Format::Gnu}) {
        auto added = store.add(
            writeTarball("fmt.tar", store_testing::validPackage(Compression::None, "1.0", f)));
        ASSERT_OK(added);
        EXPECT_EQ(fs::read_symlink(added->path / "bin/demo-lib"), "../lib/demo/libdemo.so");
    }
}

TEST_F(StoreTest, AddIsIdempotent) {
    auto tarball = writeTarball("demo.tar.zst", store_testing::validPackage());
    auto first = store.add(tarball);
    ASSERT_OK(first);
    auto before = store_testing::snapshot(layout.root);
    auto second = store.add(tarball);
    ASSERT_OK(second);
    EXPECT_EQ(second->ref, first->ref);
    EXPECT_EQ(store_testing::snapshot(layout.root), before);
    auto third = store.add(tarball, {}, first->ref.sha256);
    ASSERT_OK(third);
    EXPECT_EQ(third->ref, first->ref);
}

TEST_F(StoreTest, ExpectedHashMismatchKeepsNothing) {
    auto bytes = store_testing::validPackage();
    auto tarball = writeTarball("demo.tar.zst", bytes);
    auto before = store_testing::snapshot(tmp.path());
    std::string wrong(64, 'e');
    auto r = store.add(tarball, {}, wrong);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::Corrupt);
    EXPECT_EQ(r.error().message, "package archive '" + tarball.string() + "': its sha256 is " +
                                     crypto::sha256Hex(bytes) + ", expected " + wrong);
    EXPECT_EQ(store_testing::snapshot(tmp.path()), before);
    ASSERT_ERROR(store.add(tarball, {}, std::string("abc")), Errc::Invalid,
                 "'abc' is not a sha256 (64 lowercase hex digits)");
}

TEST_F(StoreTest, MissingTarballIsNotFound) {
    auto r = store.add(tmp / "nope.tar.zst");
    ASSERT_ERROR(r, Errc::NotFound,
                 "package archive '" + (tmp / "nope.tar.zst").string() + "': cannot open");
}

TEST_F(StoreTest, GetHasFindList) {
    auto a =
        store.add(writeTarball("a.tar", store_testing::validPackage(Compression::Zstd, "1.0")));
    auto b =
        store.add(writeTarball("b.tar", store_testing::validPackage(Compression::Zstd, "2.0")));
    ASSERT_OK(a);
    ASSERT_OK(b);
    EXPECT_TRUE(store.has(a->ref.sha256));
    EXPECT_FALSE(store.has(std::string(64, '0')));
    EXPECT_FALSE(store.has("not-a-sha"));
    auto got = store.get(b->ref.sha256);
    ASSERT_OK(got);
    EXPECT_EQ(got->ref, b->ref);
    EXPECT_EQ(got->info.version, "2.0");
    ASSERT_ERROR(store.get(std::string(64, '0')), Errc::NotFound,
                 "package " + std::string(64, '0') + " is not in the store");
    ASSERT_ERROR(store.get("xyz"), Errc::Invalid,
                 "'xyz' is not a sha256 (64 lowercase hex digits)");

    auto by_id = store.find("demo--2.0");
    ASSERT_OK(by_id);
    EXPECT_EQ(by_id->ref.sha256, b->ref.sha256);
    auto by_sha = store.find(a->ref.sha256);
    ASSERT_OK(by_sha);
    EXPECT_EQ(by_sha->ref.id, "demo--1.0");
    ASSERT_ERROR(store.find("demo--3.0"), Errc::NotFound,
                 "package 'demo--3.0' is not in the store");
    ASSERT_ERROR(store.find("Demo"), Errc::Invalid, "package id 'Demo': must be <name>--<version>");

    auto all = store.list();
    ASSERT_OK(all);
    ASSERT_EQ(all->size(), 2u);
    EXPECT_EQ((*all)[0].ref.id, "demo--1.0");
    EXPECT_EQ((*all)[1].ref.id, "demo--2.0");
}

TEST_F(StoreTest, FindRefusesAnAmbiguousId) {
    // Same id, different bytes (gzip and zstd).
    auto a = store.add(writeTarball("a.tar", store_testing::validPackage(Compression::Gzip)));
    auto b = store.add(writeTarball("b.tar", store_testing::validPackage(Compression::Zstd)));
    ASSERT_OK(a);
    ASSERT_OK(b);
    auto r = store.find("demo--1.0");
    ASSERT_ERROR(r, Errc::Conflict, "package 'demo--1.0' matches 2 store entries (");
    EXPECT_NE(r.error().message.find("name one by sha256"), std::string::npos);
}

TEST_F(StoreTest, RemoveTakesTheEntryAway) {
    auto a = store.add(writeTarball("a.tar", store_testing::validPackage()));
    ASSERT_OK(a);
    ASSERT_OK(store.remove(a->ref.sha256));
    EXPECT_FALSE(store.has(a->ref.sha256));
    EXPECT_TRUE(fs::is_empty(layout.store()));
    ASSERT_ERROR(store.remove(a->ref.sha256), Errc::NotFound,
                 "package " + a->ref.sha256 + " is not in the store");
    ASSERT_ERROR(store.remove("../x"), Errc::Invalid, "'../x' is not a sha256");
}

TEST_F(StoreTest, VerifyPassesOnAnUntouchedPackage) {
    auto a = store.add(writeTarball("a.tar", store_testing::validPackage()));
    ASSERT_OK(a);
    auto report = store.verify(a->ref.sha256);
    ASSERT_OK(report);
    EXPECT_TRUE(report->ok()) << report->problems.front();
    EXPECT_EQ(report->id, "demo--1.0");
}

TEST_F(StoreTest, VerifyDetectsChangesAtRest) {
    auto a = store.add(writeTarball("a.tar", store_testing::validPackage()));
    ASSERT_OK(a);
    const auto& p = a->path;
    // Same size, other bytes: only the hash can tell.
    ::chmod((p / "lib/demo/libdemo.so.1").c_str(), 0644);
    testing::writeFile(p / "lib/demo/libdemo.so.1", "library bytes 6.6");
    ::chmod((p / "lib/demo/libdemo.so.1").c_str(), 0444);
    ::chmod((p / "share/doc").c_str(), 0755);
    fs::remove(p / "share/doc/README");
    testing::writeFile(p / "share/doc/EXTRA", "added at rest");
    ::chmod((p / "share/doc").c_str(), 0555);
    ::chmod((p / "bin/demo").c_str(), 0755);
    ::chmod((p / "lib/demo").c_str(), 0755);
    fs::remove(p / "lib/demo/libdemo.so");
    fs::create_symlink("/etc/passwd", p / "lib/demo/libdemo.so");
    ::chmod((p / "lib/demo").c_str(), 0555);

    auto report = store.verify(a->ref.sha256);
    ASSERT_OK(report);
    EXPECT_FALSE(report->ok());
    std::vector<std::string> expected = {
        "bin/demo-again: mode changed (0755, recorded 0555)",  // a hardlink: the same inode
        "bin/demo: mode changed (0755, recorded 0555)",
        "lib/demo/libdemo.so.1: content changed",
        "lib/demo/libdemo.so: symlink target changed",
        "share/doc/EXTRA: not in the manifest",
        "share/doc/README: missing",
    };
    EXPECT_EQ(report->problems, expected);
}

// The count pass runs beside the extraction, which writes at most 8,192 entries before its
// verdict: an archive over the limit past that window is refused as such, and nothing is kept.
TEST_F(StoreTest, AnArchiveOverTheEntryLimitPastTheUncountedWindowIsRefused) {
    ArchiveBuilder b(Compression::Zstd);
    b.pkginfo("many", "1.0").dir("share");
    for (int i = 0; i < 9000; ++i) b.file("share/f" + std::to_string(i), "x");
    auto tarball = writeTarball("many.tar.zst", b.finish());
    ExtractLimits limits;
    limits.max_entries = 8500;
    ASSERT_ERROR(store.add(tarball, limits), Errc::Invalid,
                 "': the archive holds more than 8500 entries (the limit)");
    EXPECT_TRUE(fs::is_empty(layout.store()));
    limits.max_entries = 9002;
    ASSERT_OK(store.add(tarball, limits));
}

TEST_F(StoreTest, RecoverRemovesInterruptedWork) {
    auto a = store.add(writeTarball("a.tar", store_testing::validPackage()));
    ASSERT_OK(a);
    testing::writeFile(layout.store() / ".tmp-abc/bin/x", "half");
    ::chmod((layout.store() / ".tmp-abc/bin").c_str(), 0555);
    auto removed = store.recover();
    ASSERT_OK(removed);
    EXPECT_EQ(*removed, 1);
    EXPECT_FALSE(fs::exists(layout.store() / ".tmp-abc"));
    EXPECT_TRUE(store.has(a->ref.sha256));
    auto again = store.recover();
    ASSERT_OK(again);
    EXPECT_EQ(*again, 0);
}

TEST_F(StoreTest, SparseAndEmptyFilesHashAsTheirContent) {
    ArchiveBuilder b;
    b.pkginfo().dir("share").file("share/empty", "").fileClaiming("share/padded", 10, "abc");
    auto added = store.add(writeTarball("s.tar", b.finish()));
    ASSERT_OK(added);
    EXPECT_EQ(fs::file_size(added->path / "share/empty"), 0u);
    auto report = store.verify(added->ref.sha256);
    ASSERT_OK(report);
    EXPECT_TRUE(report->ok());
}

// Small files are hashed and written by writer threads while the next entries are read;
// large ones, sparse ones and pkginfo.json by the reading thread. Every recorded hash must
// still be the hash of the bytes on disk, hardlinks included.
TEST_F(StoreTest, FilesWrittenOnWriterThreadsRecordTheirHashes) {
    ArchiveBuilder b;
    b.pkginfo().dir("share").dir("lib");
    std::map<std::string, std::string> contents;
    for (int i = 0; i < 300; ++i) {
        auto path = "share/f" + std::to_string(i);
        contents[path] =
            std::string(static_cast<std::size_t>(i * 97), static_cast<char>('a' + i % 26));
        b.file(path, contents[path]);
    }
    std::string big(9u << 20, 'x');
    for (std::size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i / 4096);
    contents["lib/big"] = big;
    b.file("lib/big", big);
    b.hardlink("share/again", "share/f7").hardlink("share/again2", "share/again");
    contents["share/again"] = contents["share/again2"] = contents["share/f7"];
    auto added = store.add(writeTarball("many.tar.zst", b.finish()));
    ASSERT_OK(added);
    auto report = store.verify(added->ref.sha256);
    ASSERT_OK(report);
    EXPECT_TRUE(report->ok()) << report->problems.front();
    auto text = files::readFile(added->path / ".hoist/manifest.json", 1u << 30);
    ASSERT_OK(text);
    for (const auto& [path, content] : contents) {
        EXPECT_EQ(testing::readFile(added->path / path), content) << path;
        EXPECT_NE(text->find(crypto::sha256Hex(content)), std::string::npos) << path;
    }
}

TEST_F(StoreTest, CrashBeforeRenameLeavesNoEntryAndRecoveryCleansUp) {
    auto tarball = writeTarball("a.tar.zst", store_testing::validPackage());
    auto crashed =
        testing::run({PKGMGR_BIN, "--root", layout.root.string(), "add", tarball.string()},
                     {{"HOIST_CRASH_AT", "store-add-before-rename"}});
    EXPECT_EQ(crashed.exit_code, kCrashExitCode);
    auto listed = store.list();
    ASSERT_OK(listed);
    EXPECT_TRUE(listed->empty());
    bool leftover = false;
    for (const auto& e : fs::directory_iterator(layout.store()))
        leftover = leftover || e.path().filename().string().starts_with(".tmp-");
    EXPECT_TRUE(leftover);

    auto again =
        testing::run({PKGMGR_BIN, "--root", layout.root.string(), "add", tarball.string()});
    EXPECT_EQ(again.exit_code, 0) << again.err;
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(layout.store()))
        names.push_back(e.path().filename());
    ASSERT_EQ(names.size(), 1u);
    EXPECT_TRUE(crypto::isSha256Hex(names[0]));
}

TEST_F(StoreTest, CrashAfterRenameLeavesACompleteEntry) {
    auto tarball = writeTarball("a.tar.zst", store_testing::validPackage());
    auto crashed =
        testing::run({PKGMGR_BIN, "--root", layout.root.string(), "add", tarball.string()},
                     {{"HOIST_CRASH_AT", "store-add-after-rename"}});
    EXPECT_EQ(crashed.exit_code, kCrashExitCode);
    auto listed = store.list();
    ASSERT_OK(listed);
    ASSERT_EQ(listed->size(), 1u);
    auto report = store.verify(listed->front().ref.sha256);
    ASSERT_OK(report);
    EXPECT_TRUE(report->ok());
}

// The verified stamp (<root>/run/verified/<sha256>): requireIntact re-hashes a package only
// when something in it changed since its content last matched the manifest.
class VerifiedStampTest : public StoreTest {
protected:
    /// Adds a package and waits (with a deadline) until its stamp stands for a re-hash: a
    /// stamp is not written while an entry's ctime is within the filesystem clock's current tick.
    std::string addStamped(const std::string& version) {
        auto added = store.add(writeTarball(
            "p-" + version + ".tar", store_testing::validPackage(Compression::None, version)));
        EXPECT_TRUE(added) << added.error().describe();
        if (!added) return {};
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (std::chrono::steady_clock::now() < deadline) {
            auto rehashed = store.requireIntact(added->ref.sha256);
            EXPECT_TRUE(rehashed) << rehashed.error().describe();
            if (!rehashed || !*rehashed) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        auto again = store.requireIntact(added->ref.sha256);
        EXPECT_TRUE(again && !*again) << "the stamp does not stand for a re-hash";
        return added->ref.sha256;
    }

    /// Writes new bytes of the same size into a stored file and puts its mtime back, as a
    /// careless edit that keeps `ls -l` unchanged would.
    static void overwriteKeepingMtime(const fs::path& file, std::string_view bytes) {
        struct stat before {};
        ASSERT_EQ(::stat(file.c_str(), &before), 0);
        ::chmod(file.c_str(), 0644);
        testing::writeFile(file, std::string(bytes));
        ::chmod(file.c_str(), before.st_mode & 07777);
        timespec times[2] = {before.st_atim, before.st_mtim};
        ASSERT_EQ(::utimensat(AT_FDCWD, file.c_str(), times, 0), 0);
        struct stat after {};
        ASSERT_EQ(::stat(file.c_str(), &after), 0);
        ASSERT_EQ(after.st_size, before.st_size);
        ASSERT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
    }
};

TEST_F(VerifiedStampTest, AStampStandsForARehashUntilAFileChanges) {
    auto sha = addStamped("1.0");
    ASSERT_FALSE(sha.empty());
    EXPECT_TRUE(fs::exists(layout.root / "run/verified" / sha));
    // Same size, other bytes, the old mtime put back: the ctime still moved.
    overwriteKeepingMtime(layout.storeEntry(sha) / "lib/demo/libdemo.so.1", "library bytes 6.6");
    auto refused = store.requireIntact(sha);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, Errc::Corrupt);
    EXPECT_NE(refused.error().message.find("lib/demo/libdemo.so.1: content changed"),
              std::string::npos)
        << refused.error().message;
    // And it stays refused: a failed check writes no stamp.
    ASSERT_FALSE(store.requireIntact(sha));
}

// A package's last paths (its folders sealed read-only, its rename into the store) change
// within the filesystem clock's current tick, so add() may find its stamp racy; stampDeferred()
// takes those again once the clock has moved on, so the first use of a package just added is
// not a re-hash.
TEST_F(VerifiedStampTest, APackageUsedRightAfterItsAddIsNotRehashed) {
    ASSERT_OK(files::makeDirs(layout.run()));
    for (int i = 0; i < 5; ++i) {
        auto added = store.add(
            writeTarball("fresh-" + std::to_string(i) + ".tar",
                         store_testing::validPackage(Compression::None, "5." + std::to_string(i))));
        ASSERT_OK(added);
        store.stampDeferred();
        EXPECT_TRUE(fs::exists(layout.root / "run/verified" / added->ref.sha256)) << i;
        auto rehashed = store.requireIntact(added->ref.sha256);
        ASSERT_OK(rehashed);
        EXPECT_FALSE(*rehashed) << "package " << i << " was re-hashed right after its add";
    }
}

// In a root without run/, add() writes no stamp (nor the index); stampDeferred() makes run/
// and writes the stamps of every package added since, one changed a moment ago included.
TEST_F(VerifiedStampTest, StampsOfARootWithoutRunWaitForStampDeferred) {
    std::vector<std::string> added;
    for (int i = 0; i < 3; ++i) {
        auto stored = store.add(
            writeTarball("bare-" + std::to_string(i) + ".tar",
                         store_testing::validPackage(Compression::None, "6." + std::to_string(i))));
        ASSERT_OK(stored);
        added.push_back(stored->ref.sha256);
    }
    EXPECT_FALSE(fs::exists(layout.run()));
    // A path of the first package changed in the filesystem clock's current tick (the mode
    // given again moves the ctime): its stamp waits for the clock to pass it.
    auto bin = layout.storeEntry(added.front()) / "bin";
    ASSERT_EQ(::chmod(bin.c_str(), 0555), 0);
    store.stampDeferred();
    for (const auto& sha : added) {
        EXPECT_TRUE(fs::exists(layout.root / "run/verified" / sha)) << sha;
        auto rehashed = store.requireIntact(sha);
        ASSERT_OK(rehashed);
        EXPECT_FALSE(*rehashed) << sha;
    }
}

// A re-hash that passes right after a change to the package (a mode given again) leaves a
// stamp that stands for the next check: it waited for the clock to leave the change's tick.
TEST_F(VerifiedStampTest, ARehashRightAfterAChangeLeavesAStampThatStands) {
    ASSERT_OK(files::makeDirs(layout.run()));
    auto added = store.add(
        writeTarball("touched.tar", store_testing::validPackage(Compression::None, "7.0")));
    ASSERT_OK(added);
    auto bin = added->path / "bin";
    ASSERT_EQ(::chmod(bin.c_str(), 0555), 0);
    auto first = store.requireIntact(added->ref.sha256);
    ASSERT_OK(first);
    EXPECT_TRUE(*first) << "the stamp of add stood for a folder whose ctime moved since";
    auto second = store.requireIntact(added->ref.sha256);
    ASSERT_OK(second);
    EXPECT_FALSE(*second) << "the re-hash right after the change left no stamp";
}

TEST_F(VerifiedStampTest, AFileAddedOrAFolderModeChangedIsNoticed) {
    auto sha = addStamped("1.1");
    ASSERT_FALSE(sha.empty());
    auto p = layout.storeEntry(sha);
    ::chmod((p / "share/doc").c_str(), 0755);
    testing::writeFile(p / "share/doc/EXTRA", "added at rest");
    ::chmod((p / "share/doc").c_str(), 0555);
    auto refused = store.requireIntact(sha);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find("share/doc/EXTRA: not in the manifest"),
              std::string::npos)
        << refused.error().message;

    // A change that leaves everything as recorded (a mode changed and put back) costs one
    // re-hash, then a new stamp stands again.
    auto other = addStamped("1.2");
    ASSERT_FALSE(other.empty());
    auto q = layout.storeEntry(other);
    ::chmod((q / "lib").c_str(), 0755);
    ::chmod((q / "lib").c_str(), 0555);
    auto rehashed = store.requireIntact(other);
    ASSERT_OK(rehashed);
    EXPECT_TRUE(*rehashed);
}

TEST_F(VerifiedStampTest, ADamagedOrForeignStampCostsARehashNotARefusal) {
    auto a = addStamped("2.0");
    auto b = addStamped("2.1");
    ASSERT_FALSE(a.empty());
    ASSERT_FALSE(b.empty());
    auto stamps = layout.root / "run/verified";
    auto text = testing::readFile(stamps / a);
    // Truncated after a whole line: its count and end marker no longer match.
    testing::writeFile(stamps / a, text.substr(0, text.find('\n', text.size() / 2) + 1));
    auto rehashed = store.requireIntact(a);
    ASSERT_OK(rehashed);
    EXPECT_TRUE(*rehashed);
    // Another entry's stamp under this name names another sha256.
    fs::copy_file(stamps / a, stamps / b, fs::copy_options::overwrite_existing);
    rehashed = store.requireIntact(b);
    ASSERT_OK(rehashed);
    EXPECT_TRUE(*rehashed);
    // remove() takes the stamp with the entry.
    ASSERT_OK(store.remove(a));
    EXPECT_FALSE(fs::exists(stamps / a));
}

// The index (<root>/run/store-index.json) is a cache of every entry's reference and
// pkginfo.json: whatever happens to it, list and find answer from the store's real content.
class StoreIndexTest : public StoreTest {
protected:
    void SetUp() override { ASSERT_OK(layout.ensure()); }
    fs::path indexFile() const { return layout.run() / "store-index.json"; }
    std::string indexText() const {
        auto text = files::readFile(indexFile());
        return text ? *text : std::string();
    }
    std::vector<std::string> listedIds(Store& s) {
        std::vector<std::string> ids;
        auto all = s.list();
        EXPECT_TRUE(all.has_value());
        if (all)
            for (const auto& p : *all) ids.push_back(p.ref.id);
        return ids;
    }
    StoredPackage addVersion(const std::string& version) {
        auto added = store.add(writeTarball(
            version + ".tar", store_testing::validPackage(Compression::Zstd, version)));
        EXPECT_TRUE(added.has_value());
        return *added;
    }
};

TEST_F(StoreIndexTest, AddAndRemoveKeepTheIndexFileInStep) {
    EXPECT_FALSE(fs::exists(indexFile()));
    auto a = addVersion("1.0");
    auto b = addVersion("2.0");
    auto text = indexText();
    EXPECT_NE(text.find(a.ref.sha256), std::string::npos);
    EXPECT_NE(text.find(b.ref.sha256), std::string::npos);
    EXPECT_NE(text.find(R"("kind":"tool")"), std::string::npos) << text;
    ASSERT_OK(store.remove(a.ref.sha256));
    text = indexText();
    EXPECT_EQ(text.find(a.ref.sha256), std::string::npos);
    EXPECT_NE(text.find(b.ref.sha256), std::string::npos);
    // An empty store has no index file.
    ASSERT_OK(store.remove(b.ref.sha256));
    EXPECT_FALSE(fs::exists(indexFile()));
}

TEST_F(StoreIndexTest, AMissingOrDamagedIndexIsRebuilt) {
    auto a = addVersion("1.0");
    auto b = addVersion("2.0");
    const std::vector<std::string> both = {"demo--1.0", "demo--2.0"};
    for (std::string damage : {"", "{not json", R"({"format":1,"packages":[{"ref":1}]})",
                               R"({"format":9,"packages":[]})"}) {
        SCOPED_TRACE(damage);
        if (damage.empty()) {
            fs::remove(indexFile());
        } else {
            testing::writeFile(indexFile(), damage);
        }
        auto fresh = *Store::open(layout);
        EXPECT_EQ(listedIds(fresh), both);
        auto found = fresh.find("demo--2.0");
        ASSERT_OK(found);
        EXPECT_EQ(found->ref, b.ref);
        // Rewritten whole.
        EXPECT_NE(indexText().find(a.ref.sha256), std::string::npos);
        EXPECT_NE(indexText().find(b.ref.sha256), std::string::npos);
    }
}

TEST_F(StoreIndexTest, AStaleIndexIsRepairedFromTheStoreFolders) {
    auto a = addVersion("1.0");
    auto stale = indexText();  // holds 1.0 only
    auto b = addVersion("2.0");
    ASSERT_OK(store.remove(a.ref.sha256));
    auto c = addVersion("3.0");
    testing::writeFile(indexFile(), stale);  // lists a (gone), lacks b and c

    auto fresh = *Store::open(layout);
    EXPECT_EQ(listedIds(fresh), (std::vector<std::string>{"demo--2.0", "demo--3.0"}));
    ASSERT_ERROR(fresh.find("demo--1.0"), Errc::NotFound,
                 "package 'demo--1.0' is not in the store");
    auto found = fresh.find("demo--3.0");
    ASSERT_OK(found);
    EXPECT_EQ(found->ref, c.ref);
    EXPECT_EQ(indexText().find(a.ref.sha256), std::string::npos);
    EXPECT_NE(indexText().find(b.ref.sha256), std::string::npos);
}

TEST_F(StoreIndexTest, AnotherStoreObjectSeesChangesMadeMeanwhile) {
    auto a = addVersion("1.0");
    auto other = *Store::open(layout);
    EXPECT_EQ(listedIds(other), (std::vector<std::string>{"demo--1.0"}));
    auto b = addVersion("2.0");  // through `store`, after `other` read the index
    EXPECT_EQ(listedIds(other), (std::vector<std::string>{"demo--1.0", "demo--2.0"}));
    ASSERT_OK(store.remove(a.ref.sha256));
    ASSERT_ERROR(other.find("demo--1.0"), Errc::NotFound, "is not in the store");
    auto found = other.find("demo--2.0");
    ASSERT_OK(found);
    EXPECT_EQ(found->ref, b.ref);
    // Once the store folder's mtime is older than its timestamps' granularity, `other` trusts
    // it: a change must still show through the new mtime. (A wait past the window, not luck.)
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    EXPECT_EQ(listedIds(other), (std::vector<std::string>{"demo--2.0"}));
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    addVersion("3.0");
    EXPECT_EQ(listedIds(other), (std::vector<std::string>{"demo--2.0", "demo--3.0"}));
}

TEST_F(StoreIndexTest, StaysCorrectAcrossCrashPoints) {
    auto a = addVersion("1.0");
    // Crash after the entry is renamed into place, before the index is written.
    auto tarball = writeTarball("2.tar", store_testing::validPackage(Compression::Zstd, "2.0"));
    auto crashed =
        testing::run({PKGMGR_BIN, "--root", layout.root.string(), "add", tarball.string()},
                     {{"HOIST_CRASH_AT", "store-add-after-rename"}});
    EXPECT_EQ(crashed.exit_code, kCrashExitCode);
    auto fresh = *Store::open(layout);
    EXPECT_EQ(listedIds(fresh), (std::vector<std::string>{"demo--1.0", "demo--2.0"}));
    auto b = fresh.find("demo--2.0");
    ASSERT_OK(b);
    EXPECT_NE(indexText().find(b->ref.sha256), std::string::npos);

    // Crash after the entry is renamed away, before the index is written.
    auto removed =
        testing::run({PKGMGR_BIN, "--root", layout.root.string(), "remove", a.ref.sha256},
                     {{"HOIST_CRASH_AT", "store-remove-after-rename"}});
    EXPECT_EQ(removed.exit_code, kCrashExitCode);
    auto after = *Store::open(layout);
    EXPECT_EQ(listedIds(after), (std::vector<std::string>{"demo--2.0"}));
    ASSERT_ERROR(after.find("demo--1.0"), Errc::NotFound, "is not in the store");
    EXPECT_EQ(indexText().find(a.ref.sha256), std::string::npos);
    auto cli_list = testing::run({PKGMGR_BIN, "--root", layout.root.string(), "list"});
    EXPECT_EQ(cli_list.exit_code, 0) << cli_list.err;
    EXPECT_EQ(cli_list.out.find("demo--1.0"), std::string::npos) << cli_list.out;
    EXPECT_NE(cli_list.out.find("demo--2.0"), std::string::npos) << cli_list.out;

    // An index write cut before its rename leaves a temporary file that recovery removes.
    testing::writeFile(layout.run() / ".tmp-store-index.json-0a1b2c", "{");
    auto recovered = after.recover();
    ASSERT_OK(recovered);
    EXPECT_EQ(*recovered, 2);  // that file and the crashed removal's store/.tmp-rm-*
    EXPECT_FALSE(fs::exists(layout.run() / ".tmp-store-index.json-0a1b2c"));
    EXPECT_TRUE(fs::exists(indexFile()));
}

}  // namespace
}  // namespace hoist::pkgmgr
