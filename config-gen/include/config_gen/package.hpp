#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "config_gen/schema.hpp"
#include "core/error.hpp"
#include "pkgmgr/pack.hpp"
#include "pkgmgr/package.hpp"

namespace hoist::config_gen {

namespace fs = std::filesystem;

/// A package config-gen reads from disk: a tarball (any compression hoist accepts) or an
/// unpacked package folder.
struct PackageSource {
    fs::path path;
    pkgmgr::PkgInfo info;
    /// Tarballs only: the reference (id from pkginfo.json, sha256 and size of the file).
    std::optional<pkgmgr::PackageRef> ref;
    /// Tarballs only: the regular files inside, as relative paths ("lib/libx.so").
    std::set<std::string> files;

    /// Whether the package holds `relative` as a regular file.
    bool hasFile(const std::string& relative) const;
};

/// Reads pkginfo.json (validated by PkgInfo::parse) from a tarball or a folder; for a
/// tarball also hashes the file. NotFound when the path is absent; Invalid when it is not a
/// package ("<path>: no pkginfo.json at the package root"). Does not unpack anything.
Result<PackageSource> readPackage(const fs::path& path);

/// What `config-gen package` needs.
struct PackageRequest {
    std::string role;
    /// The options file's text (a JSON object), and its name for messages.
    std::string options_json = "{}";
    std::string options_name = "options";
    /// Enabled modules (kind "module", each with a "module" section).
    std::vector<PackageSource> modules;
    /// Empty: "mesos-config-<role>".
    std::string name;
    /// Empty: derived from the content, "0.0.0+<first 12 hex digits of its sha256>".
    std::string version;
    /// Where module libraries are found on the node: "<lib_prefix>/<library>" in
    /// modules.json. The active generation's folders are under <root>/current.
    std::string lib_prefix = "/opt/hoist/current";
};

/// A config package's content before packing.
struct ConfigContent {
    pkgmgr::PkgInfo info;
    /// Files beside pkginfo.json, relative path -> bytes: etc/mesos/flags,
    /// etc/mesos/environment, etc/mesos/modules.json.
    std::map<std::string, std::string> files;
    ResolvedConfig config;
};

/// Validates the options and the modules and renders the package's files. Pure: the result
/// depends only on the arguments (option key order and module order do not matter).
/// Invalid, naming the option or module and the rule.
Result<ConfigContent> renderConfig(const Schema& schema, const PackageRequest& request);

/// Writes the content into a staging folder under out_dir and packs it, reproducibly, into
/// "<out_dir>/<id>.tar.zst" (written atomically). Returns the package reference. An existing
/// file of that name is kept when its bytes are the same, else Conflict: one id, one content.
Result<pkgmgr::PackResult> writeConfigPackage(const ConfigContent& content,
                                              const fs::path& out_dir);

/// Mesos' modules.json for the given modules (sorted by module name):
/// {"libraries": [{"file": "<lib_prefix>/<library>", "modules": [{"name": ..., "parameters":
/// [{"key": ..., "value": ...}]}]}]}.
std::string modulesJson(const std::vector<PackageSource>& modules, const std::string& lib_prefix);

}  // namespace hoist::config_gen
