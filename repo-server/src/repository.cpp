#include "repo_server/repository.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <chrono>

#include "core/crypto.hpp"
#include "core/fd.hpp"
#include "core/files.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"
#include "pkgmgr/package.hpp"
#include "pkgmgr/release.hpp"
#include "pkgmgr/repository.hpp"
#include "pkgmgr/sets.hpp"

namespace hoist::repo_server {

namespace {
constexpr std::string_view kComponent = "repo-server";
constexpr std::size_t kSignatureBytes = 64;  // Ed25519

// Closes a descriptor and removes the temporary file it wrote, unless released.
class TempFile {
public:
    TempFile(fs::path path, int fd) : path_(std::move(path)), fd_(fd) {}
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    ~TempFile() {
        fd_.reset();
        if (!path_.empty()) ::unlink(path_.c_str());
    }
    int fd() const { return fd_.get(); }
    const fs::path& path() const { return path_; }
    Result<void> syncAndClose() {
        if (::fsync(fd_.get()) != 0)
            return failErrno(Errc::Io, errno, "cannot fsync '", path_.string(), "'");
        if (fd_.close() != 0)
            return failErrno(Errc::Io, errno, "cannot close '", path_.string(), "'");
        return ok();
    }

private:
    fs::path path_;
    UniqueFd fd_;
};

bool sameBytes(const fs::path& path, std::string_view bytes) {
    auto existing = files::readFile(path, bytes.size() + 1);
    return existing && *existing == bytes;
}

std::size_t countFiles(const fs::path& dir, const std::function<bool(const std::string&)>& keep) {
    std::error_code ec;
    std::size_t n = 0;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
        if (keep(it->path().filename().string())) ++n;
    return n;
}

// "<version>.json" -> version, for manifests only.
std::optional<std::string> manifestVersion(const std::string& file_name) {
    constexpr std::string_view kSuffix = ".json";
    if (!file_name.ends_with(kSuffix) || file_name == "index.json") return std::nullopt;
    std::string version = file_name.substr(0, file_name.size() - kSuffix.size());
    if (!isReleaseVersion(version)) return std::nullopt;
    return version;
}
}  // namespace

bool isReleaseVersion(std::string_view version) {
    // "index" would name releases/index.json, which the server writes itself.
    return !version.empty() && version.front() != '.' && version != "index" &&
           pkgmgr::validateVersion(version).has_value();
}

Repository::Repository(fs::path root)
    : root_(std::move(root)),
      packages_(root_ / pkgmgr::repo_layout::kPackagesDir),
      releases_(root_ / pkgmgr::repo_layout::kReleasesDir),
      tmp_(root_ / ".tmp"),
      release_mutex_(std::make_unique<std::mutex>()) {}

Repository::Repository(Repository&&) noexcept = default;
Repository& Repository::operator=(Repository&&) noexcept = default;
Repository::~Repository() = default;

Result<Repository> Repository::open(const fs::path& root) {
    std::error_code ec;
    fs::path absolute = fs::absolute(root, ec);
    if (ec)
        return failErrno(Errc::Io, ec.value(), "cannot resolve the repository root '",
                         root.string(), "'");
    Repository repo(absolute.lexically_normal());
    for (const auto& dir : {repo.packages_, repo.releases_, repo.tmp_})
        HOIST_TRY(files::makeDirs(dir));
    // Leftovers of uploads that a crash interrupted; a live upload is never this old
    // (the read timeout ends stalled ones).
    auto cutoff = fs::file_time_type::clock::now() - std::chrono::hours(1);
    for (fs::directory_iterator it(repo.tmp_, ec), end; !ec && it != end; it.increment(ec)) {
        if (it->path().filename() == "lock") continue;
        std::error_code stat_ec;
        auto written = fs::last_write_time(it->path(), stat_ec);
        if (!stat_ec && written < cutoff) {
            log::info(kComponent, "removing a stale temporary file",
                      {{"path", it->path().string()}});
            fs::remove(it->path(), stat_ec);
        }
    }
    return repo;
}

Result<fs::path> Repository::packageFile(std::string_view name) const {
    if (!crypto::isSha256Hex(name))
        return fail(Errc::Invalid, "'", name,
                    "' is not a package name: packages are named by the sha256 of their bytes "
                    "(64 lowercase hex digits)");
    fs::path path = packages_ / std::string(name);
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
        return fail(Errc::NotFound, "package ", name, " is not in the repository");
    return path;
}

Result<fs::path> Repository::releaseFile(std::string_view name) const {
    std::string file(name);
    bool known = file == "index.json" || manifestVersion(file).has_value() ||
                 (file.ends_with(".sig") && manifestVersion(file.substr(0, file.size() - 4)));
    if (!known) return fail(Errc::NotFound, "no release file '", name, "'");
    fs::path path = releases_ / file;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
        return fail(Errc::NotFound, "no release file '", name, "'");
    return path;
}

Result<fs::path> Repository::makeTempFile(std::string_view stem, int& fd) const {
    for (int attempt = 0; attempt < 8; ++attempt) {
        fs::path path = tmp_ / (std::string(stem) + "-" + crypto::randomHex(8));
        fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0) return path;
        if (errno != EEXIST)
            return failErrno(Errc::Io, errno, "cannot create '", path.string(), "'");
    }
    return fail(Errc::Io, "cannot find a free temporary name in '", tmp_.string(), "'");
}

