#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "config_gen/package.hpp"
#include "core/error.hpp"
#include "pkgmgr/release.hpp"

namespace hoist::config_gen {

/// What `config-gen release` changes in a base release.
struct ReleaseChanges {
    std::string version;
    /// Empty: the base's version family ("1.*" for 1.4.2) followed by the base's own
    /// upgrade_from patterns, so every version that could move to the base can move here.
    std::vector<std::string> upgrade_from;
    /// Package tarballs (readPackage with a ref): each replaces the package of the same name
    /// in every role that holds one.
    std::vector<PackageSource> replace;
    /// Module tarballs (kind "module"): each is added to every role.
    std::vector<PackageSource> add_modules;
    /// Package names removed from every role that holds them.
    std::vector<std::string> remove_modules;
    /// Restricts replace, add and remove to these roles (empty: every role of the base).
    std::vector<std::string> roles;
};

struct ComposedRelease {
    pkgmgr::Release release;
    /// One line per change, in the order applied: "agent: replaced mesos--1.11.0 with
    /// mesos--1.12.0".
    std::vector<std::string> changes;
};

/// The base's version family: "1.*" for "1.4.2", the version itself when it has no '.'.
std::string versionFamily(const std::string& version);

/// Applies removals, then replacements, then additions, keeping the base's package order
/// (replacements in place, additions appended in name order). Invalid, naming the package
/// and the rule, when the new version is not newer than the base's, a replacement matches
/// no package, a module is already present, a removal matches nothing, a role is unknown,
/// or a package added or replaced requires a name its role does not hold.
Result<ComposedRelease> composeRelease(const pkgmgr::Release& base, const ReleaseChanges& changes);

struct WrittenRelease {
    std::filesystem::path manifest;
    std::filesystem::path signature;
};

/// Writes "<dir>/<version>.json" (Release::toJson, the bytes that are signed) and
/// "<dir>/<version>.json.sig" (base64 Ed25519 with the PEM private key), each atomically.
/// Conflict when "<version>.json" already exists with other bytes.
Result<WrittenRelease> writeSignedRelease(const pkgmgr::Release& release,
                                          std::string_view private_pem,
                                          const std::filesystem::path& dir);

}  // namespace hoist::config_gen
