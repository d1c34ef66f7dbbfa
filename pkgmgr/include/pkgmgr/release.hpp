#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "pkgmgr/package.hpp"

namespace hoist::pkgmgr {

/// A release manifest (DESIGN.md "Releases and the repository"):
/// {"version": "2.0.0", "upgrade_from": ["1.*"],
///  "roles": {"master": {"packages": [<ref>...]}, "agent": {"packages": [<ref>...]}}}
struct Release {
    std::string version;
    /// The versions this one may replace: each entry a glob ('*' matches any run of
    /// characters, "1.*") or a semver range (">=1.0", "^1.0", "1.x"); see upgradeAllowed.
    std::vector<std::string> upgrade_from;
    /// role -> package references, in file order.
    std::map<std::string, std::vector<PackageRef>> roles;

    /// Validates shape, the version (validateVersion), role names and every reference;
    /// unknown fields are refused. Errors say "release <version>: ...".
    static Result<Release> parse(std::string_view text);
    /// Canonical JSON (fixed key order, roles sorted), what is signed and served.
    std::string toJson() const;
    /// True when `from_version` matches one of upgrade_from.
    bool allowsUpgradeFrom(std::string_view from_version) const;
    /// The role's references; NotFound naming the role when the release has none.
    Result<std::vector<PackageRef>> packagesFor(std::string_view role) const;
};

/// '*' glob over a whole string.
bool globMatch(std::string_view pattern, std::string_view text);

/// Invalid when an upgrade_from entry is empty, or is neither a glob (only version characters
/// and '*') nor a range validateRange accepts; the message names both rules.
Result<void> validateUpgradePattern(std::string_view pattern);

/// True when an entry of `patterns` allows `from_version`: a glob entry that matches the whole
/// version (today's meaning, kept: "1.*" takes 1.9.3 and 1.0.0-rc1, not 10.0.0), or a range
/// entry that the version satisfies (">=1.0 <3", "^1.0", "1.x"). A version that is not semver
/// is in no range.
bool upgradeAllowed(const std::vector<std::string>& patterns, std::string_view from_version);

/// Verifies `<version>.json.sig` (base64 Ed25519 over the exact manifest bytes) against any
/// of the trusted public keys (PEM). Corrupt when no key verifies it, Invalid when the
/// signature text is not base64.
Result<void> verifyReleaseSignature(std::string_view manifest_bytes, std::string_view signature_b64,
                                    const std::vector<std::string>& trusted_public_pems);
/// base64 Ed25519 signature of the exact bytes, with a PEM private key.
Result<std::string> signRelease(std::string_view manifest_bytes, std::string_view private_pem);

/// Checks a manifest's signature over its bytes, then parses it: unsigned or forged bytes
/// are never parsed unless accepted. With allow_unsigned an empty signature is accepted (and
/// logged); otherwise a missing one is Unauthorized: "release 2.0.0 is not signed (use
/// --allow-unsigned to accept it)", where `what` ("release 2.0.0") names the manifest.
Result<Release> loadVerifiedRelease(std::string_view manifest_bytes,
                                    std::optional<std::string_view> signature_b64,
                                    const std::vector<std::string>& trusted_public_pems,
                                    bool allow_unsigned,
                                    std::string_view what = "release manifest");

}  // namespace hoist::pkgmgr
