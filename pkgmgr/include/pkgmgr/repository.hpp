#pragma once

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
/// Corrupt when the signature is missing or wrong (see loadVerifiedRelease).
Result<FetchedRelease> fetchRelease(http::Client& client, const std::string& repo_url,
                                    const std::string& version,
                                    const std::vector<std::string>& trusted_public_pems,
                                    bool allow_unsigned);

/// Keeps a verified manifest (and its signature) under <root>/releases/, written atomically.
Result<void> saveRelease(const NodeLayout& layout, const FetchedRelease& fetched);

}  // namespace hoist::pkgmgr
