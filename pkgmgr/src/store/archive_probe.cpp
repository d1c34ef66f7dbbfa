#include "archive_probe.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <memory>
#include <string_view>
#include <vector>

#include "core/deleter.hpp"

namespace hoist::pkgmgr::probe {

namespace {

using ArchiveRead = Handle<archive, archive_read_free>;

constexpr off_t kProbeBytes = 1 << 20;

struct Window {
    int fd = -1;
    off_t offset = 0;
    std::vector<char> buffer = std::vector<char>(64 * 1024);
};

la_ssize_t readWindow(archive*, void* data, const void** out) noexcept {
    auto* w = static_cast<Window*>(data);
    *out = w->buffer.data();
    if (w->offset >= kProbeBytes) return 0;
    while (true) {
        ssize_t n = ::pread(w->fd, w->buffer.data(), w->buffer.size(), w->offset);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return 0;
        w->offset += n;
        return n;
    }
}

using Support = int (*)(archive*);

// Registers a decoder only when libarchive has it built in: the same call on a reader of its
// own returns ARCHIVE_WARN when it would run an external program instead.
void supportBuiltIn(archive* a, Support support) {
    ArchiveRead trial(archive_read_new());
    if (trial && support(trial.get()) == ARCHIVE_OK) support(a);
}

}  // namespace

std::string describe(int fd) {
    ArchiveRead a(archive_read_new());
    if (!a) return "";
    for (Support support : std::array<Support, 8>{
             archive_read_support_filter_bzip2, archive_read_support_filter_lz4,
             archive_read_support_filter_lzip, archive_read_support_filter_lzma,
             archive_read_support_filter_xz, archive_read_support_filter_gzip,
             archive_read_support_filter_zstd, archive_read_support_filter_compress})
        supportBuiltIn(a.get(), support);
    archive_read_support_format_all(a.get());
    archive_read_support_format_raw(a.get());
    Window window;
    window.fd = fd;
    if (archive_read_open(a.get(), &window, nullptr, readWindow, nullptr) != ARCHIVE_OK) return "";
    archive_entry* e = nullptr;
    int r = archive_read_next_header(a.get(), &e);
    std::string filter =
        archive_filter_count(a.get()) > 1 ? archive_filter_name(a.get(), 0) : "none";
    bool compressed = filter != "none";
    int format = archive_format(a.get());
    bool nothing =
        format == ARCHIVE_FORMAT_RAW || format == ARCHIVE_FORMAT_EMPTY || r < ARCHIVE_WARN;
    std::string with = compressed ? " compressed with " + filter : "";
    if (nothing) return compressed ? "data" + with : "";
    bool tar = (format & ARCHIVE_FORMAT_BASE_MASK) == ARCHIVE_FORMAT_TAR;
    bool accepted = filter == "none" || filter == "gzip" || filter == "xz" || filter == "zstd";
    // A tar archive in an accepted compression failed for another reason; say nothing here.
    if (tar && accepted) return "";
    if (tar) return "a tar archive" + with;
    const char* name = archive_format_name(a.get());
    return std::string("format '") + (name != nullptr ? name : "unknown") + "'" + with;
}

}  // namespace hoist::pkgmgr::probe
