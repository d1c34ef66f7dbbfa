// OptionSpec::check: one checker per option type. Every refusal starts with
// "option '<name>'" and says the rule the value broke.

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <set>

#include "config_gen/schema.hpp"
#include "core/strings.hpp"

namespace hoist::config_gen {

namespace {

std::string describe(const json::Value& value) {
    if (value.IsNull()) return "null";
    if (value.IsBool()) return value.GetBool() ? "true" : "false";
    if (value.IsString()) return "a string";
    if (value.IsInt64() || value.IsUint64()) return "a number";
    if (value.IsNumber()) return json::toString(value);
    if (value.IsArray()) return "a list";
    return "an object";
}

std::string numberText(const json::Value& value) {
    if (value.IsInt64()) return std::to_string(value.GetInt64());
    if (value.IsUint64()) return std::to_string(value.GetUint64());
    char buffer[64];
    auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value.GetDouble());
    if (ec != std::errc()) return json::toString(value);
    return std::string(buffer, end);
}

bool hasControl(std::string_view text) {
    return std::any_of(text.begin(), text.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7f;
    });
}

/// Values listed in a message: all of them when few, else a pointer to the table.
std::string allowedText(const std::vector<std::string>& values) {
    if (values.size() <= 8) return "one of " + strings::join(values, ", ");
    return "one of the " + std::to_string(values.size()) + " values 'config-gen options' lists";
}

std::string hintFor(std::string_view word, const std::vector<std::string>& candidates) {
    auto hint = strings::didYouMean(word, candidates);
    return hint.empty() ? "" : "; did you mean '" + hint + "'?";
}

class Checker {
public:
    explicit Checker(const OptionSpec& spec) : spec_(spec) {}

    template <class... Parts>
    std::unexpected<Error> bad(Parts&&... parts) const {
        return fail(Errc::Invalid, "option '", spec_.name, "' ", std::forward<Parts>(parts)...);
    }

    Result<std::string> text(const json::Value& value, std::string_view what) const {
        if (!value.IsString()) return bad(what, " (got ", describe(value), ")");
        std::string s(value.GetString(), value.GetStringLength());
        if (s.empty()) return bad("must not be empty");
        if (hasControl(s)) return bad("must not contain control characters");
        return s;
    }

    Result<OptionValue> string(const json::Value& value) const {
        HOIST_ASSIGN(std::string s, text(value, "must be a string"));
        if (spec_.pattern && !std::regex_match(s, *spec_.pattern)) {
            return bad("must be ", spec_.pattern_rule, " (got '", s, "')");
        }
        return OptionValue{s, {}};
    }

    Result<OptionValue> path(const json::Value& value) const {
        HOIST_ASSIGN(std::string s, text(value, "must be a path string"));
        const bool anchored = s.starts_with("/") || s == "${STATE}" || s == "${PKG}" ||
                              s.starts_with("${STATE}/") || s.starts_with("${PKG}/");
        if (!anchored) {
            return bad("must be an absolute path or start with ${STATE}/ or ${PKG}/ (got '", s,
                       "')");
        }
        for (const auto& part : strings::split(s, '/')) {
            if (part == "..") return bad("must not contain '..' (got '", s, "')");
        }
        return OptionValue{s, {}};
    }

    Result<OptionValue> integer(const json::Value& value) const {
        if (!value.IsInt64()) return bad("must be an integer (got ", describe(value), ")");
        std::int64_t n = value.GetInt64();
        const bool low = spec_.min_int && n < *spec_.min_int;
        const bool high = spec_.max_int && n > *spec_.max_int;
        if (low || high) {
            if (spec_.min_int && spec_.max_int) {
                return bad("must be between ", *spec_.min_int, " and ", *spec_.max_int, " (got ", n,
                           ")");
            }
            if (low) return bad("must be at least ", *spec_.min_int, " (got ", n, ")");
            return bad("must be at most ", *spec_.max_int, " (got ", n, ")");
        }
        return OptionValue{std::to_string(n), {}};
    }

