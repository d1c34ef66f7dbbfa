// readPackage: pkginfo.json and the file list of a package tarball or folder, without
// unpacking anything to disk.

#include <archive.h>
#include <archive_entry.h>

#include <memory>
#include <system_error>

#include "config_gen/package.hpp"
#include "core/crypto.hpp"
#include "core/deleter.hpp"
#include "core/files.hpp"

namespace hoist::config_gen {

namespace {

using ArchiveReader = Handle<archive, archive_read_free>;

constexpr std::size_t kMaxPkgInfoBytes = 1u << 20;
constexpr std::size_t kMaxEntries = 1'000'000;

/// "./lib/x.so" and "lib/x.so/" name the same entry as "lib/x.so".
std::string normalise(std::string path) {
    while (path.starts_with("./")) path.erase(0, 2);
    while (!path.empty() && path.back() == '/') path.pop_back();
    return path;
}

Result<PackageSource> readTarball(const fs::path& path) {
    ArchiveReader reader(archive_read_new());
    if (!reader) return fail(Errc::Internal, "cannot allocate an archive reader");
    archive_read_support_filter_all(reader.get());
    archive_read_support_format_tar(reader.get());
    if (archive_read_open_filename(reader.get(), path.c_str(), 1 << 16) != ARCHIVE_OK) {
        return fail(Errc::Invalid, path.string(),
                    ": not a package tarball: ", archive_error_string(reader.get()));
    }
    PackageSource source;
    source.path = path;
    std::optional<std::string> pkginfo;
    std::size_t entries = 0;
    for (;;) {
        archive_entry* entry = nullptr;
        int rc = archive_read_next_header(reader.get(), &entry);
        if (rc == ARCHIVE_EOF) break;
        if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
            return fail(Errc::Invalid, path.string(),
                        ": not a package tarball: ", archive_error_string(reader.get()));
        }
        if (++entries > kMaxEntries) {
            return fail(Errc::Invalid, path.string(), ": more than ", kMaxEntries, " entries");
        }
        const char* raw = archive_entry_pathname(entry);
        std::string name = normalise(raw ? raw : "");
        if (archive_entry_filetype(entry) != AE_IFREG) continue;
        source.files.insert(name);
        if (name != "pkginfo.json") continue;
        if (pkginfo) return fail(Errc::Invalid, path.string(), ": pkginfo.json appears twice");
        if (archive_entry_size(entry) > static_cast<la_int64_t>(kMaxPkgInfoBytes)) {
            return fail(Errc::Invalid, path.string(), ": pkginfo.json is larger than 1 MiB");
        }
        std::string text(static_cast<std::size_t>(archive_entry_size(entry)), '\0');
        la_ssize_t got = archive_read_data(reader.get(), text.data(), text.size());
        if (got < 0 || static_cast<std::size_t>(got) != text.size()) {
            return fail(Errc::Invalid, path.string(),
                        ": cannot read pkginfo.json: ", archive_error_string(reader.get()));
        }
        pkginfo = std::move(text);
    }
    if (!pkginfo)
        return fail(Errc::Invalid, path.string(), ": no pkginfo.json at the package root");
    auto info = pkgmgr::PkgInfo::parse(*pkginfo);
    if (!info) return std::unexpected(withContext(info.error(), path.string()));
    source.info = std::move(*info);

    HOIST_ASSIGN(std::string sha256, crypto::sha256File(path));
    std::error_code ec;
    auto size = fs::file_size(path, ec);
    if (ec) return failErrno(Errc::Io, ec.value(), path.string(), ": cannot stat");
    source.ref =
        pkgmgr::PackageRef{source.info.id().str(), sha256, static_cast<std::uint64_t>(size)};
    return source;
}

Result<PackageSource> readFolder(const fs::path& path) {
    auto text = files::readFile(path / "pkginfo.json", kMaxPkgInfoBytes);
    if (!text) {
        if (text.error().code == Errc::NotFound) {
            return fail(Errc::Invalid, path.string(), ": no pkginfo.json at the package root");
        }
        return std::unexpected(text.error());
    }
    auto info = pkgmgr::PkgInfo::parse(*text);
    if (!info) return std::unexpected(withContext(info.error(), path.string()));
    PackageSource source;
    source.path = path;
    source.info = std::move(*info);
    return source;
}

}  // namespace

bool PackageSource::hasFile(const std::string& relative) const {
    if (ref) return files.contains(normalise(relative));
    std::error_code ec;
    return fs::is_regular_file(fs::symlink_status(path / relative, ec));
}

Result<PackageSource> readPackage(const fs::path& path) {
    std::error_code ec;
    auto status = fs::status(path, ec);
    if (ec || !fs::exists(status))
        return fail(Errc::NotFound, path.string(), ": no such file or folder");
    if (fs::is_directory(status)) return readFolder(path);
    return readTarball(path);
}

}  // namespace hoist::config_gen
