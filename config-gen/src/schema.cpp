#include "config_gen/schema.hpp"

#include <algorithm>
#include <cctype>
#include <set>

#include "core/files.hpp"
#include "core/strings.hpp"
#include "embedded_schema.hpp"

namespace hoist::config_gen {

namespace {

const std::vector<std::pair<std::string_view, OptionType>> kTypeNames = {
    {"string", OptionType::String},       {"int", OptionType::Int},
    {"bool", OptionType::Bool},           {"enum", OptionType::Enum},
    {"list", OptionType::List},           {"map", OptionType::Map},
    {"resources", OptionType::Resources}, {"duration", OptionType::Duration},
    {"path", OptionType::Path},
};

std::optional<std::regex> compileRegex(const std::string& text) {
    try {
        return std::regex(text, std::regex::ECMAScript);
    } catch (const std::regex_error&) {
        return std::nullopt;
    }
}

Result<OptionSpec> parseOption(const json::Value& obj, std::string_view what) {
    if (!obj.IsObject()) return fail(Errc::Invalid, what, ": every option must be an object");
    HOIST_ASSIGN(std::string name, json::getString(obj, "name", what));
    const std::string ctx = hoist::detail::concat(what, ": option '", name, "'");
    HOIST_TRY(
        json::rejectUnknown(obj,
                            {"name", "type", "roles", "description", "required", "required_with",
                             "default", "default_by_role", "min", "max", "values", "min_items",
                             "pattern", "pattern_rule", "key_pattern", "key_rule", "emit"},
                            ctx));
    static const std::regex kNameRule("^[a-z][a-z0-9_]*$");
    if (!std::regex_match(name, kNameRule)) {
        return fail(Errc::Invalid, ctx, ": name must be lowercase letters, digits and '_'");
    }
    OptionSpec spec;
    spec.name = name;

    HOIST_ASSIGN(std::string type, json::getString(obj, "type", ctx));
    auto type_it = std::find_if(kTypeNames.begin(), kTypeNames.end(),
                                [&](const auto& entry) { return entry.first == type; });
    if (type_it == kTypeNames.end()) {
        return fail(
            Errc::Invalid, ctx, ": type '", type,
            "' is not one of string, int, bool, enum, list, map, resources, duration, path");
    }
    spec.type = type_it->second;

    HOIST_ASSIGN(std::string roles, json::getString(obj, "roles", ctx));
    if (roles == "both") {
        spec.roles = kRoles;
    } else if (std::find(kRoles.begin(), kRoles.end(), roles) != kRoles.end()) {
        spec.roles = {roles};
    } else {
        return fail(Errc::Invalid, ctx, ": roles must be master, agent or both");
    }
    HOIST_ASSIGN(spec.description, json::getString(obj, "description", ctx));
    if (spec.description.empty())
        return fail(Errc::Invalid, ctx, ": description must not be empty");
    HOIST_ASSIGN(auto required, json::optBool(obj, "required", ctx));
    spec.required = required.value_or(false);
    HOIST_ASSIGN(spec.required_with, json::optStringArray(obj, "required_with", ctx));

    HOIST_ASSIGN(auto emit, json::optString(obj, "emit", ctx));
    if (emit && *emit == "environment") {
        if (spec.type != OptionType::Map) {
            return fail(Errc::Invalid, ctx, ": emit 'environment' needs type map");
        }
        spec.emit = Emit::Environment;
    } else if (emit && *emit != "flag") {
        return fail(Errc::Invalid, ctx, ": emit must be flag or environment");
    }

    // Bounds: integers for int, duration strings for duration.
    for (const char* bound : {"min", "max"}) {
        auto it = obj.FindMember(bound);
        if (it == obj.MemberEnd()) continue;
        const bool is_min = std::string_view(bound) == "min";
        if (spec.type == OptionType::Int) {
            if (!it->value.IsInt64())
                return fail(Errc::Invalid, ctx, ": ", bound, " must be an integer");
            (is_min ? spec.min_int : spec.max_int) = it->value.GetInt64();
        } else if (spec.type == OptionType::Duration) {
            if (!it->value.IsString())
                return fail(Errc::Invalid, ctx, ": ", bound, " must be a duration string");
            std::string text = it->value.GetString();
            auto ns = parseDuration(text);
            if (!ns)
                return fail(Errc::Invalid, ctx, ": ", bound, " '", text, "' is not a duration");
            (is_min ? spec.min_ns : spec.max_ns) = *ns;
            (is_min ? spec.min_text : spec.max_text) = text;
        } else {
            return fail(Errc::Invalid, ctx, ": ", bound,
                        " applies to int and duration options only");
        }
    }
    if (spec.min_int && spec.max_int && *spec.min_int > *spec.max_int) {
        return fail(Errc::Invalid, ctx, ": min is above max");
    }
    if (spec.min_ns && spec.max_ns && *spec.min_ns > *spec.max_ns) {
        return fail(Errc::Invalid, ctx, ": min is above max");
    }

    HOIST_ASSIGN(spec.values, json::optStringArray(obj, "values", ctx));
    if (!spec.values.empty() && spec.type != OptionType::Enum && spec.type != OptionType::List) {
        return fail(Errc::Invalid, ctx, ": values applies to enum and list options only");
    }
    if (spec.type == OptionType::Enum && spec.values.empty()) {
        return fail(Errc::Invalid, ctx, ": an enum needs values");
    }
    HOIST_ASSIGN(auto min_items, json::optInt(obj, "min_items", ctx));
    if (min_items) {
        if (spec.type != OptionType::List || *min_items < 0) {
            return fail(Errc::Invalid, ctx, ": min_items must be a non-negative integer on a list");
        }
        spec.min_items = static_cast<std::size_t>(*min_items);
    }

    HOIST_ASSIGN(auto pattern, json::optString(obj, "pattern", ctx));
    HOIST_ASSIGN(auto pattern_rule, json::optString(obj, "pattern_rule", ctx));
    if (pattern) {
        if (spec.type != OptionType::String) {
            return fail(Errc::Invalid, ctx, ": pattern applies to string options only");
        }
        spec.pattern = compileRegex(*pattern);
        if (!spec.pattern) return fail(Errc::Invalid, ctx, ": pattern does not compile");
        if (!pattern_rule || pattern_rule->empty()) {
            return fail(Errc::Invalid, ctx, ": a pattern needs a pattern_rule saying it in words");
        }
        spec.pattern_text = *pattern;
        spec.pattern_rule = *pattern_rule;
    } else if (pattern_rule) {
        return fail(Errc::Invalid, ctx, ": pattern_rule without pattern");
    }
    HOIST_ASSIGN(auto key_pattern, json::optString(obj, "key_pattern", ctx));
    HOIST_ASSIGN(auto key_rule, json::optString(obj, "key_rule", ctx));
    if (key_pattern) {
        if (spec.type != OptionType::Map) {
            return fail(Errc::Invalid, ctx, ": key_pattern applies to map options only");
        }
        spec.key_pattern = compileRegex(*key_pattern);
        if (!spec.key_pattern) return fail(Errc::Invalid, ctx, ": key_pattern does not compile");
        if (!key_rule || key_rule->empty()) {
            return fail(Errc::Invalid, ctx, ": a key_pattern needs a key_rule saying it in words");
        }
        spec.key_rule = *key_rule;
    } else if (key_rule) {
        return fail(Errc::Invalid, ctx, ": key_rule without key_pattern");
    }

    // Defaults must pass the option's own rules.
    if (auto it = obj.FindMember("default"); it != obj.MemberEnd()) {
        auto value = spec.check(it->value);
        if (!value) return fail(Errc::Invalid, ctx, ": default: ", value.error().message);
        spec.default_value = std::move(*value);
    }
    HOIST_ASSIGN(const json::Value* by_role, json::optObject(obj, "default_by_role", ctx));
    if (by_role) {
        for (auto m = by_role->MemberBegin(); m != by_role->MemberEnd(); ++m) {
            std::string role = m->name.GetString();
            if (!spec.appliesTo(role)) {
                return fail(Errc::Invalid, ctx, ": default_by_role names role '", role,
                            "', which the option does not apply to");
            }
            auto value = spec.check(m->value);
            if (!value)
                return fail(Errc::Invalid, ctx, ": default for ", role, ": ",
                            value.error().message);
            spec.role_defaults[role] = std::move(*value);
        }
    }
    if (spec.required && (spec.default_value || !spec.role_defaults.empty())) {
        return fail(Errc::Invalid, ctx, ": a required option cannot have a default");
    }
    return spec;
}

}  // namespace

std::string_view optionTypeName(OptionType type) {
    for (const auto& [name, t] : kTypeNames) {
        if (t == type) return name;
    }
    return "unknown";
}

bool OptionSpec::appliesTo(std::string_view role) const {
    return std::find(roles.begin(), roles.end(), role) != roles.end();
}

const OptionValue* OptionSpec::defaultFor(std::string_view role) const {
    if (auto it = role_defaults.find(std::string(role)); it != role_defaults.end())
        return &it->second;
    return default_value ? &*default_value : nullptr;
}

std::string OptionSpec::rolesText() const {
    return roles.size() == kRoles.size() ? "both" : roles.front();
}

std::string OptionSpec::envName() const {
    std::string out = "MESOS_";
    for (char c : name) out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
}

std::string OptionSpec::ruleText() const {
    std::vector<std::string> parts;
    auto bounds = [&](const std::string& lo, const std::string& hi) {
        if (!lo.empty() && !hi.empty())
            parts.push_back(lo + ".." + hi);
        else if (!lo.empty())
            parts.push_back(">= " + lo);
        else if (!hi.empty())
            parts.push_back("<= " + hi);
    };
    switch (type) {
        case OptionType::Int:
            bounds(min_int ? std::to_string(*min_int) : "",
                   max_int ? std::to_string(*max_int) : "");
            break;
        case OptionType::Duration:
            parts.push_back("number + ns|us|ms|secs|mins|hrs|days|weeks");
            bounds(min_text, max_text);
            break;
        case OptionType::Enum:
            parts.push_back("one of " + strings::join(values, ", "));
            break;
        case OptionType::List:
            if (!values.empty()) parts.push_back("items from " + strings::join(values, ", "));
            if (min_items) parts.push_back("at least " + std::to_string(*min_items));
            break;
        case OptionType::String:
            if (!pattern_rule.empty()) parts.push_back(pattern_rule);
            break;
        case OptionType::Map:
            if (!key_rule.empty()) parts.push_back("keys: " + key_rule);
            if (emit == Emit::Environment) parts.push_back("exported as environment variables");
            break;
        case OptionType::Path:
            parts.push_back("absolute, or under ${STATE}/ or ${PKG}/");
            break;
        case OptionType::Resources:
            parts.push_back("name[(role)]:number|[a-b,...]|{a,b};...");
            break;
        case OptionType::Bool:
            parts.push_back("true or false");
            break;
    }
    if (!required_with.empty())
        parts.push_back("required with " + strings::join(required_with, ", "));
    return strings::join(parts, "; ");
}

Result<Schema> Schema::parse(std::string_view text, std::string_view what) {
    HOIST_ASSIGN(json::Document doc, json::parseObject(text, what));
    HOIST_TRY(json::rejectUnknown(doc, {"schema", "description", "options"}, what));
    HOIST_ASSIGN(std::int64_t version, json::getInt(doc, "schema", what));
    if (version != 1) {
        return fail(Errc::Invalid, what, ": schema version ", version,
                    " is not supported (only 1)");
    }
    Schema schema;
    HOIST_ASSIGN(auto description, json::optString(doc, "description", what));
    schema.description_ = description.value_or("");
    HOIST_ASSIGN(const json::Value* options, json::getArray(doc, "options", what));
    std::set<std::string> names;
    for (const auto& entry : options->GetArray()) {
        HOIST_ASSIGN(OptionSpec spec, parseOption(entry, what));
        if (!names.insert(spec.name).second) {
            return fail(Errc::Invalid, what, ": option '", spec.name, "' is defined twice");
        }
        schema.options_.push_back(std::move(spec));
    }
    for (const auto& spec : schema.options_) {
        for (const auto& other : spec.required_with) {
            if (!names.contains(other)) {
                return fail(Errc::Invalid, what, ": option '", spec.name,
                            "': required_with names unknown option '", other, "'");
            }
        }
    }
    return schema;
}

std::string_view Schema::embeddedText() {
    return detail::kEmbeddedSchema;
}

Result<Schema> Schema::embedded() {
    return parse(detail::kEmbeddedSchema, "embedded config schema");
}

Result<Schema> Schema::load(const std::filesystem::path& path) {
    if (path.empty()) return embedded();
    HOIST_ASSIGN(std::string text, files::readFile(path, 4u << 20));
    return parse(text, path.string());
}

const OptionSpec* Schema::find(std::string_view name) const {
    for (const auto& spec : options_) {
        if (spec.name == name) return &spec;
    }
    return nullptr;
}

Result<void> Schema::checkRole(std::string_view role) const {
    if (std::find(kRoles.begin(), kRoles.end(), role) == kRoles.end()) {
        return fail(Errc::Invalid, "role '", role, "' is not one of ", strings::join(kRoles, ", "));
    }
    return ok();
}

}  // namespace hoist::config_gen
