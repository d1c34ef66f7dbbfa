// pkgmgr pack: byte-reproducible tarballs that the store accepts, and refusals of folders
// the store would refuse.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "core/crypto.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"
#include "pkgmgr/pack.hpp"
#include "store_fixtures.hpp"

namespace hoist::pkgmgr {
namespace {

class PackTest : public ::testing::Test, public store_testing::StoreFixture {};

struct TreeFile {
    std::string path;
    std::string content;
    bool exec = false;
};

const std::vector<TreeFile> kTree = {
    {"pkginfo.json", R"({"name": "repro", "version": "1.2.3", "kind": "tool"})"},
    {"bin/repro", "#!/bin/sh\necho repro\n", true},
    {"lib/librepro.so.1", std::string(100000, 'r')},
    {"share/repro/a.txt", "a"},
    {"share/repro/b.txt", "b"},
    {"share/repro/nested/deep/c.txt", "c"},
    {"etc/repro.conf", "key = value\n"},
};

/// Writes the tree with files made in `order`, under `umask_value`, with mtimes `mtime`.
void makeTree(const fs::path& dir, const std::vector<std::size_t>& order, mode_t umask_value,
              time_t mtime) {
    mode_t old = ::umask(umask_value);
    for (auto i : order) {
        const auto& f = kTree[i];
        fs::create_directories((dir / f.path).parent_path());
        testing::writeFile(dir / f.path, f.content);
        fs::permissions(dir / f.path,
                        fs::perms(f.exec ? (0777 & ~umask_value) : (0666 & ~umask_value)),
                        fs::perm_options::replace);
    }
    fs::create_symlink("librepro.so.1", dir / "lib/librepro.so");
    ::umask(old);
    timeval times[2] = {{mtime, 0}, {mtime, 0}};
    for (auto& e : fs::recursive_directory_iterator(dir)) ::lutimes(e.path().c_str(), times);
}

TEST_F(PackTest, SameFolderGivesTheSameBytesWhateverTheOrderUmaskOrTime) {
    makeTree(tmp / "a", {0, 1, 2, 3, 4, 5, 6}, 022, 1000000000);
    makeTree(tmp / "b", {6, 5, 4, 3, 2, 1, 0}, 077, 1700000000);
    // Two real processes, at different times, the second under another umask.
    auto first = testing::run(
        {PKGMGR_BIN, "pack", (tmp / "a").string(), "-o", (tmp / "a.tar.zst").string()});
    ASSERT_EQ(first.exit_code, 0) << first.err;
    auto second = testing::run({"/bin/sh", "-c", "umask 077; exec \"$0\" pack \"$1\" -o \"$2\"",
                                PKGMGR_BIN, (tmp / "b").string(), (tmp / "b.tar.zst").string()});
    ASSERT_EQ(second.exit_code, 0) << second.err;
    EXPECT_EQ(first.out, second.out);
    auto sha_a = crypto::sha256File(tmp / "a.tar.zst");
    auto sha_b = crypto::sha256File(tmp / "b.tar.zst");
    ASSERT_OK(sha_a);
    ASSERT_OK(sha_b);
    EXPECT_EQ(*sha_a, *sha_b);
    // stdout is the package reference.
    auto doc = json::parseObject(first.out, "pack output");
    ASSERT_OK(doc);
    auto ref = PackageRef::fromJson(*doc, "pack output");
    ASSERT_OK(ref);
    EXPECT_EQ(ref->id, "repro--1.2.3");
    EXPECT_EQ(ref->sha256, *sha_a);
    EXPECT_EQ(ref->size, fs::file_size(tmp / "a.tar.zst"));
}

TEST_F(PackTest, PackedTarballIsAcceptedWithNormalisedModes) {
    makeTree(tmp / "a", {0, 1, 2, 3, 4, 5, 6}, 027, 1000000000);
    auto packed = packDirectory(tmp / "a", tmp / "out/a.tar.zst");
    ASSERT_OK(packed);
    EXPECT_EQ(packed->file, tmp / "out/a.tar.zst");
    auto added = store.add(packed->file);
    ASSERT_OK(added);
    EXPECT_EQ(added->ref, packed->ref);
    EXPECT_EQ(testing::readFile(added->path / "share/repro/nested/deep/c.txt"), "c");
    EXPECT_EQ(fs::read_symlink(added->path / "lib/librepro.so"), "librepro.so.1");
    struct stat st {};
    ::stat((added->path / "bin/repro").c_str(), &st);
    EXPECT_EQ(st.st_mode & 0777, 0555u);
    ::stat((added->path / "etc/repro.conf").c_str(), &st);
    EXPECT_EQ(st.st_mode & 0777, 0444u);
}

TEST_F(PackTest, DefaultOutputIsIdInTheCurrentFolder) {
    makeTree(tmp / "a", {0, 1, 2, 3, 4, 5, 6}, 022, 1000000000);
    auto old = fs::current_path();
    fs::current_path(tmp.path());
    auto packed = packDirectory(tmp / "a", {});
    fs::current_path(old);
    ASSERT_OK(packed);
    EXPECT_EQ(packed->file, tmp / "repro--1.2.3.tar.zst");
    EXPECT_TRUE(fs::exists(tmp / "repro--1.2.3.tar.zst"));
}

TEST_F(PackTest, RefusesWhatTheStoreWouldRefuse) {
    auto dir = tmp / "p";
    auto what = "pack '" + dir.string() + "': ";
    ASSERT_ERROR(packDirectory(tmp / "absent", tmp / "x.tar.zst"), Errc::NotFound,
                 "pack '" + (tmp / "absent").string() + "': not a folder");
    fs::create_directories(dir / "bin");
    ASSERT_ERROR(packDirectory(dir, tmp / "x.tar.zst"), Errc::Invalid,
                 what + "pkginfo.json is missing at the package root");
    testing::writeFile(dir / "pkginfo.json", R"({"name": "p", "version": "1", "kind": "toool"})");
    ASSERT_ERROR(packDirectory(dir, tmp / "x.tar.zst"), Errc::Invalid,
                 what + "pkginfo.json: field 'kind' must be one of");
    testing::writeFile(dir / "pkginfo.json", R"({"name": "p", "version": "1", "kind": "tool"})");
    testing::writeFile(dir / "README", "not allowed at the root");
    ASSERT_ERROR(
        packDirectory(dir, tmp / "x.tar.zst"), Errc::Invalid,
        what +
            "'README': only pkginfo.json and the folders bin, lib, libexec, etc, share, include, "
            "units may be at the package root");
    fs::remove(dir / "README");
    fs::create_symlink("/etc/passwd", dir / "bin/passwd");
    ASSERT_ERROR(
        packDirectory(dir, tmp / "x.tar.zst"), Errc::Invalid,
        what + "'bin/passwd': the symlink target '/etc/passwd' is absolute and leaves the package");
    fs::remove(dir / "bin/passwd");
    ASSERT_EQ(::mkfifo((dir / "bin/fifo").c_str(), 0644), 0);
    ASSERT_ERROR(packDirectory(dir, tmp / "x.tar.zst"), Errc::Invalid,
                 what + "'bin/fifo': only files, folders and symlinks can be packed");
    fs::remove(dir / "bin/fifo");
    EXPECT_FALSE(fs::exists(tmp / "x.tar.zst"));
    ASSERT_OK(packDirectory(dir, tmp / "x.tar.zst"));
    // No temporary file left beside the output.
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(tmp.path())) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"p", "root", "x.tar.zst"}));
}

