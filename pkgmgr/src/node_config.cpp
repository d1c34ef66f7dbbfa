#include "pkgmgr/node_config.hpp"

#include <algorithm>

#include "core/crypto.hpp"
#include "core/files.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"
#include "pkgmgr/package.hpp"

namespace hoist::pkgmgr {

namespace {
fs::path underRoot(const NodeLayout& layout, const std::string& path) {
    fs::path p(path);
    return p.is_absolute() ? p : layout.root / p;
}

Result<std::string> readToken(const NodeLayout& layout, const std::string& file) {
    if (file.empty()) return std::string();
    auto text = files::readFile(underRoot(layout, file), 64 * 1024);
    if (!text) {
        if (text.error().code == Errc::NotFound) return std::string();
        return std::unexpected(text.error());
    }
    return std::string(strings::trim(*text));
}
}  // namespace

Result<NodeConfig> NodeConfig::parse(std::string_view text) {
    constexpr std::string_view ctx = "node.json";
    HOIST_ASSIGN(auto doc, json::parseObject(text, ctx));
    HOIST_TRY(json::rejectUnknown(
        doc,
        {"id", "role", "repository", "coordinator", "listen", "service_manager", "systemd_unit",
         "trusted_keys", "allow_unsigned", "token_file", "coordinator_token_file", "release"},
        ctx));
    NodeConfig c;
    HOIST_ASSIGN(c.id, json::getString(doc, "id", ctx));
    HOIST_ASSIGN(c.role, json::getString(doc, "role", ctx));
    if (auto v = validateName(c.id); !v)
        return fail(Errc::Invalid, ctx, ": field 'id' must be a name of a-z, 0-9 and '-' (got '",
                    c.id, "')");
    if (auto v = validateName(c.role); !v)
        return fail(Errc::Invalid, ctx, ": field 'role' must be a name of a-z, 0-9 and '-' (got '",
                    c.role, "')");
    HOIST_ASSIGN(auto repository, json::optString(doc, "repository", ctx));
    HOIST_ASSIGN(auto coordinator, json::optString(doc, "coordinator", ctx));
    HOIST_ASSIGN(auto listen, json::optString(doc, "listen", ctx));
    HOIST_ASSIGN(auto manager, json::optString(doc, "service_manager", ctx));
    HOIST_ASSIGN(auto unit, json::optString(doc, "systemd_unit", ctx));
    HOIST_ASSIGN(c.trusted_keys, json::optStringArray(doc, "trusted_keys", ctx));
    HOIST_ASSIGN(auto allow_unsigned, json::optBool(doc, "allow_unsigned", ctx));
    HOIST_ASSIGN(auto token_file, json::optString(doc, "token_file", ctx));
    HOIST_ASSIGN(auto coordinator_token_file, json::optString(doc, "coordinator_token_file", ctx));
    HOIST_ASSIGN(auto release, json::optString(doc, "release", ctx));
    c.repository = repository.value_or("");
    c.coordinator = coordinator.value_or("");
    c.listen = listen.value_or(c.listen);
    c.service_manager = manager.value_or(c.service_manager);
    c.systemd_unit = unit.value_or(c.systemd_unit);
    c.allow_unsigned = allow_unsigned.value_or(false);
    c.token_file = token_file.value_or(c.token_file);
    c.coordinator_token_file = coordinator_token_file.value_or("");
    c.release = release.value_or("");
    if (c.service_manager != "process" && c.service_manager != "systemd")
        return fail(Errc::Invalid, ctx,
                    ": field 'service_manager' must be 'process' or 'systemd' (got '",
                    c.service_manager, "')");
    return c;
}

Result<NodeConfig> NodeConfig::load(const NodeLayout& layout) {
    HOIST_ASSIGN(auto text, files::readFile(layout.nodeJson(), 1 << 20));
    return parse(text);
}

std::string NodeConfig::toJson() const {
    json::Writer w;
    w.beginObject()
        .field("id", id)
        .field("role", role)
        .field("repository", repository)
        .field("coordinator", coordinator)
        .field("listen", listen)
        .field("service_manager", service_manager)
        .field("systemd_unit", systemd_unit)
        .key("trusted_keys")
        .beginArray();
    for (const auto& k : trusted_keys) w.value(k);
    w.endArray()
        .field("allow_unsigned", allow_unsigned)
        .field("token_file", token_file)
        .field("coordinator_token_file", coordinator_token_file)
        .field("release", release)
        .endObject();
    return json::pretty(w.str()) + "\n";
}

Result<void> NodeConfig::save(const NodeLayout& layout) const {
    return files::writeFileAtomic(layout.nodeJson(), toJson());
}

Result<std::vector<std::string>> NodeConfig::trustedKeyPems(const NodeLayout& layout) const {
    std::vector<std::string> pems;
    for (const auto& key : trusted_keys) {
        HOIST_ASSIGN(auto pem, files::readFile(underRoot(layout, key), 64 * 1024));
        pems.push_back(std::move(pem));
    }
    return pems;
}

Result<std::string> NodeConfig::nodeToken(const NodeLayout& layout) const {
    return readToken(layout, token_file);
}

Result<std::string> NodeConfig::coordinatorToken(const NodeLayout& layout) const {
    return readToken(layout, coordinator_token_file);
}

Result<std::string> nodeSecret(const NodeLayout& layout, bool create) {
    const auto file = layout.coordinatorSecret();
    auto text = files::readFile(file, 4096);
    if (!text) {
        if (text.error().code != Errc::NotFound) return std::unexpected(text.error());
        if (!create) return std::string();
        HOIST_TRY(files::makeDirs(layout.run()));
        std::string secret = crypto::randomHex(32);
        HOIST_TRY(files::writeFileAtomic(file, secret + "\n", 0600));
        return secret;
    }
    std::string secret(strings::trim(*text));
    if (secret.size() != 64 || !std::all_of(secret.begin(), secret.end(), [](char c) {
            return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        }))
        return fail(Errc::Corrupt, file.string(),
                    " does not hold a node secret (64 hex characters): remove it, then forget "
                    "the node at the coordinator (`cluster node forget ID`) so that it can "
                    "register again");
    return secret;
}

}  // namespace hoist::pkgmgr
