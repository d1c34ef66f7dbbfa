// The active-set verbs: check, stage, activate, active, generations, rollback, gc, recover,
// and the release-signing verbs: keygen, release sign, release verify.
#include <chrono>
#include <memory>
#include <optional>

#include "cli_internal.hpp"
#include "core/crypto.hpp"
#include "core/files.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"
#include "pkgmgr/generations.hpp"
#include "pkgmgr/node_config.hpp"
#include "pkgmgr/release.hpp"
#include "pkgmgr/service.hpp"
#include "pkgmgr/sets.hpp"
#include "pkgmgr/store.hpp"

namespace hoist::pkgmgr {

namespace {

struct SetOptions {
    std::vector<std::string> set;
    std::string release_file;
    std::string signature_file;
    std::string role;
    std::vector<std::string> keys;
    bool allow_unsigned = false;
    std::string layouts;
    bool json = false;
    int lock_wait_ms = 0;
};

void addSetArguments(CLI::App* sub, SetOptions& o) {
    sub->add_option("set", o.set,
                    "packages by sha256 or id, comma-separated or as several arguments");
    sub->add_option("--release", o.release_file, "a release manifest instead of a package list");
    sub->add_option("--sig", o.signature_file, "the manifest's signature (default: FILE.sig)");
    sub->add_option("--role", o.role, "the node's role (default: the role in node.json)");
    sub->add_option("--key", o.keys, "a trusted public key (PEM); node.json's keys count too");
    sub->add_flag("--allow-unsigned", o.allow_unsigned, "accept a release without a signature");
    sub->add_option("--layouts", o.layouts,
                    "a layouts folder to read roles/<role>.json from (default: $HOIST_LAYOUTS, "
                    "else the rules built in)");
    sub->add_flag("--json", o.json, "print JSON");
}

std::optional<NodeConfig> nodeConfig(const NodeLayout& layout) {
    auto config = NodeConfig::load(layout);
    if (!config) return std::nullopt;
    return *config;
}

Result<RoleRules> roleRules(const SetOptions& o, const NodeLayout& layout) {
    std::string role = o.role;
    if (role.empty()) {
        if (auto config = nodeConfig(layout)) role = config->role;
    }
    if (role.empty())
        return fail(Errc::Invalid, "no role: give --role ROLE (or write node.json with a role)");
    return RoleRules::load(role, o.layouts);
}

Result<Release> readRelease(const SetOptions& o, const NodeLayout& layout) {
    HOIST_ASSIGN(auto bytes, files::readFile(o.release_file, 16u << 20));
    std::string sig_file = o.signature_file.empty() ? o.release_file + ".sig" : o.signature_file;
    std::optional<std::string> signature;
    auto sig = files::readFile(sig_file, 64 * 1024);
    if (sig) {
        signature = std::string(strings::trim(*sig));
    } else if (sig.error().code != Errc::NotFound || !o.signature_file.empty()) {
        return std::unexpected(sig.error());
    }
    std::vector<std::string> pems;
    for (const auto& key : o.keys) {
        HOIST_ASSIGN(auto pem, files::readFile(key, 64 * 1024));
        pems.push_back(std::move(pem));
    }
    bool allow_unsigned = o.allow_unsigned;
    if (auto config = nodeConfig(layout)) {
        HOIST_ASSIGN(auto node_pems, config->trustedKeyPems(layout));
        pems.insert(pems.end(), node_pems.begin(), node_pems.end());
        allow_unsigned = allow_unsigned || config->allow_unsigned;
    }
    std::optional<std::string_view> sig_view;
    if (signature) sig_view = *signature;
    return loadVerifiedRelease(bytes, sig_view, pems, allow_unsigned,
                               "release manifest " + o.release_file);
}

// SET arguments: sha256s or ids, each argument possibly comma-separated.
Result<std::vector<std::string>> resolveSet(const std::vector<std::string>& args,
                                            const NodeLayout& layout) {
    HOIST_ASSIGN(auto store, Store::open(layout));
    std::vector<std::string> words;
    for (const auto& arg : args) {
        for (const auto& item : strings::split(arg, ',')) {
            auto word = std::string(strings::trim(item));
            if (!word.empty()) words.push_back(std::move(word));
        }
    }
    auto found = store.findMany(words);
    std::vector<std::string> shas;
    for (std::size_t i = 0; i < words.size(); ++i) {
        auto& pkg = found[i];
        if (!pkg) {
            if (pkg.error().code == Errc::NotFound)
                return fail(Errc::NotFound, "set: package '", words[i],
                            "' is not in the store (fetch or add it first)");
            return std::unexpected(pkg.error());
        }
        shas.push_back(pkg->ref.sha256);
    }
    if (shas.empty()) return fail(Errc::Invalid, "no packages: give a SET or --release FILE");
    return shas;
}

void writeGeneration(json::Writer& w, const Generation& gen, std::optional<long> current) {
    w.beginObject();
    w.field("number", static_cast<std::int64_t>(gen.number));
    w.field("current", current && *current == gen.number);
    w.field("role", gen.role);
    w.field("release", gen.release);
    w.field("created", gen.created);
    w.key("packages").beginArray();
    for (const auto& ref : gen.packages) ref.write(w);
    w.endArray();
    w.endObject();
}

// The generations of an existing node root (Cli::existingLayout): nothing is created at a
// mistyped --root.
Result<Generations> openGenerations(const Cli& cli) {
    HOIST_ASSIGN(auto layout, cli.existingLayout());
    return Generations::open(layout);
}

// A rollback on a node whose service runs would switch `current` under the service without
// restarting it: the service would run one generation while the node reports another. The
// restart helper does it whole (stop, switch, health check, roll back on failure).
Result<void> refuseUnderLiveService(const Cli& cli, const Generations& gens) {
    auto layout = cli.existingLayout();
    if (!layout) return ok();
    auto config = NodeConfig::load(*layout);
    if (!config) return ok();  // no node.json: no service is managed here
    std::error_code ec;
    auto root = fs::absolute(layout->root, ec).string();
    if (fs::exists(layout->txn(), ec))
        return fail(Errc::Conflict, "a restart transaction is under way on this node (",
                    layout->txn().string(), "): wait for it, or run `restart-helper --root ", root,
                    " recover`");
    HOIST_ASSIGN(auto manager, makeServiceManager(*layout, *config));
    HOIST_ASSIGN(auto status, manager->status());
    if (!status.running) return ok();
    HOIST_ASSIGN(auto previous, gens.previous());
    if (!previous) return fail(Errc::NotFound, "rollback: no previous generation to go back to");
    return fail(Errc::Conflict, "the node's service is running: `pkgmgr rollback` would switch ",
                "`current` without restarting it; run `restart-helper --root ", root, " swap --to ",
                *previous,
                "` (stops the service, switches, checks its health, rolls back on failure), or "
                "POST /v1/rollback to the node endpoint");
}

int runCheckOrStage(Cli& cli, const SetOptions& o, bool stage) {
    if (!o.release_file.empty() && !o.set.empty())
        return cli.fail(Error{Errc::Invalid, "give either a SET or --release FILE, not both"});
    // A bad manifest is refused as such, before the node root is looked for (reading it
    // creates nothing).
    std::optional<Release> release;
    if (!o.release_file.empty()) {
        auto loaded = readRelease(o, cli.layout());
        if (!loaded) return cli.fail(loaded.error());
        release = std::move(*loaded);
    }
    auto existing = cli.existingLayout();
    if (!existing) return cli.fail(existing.error());
    const auto& layout = *existing;
    auto rules = roleRules(o, layout);
    if (!rules) return cli.fail(rules.error());
    auto gens = Generations::open(layout);
    if (!gens) return cli.fail(gens.error());
    gens->setLockWait(std::chrono::milliseconds(o.lock_wait_ms));
    std::vector<std::string> shas;
    if (!release) {
        auto resolved = resolveSet(o.set, layout);
        if (!resolved) return cli.fail(resolved.error());
        shas = std::move(*resolved);
    }

    if (!stage) {
        auto checked = release ? gens->check(*release, *rules) : gens->check(shas, *rules);
        if (!checked) return cli.fail(checked.error());
        if (o.json) {
            json::Writer w;
            w.beginObject().field("valid", true).field("role", rules->role);
            w.field("release", release ? release->version : std::string());
            w.key("packages").beginArray();
            for (const auto& pkg : *checked) pkg.ref.write(w);
            w.endArray().endObject();
            cli.out << w.str() << "\n";
        } else {
            cli.out << "ok: the set of " << checked->size() << " package(s) is valid for role '"
                    << rules->role << "'" << (release ? " (release " + release->version + ")" : "")
                    << "\n";
        }
        return 0;
    }
    auto gen = release ? gens->stage(*release, *rules) : gens->stage(shas, *rules, "");
    if (!gen) return cli.fail(gen.error());
    if (o.json) {
        json::Writer w;
        auto current = gens->current();
        writeGeneration(w, *gen, current ? *current : std::nullopt);
        cli.out << w.str() << "\n";
    } else {
        cli.out << gen->number << "\n";
    }
    return 0;
}

struct GenOptions {
    long number = 0;
    bool json = false;
    int keep = 2;
    bool dry_run = false;
    int lock_wait_ms = 0;
};

int runActive(Cli& cli, const GenOptions& o) {
    auto gens = openGenerations(cli);
    if (!gens) return cli.fail(gens.error());
    auto current = gens->current();
    if (!current) return cli.fail(current.error());
    if (!*current) {
        if (o.json) {
            cli.out << "{\"generation\":null}\n";
            return 0;
        }
        return cli.fail(Error{Errc::NotFound, "no active generation on this node"});
    }
    auto gen = gens->load(**current);
    if (!gen) return cli.fail(gen.error());
    if (o.json) {
        json::Writer w;
        w.beginObject();
        w.field("generation", static_cast<std::int64_t>(gen->number));
        w.field("role", gen->role).field("release", gen->release).field("created", gen->created);
        w.key("packages").beginArray();
        for (const auto& ref : gen->packages) ref.write(w);
        w.endArray().endObject();
        cli.out << w.str() << "\n";
        return 0;
    }
    cli.out << "generation " << gen->number << " (role " << gen->role
            << (gen->release.empty() ? "" : ", release " + gen->release) << ")\n";
    for (const auto& ref : gen->packages) cli.out << "  " << ref.id << "  " << ref.sha256 << "\n";
    return 0;
}

int runGenerations(Cli& cli, const GenOptions& o) {
    auto gens = openGenerations(cli);
    if (!gens) return cli.fail(gens.error());
    auto current = gens->current();
    if (!current) return cli.fail(current.error());
    auto all = gens->list();
    if (!all) return cli.fail(all.error());
    if (o.json) {
        json::Writer w;
        w.beginArray();
        for (const auto& gen : *all) writeGeneration(w, gen, *current);
        w.endArray();
        cli.out << w.str() << "\n";
        return 0;
    }
    for (const auto& gen : *all) {
        bool is_current = *current && **current == gen.number;
        cli.out << (is_current ? "* " : "  ") << gen.number << "  " << gen.created << "  "
                << gen.role << "  " << (gen.release.empty() ? "-" : gen.release) << "  "
                << gen.packages.size() << " package(s)\n";
    }
    return 0;
}

int runGc(Cli& cli, const GenOptions& o) {
    auto gens = openGenerations(cli);
    if (!gens) return cli.fail(gens.error());
    gens->setLockWait(std::chrono::milliseconds(o.lock_wait_ms));
    auto report = gens->gc(o.keep, o.dry_run);
    if (!report) return cli.fail(report.error());
    if (o.json) {
        json::Writer w;
        w.beginObject().field("dry_run", o.dry_run);
        w.key("generations_removed").beginArray();
        for (long n : report->generations_removed) w.value(static_cast<std::int64_t>(n));
        w.endArray().key("packages_removed").beginArray();
        for (const auto& sha : report->packages_removed) w.value(sha);
        w.endArray().field("bytes_freed", report->bytes_freed).endObject();
        cli.out << w.str() << "\n";
        return 0;
    }
    std::string verb = o.dry_run ? "would remove" : "removed";
    cli.out << verb << " " << report->generations_removed.size() << " generation(s), "
            << report->packages_removed.size() << " package(s), "
            << strings::humanBytes(static_cast<double>(report->bytes_freed)) << "\n";
    for (long n : report->generations_removed) cli.out << "  generation " << n << "\n";
    for (const auto& sha : report->packages_removed) cli.out << "  package " << sha << "\n";
    return 0;
}

int runRecover(Cli& cli, const GenOptions& o) {
    auto gens = openGenerations(cli);
    if (!gens) return cli.fail(gens.error());
    gens->setLockWait(std::chrono::milliseconds(o.lock_wait_ms));
    auto report = gens->recover();
    if (!report) return cli.fail(report.error());
    if (o.json) {
        json::Writer w;
        w.beginObject().key("actions").beginArray();
        for (const auto& action : report->actions) w.value(action);
        w.endArray().endObject();
        cli.out << w.str() << "\n";
        return 0;
    }
    if (report->actions.empty()) cli.out << "nothing to recover\n";
    for (const auto& action : report->actions) cli.out << action << "\n";
    return 0;
}

struct KeyOptions {
    std::string out;
    std::string key;
    std::vector<std::string> keys;
    std::string file;
    std::string sig;
};

int runKeygen(Cli& cli, const KeyOptions& o) {
    auto pair = crypto::ed25519Generate();
    if (!pair) return cli.fail(pair.error());
    fs::path priv = o.out + ".key", pub = o.out + ".pub";
    std::error_code ec;
    if (fs::exists(priv, ec) || fs::exists(pub, ec))
        return cli.fail(Error{Errc::Conflict, "'" + priv.string() + "' or '" + pub.string() +
                                                  "' exists already; refusing to overwrite a key"});
    if (auto written = files::writeFileAtomic(priv, pair->private_pem, 0600); !written)
        return cli.fail(written.error());
    if (auto written = files::writeFileAtomic(pub, pair->public_pem, 0644); !written)
        return cli.fail(written.error());
    cli.out << "private key: " << priv.string() << "\npublic key: " << pub.string() << "\n";
    return 0;
}

int runSign(Cli& cli, const KeyOptions& o) {
    auto bytes = files::readFile(o.file, 16u << 20);
    if (!bytes) return cli.fail(bytes.error());
    auto release = Release::parse(*bytes);
    if (!release) return cli.fail(release.error());
    auto pem = files::readFile(o.key, 64 * 1024);
    if (!pem) return cli.fail(pem.error());
    auto signature = signRelease(*bytes, *pem);
    if (!signature) return cli.fail(signature.error());
    auto sig_file = o.file + ".sig";
    if (auto written = files::writeFileAtomic(sig_file, *signature + "\n"); !written)
        return cli.fail(written.error());
    cli.out << "signed release " << release->version << ": " << sig_file << "\n";
    return 0;
}

int runVerify(Cli& cli, const KeyOptions& o) {
    auto bytes = files::readFile(o.file, 16u << 20);
    if (!bytes) return cli.fail(bytes.error());
    auto sig_file = o.sig.empty() ? o.file + ".sig" : o.sig;
    auto sig = files::readFile(sig_file, 64 * 1024);
    if (!sig && sig.error().code != Errc::NotFound) return cli.fail(sig.error());
    std::vector<std::string> pems;
    for (const auto& key : o.keys) {
        auto pem = files::readFile(key, 64 * 1024);
        if (!pem) return cli.fail(pem.error());
        pems.push_back(std::move(*pem));
    }
    std::optional<std::string> signature;
    if (sig) signature = std::string(strings::trim(*sig));
    std::optional<std::string_view> view;
    if (signature) view = *signature;
    auto release = loadVerifiedRelease(*bytes, view, pems, false, "release manifest " + o.file);
    if (!release) return cli.fail(release.error());
    cli.out << "ok: release " << release->version << " is signed by a trusted key\n";
    return 0;
}

}  // namespace

void addSetCommands(Cli& cli) {
    auto& app = cli.app;

    for (bool stage : {false, true}) {
        auto o = std::make_shared<SetOptions>();
        auto* sub = app.add_subcommand(
            stage ? "stage" : "check",
            stage ? "validate a set and build its generation, without switching to it"
                  : "validate a set (or a release's set for a role) without changing anything");
        addSetArguments(sub, *o);
        if (stage)
            sub->add_option("--lock-wait", o->lock_wait_ms,
                            "milliseconds to wait for the node lock (default 0: fail at once)")
                ->check(hoist::cli::wholeNumber(0));
        sub->callback([&cli, o, stage] {
            cli.action = [&cli, o, stage] { return runCheckOrStage(cli, *o, stage); };
        });
    }

    {
        auto o = std::make_shared<GenOptions>();
        auto* sub = app.add_subcommand("activate", "switch `current` to a staged generation");
        sub->add_option("generation", o->number, "the generation number")->required();
        sub->add_option("--lock-wait", o->lock_wait_ms, "milliseconds to wait for the node lock")
            ->check(hoist::cli::wholeNumber(0));
        sub->callback([&cli, o] {
            cli.action = [&cli, o] {
                auto gens = openGenerations(cli);
                if (!gens) return cli.fail(gens.error());
                gens->setLockWait(std::chrono::milliseconds(o->lock_wait_ms));
                if (auto done = gens->activate(o->number); !done) return cli.fail(done.error());
                cli.out << "active: generation " << o->number << "\n";
                return 0;
            };
        });
    }
    {
        auto o = std::make_shared<GenOptions>();
        auto* sub = app.add_subcommand("active", "show the active generation");
        sub->add_flag("--json", o->json, "print JSON");
        sub->callback([&cli, o] { cli.action = [&cli, o] { return runActive(cli, *o); }; });
    }
    {
        auto o = std::make_shared<GenOptions>();
        auto* sub = app.add_subcommand("generations", "list the generations, oldest first");
        sub->add_flag("--json", o->json, "print JSON");
        sub->callback([&cli, o] { cli.action = [&cli, o] { return runGenerations(cli, *o); }; });
    }
    {
        auto o = std::make_shared<GenOptions>();
        auto* sub =
            app.add_subcommand("rollback", "switch back to the previously active generation");
        sub->add_option("--lock-wait", o->lock_wait_ms, "milliseconds to wait for the node lock")
            ->check(hoist::cli::wholeNumber(0));
        sub->callback([&cli, o] {
            cli.action = [&cli, o] {
                auto gens = openGenerations(cli);
                if (!gens) return cli.fail(gens.error());
                if (auto live = refuseUnderLiveService(cli, *gens); !live)
                    return cli.fail(live.error());
                gens->setLockWait(std::chrono::milliseconds(o->lock_wait_ms));
                auto back = gens->rollback();
                if (!back) return cli.fail(back.error());
                cli.out << "active: generation " << *back << "\n";
                return 0;
            };
        });
    }
    {
        auto o = std::make_shared<GenOptions>();
        auto* sub = app.add_subcommand(
            "gc", "remove generations and packages that the kept generations do not use");
        sub->add_option("--keep", o->keep, "previous generations to keep besides the current one")
            ->check(hoist::cli::wholeNumber(0));
        sub->add_flag("--dry-run", o->dry_run, "only say what would be removed");
        sub->add_flag("--json", o->json, "print JSON");
        sub->add_option("--lock-wait", o->lock_wait_ms, "milliseconds to wait for the node lock")
            ->check(hoist::cli::wholeNumber(0));
        sub->callback([&cli, o] { cli.action = [&cli, o] { return runGc(cli, *o); }; });
    }
    {
        auto o = std::make_shared<GenOptions>();
        auto* sub = app.add_subcommand(
            "recover", "remove what an interrupted operation left and repair `current`");
        sub->add_flag("--json", o->json, "print JSON");
        sub->add_option("--lock-wait", o->lock_wait_ms, "milliseconds to wait for the node lock")
            ->check(hoist::cli::wholeNumber(0));
        sub->callback([&cli, o] { cli.action = [&cli, o] { return runRecover(cli, *o); }; });
    }
    {
        auto o = std::make_shared<KeyOptions>();
        auto* sub = app.add_subcommand(
            "keygen", "make an Ed25519 key pair for signing releases (PREFIX.key, PREFIX.pub)");
        sub->add_option("--out", o->out, "path prefix of the two PEM files")->required();
        sub->callback([&cli, o] { cli.action = [&cli, o] { return runKeygen(cli, *o); }; });
    }
    {
        auto* release = app.add_subcommand("release", "sign and verify release manifests");
        release->require_subcommand(1);
        auto o = std::make_shared<KeyOptions>();
        auto* sign =
            release->add_subcommand("sign", "write FILE.sig, the base64 Ed25519 signature");
        sign->add_option("--key", o->key, "the private key (PEM)")->required();
        sign->add_option("file", o->file, "the release manifest")->required();
        sign->callback([&cli, o] { cli.action = [&cli, o] { return runSign(cli, *o); }; });
        auto v = std::make_shared<KeyOptions>();
        auto* verify = release->add_subcommand("verify", "check FILE.sig against trusted keys");
        verify->add_option("--key", v->keys, "a trusted public key (PEM); may be repeated")
            ->required();
        verify->add_option("--sig", v->sig, "the signature file (default: FILE.sig)");
        verify->add_option("file", v->file, "the release manifest")->required();
        verify->callback([&cli, v] { cli.action = [&cli, v] { return runVerify(cli, *v); }; });
    }
}

}  // namespace hoist::pkgmgr
