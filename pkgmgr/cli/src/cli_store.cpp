// The store verbs: pack, add, fetch, list, info, remove, verify.
#include <algorithm>
#include <memory>
#include <set>

#include "cli_internal.hpp"
#include "core/crypto.hpp"
#include "core/files.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"
#include "pkgmgr/fetch.hpp"
#include "pkgmgr/generations.hpp"
#include "pkgmgr/pack.hpp"
#include "pkgmgr/semver.hpp"
#include "pkgmgr/store.hpp"

namespace hoist::pkgmgr {

namespace {

/// Packages a kept generation uses may not be removed; GC's default keeps the previous 2.
constexpr int kKeepGenerations = 2;

struct StoreOptions {
    std::vector<std::string> args;
    std::string output;
    std::string repo;
    int parallel = 8;
    /// Seconds transient failures are retried for (FetchOptions::retry_for).
    int retry_for_s = 300;
    bool json = false;
    ExtractLimits limits;
};

void addLimitOptions(CLI::App* sub, StoreOptions& o) {
    sub->add_option("--max-entries", o.limits.max_entries, "refuse archives with more entries")
        ->capture_default_str();
    sub->add_option("--max-unpacked-bytes", o.limits.max_unpacked_bytes,
                    "refuse archives that unpack to more bytes")
        ->capture_default_str();
    sub->add_option("--max-path-length", o.limits.max_path_length,
                    "refuse entries with longer paths")
        ->capture_default_str();
}

/// Every verb that changes the store holds the node lock for its whole run.
Result<files::FileLock> lockNode(const NodeLayout& layout, std::string_view verb) {
    HOIST_TRY(files::makeDirs(layout.root));
    return files::FileLock::acquire(layout.lock(), std::chrono::milliseconds(0),
                                    detail::concat("pkgmgr ", verb));
}

void writeSummary(json::Writer& w, const StoredPackage& p) {
    w.beginObject()
        .field("id", p.ref.id)
        .field("sha256", p.ref.sha256)
        .field("size", p.ref.size)
        .field("kind", p.info.kind)
        .endObject();
}

void printPackages(const Cli& cli, const std::vector<StoredPackage>& packages, bool as_json) {
    if (as_json) {
        json::Writer w;
        w.beginArray();
        for (const auto& p : packages) p.ref.write(w);
        w.endArray();
        cli.out << w.str() << "\n";
        return;
    }
    for (const auto& p : packages) cli.out << p.ref.id << " " << p.ref.sha256 << "\n";
}

int runPack(Cli& cli, const StoreOptions& o) {
    auto packed = packDirectory(o.args.front(), o.output);
    if (!packed) return cli.fail(packed.error());
    cli.out << packed->ref.toJson() << "\n";
    cli.err << "pkgmgr: wrote " << packed->file.string() << "\n";
    return 0;
}

int runAdd(Cli& cli, const StoreOptions& o) {
    auto layout = cli.layout();
    auto lock = lockNode(layout, "add");
    if (!lock) return cli.fail(lock.error());
    auto store = Store::open(layout);
    if (!store) return cli.fail(store.error());
    if (auto r = store->recover(); !r) return cli.fail(r.error());
    auto before = store->list();
    if (!before) return cli.fail(before.error());
    std::set<std::string> had;
    for (const auto& p : *before) had.insert(p.ref.sha256);

    std::vector<StoredPackage> added;
    for (const auto& file : o.args) {
        auto stored = store->add(file, o.limits);
        if (!stored) {
            // All or nothing: what this command added before the failure goes again.
            for (const auto& p : added) {
                if (had.count(p.ref.sha256) == 0) (void)store->remove(p.ref.sha256);
            }
            return cli.fail(stored.error());
        }
        added.push_back(std::move(*stored));
    }
    // Now that nothing is undone: the stamps add() left (all of them in a root without run/,
    // which gets it), from the entries it wrote and hashed, that spare the first stage a re-hash.
    store->stampDeferred();
    printPackages(cli, added, o.json);
    return 0;
}

int runFetch(Cli& cli, const StoreOptions& o) {
    for (const auto& sha : o.args) {
        if (!crypto::isSha256Hex(sha)) {
            return cli.fail(
                Error{Errc::Invalid,
                      detail::concat("'", sha, "' is not a sha256 (64 lowercase hex digits)"), 0});
        }
    }
    if (o.parallel < 1) return cli.fail(Error{Errc::Invalid, "--parallel must be 1 or more", 0});
    if (o.retry_for_s < 0 || o.retry_for_s > 86400)
        return cli.fail(Error{Errc::Invalid, "--retry-for must be 0 to 86400 seconds", 0});
    auto layout = cli.layout();
    auto lock = lockNode(layout, "fetch");
    if (!lock) return cli.fail(lock.error());
    auto store = Store::open(layout);
    if (!store) return cli.fail(store.error());
    if (auto r = store->recover(); !r) return cli.fail(r.error());
    FetchOptions options;
    options.parallel = o.parallel;
    options.retry_for = std::chrono::seconds(o.retry_for_s);
    options.limits = o.limits;
    auto fetched = fetchPackages(*store, o.repo, o.args, options);
    if (!fetched) return cli.fail(fetched.error());
    printPackages(cli, *fetched, o.json);
    return 0;
}

int runList(Cli& cli, const StoreOptions& o) {
    auto layout = cli.existingLayout();
    if (!layout) return cli.fail(layout.error());
    auto store = Store::open(*layout);
    if (!store) return cli.fail(store.error());
    auto packages = store->list();
    if (!packages) return cli.fail(packages.error());
    if (o.json) {
        json::Writer w;
        w.beginArray();
        for (const auto& p : *packages) writeSummary(w, p);
        w.endArray();
        cli.out << w.str() << "\n";
        return 0;
    }
    for (const auto& p : *packages) {
        cli.out << p.ref.id << "  " << p.ref.sha256 << "  "
                << strings::humanBytes(static_cast<double>(p.ref.size)) << "  " << p.info.kind
                << "\n";
    }
    return 0;
}

// `pkgmgr info NAME`: the versions of NAME the store holds, oldest first.
int runInfoByName(Cli& cli, const Store& store, const std::string& name, bool as_json) {
    auto all = store.list();
    if (!all) return cli.fail(all.error());
    std::vector<std::pair<PackageId, const StoredPackage*>> versions;
    for (const auto& p : *all) {
        auto id = PackageId::parse(p.ref.id);
        if (id && id->name == name) versions.emplace_back(*id, &p);
    }
    if (versions.empty())
        return cli.fail(Error{Errc::NotFound,
                              detail::concat("no version of package '", name,
                                             "' is in the store (pkgmgr list shows what it holds)"),
                              0});
    std::stable_sort(versions.begin(), versions.end(), [](const auto& a, const auto& b) {
        int order = compareVersions(a.first.version, b.first.version);
        return order != 0 ? order < 0 : a.first.version < b.first.version;
    });
    if (as_json) {
        json::Writer w;
        w.beginObject().field("name", name).key("versions").beginArray();
        for (const auto& [id, p] : versions)
            w.beginObject()
                .field("id", p->ref.id)
                .field("version", id.version)
                .field("sha256", p->ref.sha256)
                .field("size", p->ref.size)
                .field("kind", p->info.kind)
                .endObject();
        w.endArray().endObject();
        cli.out << w.str() << "\n";
        return 0;
    }
    cli.out << name << ": " << versions.size() << " version(s) in the store\n";
    for (const auto& [id, p] : versions)
        cli.out << "  " << id.version << "  " << p->ref.id << "  " << p->ref.sha256 << "  "
                << strings::humanBytes(static_cast<double>(p->ref.size)) << "\n";
    cli.out << "(pkgmgr info " << versions.back().second->ref.id << " shows one of them)\n";
    return 0;
}

int runInfo(Cli& cli, const StoreOptions& o) {
    auto layout = cli.existingLayout();
    if (!layout) return cli.fail(layout.error());
    auto store = Store::open(*layout);
    if (!store) return cli.fail(store.error());
    const auto& wanted = o.args.front();
    // A bare name (no "--version", not a sha256): every version the store holds.
    if (!crypto::isSha256Hex(wanted) && wanted.find("--") == std::string::npos &&
        validateName(wanted))
        return runInfoByName(cli, *store, wanted, o.json);
    auto p = store->find(wanted);
    if (!p) return cli.fail(p.error());
    if (o.json) {
        json::Writer w;
        w.beginObject()
            .field("id", p->ref.id)
            .field("sha256", p->ref.sha256)
            .field("size", p->ref.size)
            .field("kind", p->info.kind)
            .field("path", p->path.string())
            .key("pkginfo")
            .raw(p->info.toJson())
            .endObject();
        cli.out << w.str() << "\n";
        return 0;
    }
    cli.out << "id:       " << p->ref.id << "\n"
            << "sha256:   " << p->ref.sha256 << "\n"
            << "size:     " << p->ref.size << "\n"
            << "kind:     " << p->info.kind << "\n"
            << "path:     " << p->path.string() << "\n";
    if (!p->info.requires_names.empty()) {
        cli.out << "requires: " << strings::join(p->info.requires_names, ", ") << "\n";
    }
    for (const auto& [name, range] : p->info.compatible) {
        cli.out << "compatible: " << name << " " << range << "\n";
    }
    if (p->info.service)
        cli.out << "service:  " << strings::join(p->info.service->exec, " ") << "\n";
    return 0;
}

int runRemove(Cli& cli, const StoreOptions& o) {
    const auto& sha = o.args.front();
    if (!crypto::isSha256Hex(sha)) {
        return cli.fail(
            Error{Errc::Invalid,
                  detail::concat("'", sha, "' is not a sha256 (64 lowercase hex digits)"), 0});
    }
    auto layout = cli.existingLayout();
    if (!layout) return cli.fail(layout.error());
    auto lock = lockNode(*layout, "remove");
    if (!lock) return cli.fail(lock.error());
    auto store = Store::open(*layout);
    if (!store) return cli.fail(store.error());
    auto p = store->get(sha);
    if (!p) return cli.fail(p.error());
    auto generations = Generations::open(*layout);
    if (!generations) return cli.fail(generations.error());
    auto in_use = generations->packagesInUse(kKeepGenerations);
    if (!in_use) return cli.fail(in_use.error());
    if (std::find(in_use->begin(), in_use->end(), sha) != in_use->end()) {
        return cli.fail(Error{Errc::Conflict,
                              detail::concat("package '", p->ref.id, "' (", sha,
                                             ") is used by a kept generation; it can go once no "
                                             "kept generation uses it (pkgmgr gc)"),
                              0});
    }
    if (auto r = store->remove(sha); !r) return cli.fail(r.error());
    cli.out << "removed " << p->ref.id << " " << sha << "\n";
    return 0;
}

int runVerify(Cli& cli, const StoreOptions& o) {
    auto layout = cli.existingLayout();
    if (!layout) return cli.fail(layout.error());
    auto store = Store::open(*layout);
    if (!store) return cli.fail(store.error());
    std::vector<std::string> shas;
    if (!o.args.empty()) {
        auto p = store->find(o.args.front());
        if (!p) return cli.fail(p.error());
        shas.push_back(p->ref.sha256);
    } else {
        auto all = store->list();
        if (!all) return cli.fail(all.error());
        for (const auto& p : *all) shas.push_back(p.ref.sha256);
    }
    std::vector<VerifyReport> reports;
    for (const auto& sha : shas) {
        auto report = store->verify(sha);
        if (!report) return cli.fail(report.error());
        reports.push_back(std::move(*report));
    }
    bool all_ok = std::all_of(reports.begin(), reports.end(), [](const auto& r) { return r.ok(); });
    if (o.json) {
        json::Writer w;
        w.beginArray();
        for (const auto& r : reports) {
            w.beginObject().field("id", r.id).field("sha256", r.sha256).field("ok", r.ok());
            w.key("problems").beginArray();
            for (const auto& problem : r.problems) w.value(problem);
            w.endArray().endObject();
        }
        w.endArray();
        cli.out << w.str() << "\n";
    } else {
        for (const auto& r : reports) {
            cli.out << (r.ok() ? "ok      " : "CHANGED ") << r.id << " " << r.sha256 << "\n";
            for (const auto& problem : r.problems) cli.out << "  " << problem << "\n";
        }
    }
    if (!all_ok) {
        std::size_t bad = static_cast<std::size_t>(
            std::count_if(reports.begin(), reports.end(), [](const auto& r) { return !r.ok(); }));
        cli.err << "pkgmgr: verify: " << bad << " of " << reports.size()
                << " packages changed at rest\n";
        return exitCode(Errc::Corrupt);
    }
    return 0;
}

}  // namespace

void addStoreCommands(Cli& cli) {
    auto o = std::make_shared<StoreOptions>();
    auto verb = [&cli, o](CLI::App* sub, int (*run)(Cli&, const StoreOptions&)) {
        sub->callback([&cli, o, run]() { cli.action = [&cli, o, run]() { return run(cli, *o); }; });
    };

    auto* pack =
        cli.app.add_subcommand("pack", "pack a package folder into a reproducible .tar.zst");
    pack->add_option("dir", o->args, "the package folder (pkginfo.json + well-known folders)")
        ->required()
        ->expected(1);
    pack->add_option("-o,--output", o->output, "the tarball to write (default: ./<id>.tar.zst)");
    verb(pack, runPack);

    auto* add = cli.app.add_subcommand("add", "add package tarballs to the store (all or nothing)");
    add->add_option("files", o->args, "package tarballs (zstd, xz, gzip or plain tar)")->required();
    add->add_flag("--json", o->json, "print the package references as JSON");
    addLimitOptions(add, *o);
    verb(add, runAdd);

    auto* fetch = cli.app.add_subcommand("fetch", "fetch packages by sha256 from a repository");
    fetch->add_option("--repo", o->repo, "repository URL (http, https or file)")->required();
    fetch->add_option("sha256", o->args, "package sha256s")->required();
    fetch->add_option("--parallel", o->parallel, "packages fetched at once")
        ->check(hoist::cli::wholeNumber(1, 256))
        ->capture_default_str();
    fetch
        ->add_option("--retry-for", o->retry_for_s,
                     "seconds to keep retrying a repository that is unreachable or failing "
                     "(the partial download is kept and resumed)")
        ->check(hoist::cli::wholeNumber(0, 86400))
        ->capture_default_str();
    fetch->add_flag("--json", o->json, "print the package references as JSON");
    addLimitOptions(fetch, *o);
    verb(fetch, runFetch);

    auto* list = cli.app.add_subcommand("list", "list the packages in the store");
    list->add_flag("--json", o->json, "print JSON");
    verb(list, runList);

    auto* info = cli.app.add_subcommand("info", "show one package of the store");
    info->add_option("package", o->args,
                     "package id or sha256, or a bare name for the versions the store holds")
        ->required()
        ->expected(1);
    info->add_flag("--json", o->json, "print JSON");
    verb(info, runInfo);

    auto* remove = cli.app.add_subcommand("remove", "remove a package no kept generation uses");
    remove->add_option("sha256", o->args, "package sha256")->required()->expected(1);
    verb(remove, runRemove);

    auto* verify = cli.app.add_subcommand(
        "verify", "re-hash store entries against their manifests (exit 9 when changed)");
    verify->add_option("package", o->args, "package id or sha256 (default: every package)")
        ->expected(0, 1);
    verify->add_flag("--json", o->json, "print JSON");
    verb(verify, runVerify);
}

}  // namespace hoist::pkgmgr
