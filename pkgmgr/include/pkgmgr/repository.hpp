#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/http_client.hpp"
#include "pkgmgr/layout.hpp"
#include "pkgmgr/release.hpp"

namespace hoist::pkgmgr {

/// The repository's layout, the one place its paths are spelled (its clients, `pkgmgr
/// publish` and repo-server all use it): packages/<sha256>, releases/<version>.json and
/// releases/<version>.json.sig, relative to the repository's URL or root.
namespace repo_layout {
/// The two folders, as a repository root on disk holds them.
inline constexpr std::string_view kPackagesDir = "packages";
inline constexpr std::string_view kReleasesDir = "releases";
/// The same as URL path prefixes.
inline constexpr std::string_view kPackages = "packages/";
inline constexpr std::string_view kReleases = "releases/";
inline std::string package(std::string_view sha256) {
    return std::string(kPackages) + std::string(sha256);
}
inline std::string release(std::string_view version) {
    return std::string(kReleases) + std::string(version) + ".json";
}
inline std::string signature(std::string_view version) {
    return release(version) + ".sig";
}
}  // namespace repo_layout

/// A release manifest as the repository served it, verified.
struct FetchedRelease {
    Release release;
    std::string manifest;                  ///< the exact bytes that were verified
    std::optional<std::string> signature;  ///< base64; nullopt when the repository had none
};

/// GETs <repo>/releases/<version>.json and its .json.sig (http, https or file URLs), then
/// loadVerifiedRelease. NotFound when the repository has no such release; Unauthorized or
/// Corrupt when the signature is missing or wrong (see loadVerifiedRelease); another refusal
/// is coded by its status as uploads are ("GET <url>: HTTP <status>: <server's error>").
Result<FetchedRelease> fetchRelease(http::Client& client, const std::string& repo_url,
                                    const std::string& version,
                                    const std::vector<std::string>& trusted_public_pems,
                                    bool allow_unsigned);

/// How uploads reach a repository (repo-server's PUT routes).
struct UploadOptions {
    /// The repository's upload token, sent as a bearer token (empty: none is sent).
    std::string token;
    /// Every upload here is idempotent on the server (packages are named by their content,
    /// a release already published with the same bytes is answered 200), so transient
    /// failures (transport errors, 408, 429, 5xx) of HEAD and PUT alike are retried.
    http::RetryPolicy retry{.attempts = 3,
                            .base = std::chrono::milliseconds(200),
                            .cap = std::chrono::milliseconds(2000)};
    std::chrono::milliseconds connect_timeout{5000};
    /// A package body's progress: its repository path, bytes sent and the file's size. Called
    /// on the uploading thread, often; keep it quick.
    std::function<void(const std::string& path, std::uint64_t sent, std::uint64_t total)> progress;
};

/// What one upload did.
struct Uploaded {
    /// Where it is in the repository ("packages/<sha256>", "releases/<version>.json", ...).
    std::string path;
    std::string sha256;
    std::uint64_t size = 0;
    /// False when the repository already held these bytes (nothing new was stored).
    bool created = false;
};

/// The upload half of the repository client, used by `pkgmgr publish` and `cluster module`.
/// Each upload is verified: the server's reply must name the sha256 of the bytes sent (a
/// server that stored something else is Corrupt). A refusal is an error coded by its status
/// (401/403 Unauthorized, 404 NotFound, 409 Conflict, 422 Corrupt, other 4xx Invalid, 5xx as
/// errcFromHttpStatus says) with the message "PUT <url>: HTTP <status>: <server's error>";
/// transport failures are Network or Timeout. Not thread-safe: one per thread.
class RepositoryUploader {
public:
    RepositoryUploader(std::string repo_url, UploadOptions options);

    /// packages/<sha256>: a HEAD first (present: nothing is sent, created false), then the
    /// file streamed from disk, never held in memory. The server checks that the bytes hash
    /// to `sha256` (422, Corrupt, when they do not). NotFound when the file is missing.
    Result<Uploaded> putPackage(const std::filesystem::path& file, const std::string& sha256);
    /// releases/<version>.json, exactly these bytes. The server checks that it parses, names
    /// `version` and that its packages are present; Conflict when the version is already
    /// published with other bytes.
    Result<Uploaded> putRelease(std::string_view version, std::string_view manifest);
    /// releases/<version>.json.sig (base64 Ed25519 over the manifest's bytes).
    Result<Uploaded> putSignature(std::string_view version, std::string_view signature);

private:
    Result<Uploaded> put(const std::string& path, std::string_view content_type,
                         std::string_view body, const std::filesystem::path& file,
                         const std::string& sha256, std::uint64_t size);

    std::string repo_url_;
    UploadOptions options_;
    http::Client client_;
};

/// GETs packages/<sha256> into `file` (replaced atomically), hashing as it streams: for tools
/// that read a package without a store (`cluster module` reading what a package requires).
/// Nodes use fetchPackage (fetch.hpp), which resumes and adds to the store. NotFound when the
/// repository has no such package, Corrupt when the bytes hash to something else (nothing is
/// kept then), other refusals coded by their status.
Result<void> downloadPackage(http::Client& client, const std::string& repo_url,
                             const std::string& sha256, const std::filesystem::path& file);

/// Keeps a verified manifest (and its signature) under <root>/releases/, written atomically.
Result<void> saveRelease(const NodeLayout& layout, const FetchedRelease& fetched);

}  // namespace hoist::pkgmgr