Result<Stored> Repository::putPackage(std::string_view sha256,
                                      const std::function<bool(const http::BodySink&)>& read_body,
                                      std::uint64_t max_bytes) {
    if (!crypto::isSha256Hex(sha256))
        return fail(Errc::Invalid, "'", sha256,
                    "' is not a package name: upload to /packages/<sha256 of the bytes>");
    fs::path final_path = packages_ / std::string(sha256);
    struct stat st {};
    if (::stat(final_path.c_str(), &st) == 0) {
        // Same name, same bytes: nothing to write, but the client's body is still read so
        // the connection stays usable.
        read_body([](std::string_view) { return true; });
        return Stored{false, static_cast<std::uint64_t>(st.st_size), std::string(sha256)};
    }
    int fd = -1;
    HOIST_ASSIGN(fs::path temp_path, makeTempFile("pkg-" + std::string(sha256.substr(0, 16)), fd));
    TempFile temp(temp_path, fd);
    crypto::Sha256 hash;
    std::uint64_t size = 0;
    std::optional<Error> failure;
    bool complete = read_body([&](std::string_view chunk) {
        size += chunk.size();
        if (size > max_bytes) {
            failure = Error{Errc::Invalid,
                            detail::concat("package upload exceeds the maximum upload size of ",
                                           max_bytes, " bytes"),
                            0};
            return false;
        }
        hash.update(chunk);
        if (auto written = files::writeAll(temp.fd(), chunk, temp.path()); !written) {
            failure = written.error();
            return false;
        }
        return true;
    });
    if (failure) return std::unexpected(*failure);
    if (!complete)
        return fail(Errc::Invalid, "package upload ", sha256, " ended before its body did");
    std::string got = hash.finishHex();
    if (got != sha256)
        return fail(Errc::Corrupt, "package upload: the body hashes to ", got, ", not to its name ",
                    sha256, "; nothing was stored");
    HOIST_TRY(temp.syncAndClose());
    crashPoint("repo-server-before-link");
    // link(2) fails when the name exists: of several concurrent uploads one creates it,
    // the others see EEXIST and report what is there. The temp file is unlinked either way.
    bool created = true;
    if (::link(temp.path().c_str(), final_path.c_str()) != 0) {
        if (errno != EEXIST)
            return failErrno(Errc::Io, errno, "cannot link '", final_path.string(), "'");
        created = false;
    }
    HOIST_TRY(files::fsyncPath(packages_));
    if (created)
        log::info(kComponent, "package stored", {{"sha256", std::string(sha256)}, {"bytes", size}});
    return Stored{created, size, std::string(sha256)};
}

