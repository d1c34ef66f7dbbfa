#pragma once
// Builds tar archives entry by entry with libarchive, for tests that need archives pkgmgr
// pack would never make (hostile paths, links, devices, odd modes, other compressions).

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include "core/deleter.hpp"

namespace hoist::testing {

class ArchiveBuilder {
public:
    enum class Compression { None, Gzip, Xz, Zstd, Bzip2, Lz4 };
    enum class Format { Pax, Ustar, Gnu, Zip };

    explicit ArchiveBuilder(Compression compression = Compression::Zstd,
                            Format format = Format::Pax)
        : a_(archive_write_new()) {
        switch (format) {
            case Format::Pax:
                archive_write_set_format_pax_restricted(a_.get());
                break;
            case Format::Ustar:
                archive_write_set_format_ustar(a_.get());
                break;
            case Format::Gnu:
                archive_write_set_format_gnutar(a_.get());
                break;
            case Format::Zip:
                archive_write_set_format_zip(a_.get());
                break;
        }
        switch (compression) {
            case Compression::None:
                archive_write_add_filter_none(a_.get());
                break;
            case Compression::Gzip:
                archive_write_add_filter_gzip(a_.get());
                break;
            case Compression::Xz:
                archive_write_add_filter_xz(a_.get());
                break;
            case Compression::Zstd:
                archive_write_add_filter_zstd(a_.get());
                break;
            case Compression::Bzip2:
                archive_write_add_filter_bzip2(a_.get());
                break;
            case Compression::Lz4:
                archive_write_add_filter_lz4(a_.get());
                break;
        }
        archive_write_set_bytes_in_last_block(a_.get(), 1);
        archive_write_open(a_.get(), &data_, nullptr, &ArchiveBuilder::onWrite, nullptr);
    }

    /// The usual start of a valid package.
    ArchiveBuilder& pkginfo(const std::string& name = "demo", const std::string& version = "1.0") {
        return file("pkginfo.json", R"({"name": ")" + name + R"(", "version": ")" + version +
                                        R"(", "kind": "tool"})");
    }
    ArchiveBuilder& file(const std::string& path, const std::string& content,
                         unsigned perm = 0644) {
        auto e = entry(path, AE_IFREG, perm);
        archive_entry_set_size(e.get(), static_cast<la_int64_t>(content.size()));
        write(e.get(), content);
        return *this;
    }
    /// A header that claims `size` bytes, with `content` written (fewer bytes are padded
    /// with zeros by libarchive).
    ArchiveBuilder& fileClaiming(const std::string& path, la_int64_t size,
                                 const std::string& content) {
        auto e = entry(path, AE_IFREG, 0644);
        archive_entry_set_size(e.get(), size);
        write(e.get(), content);
        return *this;
    }
    ArchiveBuilder& dir(const std::string& path, unsigned perm = 0755) {
        auto e = entry(path, AE_IFDIR, perm);
        write(e.get(), "");
        return *this;
    }
    ArchiveBuilder& symlink(const std::string& path, const std::string& target) {
        auto e = entry(path, AE_IFLNK, 0777);
        archive_entry_set_symlink(e.get(), target.c_str());
        write(e.get(), "");
        return *this;
    }
    ArchiveBuilder& hardlink(const std::string& path, const std::string& target) {
        auto e = entry(path, AE_IFREG, 0644);
        archive_entry_set_hardlink(e.get(), target.c_str());
        archive_entry_set_size(e.get(), 0);
        write(e.get(), "");
        return *this;
    }
    ArchiveBuilder& special(const std::string& path, unsigned type) {
        auto e = entry(path, type, 0644);
        if (type == AE_IFCHR || type == AE_IFBLK) archive_entry_set_rdev(e.get(), makedev(1, 3));
        write(e.get(), "");
        return *this;
    }

    /// Finishes the archive and returns its bytes.
    std::string finish() {
        archive_write_close(a_.get());
        return data_;
    }

private:
    using Entry = Handle<archive_entry, archive_entry_free>;

    Entry entry(const std::string& path, unsigned type, unsigned perm) {
        Entry e(archive_entry_new());
        archive_entry_set_pathname(e.get(), path.c_str());
        archive_entry_set_filetype(e.get(), type);
        archive_entry_set_perm(e.get(), static_cast<mode_t>(perm));
        archive_entry_set_mtime(e.get(), 0, 0);
        return e;
    }
    void write(archive_entry* e, const std::string& content) {
        if (archive_write_header(a_.get(), e) != ARCHIVE_OK) {
            throw std::runtime_error(std::string("archive_write_header: ") +
                                     archive_error_string(a_.get()));
        }
        if (!content.empty()) archive_write_data(a_.get(), content.data(), content.size());
    }
    static la_ssize_t onWrite(archive*, void* data, const void* buffer, size_t size) {
        static_cast<std::string*>(data)->append(static_cast<const char*>(buffer), size);
        return static_cast<la_ssize_t>(size);
    }

    std::string data_;
    Handle<archive, archive_write_free> a_;
};

}  // namespace hoist::testing
