#include "pkgmgr/package.hpp"

#include <algorithm>
#include <ranges>

#include "core/crypto.hpp"
#include "core/strings.hpp"
#include "pkgmgr/semver.hpp"

namespace hoist::pkgmgr {

namespace {

constexpr std::size_t kMaxPart = 64;
constexpr std::string_view kCtx = "pkginfo.json";

bool isLowerAlnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool isVersionChar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '+' || c == '~' || c == '-';
}

bool isEnvName(std::string_view name) {
    if (name.empty()) return false;
    auto first = name.front();
    if (!((first >= 'A' && first <= 'Z') || (first >= 'a' && first <= 'z') || first == '_'))
        return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '_';
    });
}

std::string_view str(const json::Value& v) {
    return {v.GetString(), v.GetStringLength()};
}

/// Prefixes an error from a validator with the pkginfo field it came from.
Error inField(Error error, std::string_view field) {
    return withContext(std::move(error), detail::concat(kCtx, ": field '", field, "'"));
}

Result<std::int64_t> positiveMs(const json::Value& obj, std::string_view key, std::string_view ctx,
                                std::int64_t fallback) {
    HOIST_ASSIGN(auto value, json::optInt(obj, key, ctx));
    if (!value) return fallback;
    if (*value <= 0)
        return fail(Errc::Invalid, ctx, ": field '", key, "' must be a positive integer");
    return *value;
}

/// An object whose members are all strings, kept in file order.
Result<std::vector<std::pair<std::string, std::string>>> stringMap(const json::Value& obj,
                                                                   std::string_view key,
                                                                   std::string_view ctx) {
    std::vector<std::pair<std::string, std::string>> out;
    HOIST_ASSIGN(const json::Value* map, json::optObject(obj, key, ctx));
    if (map == nullptr) return out;
    for (const auto& member : map->GetObject()) {
        if (!member.value.IsString()) {
            return fail(Errc::Invalid, ctx, ": field '", key, "': '", str(member.name),
                        "' must be a string");
        }
        out.emplace_back(std::string(str(member.name)), std::string(str(member.value)));
    }
    return out;
}

/// A path inside the package: relative, no '..' or empty parts.
Result<void> validateInnerPath(std::string_view path, std::string_view ctx, std::string_view key) {
    if (path.empty()) return fail(Errc::Invalid, ctx, ": field '", key, "' must not be empty");
    if (path.front() == '/') {
        return fail(Errc::Invalid, ctx, ": field '", key,
                    "' must be a path inside the package, not '", path, "'");
    }
    for (const auto& part : strings::split(path, '/')) {
        if (part.empty() || part == "." || part == "..") {
            return fail(Errc::Invalid, ctx, ": field '", key,
                        "' must be a path inside the package without '.', '..' or '//', not '",
                        path, "'");
        }
    }
    return ok();
}

Result<HealthCheck> parseHealth(const json::Value& obj) {
    constexpr std::string_view ctx = "pkginfo.json service.health";
    HOIST_TRY(json::rejectUnknown(
        obj, {"http", "command", "interval_ms", "timeout_ms", "healthy_after_ms", "deadline_ms"},
        ctx));
    HealthCheck health;
    HOIST_ASSIGN(auto http, json::optString(obj, "http", ctx));
    HOIST_ASSIGN(health.command, json::optStringArray(obj, "command", ctx));
    bool has_command = obj.HasMember("command");
    if (http.has_value() == has_command) {
        return fail(Errc::Invalid, ctx, ": exactly one of 'http' or 'command' must be given");
    }
    if (http) {
        if (!http->starts_with("http://") && !http->starts_with("https://")) {
            return fail(Errc::Invalid, ctx,
                        ": field 'http' must be an http:// or https:// URL, not '", *http, "'");
        }
        health.http = *http;
    } else if (health.command.empty()) {
        return fail(Errc::Invalid, ctx, ": field 'command' must not be empty");
    }
    HOIST_ASSIGN(health.interval_ms, positiveMs(obj, "interval_ms", ctx, health.interval_ms));
    HOIST_ASSIGN(health.timeout_ms, positiveMs(obj, "timeout_ms", ctx, health.timeout_ms));
    HOIST_ASSIGN(health.healthy_after_ms,
                 positiveMs(obj, "healthy_after_ms", ctx, health.healthy_after_ms));
    HOIST_ASSIGN(health.deadline_ms, positiveMs(obj, "deadline_ms", ctx, health.deadline_ms));
    return health;
}

Result<ServiceSpec> parseService(const json::Value& obj) {
    constexpr std::string_view ctx = "pkginfo.json service";
    HOIST_TRY(json::rejectUnknown(obj, {"exec", "health", "stop_timeout_ms"}, ctx));
    ServiceSpec service;
    HOIST_TRY(json::getArray(obj, "exec", ctx));  // required, and an array
    HOIST_ASSIGN(service.exec, json::optStringArray(obj, "exec", ctx));
    if (service.exec.empty() || service.exec.front().empty()) {
        return fail(Errc::Invalid, ctx, ": field 'exec' must name a program");
    }
    HOIST_ASSIGN(const json::Value* health, json::optObject(obj, "health", ctx));
    if (health != nullptr) {
        HOIST_ASSIGN(auto parsed, parseHealth(*health));
        service.health = std::move(parsed);
    }
    HOIST_ASSIGN(service.stop_timeout_ms,
                 positiveMs(obj, "stop_timeout_ms", ctx, service.stop_timeout_ms));
    return service;
}

