#include "pkgmgr/sets.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <set>
#include <system_error>

#include "core/files.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"
#include "sets/embedded_roles.hpp"
#include "sets/merged_tree.hpp"

namespace hoist::pkgmgr {

namespace {

bool isRoleName(std::string_view role) {
    if (role.empty() || role.size() > 64) return false;
    if (!std::islower(static_cast<unsigned char>(role[0])) &&
        !std::isdigit(static_cast<unsigned char>(role[0])))
        return false;
    return std::all_of(role.begin(), role.end(), [](char c) {
        return std::islower(static_cast<unsigned char>(c)) ||
               std::isdigit(static_cast<unsigned char>(c)) || c == '-';
    });
}

std::string knownKinds() {
    return strings::join(kKinds, ", ");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Role rules

Result<RoleRules> RoleRules::parse(std::string_view text, std::string_view ctx) {
    HOIST_ASSIGN(auto doc, json::parseObject(text, ctx));
    HOIST_TRY(json::rejectUnknown(doc, {"role", "description", "service_kind", "kinds"}, ctx));
    RoleRules rules;
    HOIST_ASSIGN(rules.role, json::getString(doc, "role", ctx));
    if (!isRoleName(rules.role))
        return fail(Errc::Invalid, ctx, ": field 'role' must match [a-z0-9][a-z0-9-]* (got '",
                    rules.role, "')");
    HOIST_ASSIGN(auto service_kind, json::optString(doc, "service_kind", ctx));
    if (service_kind) rules.service_kind = *service_kind;
    HOIST_ASSIGN(const json::Value* kinds, json::getObject(doc, "kinds", ctx));
    for (const auto& member : kinds->GetObject()) {
        std::string kind(member.name.GetString(), member.name.GetStringLength());
        if (std::find(kKinds.begin(), kKinds.end(), kind) == kKinds.end())
            return fail(Errc::Invalid, ctx, ": kind '", kind, "' is not a package kind (one of ",
                        knownKinds(), ")");
        std::string kind_ctx = std::string(ctx) + ": kind '" + kind + "'";
        if (!member.value.IsObject())
            return fail(Errc::Invalid, kind_ctx, " must be an object {\"min\": N, \"max\": N}");
        HOIST_TRY(json::rejectUnknown(member.value, {"min", "max"}, kind_ctx));
        HOIST_ASSIGN(auto min, json::optInt(member.value, "min", kind_ctx));
        HOIST_ASSIGN(auto max, json::optInt(member.value, "max", kind_ctx));
        KindCount count;
        count.min = static_cast<int>(min.value_or(0));
        count.max = max ? static_cast<int>(*max) : -1;
        if (min.value_or(0) < 0 || min.value_or(0) > 100000)
            return fail(Errc::Invalid, kind_ctx, ": 'min' must be between 0 and 100000");
        if (max && (*max < 0 || *max < count.min || *max > 100000))
            return fail(Errc::Invalid, kind_ctx,
                        ": 'max' must be at least 'min' and at most 100000 (omit it for no limit)");
        rules.kinds[kind] = count;
    }
    auto service = rules.kinds.find(rules.service_kind);
    if (service == rules.kinds.end())
        return fail(Errc::Invalid, ctx, ": the service kind '", rules.service_kind,
                    "' is not among the role's kinds");
    if (service->second.max != 1)
        return fail(Errc::Invalid, ctx, ": the service kind '", rules.service_kind,
                    "' must have \"max\": 1 (a node runs one service)");
    return rules;
}

Result<RoleRules> RoleRules::load(std::string_view role, const std::filesystem::path& layouts_dir) {
    if (!isRoleName(role))
        return fail(Errc::Invalid, "role '", role, "' must match [a-z0-9][a-z0-9-]*");
    std::filesystem::path dir = layouts_dir;
    if (dir.empty()) {
        const char* env = std::getenv("HOIST_LAYOUTS");
        if (env != nullptr && *env != '\0') dir = env;
    }
    if (!dir.empty()) {
        auto file = dir / "roles" / (std::string(role) + ".json");
        auto text = files::readFile(file, 1u << 20);
        if (!text) {
            if (text.error().code == Errc::NotFound)
                return fail(Errc::NotFound, "no rules for role '", role, "': '", file.string(),
                            "' does not exist");
            return std::unexpected(text.error());
        }
        HOIST_ASSIGN(auto rules, parse(*text, file.string()));
        if (rules.role != role)
            return fail(Errc::Invalid, file.string(), ": field 'role' is '", rules.role,
                        "' but the file is for role '", role, "'");
        return rules;
    }
    std::vector<std::string> known;
    for (const auto& [name, text] : embeddedRoles()) {
        if (name == role) return parse(text, "layouts/roles/" + std::string(name) + ".json");
        known.emplace_back(name);
    }
    return fail(Errc::NotFound, "no rules for role '", role,
                "' (known roles: ", strings::join(known, ", "), ")");
}

// ---------------------------------------------------------------------------------------------
// Versions

namespace {

struct SemVer {
    std::vector<std::string> core;
    std::vector<std::string> pre;
};

bool allDigits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c));
    });
}

