#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/json.hpp"

namespace hoist::pkgmgr {

/// The folders a package may hold at its root, beside pkginfo.json.
inline const std::vector<std::string> kWellKnownDirs = {"bin",   "lib",     "libexec", "etc",
                                                        "share", "include", "units"};
/// Package kinds (pkginfo.json "kind").
inline const std::vector<std::string> kKinds = {"mesos", "mesos-config", "module", "library",
                                                "tool"};

/// `<name>--<version>`. name: [a-z0-9][a-z0-9-]*, no "--", at most 64 characters;
/// version: [A-Za-z0-9._+~-]+, no "--", at most 64 characters.
struct PackageId {
    std::string name;
    std::string version;

    /// Invalid, naming the part and the rule: "package id 'Mesos--1.0': name 'Mesos' may hold
    /// only a-z, 0-9 and '-'".
    static Result<PackageId> parse(std::string_view text);
    std::string str() const { return name + "--" + version; }
    bool operator==(const PackageId&) const = default;
};

Result<void> validateName(std::string_view name);
Result<void> validateVersion(std::string_view version);

/// How a package is always referred to: id, content address and size.
/// JSON: {"id": "mesos--1.11.0", "sha256": "<64 hex>", "size": <bytes>}.
struct PackageRef {
    std::string id;
    std::string sha256;
    std::uint64_t size = 0;

    /// Validates id (PackageId::parse), sha256 (64 lowercase hex) and size (>= 0).
    static Result<PackageRef> fromJson(const json::Value& value, std::string_view ctx);
    void write(json::Writer& w) const;
    std::string toJson() const;
    bool operator==(const PackageRef&) const = default;
};

struct HealthCheck {
    /// Exactly one of http (a URL that must answer 2xx) or command (argv that must exit 0).
    std::string http;
    std::vector<std::string> command;
    std::int64_t interval_ms = 200;
    std::int64_t timeout_ms = 1000;
    std::int64_t healthy_after_ms = 2000;
    std::int64_t deadline_ms = 60000;
};

struct ServiceSpec {
    /// argv; a relative argv[0] is relative to the package's store path. ${PKG}, ${STATE}
    /// and ${GEN} (the generation folder) are expanded when the service starts.
    std::vector<std::string> exec;
    std::optional<HealthCheck> health;
    std::int64_t stop_timeout_ms = 10000;
};

/// For kind "module": what Mesos' modules.json needs.
struct ModuleSpec {
    /// The module's name in Mesos ("org_apache_mesos_TestModule").
    std::string name;
    /// Path of the shared library inside the package ("lib/libtestmodule.so").
    std::string library;
    std::vector<std::pair<std::string, std::string>> parameters;
};

/// pkginfo.json, validated. Unknown fields are refused.
struct PkgInfo {
    std::string name;
    std::string version;
    std::string kind;
    std::vector<std::string> requires_names;                       ///< "requires"
    std::vector<std::pair<std::string, std::string>> compatible;   ///< name -> version range
    std::vector<std::pair<std::string, std::string>> environment;  ///< in file order
    std::optional<ServiceSpec> service;
    std::optional<ModuleSpec> module;

    /// Parses and validates; each refusal names the field and the rule:
    /// "pkginfo.json: field 'kind' must be one of mesos, mesos-config, module, library, tool".
    static Result<PkgInfo> parse(std::string_view text);
    PackageId id() const { return {name, version}; }
    /// Canonical JSON (fixed key order), parseable by parse().
    std::string toJson() const;
};

}  // namespace hoist::pkgmgr
