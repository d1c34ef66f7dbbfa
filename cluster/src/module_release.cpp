#include "module_release.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "config_gen/package.hpp"
#include "core/crypto.hpp"
#include "core/files.hpp"
#include "core/http_client.hpp"
#include "core/strings.hpp"
#include "pkgmgr/package.hpp"
#include "pkgmgr/release.hpp"
#include "pkgmgr/repository.hpp"

namespace hoist::cluster {

namespace {
/// The check `config-gen release` makes of what it adds, made of what stays: every package left
/// in a changed role must still find each name it requires. The packages are read from the
/// repository (their pkginfo.json); nothing is written there.
Result<void> checkRequires(http::Client& client, const std::string& repo_url,
                           const pkgmgr::Release& release, const std::vector<std::string>& roles) {
    HOIST_ASSIGN(auto tmp, files::TempDir::createSystem("hoist-module-check-"));
    std::map<std::string, std::vector<std::string>> requires_of;  // by package id
    for (const auto& role : roles) {
        const auto& refs = release.roles.at(role);
        std::set<std::string> names;
        for (const auto& ref : refs)
            if (auto id = pkgmgr::PackageId::parse(ref.id)) names.insert(id->name);
        for (const auto& ref : refs) {
            auto known = requires_of.find(ref.id);
            if (known == requires_of.end()) {
                auto path = tmp.path() / (ref.id + ".tar.zst");
                if (auto got = pkgmgr::downloadPackage(client, repo_url, ref.sha256, path); !got)
                    return std::unexpected(withContext(
                        got.error(), "reading " + ref.id + " to check what it requires"));
                HOIST_ASSIGN(auto pkg, config_gen::readPackage(path));
                known = requires_of.emplace(ref.id, pkg.info.requires_names).first;
                std::filesystem::remove(path);
            }
            for (const auto& required : known->second)
                if (!names.contains(required))
                    return fail(Errc::Invalid, "role ", role, ": package '", ref.id, "' requires '",
                                required, "', which release ", release.version,
                                " would not hold; nothing was published");
        }
    }
    return ok();
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
        HOIST_ASSIGN(token, files::readSecretFile(o.repo_token_file, "repository token file"));
    }
    http::Client client;
    // The base release must verify against the admin's own key (no unsigned base is re-signed).
    auto fetched = pkgmgr::fetchRelease(client, o.repo_url, o.base_version, {public_pem}, false);
    if (!fetched) return std::unexpected(withContext(fetched.error(), "base release"));
    auto release = std::move(fetched->release);

    std::vector<std::string> roles = o.roles;
    if (roles.empty())
        for (const auto& [role, _] : release.roles) roles.push_back(role);
    std::string module_name;
    struct PackageUpload {
        std::filesystem::path file;
        std::string id;
        std::string sha256;
    };
    std::optional<PackageUpload> package_upload;
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
        size_t changed = 0;
        for (const auto& role : roles) {
            auto it = release.roles.find(role);
            if (it == release.roles.end())
                return fail(Errc::Invalid, "release ", o.base_version, " has no role '", role, "'");
            auto& refs = it->second;
            if (std::find(refs.begin(), refs.end(), ref) != refs.end()) continue;
            std::erase_if(refs, [&](const pkgmgr::PackageRef& r) {
                auto other = pkgmgr::PackageId::parse(r.id);
                return other && other->name == pid.name;
            });
            refs.push_back(ref);
            ++changed;
        }
        if (changed == 0)
            return fail(Errc::Conflict, "nothing to do: release ", o.base_version,
                        " already holds ", id, " in ",
                        roles.size() == 1 ? "role " + roles[0] : "every chosen role",
                        "; nothing was published");
        package_upload = {tarball, id, sha};
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
            return fail(Errc::Conflict, "nothing to do: release ", o.base_version,
                        " holds no package named '", module_name, "' in ",
                        roles.size() == 1 ? "role " + roles[0] : "the chosen roles",
                        "; nothing was published");
    }
    std::string version = o.new_version;
    if (version.empty()) version = o.base_version + (o.install ? "+" : "+no-") + module_name;
    HOIST_TRY(pkgmgr::validateVersion(version));
    std::vector<std::string> from = {o.base_version};
    for (const auto& pattern : release.upgrade_from)
        if (std::find(from.begin(), from.end(), pattern) == from.end()) from.push_back(pattern);
    release.version = version;
    release.upgrade_from = from;
    if (!o.install) HOIST_TRY(checkRequires(client, o.repo_url, release, roles));
    std::string bytes = release.toJson();
    HOIST_ASSIGN(auto signature, pkgmgr::signRelease(bytes, private_pem));
    // Everything is checked and signed before the first upload: a refusal above leaves the
    // repository as it was.
    pkgmgr::RepositoryUploader repo(o.repo_url, {.token = token});
    if (package_upload) {
        auto done = repo.putPackage(package_upload->file, package_upload->sha256);
        if (!done)
            return std::unexpected(withContext(done.error(), "uploading " + package_upload->id));
        if (done->created)
            log << "uploaded " << package_upload->id << " (" << done->sha256 << ")\n";
    }
    HOIST_TRY(repo.putRelease(version, bytes));
    HOIST_TRY(repo.putSignature(version, signature));
    return version;
}

}  // namespace hoist::cluster