// Compares two identifiers the semver way: numeric ones numerically, numeric before
// alphanumeric, alphanumeric ones in ASCII order.
int compareIdent(std::string_view a, std::string_view b) {
    bool na = allDigits(a), nb = allDigits(b);
    if (na && nb) {
        while (a.size() > 1 && a[0] == '0') a.remove_prefix(1);
        while (b.size() > 1 && b[0] == '0') b.remove_prefix(1);
        if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
        int c = a.compare(b);
        return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    if (na != nb) return na ? -1 : 1;
    int c = a.compare(b);
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

SemVer parseSemVer(std::string_view text) {
    SemVer v;
    if (text.size() > 1 && (text[0] == 'v' || text[0] == 'V') &&
        std::isdigit(static_cast<unsigned char>(text[1])))
        text.remove_prefix(1);
    if (auto plus = text.find('+'); plus != std::string_view::npos) text = text.substr(0, plus);
    std::string_view core = text, pre;
    if (auto dash = text.find_first_of("-~"); dash != std::string_view::npos) {
        core = text.substr(0, dash);
        pre = text.substr(dash + 1);
    }
    v.core = strings::split(core, '.');
    if (!pre.empty()) v.pre = strings::split(pre, '.');
    return v;
}

int compareSemVer(const SemVer& a, const SemVer& b) {
    size_t n = std::max({a.core.size(), b.core.size(), size_t{3}});
    for (size_t i = 0; i < n; ++i) {
        std::string_view pa = i < a.core.size() ? std::string_view(a.core[i]) : "0";
        std::string_view pb = i < b.core.size() ? std::string_view(b.core[i]) : "0";
        if (int c = compareIdent(pa, pb); c != 0) return c;
    }
    // A pre-release sorts before its release.
    if (a.pre.empty() != b.pre.empty()) return a.pre.empty() ? 1 : -1;
    for (size_t i = 0; i < std::min(a.pre.size(), b.pre.size()); ++i)
        if (int c = compareIdent(a.pre[i], b.pre[i]); c != 0) return c;
    if (a.pre.size() != b.pre.size()) return a.pre.size() < b.pre.size() ? -1 : 1;
    return 0;
}

bool sameCore(const SemVer& a, const SemVer& b) {
    SemVer x = a, y = b;
    x.pre.clear();
    y.pre.clear();
    return compareSemVer(x, y) == 0;
}

enum class Op { Eq, Ne, Lt, Le, Gt, Ge };

struct Comparator {
    Op op;
    SemVer version;
};

bool holds(const Comparator& c, const SemVer& v) {
    int r = compareSemVer(v, c.version);
    switch (c.op) {
        case Op::Eq:
            return r == 0;
        case Op::Ne:
            return r != 0;
        case Op::Lt:
            return r < 0;
        case Op::Le:
            return r <= 0;
        case Op::Gt:
            return r > 0;
        case Op::Ge:
            return r >= 0;
    }
    return false;
}

bool isWild(std::string_view part) {
    return part == "x" || part == "X" || part == "*";
}

SemVer fromParts(std::vector<std::string> parts) {
    SemVer v;
    v.core = std::move(parts);
    return v;
}

// The next version up at `index` ("1.2.3" bumped at 1 -> "1.3.0").
SemVer bump(const std::vector<std::string>& core, size_t index) {
    std::vector<std::string> parts;
    for (size_t i = 0; i < index; ++i) parts.push_back(i < core.size() ? core[i] : "0");
    std::string at = index < core.size() ? core[index] : "0";
    parts.push_back(std::to_string(std::strtoull(at.c_str(), nullptr, 10) + 1));
    return fromParts(parts);
}

bool validRangeVersion(std::string_view text) {
    if (text.empty() || text.size() > 64) return false;
    size_t start = (text[0] == 'v' || text[0] == 'V') ? 1 : 0;
    if (start >= text.size() || !std::isdigit(static_cast<unsigned char>(text[start])))
        return isWild(text);
    return std::all_of(text.begin(), text.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '+' ||
               c == '~' || c == '-' || c == '*';
    });
}

// Turns one comparator token into primitive comparators.
Result<std::vector<Comparator>> expand(std::string_view token, std::string_view range) {
    std::string_view op_text;
    for (std::string_view candidate : {">=", "<=", "==", "!=", ">", "<", "=", "^", "~"}) {
        if (token.substr(0, candidate.size()) == candidate) {
            op_text = candidate;
            break;
        }
    }
    std::string_view version_text = token.substr(op_text.size());
    if (!validRangeVersion(version_text))
        return fail(Errc::Invalid, "version range '", range, "': '", token,
                    "' is not a comparator (use >=, <=, >, <, =, !=, ^ or ~ before a version)");
    if (isWild(version_text)) {
        if (op_text.empty() || op_text == "=" || op_text == "==" || op_text == ">=" ||
            op_text == "<=")
            return std::vector<Comparator>{};
        return fail(Errc::Invalid, "version range '", range, "': '", token, "' matches nothing");
    }
    SemVer v = parseSemVer(version_text);
    // "1.x", "1.2.*": a wildcard part ends the given parts.
    size_t given = 0;
    while (given < v.core.size() && !isWild(v.core[given])) ++given;
    bool wild = given < v.core.size();
    if (wild) {
        for (size_t i = given; i < v.core.size(); ++i)
            if (!isWild(v.core[i]))
                return fail(Errc::Invalid, "version range '", range, "': '", token,
                            "' has a number after a wildcard");
        if (!v.pre.empty())
            return fail(Errc::Invalid, "version range '", range, "': '", token,
                        "' has a pre-release after a wildcard");
        v.core.resize(given);
    }
    size_t parts = v.core.size();
    std::vector<Comparator> out;
    auto lower = [&] { return Comparator{Op::Ge, v}; };
    if (op_text == "^") {
        // The first non-zero part may not change.
        size_t index = 0;
        while (index + 1 < parts && allDigits(v.core[index]) &&
               std::strtoull(v.core[index].c_str(), nullptr, 10) == 0)
            ++index;
        out.push_back(lower());
        out.push_back({Op::Lt, bump(v.core, parts == 0 ? 0 : index)});
    } else if (op_text == "~") {
        out.push_back(lower());
        out.push_back({Op::Lt, bump(v.core, parts >= 2 ? 1 : 0)});
    } else if (wild) {
        // "1.2.x" names a whole span: ">=1.2.0 <1.3.0"; "<1.2.x" = "<1.2.0".
        if (parts == 0) {
            // "x": anything.
        } else if (op_text.empty() || op_text == "=" || op_text == "==") {
            out.push_back(lower());
            out.push_back({Op::Lt, bump(v.core, parts - 1)});
        } else if (op_text == ">=" || op_text == "<") {
            out.push_back({op_text == ">=" ? Op::Ge : Op::Lt, v});
        } else if (op_text == ">") {
            out.push_back({Op::Ge, bump(v.core, parts - 1)});
        } else if (op_text == "<=") {
            out.push_back({Op::Lt, bump(v.core, parts - 1)});
        } else {
            return fail(Errc::Invalid, "version range '", range, "': '", token,
                        "' cannot use != with a wildcard");
        }
    } else {
        Op op = op_text == ">="   ? Op::Ge
                : op_text == "<=" ? Op::Le
                : op_text == ">"  ? Op::Gt
                : op_text == "<"  ? Op::Lt
                : op_text == "!=" ? Op::Ne
                                  : Op::Eq;
        out.push_back({op, v});
    }
    return out;
}

}  // namespace

