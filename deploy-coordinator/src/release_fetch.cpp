#include "engine.hpp"

#include <algorithm>
#include <map>

#include "core/http_client.hpp"
#include "core/strings.hpp"

namespace hoist::deploy_coordinator {

Result<std::pair<pkgmgr::Release, std::string>> Engine::fetchRelease(const std::string& version) {
    HOIST_TRY(pkgmgr::validateVersion(version));
    if (options_.repo_url.empty())
        return fail(Errc::Invalid,
                    "no repository configured (start the coordinator with --repo URL)");
    thread_local http::Client client;
    http::Request get;
    get.url = http::joinUrl(options_.repo_url, "releases/" + version + ".json");
    get.timeout = std::chrono::seconds(30);
    auto fetched = client.send(get, {3, std::chrono::milliseconds(200), std::chrono::seconds(2)});
    if (!fetched && get.url.starts_with("file://"))
        return fail(Errc::NotFound, "release ", version, " is not in the repository ",
                    options_.repo_url);
    if (!fetched) return std::unexpected(fetched.error());
    auto& manifest = *fetched;
    if (manifest.status == 404)
        return fail(Errc::NotFound, "release ", version, " is not in the repository ",
                    options_.repo_url);
    if (!manifest.ok())
        return fail(Errc::Network, "fetching release ", version, " from ", get.url, ": HTTP ",
                    manifest.status);
    get.url += ".sig";
    auto sig = client.send(get, {3, std::chrono::milliseconds(200), std::chrono::seconds(2)});
    std::optional<std::string> signature;
    if (!sig) {
        // file:// reports a missing file as a transport error.
        if (!get.url.starts_with("file://")) return std::unexpected(sig.error());
    } else if (sig->ok()) {
        signature = sig->body;
    } else if (sig->status != 404) {
        return fail(Errc::Network, "fetching ", get.url, ": HTTP ", sig->status);
    }
    std::optional<std::string_view> sig_view;
    if (signature) sig_view = *signature;
    HOIST_ASSIGN(auto release,
                 pkgmgr::loadVerifiedRelease(manifest.body, sig_view, options_.trusted_keys,
                                             options_.allow_unsigned, "release " + version));
    if (release.version != version)
        return fail(Errc::Invalid, "releases/", version, ".json names version '", release.version,
                    "'");
    return std::pair{std::move(release), std::move(manifest.body)};
}

namespace {
bool samePackages(const std::vector<pkgmgr::PackageRef>& a,
                  const std::vector<pkgmgr::PackageRef>& b) {
    if (a.size() != b.size()) return false;
    for (const auto& ref : a)
        if (std::find(b.begin(), b.end(), ref) == b.end()) return false;
    return true;
}
}  // namespace

std::optional<std::string> Engine::nothingToDo(const pkgmgr::Release& release) {
    std::vector<std::pair<std::string, std::string>> fleet;  // release, role
    {
        std::lock_guard lock(mutex_);
        for (const auto& [_, n] : nodes_)
            if (n.status != "removed") fleet.emplace_back(n.release, n.role);
    }
    if (fleet.empty()) return std::nullopt;
    std::map<std::string, std::optional<pkgmgr::Release>> old;
    std::vector<std::string> same_as;
    for (const auto& [from, role] : fleet) {
        if (from == release.version) continue;
        if (from.empty()) return std::nullopt;
        auto it = old.find(from);
        if (it == old.end()) {
            auto fetched = fetchRelease(from);
            it = old.emplace(from, fetched ? std::optional(fetched->first) : std::nullopt).first;
            same_as.push_back(from);
        }
        if (!it->second) return std::nullopt;
        auto before = it->second->packagesFor(role);
        auto after = release.packagesFor(role);
        if (!before || !after || !samePackages(*before, *after)) return std::nullopt;
    }
    if (same_as.empty()) return "every node already runs " + release.version;
    return detail::concat("every node already runs the packages of ", release.version, " (",
                          strings::join(same_as, ", "), " holds the same package sets)");
}

Result<void> Engine::requireChange(const pkgmgr::Release& release) {
    if (auto reason = nothingToDo(release)) return fail(Errc::Conflict, "nothing to do: ", *reason);
    return ok();
}

}  // namespace hoist::deploy_coordinator