    Result<OptionValue> boolean(const json::Value& value) const {
        if (!value.IsBool()) return bad("must be true or false (got ", describe(value), ")");
        return OptionValue{value.GetBool() ? "true" : "false", {}};
    }

    Result<OptionValue> enumeration(const json::Value& value) const {
        if (!value.IsString()) {
            return bad("must be ", allowedText(spec_.values), " (got ", describe(value), ")");
        }
        std::string s(value.GetString(), value.GetStringLength());
        if (std::find(spec_.values.begin(), spec_.values.end(), s) == spec_.values.end()) {
            return bad("must be ", allowedText(spec_.values), " (got '", s, "'",
                       hintFor(s, spec_.values), ")");
        }
        return OptionValue{s, {}};
    }

    Result<OptionValue> duration(const json::Value& value) const {
        static constexpr std::string_view kRule =
            "must be a duration: a number followed by ns, us, ms, secs, mins, hrs, days or weeks";
        if (!value.IsString()) return bad(kRule, " (got ", describe(value), ")");
        std::string s(value.GetString(), value.GetStringLength());
        auto ns = parseDuration(s);
        if (!ns) return bad(kRule, " (got '", s, "')");
        const bool low = spec_.min_ns && *ns < *spec_.min_ns;
        const bool high = spec_.max_ns && *ns > *spec_.max_ns;
        if (low || high) {
            if (spec_.min_ns && spec_.max_ns) {
                return bad("must be between ", spec_.min_text, " and ", spec_.max_text, " (got ", s,
                           ")");
            }
            if (low) return bad("must be at least ", spec_.min_text, " (got ", s, ")");
            return bad("must be at most ", spec_.max_text, " (got ", s, ")");
        }
        return OptionValue{s, {}};
    }

    Result<OptionValue> list(const json::Value& value) const {
        std::vector<std::string> items;
        if (value.IsString()) {
            std::string s(value.GetString(), value.GetStringLength());
            if (hasControl(s)) return bad("must not contain control characters");
            if (!s.empty()) {
                for (const auto& part : strings::split(s, ','))
                    items.emplace_back(strings::trim(part));
            }
        } else if (value.IsArray()) {
            std::size_t index = 0;
            for (const auto& item : value.GetArray()) {
                ++index;
                if (!item.IsString()) {
                    return bad("item ", index, " must be a string (got ", describe(item), ")");
                }
                std::string s(item.GetString(), item.GetStringLength());
                if (hasControl(s)) return bad("must not contain control characters");
                items.push_back(std::move(s));
            }
        } else {
            return bad("must be a list of strings or a comma-separated string (got ",
                       describe(value), ")");
        }
        std::set<std::string> seen;
        for (const auto& item : items) {
            if (item.empty()) return bad("has an empty item");
            if (item.find(',') != std::string::npos)
                return bad("item '", item, "' must not contain ','");
            if (!spec_.values.empty() &&
                std::find(spec_.values.begin(), spec_.values.end(), item) == spec_.values.end()) {
                auto hint = strings::didYouMean(item, spec_.values);
                return bad("item '", item, "' must be ", allowedText(spec_.values),
                           hint.empty() ? "" : " (did you mean '" + hint + "'?)");
            }
            if (!seen.insert(item).second) return bad("lists '", item, "' twice");
        }
        if (spec_.min_items && items.size() < *spec_.min_items) {
            return bad("must hold at least ", *spec_.min_items,
                       *spec_.min_items == 1 ? " item" : " items");
        }
        // Order is kept: isolators and containerizers are applied in the order given.
        return OptionValue{strings::join(items, ","), {}};
    }

