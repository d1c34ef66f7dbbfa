#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/json.hpp"

namespace hoist::config_gen {

/// The roles an option can apply to. "both" in the schema means every one of them.
inline const std::vector<std::string> kRoles = {"master", "agent"};

enum class OptionType { String, Int, Bool, Enum, List, Map, Resources, Duration, Path };

/// "string", "int", ... as written in the schema.
std::string_view optionTypeName(OptionType type);

/// Where a resolved option goes: a Mesos flag (--name=value and MESOS_NAME=value), or, for a
/// map, one environment variable per entry.
enum class Emit { Flag, Environment };

/// A checked option value: `text` is how Mesos reads it (lists joined with ',', maps as
/// k:v;k:v, resources canonical and sorted); `entries` holds a map's pairs, sorted by key.
struct OptionValue {
    std::string text;
    std::vector<std::pair<std::string, std::string>> entries;
};

/// One option of layouts/config-schema.json.
struct OptionSpec {
    std::string name;
    OptionType type = OptionType::String;
    /// The roles it applies to (from "roles": "master", "agent" or "both").
    std::vector<std::string> roles;
    std::string description;
    bool required = false;
    /// Options that, when set, make this one required ("quorum" with "zk").
    std::vector<std::string> required_with;
    /// Default for every role, and per-role defaults that take precedence; already checked.
    std::optional<OptionValue> default_value;
    std::map<std::string, OptionValue> role_defaults;
    /// int: bounds of the value; duration: bounds in nanoseconds (with their text).
    std::optional<std::int64_t> min_int;
    std::optional<std::int64_t> max_int;
    std::optional<long double> min_ns;
    std::optional<long double> max_ns;
    std::string min_text;
    std::string max_text;
    /// enum: the allowed values; list: the allowed items (empty: any non-empty string).
    std::vector<std::string> values;
    std::optional<std::size_t> min_items;
    /// string: an ECMAScript regex the whole value must match, and the rule in words.
    std::optional<std::regex> pattern;
    std::string pattern_text;
    std::string pattern_rule;
    /// map: a regex each key must match, and the rule in words.
    std::optional<std::regex> key_pattern;
    std::string key_rule;
    Emit emit = Emit::Flag;

    bool appliesTo(std::string_view role) const;
    /// The default for `role`, if any.
    const OptionValue* defaultFor(std::string_view role) const;
    /// "master", "agent" or "both".
    std::string rolesText() const;
    /// The constraints in words ("1..65535", "one of INFO, WARNING, ERROR", ...), for tables.
    std::string ruleText() const;
    /// The environment variable a flag is also exported as: MESOS_<NAME>.
    std::string envName() const;

    /// Checks a JSON value against this option's type and rules. Invalid, naming the option
    /// and the rule: "option 'port' must be between 1 and 65535 (got 70000)".
    Result<OptionValue> check(const json::Value& value) const;
};

/// The option schema. Immutable once parsed; safe to share between threads.
class Schema {
public:
    /// Parses and checks the schema itself (known types, defaults valid under their own
    /// rules, patterns that compile, required_with naming known options). `what` names the
    /// source in errors.
    static Result<Schema> parse(std::string_view text, std::string_view what);
    /// The copy of layouts/config-schema.json compiled into the binary.
    static Result<Schema> embedded();
    /// Reads a schema file; an empty path means the embedded copy.
    static Result<Schema> load(const std::filesystem::path& path);
    /// The embedded schema's text, as compiled in.
    static std::string_view embeddedText();

    /// Every option, in schema order.
    const std::vector<OptionSpec>& options() const { return options_; }
    /// nullptr when there is no such option.
    const OptionSpec* find(std::string_view name) const;
    /// Invalid when the schema has no option for the role: "role 'foo' is not one of master,
    /// agent".
    Result<void> checkRole(std::string_view role) const;
    const std::string& description() const { return description_; }

private:
    std::vector<OptionSpec> options_;
    std::string description_;
};

/// One resolved flag.
struct ResolvedOption {
    std::string name;
    std::string value;
    bool from_default = false;
};

/// What a role's options come to: the flags (sorted by name) and the extra environment
/// (sorted by variable name).
struct ResolvedConfig {
    std::string role;
    std::vector<ResolvedOption> flags;
    std::vector<std::pair<std::string, std::string>> environment;
};

/// Validates user options (a JSON object of option name -> value) for a role and fills in
/// defaults. Every problem is found, not just the first; the error lists them all, each
/// naming the option and the rule, separated by "; ", after `ctx`:
/// "options.json: unknown option 'qourum' (did you mean 'quorum'?)". Fails with Invalid.
Result<ResolvedConfig> resolveOptions(const Schema& schema, std::string_view role,
                                      std::string_view options_json, std::string_view ctx);

/// Parses a Mesos duration ("30secs", "1.5mins"): nanoseconds, or nullopt when malformed.
std::optional<long double> parseDuration(std::string_view text);

}  // namespace hoist::config_gen
