#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/http_client.hpp"
#include "pkgmgr/store.hpp"

namespace hoist::pkgmgr {

struct FetchProgress {
    std::string sha256;
    std::uint64_t bytes = 0;
    std::uint64_t total = 0;  ///< 0 when unknown
    bool done = false;
};

struct FetchOptions {
    /// Packages fetched at once.
    int parallel = 8;
    /// Transient failures (refused or dropped connections, timeouts, 408, 429, 5xx) are
    /// retried until this long has passed without a byte arriving; the .part file is kept
    /// throughout (and after giving up), so each retry resumes where the last one stopped.
    std::chrono::milliseconds retry_for{std::chrono::minutes(5)};
    /// The pause between retries: exponential from `base`, capped at `cap`, full jitter.
    /// (`attempts` is not used: retry_for bounds the retries.)
    http::RetryPolicy retry{.attempts = 0,
                            .base = std::chrono::milliseconds(200),
                            .cap = std::chrono::milliseconds(10000)};
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::seconds low_speed_time{30};
    ExtractLimits limits;
    /// Called from worker threads; must be thread-safe.
    std::function<void(const FetchProgress&)> progress;
};

/// Fetches `<repo>/packages/<sha256>` into downloads/<sha256>.part (resuming a partial file
/// with an HTTP Range request, retrying transient failures for options.retry_for), verifying
/// the hash as it streams, then adds it to the store. Already in the store: returns it
/// without a request. The part restarts from byte 0 only when the server ignored the Range
/// (200 without Content-Range). A hash mismatch deletes the bytes: Corrupt, "package <sha>:
/// the repository sent bytes whose sha256 is <other>"; so do a 404 (NotFound) and a full
/// disk (ENOSPC or EDQUOT while writing the part).
Result<StoredPackage> fetchPackage(Store& store, const std::string& repo_url,
                                   const std::string& sha256, const FetchOptions& options = {});

/// Fetches several with at most options.parallel at once; the first error (after all
/// workers stop) is returned, packages fetched before it stay in the store.
Result<std::vector<StoredPackage>> fetchPackages(Store& store, const std::string& repo_url,
                                                 const std::vector<std::string>& sha256s,
                                                 const FetchOptions& options = {});

}  // namespace hoist::pkgmgr