    Result<OptionValue> map(const json::Value& value) const {
        std::vector<std::pair<std::string, std::string>> entries;
        if (value.IsObject()) {
            for (auto m = value.MemberBegin(); m != value.MemberEnd(); ++m) {
                std::string key(m->name.GetString(), m->name.GetStringLength());
                const auto& v = m->value;
                std::string text;
                if (v.IsString())
                    text.assign(v.GetString(), v.GetStringLength());
                else if (v.IsNumber())
                    text = numberText(v);
                else if (v.IsBool())
                    text = v.GetBool() ? "true" : "false";
                else {
                    return bad("value of '", key, "' must be a string, number or boolean (got ",
                               describe(v), ")");
                }
                entries.emplace_back(std::move(key), std::move(text));
            }
        } else if (value.IsString() && spec_.emit == Emit::Flag) {
            std::string s(value.GetString(), value.GetStringLength());
            for (const auto& part : strings::split(s, ';')) {
                auto entry = std::string(strings::trim(part));
                if (entry.empty()) continue;
                auto colon = entry.find(':');
                if (colon == std::string::npos) return bad("entry '", entry, "' must be key:value");
                entries.emplace_back(entry.substr(0, colon), entry.substr(colon + 1));
            }
        } else {
            return bad(spec_.emit == Emit::Flag ? "must be an object or a key:value;... string"
                                                : "must be an object",
                       " (got ", describe(value), ")");
        }
        std::set<std::string> seen;
        for (const auto& [key, text] : entries) {
            if (spec_.key_pattern && !std::regex_match(key, *spec_.key_pattern)) {
                return bad("key '", key, "' must be ", spec_.key_rule);
            }
            if (!seen.insert(key).second) return bad("lists key '", key, "' twice");
            if (hasControl(text))
                return bad("value of '", key, "' must not contain control characters");
            if (spec_.emit == Emit::Flag) {
                if (text.empty()) return bad("value of '", key, "' must not be empty");
                if (text.find_first_of(":;") != std::string::npos) {
                    return bad("value of '", key, "' must not contain ':' or ';' (got '", text,
                               "')");
                }
            }
        }
        std::sort(entries.begin(), entries.end());
        std::vector<std::string> joined;
        for (const auto& [key, text] : entries) joined.push_back(key + ":" + text);
        return OptionValue{strings::join(joined, ";"), std::move(entries)};
    }

