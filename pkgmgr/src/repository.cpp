#include "pkgmgr/repository.hpp"

#include "core/files.hpp"
#include "core/strings.hpp"

namespace hoist::pkgmgr {

namespace {

// A GET that tells "absent" (404, or a missing file:// file) from other failures.
Result<std::optional<std::string>> getOptional(http::Client& client, const std::string& url) {
    http::Request request;
    request.url = url;
    auto response = client.send(request, http::RetryPolicy{.attempts = 3});
    if (!response) {
        if (url.starts_with("file://")) return std::optional<std::string>();
        return std::unexpected(response.error());
    }
    if (response->status == 404) return std::optional<std::string>();
    // file:// transfers report status 0.
    if (response->status != 0 && !response->ok())
        return fail(Errc::Network, "GET ", url, " answered ", response->status);
    return std::optional<std::string>(std::move(response->body));
}

}  // namespace

Result<FetchedRelease> fetchRelease(http::Client& client, const std::string& repo_url,
                                    const std::string& version,
                                    const std::vector<std::string>& trusted_public_pems,
                                    bool allow_unsigned) {
    HOIST_TRY(validateVersion(version));
    auto url = http::joinUrl(repo_url, repo_layout::release(version));
    HOIST_ASSIGN(auto manifest, getOptional(client, url));
    if (!manifest)
        return fail(Errc::NotFound, "release ", version, " is not in the repository (", url, ")");
    HOIST_ASSIGN(auto signature, getOptional(client, url + ".sig"));
    std::optional<std::string> sig_text;
    if (signature) sig_text = std::string(strings::trim(*signature));
    std::optional<std::string_view> sig_view;
    if (sig_text) sig_view = *sig_text;
    HOIST_ASSIGN(auto release, loadVerifiedRelease(*manifest, sig_view, trusted_public_pems,
                                                   allow_unsigned, "release " + version));
    if (release.version != version)
        return fail(Errc::Corrupt, "the repository's releases/", version, ".json holds release ",
                    release.version);
    return FetchedRelease{std::move(release), std::move(*manifest), std::move(sig_text)};
}

Result<void> saveRelease(const NodeLayout& layout, const FetchedRelease& fetched) {
    HOIST_TRY(files::makeDirs(layout.releases()));
    auto base = layout.releases() / (fetched.release.version + ".json");
    HOIST_TRY(files::writeFileAtomic(base, fetched.manifest));
    if (fetched.signature) {
        HOIST_TRY(files::writeFileAtomic(base.string() + ".sig", *fetched.signature + "\n"));
    }
    return ok();
}

}  // namespace hoist::pkgmgr
