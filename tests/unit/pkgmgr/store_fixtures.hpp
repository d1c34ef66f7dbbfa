#pragma once
// Shared pieces of the store tests: a node root in a temp folder and a snapshot of a tree
// (to prove that a refused operation changed nothing, inside the root or beside it).

#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <string>

#include "archive_builder.hpp"
#include "core/crypto.hpp"
#include "pkgmgr/store.hpp"
#include "testing.hpp"

namespace hoist::pkgmgr::store_testing {

namespace fs = std::filesystem;

/// path -> "type mode size sha256|target" for everything under `dir`.
inline std::map<std::string, std::string> snapshot(const fs::path& dir) {
    std::map<std::string, std::string> out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        struct stat st {};
        ::lstat(it->path().c_str(), &st);
        std::string desc = std::to_string(st.st_mode) + " ";
        if (S_ISREG(st.st_mode)) {
            auto sha = crypto::sha256File(it->path());
            desc += std::to_string(st.st_size) + " " + (sha ? *sha : "?");
        } else if (S_ISLNK(st.st_mode)) {
            desc += fs::read_symlink(it->path(), ec).string();
        }
        out[it->path().lexically_relative(dir).string()] = desc;
    }
    return out;
}

/// A node root under a fresh temp folder, with its store opened.
struct StoreFixture {
    testing::TempFolder tmp;
    NodeLayout layout = NodeLayout::at(tmp / "root");
    Store store = *Store::open(layout);

    fs::path writeTarball(const std::string& name, const std::string& bytes) {
        auto path = tmp / "in" / name;
        testing::writeFile(path, bytes);
        return path;
    }
};

/// A small valid package: pkginfo, a program, a library, a symlink, a hardlink.
inline std::string validPackage(
    testing::ArchiveBuilder::Compression compression = testing::ArchiveBuilder::Compression::Zstd,
    const std::string& version = "1.0",
    testing::ArchiveBuilder::Format format = testing::ArchiveBuilder::Format::Pax) {
    testing::ArchiveBuilder b(compression, format);
    b.pkginfo("demo", version)
        .dir("bin")
        .file("bin/demo", "#!/bin/sh\necho demo " + version + "\n", 0755)
        .dir("lib")
        .dir("lib/demo")
        .file("lib/demo/libdemo.so.1", "library bytes " + version)
        .symlink("lib/demo/libdemo.so", "libdemo.so.1")
        .symlink("bin/demo-lib", "../lib/demo/libdemo.so")
        .hardlink("bin/demo-again", "bin/demo")
        .file("share/doc/README", "implicit parent folders\n");
    return b.finish();
}

}  // namespace hoist::pkgmgr::store_testing
