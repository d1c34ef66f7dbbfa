#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace hoist::cluster {

/// What `cluster module install|remove` needs to compose a derived release.
struct ModuleOptions {
    bool install = true;
    /// install: a package tarball named "<id>.tar*" (uploaded when the repository lacks it);
    /// remove: a package name.
    std::string package;
    std::string repo_url;
    std::string repo_token_file;
    std::string signing_key_file;
    std::string base_version;
    std::string new_version;
    std::vector<std::string> roles;
};

/// Fetches the base release (its signature must verify with the signing key's public half),
/// adds or removes the module in the chosen roles, signs the canonical manifest and uploads
/// package, manifest and signature to the repository. Returns the derived version. The
/// private key stays with the admin's CLI: the coordinator never holds one.
Result<std::string> publishModuleRelease(const ModuleOptions& options, std::ostream& log);

}  // namespace hoist::cluster
