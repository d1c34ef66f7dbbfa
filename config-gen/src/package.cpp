// renderConfig and writeConfigPackage: options + modules -> a reproducible mesos-config package.

#include "config_gen/package.hpp"

#include <algorithm>

#include "core/crypto.hpp"
#include "core/files.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"

namespace hoist::config_gen {

namespace {

constexpr std::string_view kFlagsFile = "etc/mesos/flags";
constexpr std::string_view kEnvironmentFile = "etc/mesos/environment";
constexpr std::string_view kModulesFile = "etc/mesos/modules.json";

/// A value for a systemd EnvironmentFile line: bare when safe, else double-quoted.
std::string envFileValue(const std::string& value) {
    const bool plain = !value.empty() && value.find_first_of(" \t\"'\\#") == std::string::npos;
    if (plain) return value;
    std::string out = "\"";
    for (char c : value) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

Result<void> checkModule(const PackageSource& module) {
    const std::string where = module.path.string();
    const std::string id = module.info.id().str();
    if (module.info.kind != "module") {
        return fail(Errc::Invalid, where, ": package '", id, "' is of kind '", module.info.kind,
                    "', not module");
    }
    if (!module.info.module) {
        return fail(Errc::Invalid, where, ": package '", id,
                    "' has no 'module' section in its pkginfo.json");
    }
    const std::string& library = module.info.module->library;
    const auto parts = strings::split(library, '/');
    const bool inside = parts.size() >= 2 &&
                        std::find(pkgmgr::kWellKnownDirs.begin(), pkgmgr::kWellKnownDirs.end(),
                                  parts.front()) != pkgmgr::kWellKnownDirs.end() &&
                        std::none_of(parts.begin(), parts.end(), [](const std::string& p) {
                            return p.empty() || p == "." || p == "..";
                        });
    if (!inside) {
        return fail(Errc::Invalid, where, ": package '", id, "': module library '", library,
                    "' must be a relative path under one of the package's folders (lib/...)");
    }
    if (!module.hasFile(library)) {
        return fail(Errc::Invalid, where, ": package '", id, "': module library '", library,
                    "' is not in the package");
    }
    return ok();
}

Result<std::vector<PackageSource>> checkModules(std::vector<PackageSource> modules) {
    for (const auto& module : modules) HOIST_TRY(checkModule(module));
    std::sort(modules.begin(), modules.end(), [](const PackageSource& a, const PackageSource& b) {
        return a.info.module->name < b.info.module->name;
    });
    for (std::size_t i = 0; i < modules.size(); ++i) {
        for (std::size_t j = i + 1; j < modules.size(); ++j) {
            const auto& a = modules[i];
            const auto& b = modules[j];
            const std::string ids =
                "modules '" + a.info.id().str() + "' and '" + b.info.id().str() + "'";
            if (a.info.name == b.info.name) {
                return fail(Errc::Invalid, ids, " are the same package; enable one version only");
            }
            if (a.info.module->name == b.info.module->name) {
                return fail(Errc::Invalid, ids, " both define Mesos module '", a.info.module->name,
                            "'");
            }
            if (a.info.module->library == b.info.module->library) {
                return fail(Errc::Invalid, ids, " both ship library '", a.info.module->library,
                            "'");
            }
        }
    }
    return modules;
}

}  // namespace

std::string modulesJson(const std::vector<PackageSource>& modules, const std::string& lib_prefix) {
    json::Writer w;
    w.beginObject().key("libraries").beginArray();
    for (const auto& module : modules) {
        if (!module.info.module) continue;
        const auto& spec = *module.info.module;
        w.beginObject().field("file", lib_prefix + "/" + spec.library);
        w.key("modules").beginArray().beginObject().field("name", spec.name);
        w.key("parameters").beginArray();
        for (const auto& [key, value] : spec.parameters) {
            w.beginObject().field("key", key).field("value", value).endObject();
        }
        w.endArray().endObject().endArray().endObject();
    }
    w.endArray().endObject();
    return json::pretty(w.str()) + "\n";
}

Result<ConfigContent> renderConfig(const Schema& schema, const PackageRequest& request) {
    ConfigContent content;
    HOIST_ASSIGN(content.config,
                 resolveOptions(schema, request.role, request.options_json, request.options_name));

    std::string prefix = request.lib_prefix;
    while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
    if (!prefix.starts_with("/") ||
        std::any_of(prefix.begin(), prefix.end(), [](char c) { return c == '\n' || c == '\0'; })) {
        return fail(Errc::Invalid, "--lib-prefix '", request.lib_prefix,
                    "' must be an absolute path");
    }
    if (prefix == "/") prefix.clear();
    HOIST_ASSIGN(auto modules, checkModules(request.modules));

    auto& info = content.info;
    info.name = request.name.empty() ? "mesos-config-" + request.role : request.name;
    HOIST_TRY(pkgmgr::validateName(info.name));
    info.kind = "mesos-config";
    for (const auto& module : modules) info.requires_names.push_back(module.info.name);
    std::sort(info.requires_names.begin(), info.requires_names.end());

    std::vector<std::pair<std::string, std::string>> env;
    std::vector<std::string> flag_lines;
    for (const auto& flag : content.config.flags) {
        const OptionSpec* spec = schema.find(flag.name);
        env.emplace_back(spec ? spec->envName() : "MESOS_" + flag.name, flag.value);
        flag_lines.push_back("--" + flag.name + "=" + flag.value);
    }
    if (!modules.empty()) {
        const std::string modules_url = "file://${PKG}/" + std::string(kModulesFile);
        env.emplace_back("MESOS_MODULES", modules_url);
        flag_lines.push_back("--modules=" + modules_url);
    }
    for (const auto& entry : content.config.environment) env.push_back(entry);
    std::sort(env.begin(), env.end());
    std::sort(flag_lines.begin(), flag_lines.end());
    info.environment = env;

    std::string flags_text;
    for (const auto& line : flag_lines) flags_text += line + "\n";
    std::string env_text;
    for (const auto& [key, value] : env) env_text += key + "=" + envFileValue(value) + "\n";
    content.files[std::string(kFlagsFile)] = flags_text;
    content.files[std::string(kEnvironmentFile)] = env_text;
    content.files[std::string(kModulesFile)] = modulesJson(modules, prefix);

    if (!request.version.empty()) {
        HOIST_TRY(pkgmgr::validateVersion(request.version));
        info.version = request.version;
    } else {
        // The version names the content, so two different configs never share an id.
        info.version = "0";
        crypto::Sha256 hash;
        hash.update(info.toJson());
        for (const auto& [path, bytes] : content.files) {
            hash.update(std::string_view("\0", 1));
            hash.update(path);
            hash.update(std::string_view("\0", 1));
            hash.update(bytes);
        }
        info.version = "0.0.0+" + hash.finishHex().substr(0, 12);
    }
    return content;
}

Result<pkgmgr::PackResult> writeConfigPackage(const ConfigContent& content,
                                              const fs::path& out_dir) {
    HOIST_TRY(files::makeDirs(out_dir));
    HOIST_ASSIGN(auto staging, files::TempDir::create(out_dir, ".tmp-config-gen-"));
    HOIST_TRY(files::writeFileAtomic(staging.path() / "pkginfo.json", content.info.toJson() + "\n",
                                     0644));
    for (const auto& [relative, bytes] : content.files) {
        const fs::path target = staging.path() / relative;
        HOIST_TRY(files::makeDirs(target.parent_path()));
        HOIST_TRY(files::writeFileAtomic(target, bytes, 0644));
    }
    const fs::path out = out_dir / (content.info.id().str() + ".tar.zst");
    // Packed under a temporary name first: one id must never name two different contents,
    // so an existing package of this id is kept only when its bytes are the same.
    const fs::path packing = files::tempSibling(out);
    auto result = pkgmgr::packDirectory(staging.path(), packing);
    if (!result) {
        (void)files::removeTree(packing);
        return std::unexpected(result.error());
    }
    auto packed = std::move(*result);
    if (auto existing = crypto::sha256File(out); existing) {
        (void)files::removeTree(packing);
        if (*existing != packed.ref.sha256) {
            return fail(Errc::Conflict, out.string(),
                        " already exists with other content; choose another --version");
        }
    } else if (existing.error().code != Errc::NotFound) {
        (void)files::removeTree(packing);
        return std::unexpected(existing.error());
    } else {
        HOIST_TRY(files::renameDurable(packing, out));
    }
    packed.file = out;
    log::info("config-gen", "packed config package",
              {{"id", packed.ref.id}, {"sha256", packed.ref.sha256}, {"file", out.string()}});
    return packed;
}

}  // namespace hoist::config_gen
