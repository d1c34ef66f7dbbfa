#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "core/crypto.hpp"
#include "pkgmgr/release.hpp"
#include "testing.hpp"

namespace hoist::deploy_coordinator {

/// Unsigned releases 1.0.0 and 2.0.0 (upgrade_from 1.*) for masters and agents, one made-up
/// mesos package each, under `<repo>/releases/`.
inline void writeReleases(const std::filesystem::path& repo) {
    for (const auto& [version, from] :
         std::vector<std::pair<std::string, std::string>>{{"1.0.0", ""}, {"2.0.0", "1.*"}}) {
        pkgmgr::Release release;
        release.version = version;
        if (!from.empty()) release.upgrade_from = {from};
        for (const char* role : {"master", "agent"})
            release.roles[role] = {{"mesos--" + version, crypto::sha256Hex(version), 10}};
        testing::writeFile(repo / "releases" / (version + ".json"), release.toJson());
    }
}

}  // namespace hoist::deploy_coordinator
