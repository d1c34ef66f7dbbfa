#include "module_release.hpp"

#include <algorithm>
#include <filesystem>

#include "core/crypto.hpp"
#include "core/files.hpp"
#include "core/http_client.hpp"
#include "core/strings.hpp"
#include "pkgmgr/package.hpp"
#include "pkgmgr/release.hpp"

namespace hoist::deploy_coordinator {

namespace {
Result<http::Response> put(http::Client& client, const std::string& url, const std::string& token,
                           const std::string& body) {
    http::Request request;
    request.method = "PUT";
    request.url = url;
    request.body = body;
    if (!token.empty()) request.headers.push_back(http::bearer(token));
    HOIST_ASSIGN(auto response, client.send(request));
    if (!response.ok())
        return fail(Errc::Network, "PUT ", url, ": HTTP ", response.status, " ",
                    response.body.substr(0, 200));
    return response;
}

/// "<id>" from "<dir>/<id>.tar.zst" (or .tar, .tar.gz, .tar.xz, .tgz).
std::string idFromFileName(const std::filesystem::path& path) {
    std::string name = path.filename().string();
    for (std::string_view suffix : {".tar.zst", ".tar.xz", ".tar.gz", ".tgz", ".tar"})
        if (name.ends_with(suffix)) return name.substr(0, name.size() - suffix.size());
    return name;
}
}  // namespace

Result<std::string> publishModuleRelease(const ModuleOptions& o, std::ostream& log) {
    if (o.repo_url.empty())
        return fail(Errc::Invalid, "no repository: pass --repo or set CLUSTER_REPO");
    if (o.signing_key_file.empty())
        return fail(
            Errc::Invalid,
            "a derived release must be signed: pass --signing-key or set CLUSTER_SIGNING_KEY");
    HOIST_ASSIGN(auto private_pem, files::readFile(o.signing_key_file, 64 * 1024));
    HOIST_ASSIGN(auto public_pem, crypto::ed25519PublicOf(private_pem));
    std::string token;
    if (!o.repo_token_file.empty()) {
        HOIST_ASSIGN(auto text, files::readFile(o.repo_token_file, 4096));
        token = std::string(strings::trim(text));
    }
    http::Client client;
    http::Request get;
    get.url = http::joinUrl(o.repo_url, "releases/" + o.base_version + ".json");
    HOIST_ASSIGN(auto manifest, client.send(get));
    if (!manifest.ok())
        return fail(Errc::NotFound, "base release ", o.base_version, ": HTTP ", manifest.status,
                    " from ", get.url);
    get.url += ".sig";
    HOIST_ASSIGN(auto sig, client.send(get));
    if (!sig.ok())
        return fail(Errc::Unauthorized, "base release ", o.base_version,
                    " has no signature; refusing to re-sign it");
    HOIST_TRY(pkgmgr::verifyReleaseSignature(manifest.body, sig.body, {public_pem}));
    HOIST_ASSIGN(auto release, pkgmgr::Release::parse(manifest.body));

    std::vector<std::string> roles = o.roles;
    if (roles.empty())
        for (const auto& [role, _] : release.roles) roles.push_back(role);
    std::string module_name;
    if (o.install) {
        std::filesystem::path tarball = o.package;
        std::string id = idFromFileName(tarball);
        HOIST_ASSIGN(auto pid, pkgmgr::PackageId::parse(id));
        module_name = pid.name;
        HOIST_ASSIGN(auto sha, crypto::sha256File(tarball));
        std::error_code ec;
        auto size = std::filesystem::file_size(tarball, ec);
        if (ec) return failErrno(Errc::Io, ec.value(), "cannot stat ", tarball.string());
        pkgmgr::PackageRef ref{id, sha, static_cast<std::uint64_t>(size)};
        http::Request head;
        head.method = "HEAD";
        head.url = http::joinUrl(o.repo_url, "packages/" + sha);
        HOIST_ASSIGN(auto present, client.send(head));
        if (!present.ok()) {
            std::vector<http::Header> headers;
            if (!token.empty()) headers.push_back(http::bearer(token));
            HOIST_ASSIGN(auto uploaded, client.sendFile("PUT", head.url, headers, tarball));
            if (!uploaded.ok())
                return fail(Errc::Network, "uploading ", id, ": HTTP ", uploaded.status);
            log << "uploaded " << id << " (" << sha << ")\n";
        }
        for (const auto& role : roles) {
            auto it = release.roles.find(role);
            if (it == release.roles.end())
                return fail(Errc::Invalid, "release ", o.base_version, " has no role '", role, "'");
            auto& refs = it->second;
            std::erase_if(refs, [&](const pkgmgr::PackageRef& r) {
                auto other = pkgmgr::PackageId::parse(r.id);
                return other && other->name == pid.name;
            });
            refs.push_back(ref);
        }
    } else {
        module_name = o.package;
        HOIST_TRY(pkgmgr::validateName(module_name));
        size_t removed = 0;
        for (const auto& role : roles) {
            auto it = release.roles.find(role);
            if (it == release.roles.end())
                return fail(Errc::Invalid, "release ", o.base_version, " has no role '", role, "'");
            removed += std::erase_if(it->second, [&](const pkgmgr::PackageRef& r) {
                auto other = pkgmgr::PackageId::parse(r.id);
                return other && other->name == module_name;
            });
        }
        if (removed == 0)
            return fail(Errc::NotFound, "release ", o.base_version, " holds no package named '",
                        module_name, "'");
    }
    std::string version = o.new_version;
    if (version.empty()) version = o.base_version + (o.install ? "+" : "+no-") + module_name;
    HOIST_TRY(pkgmgr::validateVersion(version));
    std::vector<std::string> from = {o.base_version};
    for (const auto& pattern : release.upgrade_from)
        if (std::find(from.begin(), from.end(), pattern) == from.end()) from.push_back(pattern);
    release.version = version;
    release.upgrade_from = from;
    std::string bytes = release.toJson();
    HOIST_ASSIGN(auto signature, pkgmgr::signRelease(bytes, private_pem));
    std::string base = http::joinUrl(o.repo_url, "releases/" + version + ".json");
    HOIST_TRY(put(client, base, token, bytes));
    HOIST_TRY(put(client, base + ".sig", token, signature));
    return version;
}

}  // namespace hoist::deploy_coordinator
