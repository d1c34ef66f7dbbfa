// composeRelease and writeSignedRelease: a new release manifest from a base and packages.

#include "config_gen/release.hpp"

#include <algorithm>
#include <set>

#include "core/files.hpp"
#include "core/strings.hpp"
#include "pkgmgr/release.hpp"
#include "pkgmgr/sets.hpp"

namespace hoist::config_gen {

namespace {

std::string nameOf(const pkgmgr::PackageRef& ref) {
    return ref.id.substr(0, ref.id.find("--"));
}

std::string rolesText(const pkgmgr::Release& release) {
    std::vector<std::string> roles;
    for (const auto& [role, refs] : release.roles) roles.push_back(role);
    return strings::join(roles, ", ");
}

}  // namespace

std::string versionFamily(const std::string& version) {
    auto dot = version.find('.');
    if (dot == std::string::npos) return version;
    return version.substr(0, dot) + ".*";
}

Result<ComposedRelease> composeRelease(const pkgmgr::Release& base, const ReleaseChanges& changes) {
    HOIST_TRY(pkgmgr::validateVersion(changes.version));
    for (const auto& pattern : changes.upgrade_from)
        if (auto valid = pkgmgr::validateUpgradePattern(pattern); !valid)
            return fail(Errc::Invalid, "--upgrade-from: ", valid.error().message);
    if (pkgmgr::compareVersions(changes.version, base.version) <= 0) {
        return fail(Errc::Invalid, "release version '", changes.version,
                    "' must be newer than the base's version '", base.version, "'");
    }
    std::vector<std::string> roles = changes.roles;
    if (roles.empty()) {
        for (const auto& [role, refs] : base.roles) roles.push_back(role);
    }
    for (const auto& role : roles) {
        if (!base.roles.contains(role)) {
            return fail(Errc::Invalid, "--role '", role, "': base release ", base.version,
                        " has no such role (it has ", rolesText(base), ")");
        }
    }

    ComposedRelease out;
    auto& release = out.release;
    release = base;
    release.version = changes.version;
    if (!changes.upgrade_from.empty()) {
        release.upgrade_from = changes.upgrade_from;
    } else {
        release.upgrade_from = {versionFamily(base.version)};
        for (const auto& pattern : base.upgrade_from) {
            if (std::find(release.upgrade_from.begin(), release.upgrade_from.end(), pattern) ==
                release.upgrade_from.end()) {
                release.upgrade_from.push_back(pattern);
            }
        }
    }

    for (const auto& name : changes.remove_modules) {
        bool found = false;
        std::vector<std::string> present;
        for (const auto& role : roles) {
            auto& refs = release.roles[role];
            for (auto it = refs.begin(); it != refs.end();) {
                present.push_back(nameOf(*it));
                if (nameOf(*it) != name) {
                    ++it;
                    continue;
                }
                out.changes.push_back(role + ": removed " + it->id);
                it = refs.erase(it);
                found = true;
            }
        }
        if (!found) {
            auto hint = strings::didYouMean(name, present);
            return fail(Errc::Invalid, "--remove-module '", name, "': no role (",
                        strings::join(roles, ", "), ") of release ", base.version,
                        " holds a package of that name",
                        hint.empty() ? "" : " (did you mean '" + hint + "'?)");
        }
    }

    std::set<std::string> named;
    for (const auto& pkg : changes.replace) {
        const std::string where = "--replace " + pkg.path.string();
        if (!pkg.ref) return fail(Errc::Invalid, where, ": must be a package tarball");
        if (!named.insert(pkg.info.name).second) {
            return fail(Errc::Invalid, where, ": package '", pkg.info.name, "' is given twice");
        }
        bool found = false;
        for (const auto& role : roles) {
            for (auto& ref : release.roles[role]) {
                if (nameOf(ref) != pkg.info.name) continue;
                found = true;
                if (ref == *pkg.ref) continue;
                out.changes.push_back(role + ": replaced " + ref.id + " with " + pkg.ref->id);
                ref = *pkg.ref;
            }
        }
        if (!found) {
            return fail(Errc::Invalid, where, ": no role (", strings::join(roles, ", "),
                        ") of release ", base.version, " holds a package named '", pkg.info.name,
                        "' (use --add-module to add a module)");
        }
    }

    std::vector<const PackageSource*> additions;
    for (const auto& pkg : changes.add_modules) additions.push_back(&pkg);
    std::sort(
        additions.begin(), additions.end(),
        [](const PackageSource* a, const PackageSource* b) { return a->info.name < b->info.name; });
    for (const PackageSource* pkg : additions) {
        const std::string where = "--add-module " + pkg->path.string();
        if (!pkg->ref) return fail(Errc::Invalid, where, ": must be a package tarball");
        if (pkg->info.kind != "module") {
            return fail(Errc::Invalid, where, ": package '", pkg->ref->id, "' is of kind '",
                        pkg->info.kind, "', not module");
        }
        if (!named.insert(pkg->info.name).second) {
            return fail(Errc::Invalid, where, ": package '", pkg->info.name, "' is given twice");
        }
        for (const auto& role : roles) {
            auto& refs = release.roles[role];
            for (const auto& ref : refs) {
                if (nameOf(ref) == pkg->info.name) {
                    return fail(Errc::Invalid, where, ": role ", role, " already holds '", ref.id,
                                "' (use --replace to change its version)");
                }
            }
            refs.push_back(*pkg->ref);
            out.changes.push_back(role + ": added " + pkg->ref->id);
        }
    }

    // For the packages config-gen has read, "requires" can be checked here already; the
    // rest of the set rules are `pkgmgr check`'s job on a node.
    std::vector<const PackageSource*> known;
    for (const auto& pkg : changes.replace) known.push_back(&pkg);
    for (const auto& pkg : changes.add_modules) known.push_back(&pkg);
    for (const auto& [role, refs] : release.roles) {
        std::set<std::string> names;
        for (const auto& ref : refs) names.insert(nameOf(ref));
        for (const PackageSource* pkg : known) {
            if (std::find(refs.begin(), refs.end(), *pkg->ref) == refs.end()) continue;
            for (const auto& required : pkg->info.requires_names) {
                if (!names.contains(required)) {
                    return fail(Errc::Invalid, "role ", role, ": package '", pkg->ref->id,
                                "' requires '", required, "', which release ", release.version,
                                " does not hold");
                }
            }
        }
    }

    // What is written must be what every reader accepts.
    HOIST_TRY(pkgmgr::Release::parse(release.toJson()));
    return out;
}

Result<WrittenRelease> writeSignedRelease(const pkgmgr::Release& release,
                                          std::string_view private_pem,
                                          const std::filesystem::path& dir) {
    const std::string bytes = release.toJson();
    HOIST_ASSIGN(std::string signature, pkgmgr::signRelease(bytes, private_pem));
    HOIST_TRY(files::makeDirs(dir));
    WrittenRelease written{dir / (release.version + ".json"),
                           dir / (release.version + ".json.sig")};
    auto existing = files::readFile(written.manifest);
    if (existing && *existing != bytes) {
        return fail(Errc::Conflict, written.manifest.string(),
                    " already exists with other content; choose another version");
    }
    if (!existing && existing.error().code != Errc::NotFound)
        return std::unexpected(existing.error());
    // The signature first: a manifest is never visible without its signature.
    HOIST_TRY(files::writeFileAtomic(written.signature, signature + "\n", 0644));
    HOIST_TRY(files::writeFileAtomic(written.manifest, bytes, 0644));
    return written;
}

}  // namespace hoist::config_gen