Result<ModuleSpec> parseModule(const json::Value& obj) {
    constexpr std::string_view ctx = "pkginfo.json module";
    HOIST_TRY(json::rejectUnknown(obj, {"name", "library", "parameters"}, ctx));
    ModuleSpec module;
    HOIST_ASSIGN(module.name, json::getString(obj, "name", ctx));
    if (module.name.empty()) return fail(Errc::Invalid, ctx, ": field 'name' must not be empty");
    HOIST_ASSIGN(module.library, json::getString(obj, "library", ctx));
    HOIST_TRY(validateInnerPath(module.library, ctx, "library"));
    HOIST_ASSIGN(module.parameters, stringMap(obj, "parameters", ctx));
    return module;
}

void writeStringMap(json::Writer& w, std::string_view key,
                    const std::vector<std::pair<std::string, std::string>>& map) {
    w.key(key).beginObject();
    for (const auto& [k, v] : map) w.field(k, v);
    w.endObject();
}

}  // namespace

Result<void> validateName(std::string_view name) {
    if (name.empty()) return fail(Errc::Invalid, "name must not be empty");
    if (name.size() > kMaxPart) {
        return fail(Errc::Invalid, "name '", name, "' is longer than ", kMaxPart, " characters");
    }
    if (!std::all_of(name.begin(), name.end(),
                     [](char c) { return isLowerAlnum(c) || c == '-'; })) {
        return fail(Errc::Invalid, "name '", name, "' may hold only a-z, 0-9 and '-'");
    }
    if (!isLowerAlnum(name.front())) {
        return fail(Errc::Invalid, "name '", name, "' must start with a-z or 0-9");
    }
    if (name.find("--") != std::string_view::npos) {
        return fail(Errc::Invalid, "name '", name, "' must not contain '--'");
    }
    // A trailing '-' would make "<name>--<version>" ambiguous to split.
    if (name.back() == '-') return fail(Errc::Invalid, "name '", name, "' must not end with '-'");
    return ok();
}

Result<void> validateVersion(std::string_view version) {
    if (version.empty()) return fail(Errc::Invalid, "version must not be empty");
    if (version.size() > kMaxPart) {
        return fail(Errc::Invalid, "version '", version, "' is longer than ", kMaxPart,
                    " characters");
    }
    if (!std::all_of(version.begin(), version.end(), isVersionChar)) {
        return fail(Errc::Invalid, "version '", version,
                    "' may hold only A-Z, a-z, 0-9 and '.', '_', '+', '~', '-'");
    }
    if (version.find("--") != std::string_view::npos) {
        return fail(Errc::Invalid, "version '", version, "' must not contain '--'");
    }
    return ok();
}

Result<PackageId> PackageId::parse(std::string_view text) {
    auto context = detail::concat("package id '", text, "'");
    auto sep = text.find("--");
    if (sep == std::string_view::npos) {
        return fail(Errc::Invalid, context, ": must be <name>--<version>");
    }
    PackageId id{std::string(text.substr(0, sep)), std::string(text.substr(sep + 2))};
    if (auto r = validateName(id.name); !r) return std::unexpected(withContext(r.error(), context));
    if (auto r = validateVersion(id.version); !r) {
        return std::unexpected(withContext(r.error(), context));
    }
    return id;
}

Result<PackageRef> PackageRef::fromJson(const json::Value& value, std::string_view ctx) {
    if (!value.IsObject()) {
        return fail(Errc::Invalid, ctx,
                    ": a package reference must be an object with id, sha256 and size");
    }
    HOIST_TRY(json::rejectUnknown(value, {"id", "sha256", "size"}, ctx));
    PackageRef ref;
    HOIST_ASSIGN(ref.id, json::getString(value, "id", ctx));
    if (auto r = PackageId::parse(ref.id); !r) return std::unexpected(withContext(r.error(), ctx));
    HOIST_ASSIGN(ref.sha256, json::getString(value, "sha256", ctx));
    if (!crypto::isSha256Hex(ref.sha256)) {
        return fail(Errc::Invalid, ctx, ": field 'sha256' must be 64 lowercase hex digits, not '",
                    ref.sha256, "'");
    }
    auto size = value.FindMember("size");
    if (size == value.MemberEnd()) return fail(Errc::Invalid, ctx, ": field 'size' is required");
    if (!size->value.IsUint64()) {
        return fail(Errc::Invalid, ctx, ": field 'size' must be a non-negative integer");
    }
    ref.size = size->value.GetUint64();
    return ref;
}

void PackageRef::write(json::Writer& w) const {
    w.beginObject().field("id", id).field("sha256", sha256).field("size", size).endObject();
}

std::string PackageRef::toJson() const {
    json::Writer w;
    write(w);
    return w.str();
}

