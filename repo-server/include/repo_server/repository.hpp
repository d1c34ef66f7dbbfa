#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/http_server.hpp"

namespace hoist::repo_server {

namespace fs = std::filesystem;

/// What an upload did: stored new bytes, or found them already there.
struct Stored {
    bool created = false;
    std::uint64_t size = 0;
    /// sha256 of the stored bytes.
    std::string sha256;
};

/// The repository tree of DESIGN.md, a plain folder that nginx, S3 or a CDN can serve too:
///
///     packages/<sha256>          package tarballs, named by their content
///     releases/<version>.json    release manifests (+ .json.sig)
///     releases/index.json        {"versions": [...]}, newest last
///     .tmp/                      uploads in progress (never served)
///
/// Every write goes to a temporary file under .tmp/, is fsynced and then linked or renamed
/// into place, so a reader (or a crash) never sees half a file. Thread-safe; several
/// processes may share one root (release writes take a flock).
class Repository {
public:
    /// Opens the tree under `root`, creating its folders; removes temporary files that a
    /// crashed upload left in .tmp/ more than an hour ago. Io when the folders cannot be made.
    static Result<Repository> open(const fs::path& root);

    const fs::path& root() const { return root_; }

    /// packages/<sha256> when that package is stored; NotFound otherwise, Invalid when the
    /// name is not 64 lowercase hex digits.
    Result<fs::path> packageFile(std::string_view name) const;
    /// releases/<name> for "index.json", "<version>.json" and "<version>.json.sig" when the
    /// file exists; NotFound otherwise (also for any other name, so nothing else is served).
    Result<fs::path> releaseFile(std::string_view name) const;

    /// Stores a package from a streamed body: the bytes go to a temporary file while they
    /// are hashed; they are kept only when they hash to `sha256` (else Corrupt: "package
    /// upload: the body hashes to <x>, not to its name <y>") and are at most `max_bytes`
    /// (else Invalid). Linking into place makes concurrent uploads of one package safe: one
    /// creates it, the others find it. Already stored: the body is read and dropped.
    Result<Stored> putPackage(std::string_view sha256,
                              const std::function<bool(const http::BodySink&)>& read_body,
                              std::uint64_t max_bytes);

    /// Stores releases/<version>.json: the bytes must parse as a release manifest
    /// (pkgmgr::Release::parse) whose version is `version`, and every package it names must
    /// be stored here with the size it gives (Invalid otherwise). Releases are immutable:
    /// the same bytes again is fine, other bytes are a Conflict. Regenerates index.json.
    Result<Stored> putRelease(std::string_view version, std::string_view bytes);
    /// Stores releases/<version>.json.sig: base64 of a 64-byte Ed25519 signature (Invalid
    /// otherwise); the manifest must be stored first (Conflict). A new signature replaces
    /// the old one (keys rotate); the server does not hold keys, nodes verify.
    Result<Stored> putSignature(std::string_view version, std::string_view text);

    /// The versions of the stored manifests, oldest first (pkgmgr::compareVersions).
    Result<std::vector<std::string>> versions() const;
    /// Rewrites releases/index.json from the stored manifests, atomically.
    Result<void> writeIndex() const;

    /// How many packages and release manifests are stored (for metrics).
    std::size_t packageCount() const;
    std::size_t releaseCount() const;

    Repository(Repository&&) noexcept;
    Repository& operator=(Repository&&) noexcept;
    ~Repository();

private:
    explicit Repository(fs::path root);
    Result<fs::path> makeTempFile(std::string_view stem, int& fd) const;

    fs::path root_;
    fs::path packages_;
    fs::path releases_;
    fs::path tmp_;
    std::unique_ptr<std::mutex> release_mutex_;
};

/// True for a version (pkgmgr::validateVersion) that is also a safe file name stem: it
/// does not start with '.' and is not "index".
bool isReleaseVersion(std::string_view version);

}  // namespace hoist::repo_server