int compareVersions(std::string_view a, std::string_view b) {
    return compareSemVer(parseSemVer(a), parseSemVer(b));
}

Result<bool> versionSatisfies(std::string_view version, std::string_view range) {
    SemVer v = parseSemVer(version);
    std::string_view rest = range;
    bool any = false;
    while (true) {
        auto bar = rest.find("||");
        std::string_view alternative = strings::trim(rest.substr(0, bar));
        // Tokens; an operator written apart from its version (">= 1.0") is joined to it.
        std::vector<std::string> tokens;
        std::string pending;
        for (const auto& word : strings::split(alternative, ' ')) {
            if (word.empty()) continue;
            bool only_op = std::all_of(word.begin(), word.end(), [](char c) {
                return c == '<' || c == '>' || c == '=' || c == '!' || c == '^' || c == '~';
            });
            if (only_op) {
                pending += word;
                continue;
            }
            tokens.push_back(pending + word);
            pending.clear();
        }
        if (!pending.empty())
            return fail(Errc::Invalid, "version range '", range, "': '", pending,
                        "' is not followed by a version");
        if (tokens.empty() && range.find("||") != std::string_view::npos)
            return fail(Errc::Invalid, "version range '", range, "': an alternative is empty");
        std::vector<Comparator> comparators;
        for (const auto& token : tokens) {
            HOIST_ASSIGN(auto expanded, expand(token, range));
            comparators.insert(comparators.end(), expanded.begin(), expanded.end());
        }
        bool satisfied = std::all_of(comparators.begin(), comparators.end(),
                                     [&](const Comparator& c) { return holds(c, v); });
        // A pre-release only satisfies a range that names a pre-release of the same
        // MAJOR.MINOR.PATCH: ">=1.0.0" does not take "2.0.0-rc1" (semver range semantics).
        if (satisfied && !v.pre.empty()) {
            satisfied =
                std::any_of(comparators.begin(), comparators.end(), [&](const Comparator& c) {
                    return !c.version.pre.empty() && sameCore(c.version, v);
                });
        }
        any = any || satisfied;
        if (bar == std::string_view::npos) break;
        rest = rest.substr(bar + 2);
    }
    return any;
}