Result<Stored> Repository::putRelease(std::string_view version, std::string_view bytes) {
    if (!isReleaseVersion(version))
        return fail(Errc::Invalid, "'", version,
                    ".json' is not a release file name: the name is <version>.json");
    HOIST_ASSIGN(auto release, pkgmgr::Release::parse(bytes));
    if (release.version != version)
        return fail(Errc::Invalid, "release file '", version, ".json' holds release ",
                    release.version, ": the file name must be the release's version");
    for (const auto& [role, refs] : release.roles) {
        for (const auto& ref : refs) {
            struct stat st {};
            fs::path path = packages_ / ref.sha256;
            if (::stat(path.c_str(), &st) != 0)
                return fail(Errc::Invalid, "release ", version, ", role '", role, "': package '",
                            ref.id, "' (", ref.sha256,
                            ") is not in the repository; publish the package first");
            if (static_cast<std::uint64_t>(st.st_size) != ref.size)
                return fail(Errc::Invalid, "release ", version, ", role '", role, "': package '",
                            ref.id, "' is ", st.st_size, " bytes in the repository, not ",
                            ref.size);
        }
    }
    std::lock_guard guard(*release_mutex_);
    HOIST_ASSIGN(auto lock, files::FileLock::acquire(tmp_ / "lock", std::chrono::seconds(30),
                                                     "release upload"));
    fs::path path = releases_ / (std::string(version) + ".json");
    Stored stored{true, bytes.size(), crypto::sha256Hex(bytes)};
    if (fs::exists(path)) {
        if (!sameBytes(path, bytes))
            return fail(Errc::Conflict, "release ", version,
                        " is already published with other content; releases are immutable, "
                        "publish a new version");
        stored.created = false;
    } else {
        HOIST_TRY(files::writeFileAtomic(path, bytes));
        log::info(kComponent, "release stored", {{"version", std::string(version)}});
    }
    // Also after a repeated upload: it repairs an index that a crash left behind.
    HOIST_TRY(writeIndex());
    return stored;
}

Result<Stored> Repository::putSignature(std::string_view version, std::string_view text) {
    if (!isReleaseVersion(version))
        return fail(Errc::Invalid, "'", version,
                    ".json.sig' is not a signature file name: the name is <version>.json.sig");
    auto raw = crypto::base64Decode(text);
    if (!raw || raw->size() != kSignatureBytes)
        return fail(Errc::Invalid, "release ", version,
                    ": a signature must be the base64 of a 64-byte Ed25519 signature");
    std::lock_guard guard(*release_mutex_);
    HOIST_ASSIGN(auto lock, files::FileLock::acquire(tmp_ / "lock", std::chrono::seconds(30),
                                                     "signature upload"));
    if (!fs::exists(releases_ / (std::string(version) + ".json")))
        return fail(Errc::Conflict, "release ", version, " is not published: upload ", version,
                    ".json before its signature");
    fs::path path = releases_ / (std::string(version) + ".json.sig");
    Stored stored{true, text.size(), crypto::sha256Hex(text)};
    if (fs::exists(path) && sameBytes(path, text)) {
        stored.created = false;
        return stored;
    }
    HOIST_TRY(files::writeFileAtomic(path, text));
    log::info(kComponent, "release signature stored", {{"version", std::string(version)}});
    return stored;
}

Result<std::vector<std::string>> Repository::versions() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (fs::directory_iterator it(releases_, ec), end; !ec && it != end; it.increment(ec))
        if (auto version = manifestVersion(it->path().filename().string())) out.push_back(*version);
    if (ec) return failErrno(Errc::Io, ec.value(), "cannot list '", releases_.string(), "'");
    std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
        int c = pkgmgr::compareVersions(a, b);
        return c != 0 ? c < 0 : a < b;
    });
    return out;
}

Result<void> Repository::writeIndex() const {
    HOIST_ASSIGN(auto all, versions());
    json::Writer w;
    w.beginObject().key("versions").beginArray();
    for (const auto& v : all) w.value(v);
    w.endArray().endObject();
    return files::writeFileAtomic(releases_ / "index.json", w.str() + "\n");
}

std::size_t Repository::packageCount() const {
    return countFiles(packages_, [](const std::string& name) { return crypto::isSha256Hex(name); });
}

std::size_t Repository::releaseCount() const {
    return countFiles(releases_,
                      [](const std::string& name) { return manifestVersion(name).has_value(); });
}

}  // namespace hoist::repo_server