    Result<OptionValue> resources(const json::Value& value) const {
        std::vector<std::pair<std::string, std::string>> entries;
        if (value.IsString()) {
            std::string s(value.GetString(), value.GetStringLength());
            if (hasControl(s)) return bad("must not contain control characters");
            for (const auto& part : strings::split(s, ';')) {
                auto entry = std::string(strings::trim(part));
                if (entry.empty()) continue;
                auto colon = entry.find(':');
                if (colon == std::string::npos)
                    return bad("entry '", entry, "' must be name:value");
                entries.emplace_back(std::string(strings::trim(entry.substr(0, colon))),
                                     std::string(strings::trim(entry.substr(colon + 1))));
            }
        } else if (value.IsObject()) {
            for (auto m = value.MemberBegin(); m != value.MemberEnd(); ++m) {
                std::string key(m->name.GetString(), m->name.GetStringLength());
                const auto& v = m->value;
                if (v.IsNumber())
                    entries.emplace_back(key, numberText(v));
                else if (v.IsString())
                    entries.emplace_back(key, std::string(v.GetString(), v.GetStringLength()));
                else {
                    return bad("value of '", key, "' must be a number or a string (got ",
                               describe(v), ")");
                }
            }
        } else {
            return bad("must be a name:value;... string or an object (got ", describe(value), ")");
        }
        if (entries.empty()) return bad("must not be empty");

        static const std::regex kName(
            R"(^([a-z_][a-z0-9_]*)(\(([*]|[A-Za-z0-9_][A-Za-z0-9_.-]*)\))?$)");
        static const std::regex kScalar(R"(^[0-9]+(\.[0-9]+)?$)");
        static const std::regex kRanges(
            R"(^\[\s*[0-9]+\s*-\s*[0-9]+\s*(,\s*[0-9]+\s*-\s*[0-9]+\s*)*\]$)");
        static const std::regex kSet(R"(^\{[^{}]*\}$)");
        std::set<std::string> seen;
        std::vector<std::string> rendered;
        for (auto& [name, text] : entries) {
            std::smatch match;
            if (!std::regex_match(name, match, kName)) {
                return bad(
                    "name '", name,
                    "' must be lowercase letters, digits and '_', optionally followed by (role)");
            }
            if (!seen.insert(name).second) return bad("lists '", name, "' twice");
            const std::string base = match[1].str();
            const bool scalar = std::regex_match(text, kScalar);
            const bool ranges = std::regex_match(text, kRanges);
            const bool set = std::regex_match(text, kSet);
            std::string canonical = text;
            if (base == "cpus" || base == "mem" || base == "disk" || base == "gpus") {
                if (!scalar)
                    return bad("value of '", name, "' must be a non-negative number (got '", text,
                               "')");
            } else if (base == "ports") {
                if (!ranges)
                    return bad("value of '", name, "' must be ranges like [31000-32000] (got '",
                               text, "')");
            } else if (!scalar && !ranges && !set) {
                return bad(
                    "value of '", name,
                    "' must be a non-negative number, ranges like [1-2] or a set like {a,b} (got '",
                    text, "')");
            }
            if (ranges) {
                std::vector<std::string> spans;
                for (const auto& span : strings::split(text.substr(1, text.size() - 2), ',')) {
                    auto dash = span.find('-');
                    auto lo = std::string(strings::trim(span.substr(0, dash)));
                    auto hi = std::string(strings::trim(span.substr(dash + 1)));
                    if (lo.size() > 18 || hi.size() > 18 || std::stoll(lo) > std::stoll(hi)) {
                        return bad("range '", lo, "-", hi, "' of '", name,
                                   "' must have start <= end");
                    }
                    spans.push_back(lo + "-" + hi);
                }
                canonical = "[" + strings::join(spans, ",") + "]";
            } else if (set) {
                std::vector<std::string> items;
                for (const auto& item : strings::split(text.substr(1, text.size() - 2), ',')) {
                    auto trimmed = std::string(strings::trim(item));
                    if (trimmed.empty() || trimmed.find_first_of(";:") != std::string::npos) {
                        return bad("set of '", name,
                                   "' must hold non-empty items without ':' or ';'");
                    }
                    items.push_back(trimmed);
                }
                canonical = "{" + strings::join(items, ",") + "}";
            }
            rendered.push_back(name + ":" + canonical);
        }
        std::sort(rendered.begin(), rendered.end());
        return OptionValue{strings::join(rendered, ";"), {}};
    }

private:
    const OptionSpec& spec_;
};

}  // namespace

std::optional<long double> parseDuration(std::string_view text) {
    static const std::vector<std::pair<std::string_view, long double>> kUnits = {
        {"ns", 1.0L},    {"us", 1e3L},     {"ms", 1e6L},       {"secs", 1e9L},
        {"mins", 60e9L}, {"hrs", 3600e9L}, {"days", 86400e9L}, {"weeks", 604800e9L},
    };
    static const std::regex kDuration(
        R"(^([0-9]+(\.[0-9]+)?)(ns|us|ms|secs|mins|hrs|days|weeks)$)");
    std::string s(text);
    std::smatch match;
    if (!std::regex_match(s, match, kDuration)) return std::nullopt;
    long double number = std::stold(match[1].str());
    for (const auto& [unit, factor] : kUnits) {
        if (unit == match[3].str()) return number * factor;
    }
    return std::nullopt;
}

Result<OptionValue> OptionSpec::check(const json::Value& value) const {
    Checker checker(*this);
    if (value.IsNull()) return checker.bad("must not be null (leave it out to use the default)");
    switch (type) {
        case OptionType::String:
            return checker.string(value);
        case OptionType::Path:
            return checker.path(value);
        case OptionType::Int:
            return checker.integer(value);
        case OptionType::Bool:
            return checker.boolean(value);
        case OptionType::Enum:
            return checker.enumeration(value);
        case OptionType::Duration:
            return checker.duration(value);
        case OptionType::List:
            return checker.list(value);
        case OptionType::Map:
            return checker.map(value);
        case OptionType::Resources:
            return checker.resources(value);
    }
    return checker.bad("has an unknown type");
}

}  // namespace hoist::config_gen
