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
    if (set.empty()) return fail(Errc::Invalid, "set: the set is empty");
    HOIST_ASSIGN(auto merged, mergeWellKnownFolders(set));
    return validateSet(set, rules, merged);
}

Result<void> validateSet(const std::vector<StoredPackage>& set, const RoleRules& rules,
                         const MergedTree& merged) {
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
                    // Spell out a shorthand ("1.11") so the refusal shows what it means.
                    auto meaning = normalizeRange(range);
                    std::string spelled =
                        meaning && *meaning != range ? " (" + *meaning + ")" : std::string();
                    problems.push_back("package '" + id + "' is compatible only with '" + name +
                                       "' " + range + spelled + ", but the set holds '" +
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
    for (const auto& clash : merged.clashes)
        problems.push_back("packages '" + set[clash.first].info.id().str() + "' and '" +
                           set[clash.second].info.id().str() + "' both provide '" + clash.path +
                           "' (no two packages may put the same path into a well-known folder)");

    if (problems.empty()) return ok();
    return fail(Errc::Invalid, "set: ", strings::join(problems, "; "));
}

}  // namespace hoist::pkgmgr