Result<PkgInfo> PkgInfo::parse(std::string_view text) {
    HOIST_ASSIGN(auto doc, json::parseObject(text, kCtx));
    HOIST_TRY(json::rejectUnknown(
        doc,
        {"name", "version", "kind", "requires", "compatible", "environment", "service", "module"},
        kCtx));
    PkgInfo info;
    HOIST_ASSIGN(info.name, json::getString(doc, "name", kCtx));
    if (auto r = validateName(info.name); !r) return std::unexpected(inField(r.error(), "name"));
    HOIST_ASSIGN(info.version, json::getString(doc, "version", kCtx));
    if (auto r = validateVersion(info.version); !r) {
        return std::unexpected(inField(r.error(), "version"));
    }
    HOIST_ASSIGN(info.kind, json::getString(doc, "kind", kCtx));
    if (std::find(kKinds.begin(), kKinds.end(), info.kind) == kKinds.end()) {
        return fail(Errc::Invalid, kCtx, ": field 'kind' must be one of ",
                    strings::join(kKinds, ", "), ", not '", info.kind, "'");
    }

    HOIST_ASSIGN(info.requires_names, json::optStringArray(doc, "requires", kCtx));
    for (std::size_t i = 0; i < info.requires_names.size(); ++i) {
        const auto& name = info.requires_names[i];
        if (auto r = validateName(name); !r) return std::unexpected(inField(r.error(), "requires"));
        if (name == info.name) {
            return fail(Errc::Invalid, kCtx,
                        ": field 'requires': a package must not require itself ('", name, "')");
        }
        if (std::find(info.requires_names.begin(),
                      info.requires_names.begin() + static_cast<long>(i),
                      name) != info.requires_names.begin() + static_cast<long>(i)) {
            return fail(Errc::Invalid, kCtx, ": field 'requires': '", name, "' is listed twice");
        }
    }

    HOIST_ASSIGN(info.compatible, stringMap(doc, "compatible", kCtx));
    for (const auto& [name, range] : info.compatible) {
        if (auto r = validateName(name); !r)
            return std::unexpected(inField(r.error(), "compatible"));
        if (strings::trim(range).empty()) {
            return fail(Errc::Invalid, kCtx, ": field 'compatible': the range for '", name,
                        "' must not be empty");
        }
        // Checked here, so pack, add and config-gen refuse what check would refuse later.
        if (auto r = validateRange(range); !r) {
            return fail(Errc::Invalid, kCtx, ": field 'compatible': the range for '", name,
                        "': ", r.error().message);
        }
    }

    HOIST_ASSIGN(info.environment, stringMap(doc, "environment", kCtx));
    for (const auto& var : std::views::keys(info.environment)) {
        if (!isEnvName(var)) {
            return fail(
                Errc::Invalid, kCtx, ": field 'environment': '", var,
                "' is not a variable name (letters, digits and '_', not starting with a digit)");
        }
    }

    HOIST_ASSIGN(const json::Value* service, json::optObject(doc, "service", kCtx));
    if (service != nullptr) {
        HOIST_ASSIGN(auto parsed, parseService(*service));
        info.service = std::move(parsed);
    }
    HOIST_ASSIGN(const json::Value* module, json::optObject(doc, "module", kCtx));
    if (module != nullptr) {
        if (info.kind != "module") {
            return fail(Errc::Invalid, kCtx,
                        ": field 'module' is allowed only with kind 'module', not '", info.kind,
                        "'");
        }
        HOIST_ASSIGN(auto parsed, parseModule(*module));
        info.module = std::move(parsed);
    }
    return info;
}

std::string PkgInfo::toJson() const {
    json::Writer w;
    w.beginObject().field("name", name).field("version", version).field("kind", kind);
    if (!requires_names.empty()) {
        w.key("requires").beginArray();
        for (const auto& r : requires_names) w.value(r);
        w.endArray();
    }
    if (!compatible.empty()) writeStringMap(w, "compatible", compatible);
    if (!environment.empty()) writeStringMap(w, "environment", environment);
    if (service) {
        w.key("service").beginObject();
        w.key("exec").beginArray();
        for (const auto& arg : service->exec) w.value(arg);
        w.endArray();
        if (service->health) {
            const auto& h = *service->health;
            w.key("health").beginObject();
            if (!h.http.empty()) {
                w.field("http", h.http);
            } else {
                w.key("command").beginArray();
                for (const auto& arg : h.command) w.value(arg);
                w.endArray();
            }
            w.field("interval_ms", h.interval_ms)
                .field("timeout_ms", h.timeout_ms)
                .field("healthy_after_ms", h.healthy_after_ms)
                .field("deadline_ms", h.deadline_ms)
                .endObject();
        }
        w.field("stop_timeout_ms", service->stop_timeout_ms).endObject();
    }
    if (module) {
        w.key("module").beginObject().field("name", module->name).field("library", module->library);
        if (!module->parameters.empty()) writeStringMap(w, "parameters", module->parameters);
        w.endObject();
    }
    w.endObject();
    return w.str();
}

}  // namespace hoist::pkgmgr
