// resolveOptions: the user's options against the schema, for one role.

#include <algorithm>
#include <map>

#include "config_gen/schema.hpp"
#include "core/strings.hpp"

namespace hoist::config_gen {

namespace {

/// Variables config-gen sets itself, which the "environment" option may not override.
const std::vector<std::string> kReservedEnv = {"MESOS_MODULES"};

/// Variables that change which code runs or who the process is: the dynamic loader's, the
/// program search path, the shell's start-up hooks, and the node's own (HOIST_*, which the
/// restart helper sets). A config package may not set them for the service.
bool controlsTheProcess(std::string_view key) {
    static const std::vector<std::string_view> kExact = {
        "PATH",          "HOME",       "USER",         "LOGNAME",
        "SHELL",         "IFS",        "ENV",          "BASH_ENV",
        "PYTHONPATH",    "PYTHONHOME", "PERL5LIB",     "PERL5OPT",
        "RUBYLIB",       "RUBYOPT",    "NODE_OPTIONS", "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS", "GCONV_PATH", "MALLOC_CONF",  "TMPDIR"};
    if (std::find(kExact.begin(), kExact.end(), key) != kExact.end()) return true;
    return key.starts_with("LD_") || key.starts_with("HOIST_") || key.starts_with("GLIBC_") ||
           key.starts_with("MALLOC_") || key.starts_with("BASH_FUNC_");
}

}  // namespace

Result<ResolvedConfig> resolveOptions(const Schema& schema, std::string_view role,
                                      std::string_view options_json, std::string_view ctx) {
    HOIST_TRY(schema.checkRole(role));
    HOIST_ASSIGN(json::Document doc, json::parseObject(options_json, ctx));

    std::vector<std::string> problems;
    // Sorted by name, so problems come out in the same order whatever the input's key order.
    // (json::parse refuses an option given twice.)
    std::map<std::string, const json::Value*> given;
    for (auto m = doc.MemberBegin(); m != doc.MemberEnd(); ++m)
        given.emplace(std::string(m->name.GetString(), m->name.GetStringLength()), &m->value);

    std::vector<std::string> names;
    for (const auto& spec : schema.options()) names.push_back(spec.name);

    std::map<std::string, OptionValue> values;
    for (const auto& [name, value] : given) {
        const OptionSpec* spec = schema.find(name);
        if (!spec) {
            auto hint = strings::didYouMean(name, names);
            problems.push_back(
                "unknown option '" + name + "'" +
                (hint.empty() ? " (see 'config-gen options')" : " (did you mean '" + hint + "'?)"));
            continue;
        }
        if (!spec->appliesTo(role)) {
            problems.push_back("option '" + name + "' applies to the " + spec->rolesText() +
                               " role only, not " + std::string(role));
            continue;
        }
        auto checked = spec->check(*value);
        if (!checked) {
            problems.push_back(checked.error().message);
            continue;
        }
        values.emplace(name, std::move(*checked));
    }

    std::vector<const OptionSpec*> specs;
    for (const auto& spec : schema.options()) {
        if (spec.appliesTo(role)) specs.push_back(&spec);
    }
    std::sort(specs.begin(), specs.end(),
              [](const OptionSpec* a, const OptionSpec* b) { return a->name < b->name; });

    for (const OptionSpec* spec : specs) {
        if (given.contains(spec->name)) continue;
        if (spec->required) {
            problems.push_back("option '" + spec->name + "' is required for the " +
                               std::string(role) + " role");
        }
        for (const auto& other : spec->required_with) {
            if (given.contains(other)) {
                problems.push_back("option '" + spec->name + "' is required when '" + other +
                                   "' is set");
            }
        }
    }

    // The extra environment must not shadow a flag's variable or one config-gen sets.
    for (const OptionSpec* spec : specs) {
        auto it = values.find(spec->name);
        if (spec->emit != Emit::Environment || it == values.end()) continue;
        for (const auto& [key, text] : it->second.entries) {
            if (std::find(kReservedEnv.begin(), kReservedEnv.end(), key) != kReservedEnv.end()) {
                problems.push_back("option '" + spec->name + "' key '" + key +
                                   "' is set by config-gen itself (from --module)");
                continue;
            }
            if (controlsTheProcess(key)) {
                problems.push_back("option '" + spec->name + "' key '" + key +
                                   "' may not be set: it controls the loader, the search path "
                                   "or the service's identity (LD_*, PATH, HOME, HOIST_*, ...)");
                continue;
            }
            for (const auto& other : schema.options()) {
                if (other.emit == Emit::Flag && other.envName() == key) {
                    problems.push_back("option '" + spec->name + "' key '" + key +
                                       "' would set option '" + other.name + "'; set '" +
                                       other.name + "' instead");
                }
            }
        }
    }

    if (!problems.empty()) return fail(Errc::Invalid, ctx, ": ", strings::join(problems, "; "));

    ResolvedConfig config;
    config.role = std::string(role);
    for (const OptionSpec* spec : specs) {
        auto it = values.find(spec->name);
        const OptionValue* value = it != values.end() ? &it->second : spec->defaultFor(role);
        if (!value) continue;
        if (spec->emit == Emit::Environment) {
            for (const auto& entry : value->entries) config.environment.push_back(entry);
        } else {
            config.flags.push_back({spec->name, value->text, it == values.end()});
        }
    }
    std::sort(config.environment.begin(), config.environment.end());
    return config;
}

}  // namespace hoist::config_gen