TEST_F(PackTest, Utf8NamesRoundTripThroughPackAddAndVerify) {
    // Names in NFC and NFD, a symlink to one, and a folder: bytes must survive as they are.
    const std::string cafe = "share/fmt/caf\xc3\xa9-\xc3\xbcnicode.txt";
    const std::string nfd = "share/fmt/cafe\xcc\x81.txt";
    const std::string folder = "share/\xe6\x97\xa5\xe6\x9c\xac";
    auto dir = tmp / "u";
    fs::create_directories(dir / folder);
    testing::writeFile(dir / "pkginfo.json",
                       R"({"name": "utf", "version": "1.0.0", "kind": "tool"})");
    testing::writeFile(dir / cafe, "caf\xc3\xa9");
    testing::writeFile(dir / nfd, "nfd");
    testing::writeFile(dir / folder / "x", "x");
    fs::create_symlink("caf\xc3\xa9-\xc3\xbcnicode.txt", dir / "share/fmt/link");
    // The real binary, whatever the locale: the bytes are the same.
    std::vector<std::string> shas;
    for (const char* locale : {"C", "C.UTF-8", "POSIX"}) {
        auto out = tmp / (std::string("u-") + locale + ".tar.zst");
        auto packed = testing::run({PKGMGR_BIN, "pack", dir.string(), "-o", out.string()},
                                   {{"LC_ALL", locale}});
        ASSERT_EQ(packed.exit_code, 0) << locale << ": " << packed.err;
        auto sha = crypto::sha256File(out);
        ASSERT_OK(sha);
        shas.push_back(*sha);
    }
    EXPECT_EQ(shas[0], shas[1]);
    EXPECT_EQ(shas[0], shas[2]);

    auto root = tmp / "node";
    auto tarball = (tmp / "u-C.tar.zst").string();
    auto added = testing::run({PKGMGR_BIN, "--root", root.string(), "add", tarball});
    ASSERT_EQ(added.exit_code, 0) << added.err;
    auto verified = testing::run({PKGMGR_BIN, "--root", root.string(), "verify", "utf--1.0.0"});
    EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
    auto listed =
        testing::run({PKGMGR_BIN, "--root", root.string(), "info", "utf--1.0.0", "--json"});
    ASSERT_EQ(listed.exit_code, 0) << listed.err;
    auto info = json::parseObject(listed.out, "info");
    ASSERT_OK(info);
    auto path = json::getString(*info, "path", "info");
    ASSERT_OK(path);
    // The stored names are the packed bytes, and the store's manifest names them as JSON.
    EXPECT_EQ(testing::readFile(fs::path(*path) / cafe), "caf\xc3\xa9");
    EXPECT_EQ(testing::readFile(fs::path(*path) / nfd), "nfd");
    EXPECT_EQ(testing::readFile(fs::path(*path) / folder / "x"), "x");
    EXPECT_EQ(fs::read_symlink(fs::path(*path) / "share/fmt/link"),
              "caf\xc3\xa9-\xc3\xbcnicode.txt");
    auto manifest = testing::readFile(fs::path(*path) / ".hoist/manifest.json");
    EXPECT_NE(manifest.find(cafe), std::string::npos);
    ASSERT_OK(json::parse(manifest, "manifest"));

    // The same tree as GNU tar writes it (raw bytes in ustar headers) is stored the same way.
    auto again = store.add(fs::path(tarball));
    ASSERT_OK(again);
    testing::ArchiveBuilder gnu(testing::ArchiveBuilder::Compression::Zstd,
                                testing::ArchiveBuilder::Format::Gnu);
    auto bytes = gnu.pkginfo("utf-gnu", "1.0.0").dir("share").file(cafe, "g").finish();
    auto gnu_file = tmp / "gnu.tar.zst";
    testing::writeFile(gnu_file, bytes);
    auto from_gnu = store.add(gnu_file);
    ASSERT_OK(from_gnu);
    EXPECT_EQ(testing::readFile(from_gnu->path / cafe), "g");
}

TEST_F(PackTest, NamesThatAreNotUtf8AreRefusedAsAddRefusesThem) {
    auto dir = tmp / "l";
    fs::create_directories(dir / "share");
    testing::writeFile(dir / "pkginfo.json", R"({"name": "l", "version": "1", "kind": "tool"})");
    testing::writeFile(dir / "share/caf\xe9", "latin-1");
    ASSERT_ERROR(packDirectory(dir, tmp / "l.tar.zst"), Errc::Invalid,
                 "pack '" + dir.string() +
                     "': 'share/caf\\xe9': the path is not valid UTF-8 (package paths must be "
                     "UTF-8)");
    EXPECT_FALSE(fs::exists(tmp / "l.tar.zst"));
    // The rule is well-formed UTF-8, not "some high bytes".
    EXPECT_TRUE(strings::isUtf8("caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x93\xa6"));
    for (const char* bad : {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc3",
                            "a\xff"
                            "b"})
        EXPECT_FALSE(strings::isUtf8(bad)) << bad;
}

}  // namespace
}  // namespace hoist::pkgmgr
