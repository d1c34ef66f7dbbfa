#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/http_client.hpp"

namespace hoist::pkgmgr {

/// One file that `publish` sends to a repository.
struct PublishItem {
    enum class Kind { Package, Release, Signature };
    Kind kind = Kind::Package;
    std::filesystem::path file;
    /// Where it goes in the repository: "packages/<sha256>", "releases/<version>.json" or
    /// "releases/<version>.json.sig".
    std::string remote_path;
    std::string sha256;
    std::uint64_t size = 0;
    /// Releases and signatures: the release version.
    std::string version;
    /// False when the repository already had it (a package found by HEAD, or a release
    /// uploaded again with the same bytes).
    bool uploaded = false;
};

std::string_view kindName(PublishItem::Kind kind);

struct PublishOptions {
    /// Base URL of the repository ("http://repo:8070").
    std::string repo_url;
    /// The repository's upload token.
    std::string token;
    http::RetryPolicy retry{.attempts = 3,
                            .base = std::chrono::milliseconds(200),
                            .cap = std::chrono::milliseconds(2000)};
    std::chrono::milliseconds connect_timeout{5000};
    /// Called after each file is done (uploaded or skipped).
    std::function<void(const PublishItem&)> on_item;
    /// A package's bytes as they go out (see UploadOptions::progress).
    std::function<void(const std::string& path, std::uint64_t sent, std::uint64_t total)> progress;
};

/// Works out what each file is: "*.json" a release manifest (parsed here first; a
/// "<file>.sig" beside it goes along), "*.json.sig" a signature, anything else a package
/// tarball (named by its sha256). NotFound for a missing file, Invalid for a bad manifest.
Result<std::vector<PublishItem>> planPublish(const std::vector<std::filesystem::path>& files);

/// Uploads the files to a repository through RepositoryUploader (repository.hpp): packages
/// first, each skipped when HEAD finds it there, streamed from disk; then manifests, then
/// their signatures (the server checks that a manifest's packages are present). Stops at
/// the first refusal, with the server's message: "PUT <url>: HTTP 422: <error>", coded as
/// RepositoryUploader says. Transient failures are retried as options.retry says.
Result<std::vector<PublishItem>> publish(const std::vector<std::filesystem::path>& files,
                                         const PublishOptions& options);

}  // namespace hoist::pkgmgr