// ---------------------------------------------------------------------------------------------
// Set validation

namespace {

std::string quoted(const std::vector<std::string>& ids) {
    std::vector<std::string> q;
    for (const auto& id : ids) q.push_back("'" + id + "'");
    return strings::join(q, ", ");
}

std::string countRule(const KindCount& count) {
    if (count.max < 0) return "at least " + std::to_string(count.min);
    if (count.min == count.max) return "exactly " + std::to_string(count.min);
    if (count.min == 0) return "at most " + std::to_string(count.max);
    return "between " + std::to_string(count.min) + " and " + std::to_string(count.max);
}

}  // namespace

Result<void> validateSet(const std::vector<StoredPackage>& set, const RoleRules& rules) {
    std::vector<std::string> problems;
    if (set.empty()) return fail(Errc::Invalid, "set: the set is empty");

    // Unique names (and no package listed twice).
    std::map<std::string, std::vector<size_t>> by_name;
    for (size_t i = 0; i < set.size(); ++i) by_name[set[i].info.name].push_back(i);
    for (const auto& [name, indexes] : by_name) {
        if (indexes.size() < 2) continue;
        std::vector<std::string> ids;
        for (size_t i : indexes) ids.push_back(set[i].info.id().str());
        problems.push_back("name '" + name + "' appears " + std::to_string(indexes.size()) +
                           " times (" + quoted(ids) + "); names in a set must be unique");
    }

    // Kind counts from the role rules.
    std::map<std::string, std::vector<std::string>> by_kind;
    for (const auto& pkg : set) by_kind[pkg.info.kind].push_back(pkg.info.id().str());
    for (const auto& [kind, ids] : by_kind) {
        if (rules.kinds.find(kind) == rules.kinds.end())
            problems.push_back("role '" + rules.role + "' does not allow packages of kind '" +
                               kind + "' (" + quoted(ids) + ")");
    }
    for (const auto& [kind, count] : rules.kinds) {
        auto found = by_kind.find(kind);
        int n = found == by_kind.end() ? 0 : static_cast<int>(found->second.size());
        if (n >= count.min && (count.max < 0 || n <= count.max)) continue;
        std::string holds =
            n == 0 ? "none" : std::to_string(n) + " (" + quoted(found->second) + ")";
        problems.push_back("role '" + rules.role + "' needs " + countRule(count) +
                           " package(s) of kind '" + kind + "', the set holds " + holds);
    }

    // Only the role's service kind may declare a service.
    for (const auto& pkg : set) {
        if (pkg.info.service && pkg.info.kind != rules.service_kind)
            problems.push_back("package '" + pkg.info.id().str() + "' of kind '" + pkg.info.kind +
                               "' declares a service, but role '" + rules.role +
                               "' runs only the service of the '" + rules.service_kind + "' kind");
    }

    // requires and compatible.
    for (const auto& pkg : set) {
        std::string id = pkg.info.id().str();
        for (const auto& required : pkg.info.requires_names) {
            if (by_name.find(required) == by_name.end())
                problems.push_back("package '" + id + "' requires '" + required +
                                   "', which the set does not hold");
        }
        for (const auto& [name, range] : pkg.info.compatible) {
            auto found = by_name.find(name);
            if (found == by_name.end()) continue;
            for (size_t i : found->second) {
                auto satisfied = versionSatisfies(set[i].info.version, range);
                if (!satisfied) {
                    problems.push_back("package '" + id + "': " + satisfied.error().message);
                } else if (!*satisfied) {
                    problems.push_back("package '" + id + "' is compatible only with '" + name +
                                       "' " + range + ", but the set holds '" +
                                       set[i].info.id().str() + "'");
                }
            }
        }
    }

    // Environment variables: one package per variable.
    std::map<std::string, size_t> env_owner;
    for (size_t i = 0; i < set.size(); ++i) {
        for (const auto& [key, value] : set[i].info.environment) {
            auto [it, inserted] = env_owner.emplace(key, i);
            if (!inserted && it->second != i)
                problems.push_back("packages '" + set[it->second].info.id().str() + "' and '" +
                                   set[i].info.id().str() +
                                   "' both set the environment variable '" + key + "'");
        }
    }

    // Paths in the well-known folders (only the folders packages share can clash).
    HOIST_ASSIGN(auto merged, mergeWellKnownFolders(set));
    for (const auto& clash : merged.clashes)
        problems.push_back("packages '" + set[clash.first].info.id().str() + "' and '" +
                           set[clash.second].info.id().str() + "' both provide '" + clash.path +
                           "' (no two packages may put the same path into a well-known folder)");

    if (problems.empty()) return ok();
    return fail(Errc::Invalid, "set: ", strings::join(problems, "; "));
}

}  // namespace hoist::pkgmgr
