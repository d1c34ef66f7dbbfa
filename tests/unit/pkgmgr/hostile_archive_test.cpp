// A corpus of hostile archives, each built here with libarchive: every one is refused with a
// message naming the entry and the rule, the store is exactly as before, and nothing is
// written outside the node root.
#include <gtest/gtest.h>

#include <functional>

#include "store_fixtures.hpp"

namespace hoist::pkgmgr {
namespace {

using testing::ArchiveBuilder;
using Compression = ArchiveBuilder::Compression;

struct HostileCase {
    std::string name;
    std::function<std::string()> build;
    Errc code;
    /// The message after "package archive '<file>': " (entries named as the archive names
    /// them: libarchive gives folders a trailing '/').
    std::string message;
    ExtractLimits limits{};
};

ArchiveBuilder pkg() {
    ArchiveBuilder b;
    b.pkginfo();
    return b;
}

std::vector<HostileCase> corpus() {
    const std::string roots =
        "only pkginfo.json and the folders bin, lib, libexec, etc, share, include, "
        "units may be at the package root";
    ExtractLimits few_entries;
    few_entries.max_entries = 4;
    ExtractLimits few_bytes;
    few_bytes.max_unpacked_bytes = 1000;
    ExtractLimits short_paths;
    short_paths.max_path_length = 40;
    return {
        {"absolute_path", [] { return pkg().file("/tmp/hoist-evil", "x").finish(); }, Errc::Invalid,
         "entry '/tmp/hoist-evil': absolute paths are not allowed"},
        {"dotdot_at_start", [] { return pkg().file("../evil", "x").finish(); }, Errc::Invalid,
         "entry '../evil': '..' is not allowed in a path"},
        {"dotdot_inside", [] { return pkg().dir("bin").file("bin/../../evil", "x").finish(); },
         Errc::Invalid, "entry 'bin/../../evil': '..' is not allowed in a path"},
        {"dotdot_dir", [] { return pkg().dir("lib/..").finish(); }, Errc::Invalid,
         "entry 'lib/../': '..' is not allowed in a path"},
        {"symlink_absolute", [] { return pkg().dir("bin").symlink("bin/sh", "/bin/sh").finish(); },
         Errc::Invalid,
         "entry 'bin/sh': the symlink target '/bin/sh' is absolute and leaves the package"},
        {"symlink_climbs_out",
         [] { return pkg().dir("bin").symlink("bin/up", "../../etc").finish(); }, Errc::Invalid,
         "entry 'bin/up': the symlink target '../../etc' leaves the package"},
        {"symlink_dotdot_after_name",
         [] { return pkg().dir("lib").symlink("lib/x", "sub/../../../etc").finish(); },
         Errc::Invalid,
         "entry 'lib/x': the symlink target 'sub/../../../etc' may use '..' only at its start"},
        {"symlink_chain_escape",
         [] {
             return pkg()
                 .dir("lib")
                 .symlink("lib/self", ".")
                 .symlink("lib/y", "self/../..")
                 .finish();
         },
         Errc::Invalid,
         "entry 'lib/y': the symlink target 'self/../..' may use '..' only at its start"},
        {"symlink_empty_target", [] { return pkg().dir("lib").symlink("lib/empty", "").finish(); },
         Errc::Invalid, "entry 'lib/empty': a symlink target must not be empty"},
        {"write_through_symlink",
         [] {
             return pkg()
                 .dir("lib")
                 .dir("bin")
                 .symlink("lib/out", "../bin")
                 .file("lib/out/x", "x")
                 .finish();
         },
         Errc::Invalid, "entry 'lib/out/x': writing through the symlink 'lib/out' is not allowed"},
        {"overwrite_symlink_with_file",
         [] { return pkg().dir("bin").symlink("bin/l", "x").file("bin/l", "y").finish(); },
         Errc::Invalid, "entry 'bin/l': the path appears twice in the archive"},
        {"duplicate_file",
         [] { return pkg().dir("bin").file("bin/a", "1").file("bin/a", "2").finish(); },
         Errc::Invalid, "entry 'bin/a': the path appears twice in the archive"},
        {"file_then_dir", [] { return pkg().dir("bin").file("bin/a", "1").dir("bin/a").finish(); },
         Errc::Invalid, "entry 'bin/a/': the path appears twice in the archive"},
        {"file_as_parent",
         [] { return pkg().dir("bin").file("bin/a", "1").file("bin/a/b", "2").finish(); },
         Errc::Invalid, "entry 'bin/a/b': 'bin/a' is not a folder"},
        {"hardlink_absolute",
         [] { return pkg().dir("bin").hardlink("bin/h", "/etc/passwd").finish(); }, Errc::Invalid,
         "entry 'bin/h': hardlink target '/etc/passwd': absolute paths are not allowed"},
        {"hardlink_dotdot",
         [] { return pkg().dir("bin").hardlink("bin/h", "../outside").finish(); }, Errc::Invalid,
         "entry 'bin/h': hardlink target '../outside': '..' is not allowed in a path"},
        {"hardlink_unknown_target",
         [] { return pkg().dir("bin").hardlink("bin/h", "bin/later").finish(); }, Errc::Invalid,
         "entry 'bin/h': the hardlink target 'bin/later' is not a regular file earlier in the "
         "package"},
        {"hardlink_to_symlink",
         [] { return pkg().dir("bin").symlink("bin/s", "x").hardlink("bin/h", "bin/s").finish(); },
         Errc::Invalid,
         "entry 'bin/h': the hardlink target 'bin/s' is not a regular file earlier in the package"},
        {"char_device", [] { return pkg().dir("lib").special("lib/null", AE_IFCHR).finish(); },
         Errc::Invalid, "entry 'lib/null': device files are not allowed"},
        {"block_device", [] { return pkg().dir("lib").special("lib/sda", AE_IFBLK).finish(); },
         Errc::Invalid, "entry 'lib/sda': device files are not allowed"},
        {"fifo", [] { return pkg().dir("lib").special("lib/pipe", AE_IFIFO).finish(); },
         Errc::Invalid, "entry 'lib/pipe': fifos are not allowed"},
        {"setuid_file", [] { return pkg().dir("bin").file("bin/su", "x", 04755).finish(); },
         Errc::Invalid, "entry 'bin/su': setuid and setgid bits are not allowed"},
        {"setgid_dir", [] { return pkg().dir("lib", 02755).finish(); }, Errc::Invalid,
         "entry 'lib/': setuid and setgid bits are not allowed"},
        {"unknown_root_entry", [] { return pkg().file("evil.sh", "x").finish(); }, Errc::Invalid,
         "entry 'evil.sh': " + roots},
        {"spoofed_store_manifest", [] { return pkg().file(".hoist/manifest.json", "{}").finish(); },
         Errc::Invalid, "entry '.hoist/manifest.json': " + roots},
        {"root_well_known_as_file", [] { return pkg().file("bin", "x").finish(); }, Errc::Invalid,
         "entry 'bin': 'bin' at the package root must be a folder"},
        {"root_well_known_as_symlink", [] { return pkg().symlink("lib", "bin").finish(); },
         Errc::Invalid, "entry 'lib': 'lib' at the package root must be a folder"},
        {"pkginfo_as_symlink",
         [] {
             return ArchiveBuilder()
                 .dir("etc")
                 .file("etc/i", "{}")
                 .symlink("pkginfo.json", "etc/i")
                 .finish();
         },
         Errc::Invalid,
         "entry 'pkginfo.json': pkginfo.json must be a regular file at the package root"},
        {"pkginfo_as_folder", [] { return ArchiveBuilder().dir("pkginfo.json").finish(); },
         Errc::Invalid,
         "entry 'pkginfo.json/': pkginfo.json must be a regular file at the package root"},
        {"pkginfo_missing",
         [] { return ArchiveBuilder().dir("bin").file("bin/pkginfo.json", "{}").finish(); },
         Errc::Invalid, "pkginfo.json is missing at the package root"},
        {"pkginfo_invalid",
         [] {
             return ArchiveBuilder()
                 .file("pkginfo.json", R"({"name": "x", "version": "1", "kind": "daemon"})")
                 .finish();
         },
         Errc::Invalid,
         "pkginfo.json: field 'kind' must be one of mesos, mesos-config, module, library, tool, "
         "not 'daemon'"},
        {"long_path",
         [] { return pkg().dir("share").file("share/" + std::string(60, 'a'), "x").finish(); },
         Errc::Invalid,
         "entry 'share/" + std::string(60, 'a') + "': the path is longer than 40 characters",
         short_paths},
        {"long_path_part",
         [] { return pkg().dir("share").file("share/" + std::string(300, 'b'), "x").finish(); },
         Errc::Invalid,
         "entry 'share/" + std::string(300, 'b') + "': a path part is longer than 255 characters"},
        {"too_many_entries",
         [] {
             return pkg()
                 .dir("bin")
                 .file("bin/1", "1")
                 .file("bin/2", "2")
                 .file("bin/3", "3")
                 .finish();
         },
         Errc::Invalid, "the archive holds more than 4 entries (the limit)", few_entries},
        // The count is known before any entry is judged or written: a refused entry early in
        // an archive that is too long is never reached.
        {"too_many_entries_counted_first",
         [] {
             return pkg()
                 .dir("bin")
                 .file("../evil", "x")
                 .file("bin/2", "2")
                 .file("bin/3", "3")
                 .finish();
         },
         Errc::Invalid, "the archive holds more than 4 entries (the limit)", few_entries},
        {"too_many_bytes",
         [] { return pkg().dir("share").file("share/big", std::string(2000, 'z')).finish(); },
         Errc::Invalid,
         "entry 'share/big': the package unpacks to more than 1000 bytes (the limit)", few_bytes},
        {"too_many_bytes_in_total",
         [] {
             return pkg()
                 .dir("share")
                 .file("share/a", std::string(600, 'z'))
                 .file("share/b", std::string(600, 'y'))
                 .finish();
         },
         Errc::Invalid, "entry 'share/b': the package unpacks to more than 1000 bytes (the limit)",
         few_bytes},
        {"not_an_archive", [] { return std::string(4096, 'Z'); }, Errc::Invalid,
         "not a package (a tar archive, uncompressed or zstd, xz or gzip): Unrecognized archive "
         "format"},
        // Other compressions and formats are refused naming what was found.
        {"bzip2", [] { return ArchiveBuilder(Compression::Bzip2).pkginfo().finish(); },
         Errc::Invalid,
         "not a package (a tar archive, uncompressed or zstd, xz or gzip): found a tar archive "
         "compressed with bzip2"},
        {"lz4", [] { return ArchiveBuilder(Compression::Lz4).pkginfo().finish(); }, Errc::Invalid,
         "not a package (a tar archive, uncompressed or zstd, xz or gzip): found a tar archive "
         "compressed with lz4"},
        // One rule for names, in add as in pack: a path that is not UTF-8 is refused.
        {"latin1_name",
         [] {
             ArchiveBuilder b(Compression::Zstd, ArchiveBuilder::Format::Gnu);
             return b.pkginfo().dir("share").file("share/caf\xe9", "x").finish();
         },
         Errc::Invalid,
         "entry 'share/caf\\xe9': the path is not valid UTF-8 (package paths must be UTF-8)"},
        {"latin1_symlink_target",
         [] {
             ArchiveBuilder b(Compression::Zstd, ArchiveBuilder::Format::Gnu);
             return b.pkginfo().dir("share").symlink("share/link", "caf\xe9").finish();
         },
         Errc::Invalid,
         "entry 'share/link': the symlink target is not valid UTF-8 (package paths must be "
         "UTF-8)"},
        {"empty_file", [] { return std::string(); }, Errc::Invalid,
         "not a package (a tar archive, uncompressed or zstd, xz or gzip): Unrecognized archive "
         "format"},
    };
}

class HostileArchives : public ::testing::Test, public store_testing::StoreFixture {};

TEST_F(HostileArchives, EachIsRefusedAndChangesNothing) {
    auto cases = corpus();
    ASSERT_GE(cases.size(), 20u);
    // An existing package, so "unchanged" covers a non-empty store too.
    ASSERT_OK(store.add(writeTarball("good.tar.zst", store_testing::validPackage())));
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        auto tarball = writeTarball(c.name + ".tar", c.build());
        auto before = store_testing::snapshot(tmp.path());
        auto r = store.add(tarball, c.limits);
        ASSERT_FALSE(r.has_value()) << c.name << " was accepted";
        EXPECT_EQ(r.error().code, c.code) << r.error().message;
        EXPECT_EQ(r.error().message, "package archive '" + tarball.string() + "': " + c.message);
        EXPECT_EQ(store_testing::snapshot(tmp.path()), before);
    }
    EXPECT_FALSE(fs::exists("/tmp/hoist-evil"));
    auto listed = store.list();
    ASSERT_OK(listed);
    EXPECT_EQ(listed->size(), 1u);
}

TEST_F(HostileArchives, OtherFormatsAreNamed) {
    auto zip = ArchiveBuilder(Compression::None, ArchiveBuilder::Format::Zip).pkginfo().finish();
    auto r = store.add(writeTarball("zip.zip", zip));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("not a package (a tar archive, uncompressed or zstd, xz or "
                                     "gzip): found format 'ZIP"),
              std::string::npos)
        << r.error().message;
    auto gzip_zip =
        ArchiveBuilder(Compression::Gzip, ArchiveBuilder::Format::Zip).pkginfo().finish();
    r = store.add(writeTarball("zip.zip.gz", gzip_zip));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("' compressed with gzip"), std::string::npos)
        << r.error().message;
}

