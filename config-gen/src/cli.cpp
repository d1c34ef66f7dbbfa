#include "config_gen/cli.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <functional>

#include "config_gen/package.hpp"
#include "config_gen/release.hpp"
#include "config_gen/schema.hpp"
#include "core/cli.hpp"
#include "core/files.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"

namespace hoist::config_gen {

namespace {

struct Cli {
    CLI::App app{"config-gen: deterministic mesos-config packages and release manifests",
                 "config-gen"};
    std::string schema_file;
    hoist::cli::LogOptions log{"warn", "text"};
    std::ostream& out;
    std::ostream& err;
    std::function<int()> action;

    Cli(std::ostream& o, std::ostream& e) : out(o), err(e) {}

    int fail(const Error& error) const {
        err << "config-gen: " << error.describe() << "\n";
        return exitCode(error.code);
    }
};

std::string pad(const std::string& text, std::size_t width) {
    return text.size() >= width ? text + " " : text + std::string(width - text.size(), ' ');
}

std::string defaultsText(const OptionSpec& spec, const std::string& role) {
    if (spec.required) return "(required)";
    if (!role.empty()) {
        const OptionValue* value = spec.defaultFor(role);
        return value ? value->text : "-";
    }
    if (spec.role_defaults.empty()) return spec.default_value ? spec.default_value->text : "-";
    std::vector<std::string> parts;
    for (const auto& r : spec.roles) {
        if (const OptionValue* value = spec.defaultFor(r)) parts.push_back(r + ": " + value->text);
    }
    return strings::join(parts, ", ");
}

void addOptionsCommand(Cli& cli) {
    auto* cmd = cli.app.add_subcommand("options", "print the option schema as a table (or JSON)");
    auto role = std::make_shared<std::string>();
    auto as_json = std::make_shared<bool>(false);
    cmd->add_option("--role", *role, "only the options of this role (master or agent)");
    cmd->add_flag("--json", *as_json, "print JSON instead of a table");
    cmd->callback([&cli, role, as_json] {
        cli.action = [&cli, role, as_json]() -> int {
            auto schema = Schema::load(cli.schema_file);
            if (!schema) return cli.fail(schema.error());
            if (!role->empty()) {
                if (auto checked = schema->checkRole(*role); !checked)
                    return cli.fail(checked.error());
            }
            std::vector<const OptionSpec*> specs;
            for (const auto& spec : schema->options()) {
                if (role->empty() || spec.appliesTo(*role)) specs.push_back(&spec);
            }
            if (*as_json) {
                json::Writer w;
                w.beginObject().key("options").beginArray();
                for (const OptionSpec* spec : specs) {
                    w.beginObject()
                        .field("name", spec->name)
                        .field("type", optionTypeName(spec->type))
                        .field("roles", spec->rolesText())
                        .field("required", spec->required);
                    w.key("required_with").beginArray();
                    for (const auto& other : spec->required_with) w.value(other);
                    w.endArray();
                    w.key("defaults").beginObject();
                    for (const auto& r : spec->roles) {
                        if (!role->empty() && r != *role) continue;
                        if (const OptionValue* value = spec->defaultFor(r)) w.field(r, value->text);
                    }
                    w.endObject();
                    w.key("values").beginArray();
                    for (const auto& v : spec->values) w.value(v);
                    w.endArray();
                    w.field("rule", spec->ruleText())
                        .field("env", spec->emit == Emit::Flag ? spec->envName() : "")
                        .field("description", spec->description)
                        .endObject();
                }
                w.endArray().endObject();
                cli.out << w.str() << "\n";
                return 0;
            }
            std::size_t name_w = 6, type_w = 4, roles_w = 5, default_w = 7;
            for (const OptionSpec* spec : specs) {
                name_w = std::max(name_w, spec->name.size());
                type_w = std::max(type_w, optionTypeName(spec->type).size());
                roles_w = std::max(roles_w, spec->rolesText().size());
                default_w = std::max(default_w, defaultsText(*spec, *role).size());
            }
            cli.out << pad("OPTION", name_w + 2) << pad("TYPE", type_w + 2)
                    << pad("ROLES", roles_w + 2) << "DEFAULT\n";
            for (const OptionSpec* spec : specs) {
                cli.out << pad(spec->name, name_w + 2)
                        << pad(std::string(optionTypeName(spec->type)), type_w + 2)
                        << pad(spec->rolesText(), roles_w + 2) << defaultsText(*spec, *role)
                        << "\n";
                cli.out << "    " << spec->description << "\n";
                if (auto rule = spec->ruleText(); !rule.empty())
                    cli.out << "    rule: " << rule << "\n";
            }
            return 0;
        };
    });
}

void addPackageCommand(Cli& cli) {
    auto* cmd = cli.app.add_subcommand(
        "package", "validate options and write a mesos-config package; prints its reference");
    struct Args {
        std::string role, options, out_dir, version, name, lib_prefix = "/opt/hoist/current";
        std::vector<std::string> modules;
    };
    auto args = std::make_shared<Args>();
    cmd->add_option("--role", args->role, "master or agent")->required();
    cmd->add_option("--options", args->options, "JSON file of option -> value")->required();
    cmd->add_option("--module", args->modules,
                    "an enabled module: package tarball or folder (repeatable)");
    cmd->add_option("-o,--output", args->out_dir, "folder to write <id>.tar.zst into")->required();
    cmd->add_option("--version", args->version, "package version (default: 0.0.0+<content hash>)");
    cmd->add_option("--name", args->name, "package name (default: mesos-config-<role>)");
    cmd->add_option("--lib-prefix", args->lib_prefix,
                    "where module libraries are on the node (default: /opt/hoist/current)");
    cmd->callback([&cli, args] {
        cli.action = [&cli, args]() -> int {
            auto schema = Schema::load(cli.schema_file);
            if (!schema) return cli.fail(schema.error());
            auto options = files::readFile(args->options, 4u << 20);
            if (!options)
                return cli.fail(withContext(options.error(), "--options " + args->options));
            PackageRequest request;
            request.role = args->role;
            request.options_json = std::move(*options);
            request.options_name = args->options;
            request.name = args->name;
            request.version = args->version;
            request.lib_prefix = args->lib_prefix;
            for (const auto& path : args->modules) {
                auto module = readPackage(path);
                if (!module) return cli.fail(withContext(module.error(), "--module"));
                request.modules.push_back(std::move(*module));
            }
            auto content = renderConfig(*schema, request);
            if (!content) return cli.fail(content.error());
            auto packed = writeConfigPackage(*content, args->out_dir);
            if (!packed) return cli.fail(packed.error());
            cli.out << packed->ref.toJson() << "\n";
            return 0;
        };
    });
}

/// Re-signing launders whatever the base says, so the base can be held to trusted keys.
Result<pkgmgr::Release> loadBase(const std::string& text, const std::string& path,
                                 const std::vector<std::string>& keys) {
    if (keys.empty()) {
        log::warn("config-gen", "base release not verified (no --base-key)", {{"file", path}});
        return pkgmgr::Release::parse(text);
    }
    std::vector<std::string> pems;
    for (const auto& key : keys) {
        auto pem = files::readFile(key, 64u << 10);
        if (!pem) return std::unexpected(withContext(pem.error(), "--base-key " + key));
        pems.push_back(std::move(*pem));
    }
    auto signature = files::readFile(path + ".sig", 64u << 10);
    if (!signature) {
        if (signature.error().code != Errc::NotFound) return std::unexpected(signature.error());
        return fail(Errc::Unauthorized, "the base release is not signed (no ", path,
                    ".sig), and --base-key asks for a signature");
    }
    const std::string sig(strings::trim(*signature));
    return pkgmgr::loadVerifiedRelease(text, sig, pems, false, "base release");
}

void addReleaseCommand(Cli& cli) {
    auto* cmd = cli.app.add_subcommand("release",
                                       "compose and sign a release manifest from a base release");
    struct Args {
        std::string base, version, sign_key, out_dir;
        std::vector<std::string> replace, add_modules, remove_modules, roles, upgrade_from,
            base_keys;
        bool json = false;
    };
    auto args = std::make_shared<Args>();
    cmd->add_option("--base", args->base, "the base release manifest (<version>.json)")->required();
    cmd->add_option("--base-key", args->base_keys,
                    "trusted public key (PEM): the base must carry a valid FILE.sig by one of "
                    "them (repeatable; without it the base is not verified)");
    cmd->add_option("--version", args->version, "the new release's version")->required();
    cmd->add_option(
        "--replace", args->replace,
        "package tarball replacing the same-name package in every role holding it (repeatable)");
    cmd->add_option("--add-module", args->add_modules,
                    "module tarball to add to every role (repeatable)");
    cmd->add_option("--remove-module", args->remove_modules,
                    "package name to remove from every role (repeatable)");
    cmd->add_option("--role", args->roles, "restrict the changes to this role (repeatable)");
    cmd->add_option("--upgrade-from", args->upgrade_from,
                    "version glob (1.*) or semver range (>=1.2 <2) the release may upgrade "
                    "from (repeatable; default: the base's family, e.g. 1.*, plus the base's own)");
    cmd->add_option("--sign-key", args->sign_key, "Ed25519 private key (PEM) to sign with")
        ->required();
    cmd->add_option("-o,--output", args->out_dir,
                    "folder for <version>.json and <version>.json.sig")
        ->required();
    cmd->add_flag("--json", args->json, "print the result as JSON");
    cmd->callback([&cli, args] {
        cli.action = [&cli, args]() -> int {
            auto base_text = files::readFile(args->base, 16u << 20);
            if (!base_text) return cli.fail(withContext(base_text.error(), "--base " + args->base));
            auto base = loadBase(*base_text, args->base, args->base_keys);
            if (!base) return cli.fail(withContext(base.error(), args->base));
            auto key = files::readFile(args->sign_key, 64u << 10);
            if (!key) return cli.fail(withContext(key.error(), "--sign-key " + args->sign_key));

            ReleaseChanges changes;
            changes.version = args->version;
            changes.upgrade_from = args->upgrade_from;
            changes.remove_modules = args->remove_modules;
            changes.roles = args->roles;
            auto read = [&](const std::vector<std::string>& paths, std::string_view flag,
                            std::vector<PackageSource>& into) -> Result<void> {
                for (const auto& path : paths) {
                    auto pkg = readPackage(path);
                    if (!pkg) return std::unexpected(withContext(pkg.error(), flag));
                    if (!pkg->ref) {
                        return fail(Errc::Invalid, flag, " ", path,
                                    ": must be a package tarball, not a folder");
                    }
                    into.push_back(std::move(*pkg));
                }
                return ok();
            };
            if (auto r = read(args->replace, "--replace", changes.replace); !r)
                return cli.fail(r.error());
            if (auto r = read(args->add_modules, "--add-module", changes.add_modules); !r) {
                return cli.fail(r.error());
            }
            auto composed = composeRelease(*base, changes);
            if (!composed) return cli.fail(composed.error());
            auto written = writeSignedRelease(composed->release, *key, args->out_dir);
            if (!written) return cli.fail(written.error());

            if (args->json) {
                json::Writer w;
                w.beginObject()
                    .field("version", composed->release.version)
                    .field("base", base->version)
                    .field("manifest", written->manifest.string())
                    .field("signature", written->signature.string());
                w.key("upgrade_from").beginArray();
                for (const auto& p : composed->release.upgrade_from) w.value(p);
                w.endArray().key("changes").beginArray();
                for (const auto& c : composed->changes) w.value(c);
                w.endArray().endObject();
                cli.out << w.str() << "\n";
            } else {
                cli.out << "release " << composed->release.version << " from " << base->version
                        << ": " << composed->changes.size() << " change(s)\n";
                for (const auto& c : composed->changes) cli.out << "  " << c << "\n";
                cli.out << "upgrade_from: " << strings::join(composed->release.upgrade_from, ", ")
                        << "\n";
                cli.out << "wrote " << written->manifest.string() << " and "
                        << written->signature.string() << "\n";
            }
            return 0;
        };
    });
}

}  // namespace

int runCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    Cli cli(out, err);
    auto& app = cli.app;
    app.require_subcommand(1);
    app.fallthrough();
    app.add_option("--schema", cli.schema_file,
                   "option schema file (default: the built-in copy of "
                   "layouts/config-schema.json)");
    hoist::cli::addLogOptions(app, cli.log);
    addOptionsCommand(cli);
    addPackageCommand(cli);
    addReleaseCommand(cli);

    if (auto done = hoist::cli::parse(app, args, "config-gen", out, err)) return *done;
    return hoist::cli::run(cli.action, cli.log, "config-gen", err);
}

}  // namespace hoist::config_gen
