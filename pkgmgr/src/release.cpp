#include "pkgmgr/release.hpp"

#include <algorithm>
#include <cctype>
#include <set>

#include "core/crypto.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "pkgmgr/semver.hpp"

namespace hoist::pkgmgr {

namespace {
Result<void> validateRoleName(std::string_view role, std::string_view ctx) {
    if (!validateName(role))
        return fail(Errc::Invalid, ctx, ": role '", role,
                    "' is not a valid name (a-z, 0-9 and '-', at most 64 characters)");
    return ok();
}
}  // namespace

bool globMatch(std::string_view pattern, std::string_view text) {
    // Iterative '*' matching with backtracking to the last star: linear in practice.
    size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
    while (t < text.size()) {
        if (p < pattern.size() && pattern[p] == '*') {
            star = p++;
            mark = t;
        } else if (p < pattern.size() && pattern[p] == text[t]) {
            ++p;
            ++t;
        } else if (star != std::string_view::npos) {
            p = star + 1;
            t = ++mark;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*') ++p;
    return p == pattern.size();
}

Result<Release> Release::parse(std::string_view text) {
    HOIST_ASSIGN(auto doc, json::parseObject(text, "release"));
    Release release;
    HOIST_ASSIGN(release.version, json::getString(doc, "version", "release"));
    if (auto valid = validateVersion(release.version); !valid)
        return std::unexpected(withContext(valid.error(), "release"));
    const std::string ctx = "release " + release.version;
    HOIST_TRY(
        json::rejectUnknown(doc, {"version", "upgrade_from", "roles", "created", "notes"}, ctx));
    HOIST_ASSIGN(release.upgrade_from, json::optStringArray(doc, "upgrade_from", ctx));
    for (const auto& pattern : release.upgrade_from)
        if (auto valid = validateUpgradePattern(pattern); !valid)
            return std::unexpected(withContext(valid.error(), ctx));
    HOIST_ASSIGN(const json::Value* roles, json::getObject(doc, "roles", ctx));
    if (roles->MemberCount() == 0) return fail(Errc::Invalid, ctx, ": field 'roles' names no role");
    for (const auto& member : roles->GetObject()) {
        std::string role(member.name.GetString(), member.name.GetStringLength());
        HOIST_TRY(validateRoleName(role, ctx));
        const std::string role_ctx = ctx + ", role '" + role + "'";
        if (!member.value.IsObject()) return fail(Errc::Invalid, role_ctx, ": must be an object");
        HOIST_TRY(json::rejectUnknown(member.value, {"packages"}, role_ctx));
        HOIST_ASSIGN(const json::Value* packages,
                     json::getArray(member.value, "packages", role_ctx));
        std::vector<PackageRef> refs;
        std::set<std::string> names;
        for (const auto& item : packages->GetArray()) {
            HOIST_ASSIGN(auto ref, PackageRef::fromJson(item, role_ctx));
            HOIST_ASSIGN(auto id, PackageId::parse(ref.id));
            if (!names.insert(id.name).second)
                return fail(Errc::Invalid, role_ctx, ": package name '", id.name,
                            "' appears twice");
            refs.push_back(std::move(ref));
        }
        if (refs.empty()) return fail(Errc::Invalid, role_ctx, ": field 'packages' is empty");
        release.roles.emplace(role, std::move(refs));
    }
    return release;
}

std::string Release::toJson() const {
    json::Writer w;
    w.beginObject().field("version", version).key("upgrade_from").beginArray();
    for (const auto& p : upgrade_from) w.value(p);
    w.endArray().key("roles").beginObject();
    for (const auto& [role, refs] : roles) {
        w.key(role).beginObject().key("packages").beginArray();
        for (const auto& ref : refs) ref.write(w);
        w.endArray().endObject();
    }
    w.endObject().endObject();
    return w.str();
}

bool Release::allowsUpgradeFrom(std::string_view from_version) const {
    return upgradeAllowed(upgrade_from, from_version);
}

namespace {
// A glob is written with version characters and '*' only; anything else must be a range.
bool isGlob(std::string_view pattern) {
    return std::all_of(pattern.begin(), pattern.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '+' ||
               c == '~' || c == '-' || c == '*';
    });
}
}  // namespace

Result<void> validateUpgradePattern(std::string_view pattern) {
    if (pattern.empty()) return fail(Errc::Invalid, "an upgrade_from pattern is empty");
    if (isGlob(pattern)) return ok();
    if (auto range = validateRange(pattern); !range)
        return fail(Errc::Invalid, "upgrade_from pattern '", pattern,
                    "' is neither a glob (version characters and '*') nor a version range: ",
                    range.error().message);
    return ok();
}

bool upgradeAllowed(const std::vector<std::string>& patterns, std::string_view from_version) {
    return std::any_of(patterns.begin(), patterns.end(), [&](const std::string& pattern) {
        if (isGlob(pattern) && globMatch(pattern, from_version)) return true;
        // A version that is not semver is in no range; a glob can still name it.
        auto in = versionSatisfies(from_version, pattern);
        return in && *in;
    });
}

Result<std::vector<PackageRef>> Release::packagesFor(std::string_view role) const {
    auto it = roles.find(std::string(role));
    if (it == roles.end())
        return fail(Errc::NotFound, "release ", version, " has no packages for role '", role, "'");
    return it->second;
}

Result<void> verifyReleaseSignature(std::string_view manifest_bytes, std::string_view signature_b64,
                                    const std::vector<std::string>& trusted_public_pems) {
    auto signature = crypto::base64Decode(signature_b64);
    if (!signature) return fail(Errc::Invalid, "release signature: ", signature.error().message);
    if (trusted_public_pems.empty())
        return fail(Errc::Unauthorized,
                    "no trusted key is configured to verify the release signature");
    for (const auto& pem : trusted_public_pems) {
        auto verified = crypto::ed25519Verify(pem, manifest_bytes, *signature);
        if (verified) return ok();
        if (verified.error().code == Errc::Invalid)
            return fail(Errc::Invalid, "trusted key: ", verified.error().message);
    }
    return fail(Errc::Corrupt, "the release signature does not verify with any trusted key");
}

Result<std::string> signRelease(std::string_view manifest_bytes, std::string_view private_pem) {
    HOIST_ASSIGN(auto signature, crypto::ed25519Sign(private_pem, manifest_bytes));
    return crypto::base64Encode(signature);
}

Result<Release> loadVerifiedRelease(std::string_view manifest_bytes,
                                    std::optional<std::string_view> signature_b64,
                                    const std::vector<std::string>& trusted_public_pems,
                                    bool allow_unsigned, std::string_view what) {
    // The signature covers the bytes: check it before any parser sees them.
    if (!signature_b64 || signature_b64->empty()) {
        if (!allow_unsigned)
            return fail(Errc::Unauthorized, what,
                        " is not signed (use --allow-unsigned to accept it)");
        HOIST_ASSIGN(auto release, Release::parse(manifest_bytes));
        log::warn("pkgmgr", "accepting an unsigned release", {{"version", release.version}});
        return release;
    }
    auto verified = verifyReleaseSignature(manifest_bytes, *signature_b64, trusted_public_pems);
    if (!verified) {
        if (allow_unsigned && verified.error().code == Errc::Unauthorized) {
            HOIST_ASSIGN(auto release, Release::parse(manifest_bytes));
            log::warn("pkgmgr", "no trusted key; accepting the release unverified",
                      {{"version", release.version}});
            return release;
        }
        return std::unexpected(withContext(verified.error(), what));
    }
    return Release::parse(manifest_bytes);
}

}  // namespace hoist::pkgmgr
