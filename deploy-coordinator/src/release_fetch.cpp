#include "engine.hpp"

#include <algorithm>
#include <map>

#include "core/http_client.hpp"
#include "core/strings.hpp"
#include "pkgmgr/repository.hpp"

namespace hoist::deploy_coordinator {

Result<std::pair<pkgmgr::Release, std::string>> Engine::fetchRelease(const std::string& version) {
    if (options_.repo_url.empty())
        return fail(Errc::Invalid,
                    "no repository configured (start the coordinator with --repo URL)");
    // The repository client every component shares (pkgmgr/repository.hpp): the same URLs,
    // the signature checked before the manifest is read, the same errors.
    thread_local http::Client client;
    HOIST_ASSIGN(auto fetched,
                 pkgmgr::fetchRelease(client, options_.repo_url, version, options_.trusted_keys,
                                      options_.allow_unsigned));
    return std::pair{std::move(fetched.release), std::move(fetched.manifest)};
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
    std::vector<NodeRecord> nodes;
    {
        std::lock_guard lock(mutex_);
        for (const auto& [_, n] : nodes_) nodes.push_back(n);
    }
    return nothingToDo(release, nodes);
}

std::optional<std::string> Engine::nothingToDo(const pkgmgr::Release& release,
                                               const std::vector<NodeRecord>& nodes) {
    std::vector<std::pair<std::string, std::string>> fleet;  // release, role
    for (const auto& n : nodes)
        if (!n.is(NodeStatus::removed)) fleet.emplace_back(n.release, n.role);
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