TEST_F(HostileArchives, TruncatedArchiveIsCorrupt) {
    auto bytes = store_testing::validPackage(Compression::None);
    auto tarball = writeTarball("cut.tar", bytes.substr(0, 1000));
    auto before = store_testing::snapshot(tmp.path());
    auto r = store.add(tarball);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::Corrupt) << r.error().message;
    EXPECT_NE(r.error().message.find("package archive '" + tarball.string() + "': "),
              std::string::npos)
        << r.error().message;
    EXPECT_EQ(store_testing::snapshot(tmp.path()), before);
}

TEST_F(HostileArchives, CorruptCompressedStreamIsRefused) {
    auto bytes = store_testing::validPackage(Compression::Zstd);
    for (std::size_t i = bytes.size() / 2; i < bytes.size() / 2 + 16 && i < bytes.size(); ++i)
        bytes[i] ^= 0x5a;
    auto tarball = writeTarball("flipped.tar.zst", bytes);
    auto before = store_testing::snapshot(tmp.path());
    auto r = store.add(tarball);
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().code == Errc::Corrupt || r.error().code == Errc::Invalid)
        << r.error().message;
    EXPECT_EQ(store_testing::snapshot(tmp.path()), before);
}

}  // namespace
}  // namespace hoist::pkgmgr
