#include "archive_rules.hpp"

#include <algorithm>
#include <climits>

#include "core/strings.hpp"
#include "pkgmgr/package.hpp"

namespace hoist::pkgmgr::rules {

namespace {
constexpr std::size_t kMaxPartLength = NAME_MAX;
}

Result<std::vector<std::string>> splitEntryPath(std::string_view path, std::size_t max_length) {
    if (path.size() > max_length) {
        return fail(Errc::Invalid, "the path is longer than ", max_length, " characters");
    }
    // The manifest and every JSON answer name paths as UTF-8 strings; a name that is not
    // UTF-8 could not be named there byte for byte.
    if (!strings::isUtf8(path))
        return fail(Errc::Invalid, "the path is not valid UTF-8 (package paths must be UTF-8)");
    if (!path.empty() && path.front() == '/')
        return fail(Errc::Invalid, "absolute paths are not allowed");
    std::vector<std::string> parts;
    for (auto& part : strings::split(path, '/')) {
        if (part.empty() || part == ".") continue;
        if (part == "..") return fail(Errc::Invalid, "'..' is not allowed in a path");
        if (part.size() > kMaxPartLength) {
            return fail(Errc::Invalid, "a path part is longer than ", kMaxPartLength,
                        " characters");
        }
        parts.push_back(std::move(part));
    }
    return parts;
}

Result<void> checkRoot(const std::vector<std::string>& parts, EntryType type) {
    if (parts.empty()) return ok();
    const auto& top = parts.front();
    if (top == "pkginfo.json") {
        if (parts.size() != 1 || type != EntryType::File) {
            return fail(Errc::Invalid, "pkginfo.json must be a regular file at the package root");
        }
        return ok();
    }
    if (std::find(kWellKnownDirs.begin(), kWellKnownDirs.end(), top) == kWellKnownDirs.end()) {
        return fail(Errc::Invalid, "only pkginfo.json and the folders ",
                    strings::join(kWellKnownDirs, ", "), " may be at the package root");
    }
    if (parts.size() == 1 && type != EntryType::Dir) {
        return fail(Errc::Invalid, "'", top, "' at the package root must be a folder");
    }
    return ok();
}

Result<void> checkSymlinkTarget(const std::vector<std::string>& parts, std::string_view target) {
    if (target.empty()) return fail(Errc::Invalid, "a symlink target must not be empty");
    if (!strings::isUtf8(target))
        return fail(Errc::Invalid,
                    "the symlink target is not valid UTF-8 (package paths must be UTF-8)");
    if (target.front() == '/') {
        return fail(Errc::Invalid, "the symlink target '", target,
                    "' is absolute and leaves the package");
    }
    std::size_t ups = 0;
    bool descended = false;
    for (const auto& part : strings::split(target, '/')) {
        if (part.empty() || part == ".") continue;
        if (part == "..") {
            if (descended) {
                return fail(Errc::Invalid, "the symlink target '", target,
                            "' may use '..' only at its start");
            }
            ++ups;
        } else {
            descended = true;
        }
    }
    // The link's own folder is parts.size() - 1 levels below the package root.
    if (ups + 1 > parts.size()) {
        return fail(Errc::Invalid, "the symlink target '", target, "' leaves the package");
    }
    return ok();
}

std::string printable(std::string_view path) {
    if (strings::isUtf8(path)) return std::string(path);
    std::string out;
    for (char c : path) {
        auto byte = static_cast<unsigned char>(c);
        if (byte < 0x80) {
            out += c;
            continue;
        }
        constexpr std::string_view kHex = "0123456789abcdef";
        out += "\\x";
        out += kHex[byte >> 4];
        out += kHex[byte & 0xf];
    }
    return out;
}

std::string joinParts(const std::vector<std::string>& parts, std::size_t count) {
    std::string out;
    for (std::size_t i = 0; i < count && i < parts.size(); ++i) {
        if (i != 0) out += '/';
        out += parts[i];
    }
    return out;
}

}  // namespace hoist::pkgmgr::rules
