#include "pkgmgr/node_server.hpp"

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <set>
#include <thread>

#include "core/crypto.hpp"
#include "core/daemon.hpp"
#include "core/files.hpp"
#include "core/http_server.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/process.hpp"
#include "core/strings.hpp"
#include "pkgmgr/epoch.hpp"
#include "pkgmgr/fetch.hpp"
#include "pkgmgr/generations.hpp"
#include "pkgmgr/journal.hpp"
#include "pkgmgr/node_config.hpp"
#include "pkgmgr/outbox.hpp"
#include "pkgmgr/repository.hpp"
#include "pkgmgr/service.hpp"
#include "pkgmgr/sets.hpp"
#include "pkgmgr/store.hpp"
#include "pkgmgr/wire.hpp"

namespace hoist::pkgmgr {

namespace {

constexpr std::string_view kComponent = "pkgmgr-serve";
constexpr std::string_view kSha = "([0-9a-f]{64})";

using http::ServerReply;
using http::ServerRequest;

ServerReply errorReply(const Error& error) {
    return ServerReply::error(error);
}

std::string damageAdvice(const Error& damage) {
    return "the transaction journal is damaged (" + damage.describe() +
           "); no restart until 'restart-helper recover' sets it aside and brings the current "
           "generation up";
}

fs::path findHelper(const fs::path& configured) {
    if (!configured.empty()) return configured;
    if (const char* env = std::getenv("HOIST_RESTART_HELPER"); env != nullptr && *env != '\0')
        return env;
    auto self = process::selfExe();
    std::error_code ec;
    if (!self.empty() && fs::exists(self.parent_path() / "restart-helper", ec))
        return self.parent_path() / "restart-helper";
    return process::findProgram("restart-helper");
}

void writeRef(json::Writer& w, const PackageRef& ref) {
    ref.write(w);
}

}  // namespace

struct NodeServer::Impl {
    NodeServerOptions options;
    NodeLayout layout;
    NodeConfig config;
    daemon::Secret token;
    std::optional<RoleRules> rules;
    std::unique_ptr<http::Server> server;
    std::string host;
    int port = 0;
    fs::path helper;

    // Stage, delete and restart change the node one at a time.
    std::mutex change_mutex;
    // The helpers we launched; reaped so they do not linger as zombies.
    std::mutex helpers_mutex;
    std::vector<process::Child> helpers;
    std::mutex service_mutex;
    std::unique_ptr<ServiceManager> manager;

    std::unique_ptr<PingCourier> courier;
    std::thread background;
    std::mutex bg_mutex;
    std::condition_variable bg_wake;
    bool stopping = false;
    // Registration has been answered (or is not wanted): pings and pull asks may go out.
    bool registration_done = false;

    Result<Store> store() const { return Store::open(layout); }
    /// The store for a caller that holds the node lock: staging folders (store/.tmp-*) an
    /// earlier, killed operation left are removed first, as the CLI's add and fetch do.
    Result<Store> storeForChange() const {
        HOIST_ASSIGN(auto s, store());
        HOIST_ASSIGN(int removed, s.recover());
        if (removed > 0)
            log::info(kComponent, "removed leftovers of interrupted store operations",
                      {{"count", removed}});
        return s;
    }
    Result<Generations> generations() const {
        HOIST_ASSIGN(auto g, Generations::open(layout));
        g.setLockWait(options.lock_wait);
        return g;
    }
    Result<void> authorize(const ServerRequest& request) const {
        return http::requireBearer(request, token.value());
    }

    void routes();
    ServerReply getNode(const ServerRequest& request);
    ServerReply getPackages(const ServerRequest& request);
    ServerReply putPackage(const ServerRequest& request);
    ServerReply deletePackage(const ServerRequest& request);
    ServerReply getActive(const ServerRequest& request);
    ServerReply postStage(const ServerRequest& request);
    ServerReply postRestart(const ServerRequest& request);
    ServerReply postRollback(const ServerRequest& request);
    ServerReply getTransaction(const ServerRequest& request);

    Result<Generation> stageSet(const std::optional<std::string>& version,
                                std::vector<PackageRef> refs);
    Result<std::string> restartTo(long generation, const std::string& deployment,
                                  const std::string& report_to, std::int64_t epoch);

    Result<std::string> launchHelper(long generation, const std::string& deployment,
                                     const std::string& report_to, std::int64_t epoch);
    bool helperRunning();
    void collectMetrics(metrics::Registry& registry);
    void backgroundLoop();
    std::string address() const;

    // Pull mode.
    std::thread puller;
    std::string last_report;  // what the last report said, so that asking again is quiet
    std::chrono::steady_clock::time_point last_report_at;
    std::string last_pull_error;
    void pullLoop();
    void pullOnce(http::Client& client);
    void pullStage(const std::string& deployment, const std::string& release);
    void pullRestart(const std::string& deployment, long generation, std::int64_t epoch);
    void report(StatusPing ping);
};

// ---- routes

void NodeServer::Impl::routes() {
    auto& s = *server;
    // Every route with a body needs the token: checked before the body is read.
    s.beforeBody([this](const ServerRequest& r) { return authorize(r); });
    s.route("GET", "/v1/node", [this](const ServerRequest& r) { return getNode(r); });
    s.route("GET", "/v1/packages", [this](const ServerRequest& r) { return getPackages(r); });
    s.route("PUT", "/v1/packages/" + std::string(kSha),
            [this](const ServerRequest& r) { return putPackage(r); });
    s.route("DELETE", "/v1/packages/" + std::string(kSha),
            [this](const ServerRequest& r) { return deletePackage(r); });
    s.route("GET", "/v1/active", [this](const ServerRequest& r) { return getActive(r); });
    s.route("POST", "/v1/stage", [this](const ServerRequest& r) { return postStage(r); });
    s.route("POST", "/v1/restart", [this](const ServerRequest& r) { return postRestart(r); });
    s.route("POST", "/v1/rollback", [this](const ServerRequest& r) { return postRollback(r); });
    s.route("GET", "/v1/transaction", [this](const ServerRequest& r) { return getTransaction(r); });
    s.onMetrics([this](metrics::Registry& registry) { collectMetrics(registry); });
    auto& m = s.metrics();
    m.describe("hoist_node_generation", "gauge", "the current generation (0: none)");
    m.describe("hoist_node_service_running", "gauge", "1 while the service runs");
    m.describe("hoist_node_transaction_active", "gauge", "1 while the restart helper swaps");
    m.describe("hoist_node_pings_queued", "gauge", "status pings waiting in the outbox");
    m.describe("hoist_node_pings_damaged", "gauge",
               "unreadable status pings set aside in the outbox (outbox/*.damaged), never sent");
    m.describe("hoist_node_packages", "gauge", "packages in the store");
    m.describe("hoist_node_stages_total", "counter", "stage requests by result");
    m.describe("hoist_node_restarts_total", "counter", "restart helpers launched");
    m.describe("hoist_node_release_info", "gauge",
               "1, labelled with the node's id, role and release");
    m.declare("hoist_node_stages_total", "result=\"ok\"");
    m.declare("hoist_node_stages_total", "result=\"refused\"");
    m.declare("hoist_node_restarts_total");
}

ServerReply NodeServer::Impl::getNode(const ServerRequest&) {
    auto gens = generations();
    if (!gens) return errorReply(gens.error());
    auto cur = gens->current();
    if (!cur) return errorReply(cur.error());
    ServiceStatus st;
    bool healthy = false;
    {
        std::lock_guard lock(service_mutex);
        auto status = manager->status();
        if (status)
            st = *status;
        else
            st.detail = status.error().describe();
    }
    if (st.running && *cur && rules) {
        // One probe, not the whole healthy_after_ms check: this says how it is right now.
        auto store_opened = store();
        auto gen = gens->load(**cur);
        if (store_opened && gen) {
            auto launch = prepareLaunch(layout, *store_opened, *gen, *rules);
            if (launch && launch->spec.health) {
                http::Client client;
                auto probe = launch->spec.health;
                probe->timeout_ms = std::min<std::int64_t>(probe->timeout_ms, 2000);
                healthy = probeHealth(*probe, HealthContext{layout, {}}, client).has_value();
            } else if (launch) {
                healthy = true;
            }
        }
    }
    // A journal that does not read is reported as damaged: restarts wait for recover.
    auto txn = Journal::load(layout);
    // The helper updates node.json's release after each swap.
    auto fresh = NodeConfig::load(layout);
    NodeView view;
    view.id = config.id;
    view.role = config.role;
    view.address = address();
    view.release = fresh ? fresh->release : config.release;
    view.generation = cur->value_or(0);
    view.service = {std::string(manager->name()), st.running, static_cast<std::int64_t>(st.pid),
                    st.detail};
    view.healthy = healthy;
    if (auto epoch = seenEpoch(layout)) view.epoch = *epoch;
    if (!txn)
        view.transaction = TransactionSummary{"", "", damageAdvice(txn.error())};
    else if (*txn)
        view.transaction = TransactionSummary{(*txn)->operation, (*txn)->state, ""};
    return ServerReply::json(200, view.toJson());
}

ServerReply NodeServer::Impl::getPackages(const ServerRequest&) {
    auto s = store();
    if (!s) return errorReply(s.error());
    auto list = s->list();
    if (!list) return errorReply(list.error());
    std::set<std::string> in_use;
    if (auto gens = generations()) {
        if (auto used = gens->packagesInUse(options.keep))
            in_use.insert(used->begin(), used->end());
    }
    json::Writer w;
    w.beginObject().key("packages").beginArray();
    for (const auto& p : *list) {
        w.beginObject()
            .field("id", p.ref.id)
            .field("sha256", p.ref.sha256)
            .field("size", p.ref.size)
            .field("kind", p.info.kind)
            .field("in_use", in_use.count(p.ref.sha256) > 0)
            .endObject();
    }
    w.endArray().endObject();
    return ServerReply::json(200, w.str());
}

ServerReply NodeServer::Impl::putPackage(const ServerRequest& request) {
    if (auto auth = authorize(request); !auth) return errorReply(auth.error());
    const auto& sha = request.matches.at(1);
    std::optional<std::string> id;
    if (!strings::trim(request.body).empty()) {
        auto doc = json::parseObject(request.body, "request body");
        if (!doc) return errorReply(doc.error());
        if (auto unknown = json::rejectUnknown(*doc, {"id"}, "request body"); !unknown)
            return errorReply(unknown.error());
        auto given = json::optString(*doc, "id", "request body");
        if (!given) return errorReply(given.error());
        if (*given) {
            if (auto parsed = PackageId::parse(**given); !parsed) return errorReply(parsed.error());
            id = **given;
        }
    }
    if (config.repository.empty())
        return errorReply(Error{Errc::Invalid, "node.json names no repository to fetch from", 0});
    auto held = files::FileLock::acquire(layout.lock(), options.lock_wait, "fetch package");
    if (!held) return errorReply(held.error());
    auto s = storeForChange();
    if (!s) return errorReply(s.error());
    bool had = s->has(sha);
    FetchOptions fetch_options;
    fetch_options.retry_for = options.fetch_retry_for;
    auto fetched = fetchPackage(*s, config.repository, sha, fetch_options);
    if (!fetched) return errorReply(fetched.error());
    if (id && fetched->ref.id != *id)
        return errorReply(
            Error{Errc::Corrupt,
                  "package " + sha + " is '" + fetched->ref.id + "', not '" + *id + "'", 0});
    json::Writer w;
    w.beginObject().field("fetched", !had).key("package");
    writeRef(w, fetched->ref);
    w.field("kind", fetched->info.kind).endObject();
    return ServerReply::json(had ? 200 : 201, w.str());
}

ServerReply NodeServer::Impl::deletePackage(const ServerRequest& request) {
    if (auto auth = authorize(request); !auth) return errorReply(auth.error());
    const auto& sha = request.matches.at(1);
    std::lock_guard change(change_mutex);
    auto held = files::FileLock::acquire(layout.lock(), options.lock_wait, "delete package");
    if (!held) return errorReply(held.error());
    auto s = store();
    if (!s) return errorReply(s.error());
    if (!s->has(sha))
        return errorReply(Error{Errc::NotFound, "package " + sha + " is not in the store", 0});
    auto gens = generations();
    if (!gens) return errorReply(gens.error());
    auto used = gens->packagesInUse(options.keep);
    if (!used) return errorReply(used.error());
    if (std::find(used->begin(), used->end(), sha) != used->end())
        return errorReply(Error{Errc::Conflict,
                                "package " + sha +
                                    " is used by a generation that is kept; "
                                    "it can go once gc no longer keeps that generation",
                                0});
    if (auto removed = s->remove(sha); !removed) return errorReply(removed.error());
    return ServerReply::json(200, "{\"removed\":\"" + sha + "\"}");
}

ServerReply NodeServer::Impl::getActive(const ServerRequest&) {
    auto gens = generations();
    if (!gens) return errorReply(gens.error());
    auto cur = gens->current();
    if (!cur) return errorReply(cur.error());
    if (!*cur) return errorReply(Error{Errc::NotFound, "no generation is active on this node", 0});
    auto gen = gens->load(**cur);
    if (!gen) return errorReply(gen.error());
    json::Writer w;
    w.beginObject()
        .field("generation", static_cast<std::int64_t>(gen->number))
        .field("role", gen->role)
        .field("release", gen->release)
        .field("created", gen->created)
        .key("packages")
        .beginArray();
    for (const auto& ref : gen->packages) writeRef(w, ref);
    w.endArray().endObject();
    return ServerReply::json(200, w.str());
}

ServerReply NodeServer::Impl::postStage(const ServerRequest& request) {
    if (auto auth = authorize(request); !auth) return errorReply(auth.error());
    auto refuse = [this](const Error& e) {
        server->metrics().add("hoist_node_stages_total", "result=\"refused\"");
        return errorReply(withContext(e, "stage"));
    };
    auto body = StageRequest::fromJson(request.body);
    if (!body) return refuse(body.error());
    if (auto admitted = admitEpoch(layout, body->epoch, "stage"); !admitted) {
        server->metrics().add("hoist_node_stages_total", "result=\"refused\"");
        return errorReply(admitted.error());
    }
    auto staged = stageSet(body->release, body->packages.value_or(std::vector<PackageRef>{}));
    if (!staged) return errorReply(withContext(staged.error(), "stage"));
    StageReply reply{staged->number, staged->release, staged->packages};
    return ServerReply::json(200, reply.toJson());
}

// What POST /v1/stage does once its body is read; a pull node's stage runs it too.
Result<Generation> NodeServer::Impl::stageSet(const std::optional<std::string>& version,
                                              std::vector<PackageRef> refs) {
    auto& m = server->metrics();
    auto staged = [&]() -> Result<Generation> {
        if (!rules) return fail(Errc::Invalid, "node.json names no role");
        if (config.repository.empty())
            return fail(Errc::Invalid, "node.json names no repository to fetch from");
        std::optional<FetchedRelease> fetched;
        if (version) {
            HOIST_ASSIGN(auto pems, config.trustedKeyPems(layout));
            http::Client client;
            HOIST_ASSIGN(auto got, fetchRelease(client, config.repository, *version, pems,
                                                config.allow_unsigned));
            HOIST_ASSIGN(refs, got.release.packagesFor(config.role));
            fetched = std::move(got);
        }
        std::vector<std::string> shas;
        for (const auto& ref : refs) shas.push_back(ref.sha256);

        // One stage at a time; the node lock keeps gc and a swap out while it fetches and builds.
        std::lock_guard change(change_mutex);
        HOIST_ASSIGN(auto held,
                     files::FileLock::acquire(layout.lock(), options.lock_wait, "stage"));
        HOIST_ASSIGN(auto s, storeForChange());
        FetchOptions fetch_options;
        fetch_options.parallel = options.fetch_parallel;
        fetch_options.retry_for = options.fetch_retry_for;
        HOIST_TRY(fetchPackages(s, config.repository, shas, fetch_options));
        for (const auto& ref : refs) {
            HOIST_ASSIGN(auto stored, s.get(ref.sha256));
            if (stored.ref.id != ref.id)
                return fail(Errc::Corrupt, "package ", ref.sha256, " is '", stored.ref.id,
                            "', not '", ref.id, "'");
        }
        HOIST_ASSIGN(auto gens, generations());
        gens.setCallerHoldsLock(true);
        HOIST_ASSIGN(auto generation,
                     fetched ? gens.stage(fetched->release, *rules) : gens.stage(shas, *rules, ""));
        if (fetched) {
            if (auto saved = saveRelease(layout, *fetched); !saved)
                log::warn(kComponent, "cannot keep the release manifest",
                          {{"error", saved.error().describe()}});
        }
        return generation;
    }();
    m.add("hoist_node_stages_total", staged ? "result=\"ok\"" : "result=\"refused\"");
    return staged;
}

bool NodeServer::Impl::helperRunning() {
    std::lock_guard lock(helpers_mutex);
    bool any = false;
    for (auto it = helpers.begin(); it != helpers.end();) {
        if (it->running()) {
            any = true;
            ++it;
        } else {
            it = helpers.erase(it);
        }
    }
    return any;
}

Result<std::string> NodeServer::Impl::launchHelper(long generation, const std::string& deployment,
                                                   const std::string& report_to,
                                                   std::int64_t epoch) {
    if (helper.empty() || !fs::exists(helper))
        return fail(Errc::Internal,
                    "the restart-helper binary was not found (pass --restart-helper)");
    // Another transaction: a journal on disk, or a helper we started that has not written one yet.
    auto txn = Journal::load(layout);
    if (!txn) return fail(Errc::Corrupt, damageAdvice(txn.error()));
    if (*txn)
        return fail(Errc::Conflict, "a transaction is under way (operation ", (*txn)->operation,
                    ", state ", (*txn)->state, ")");
    if (helperRunning()) return fail(Errc::Conflict, "a restart helper is still running");
    auto op = "op-" + crypto::randomHex(8);
    std::vector<std::string> argv = {helper.string(), "--root", layout.root.string()};
    if (!options.layouts_dir.empty()) {
        argv.push_back("--layouts");
        argv.push_back(options.layouts_dir.string());
    }
    argv.insert(argv.end(), {"swap", "--to", std::to_string(generation), "--operation", op});
    if (!deployment.empty()) argv.insert(argv.end(), {"--deployment", deployment});
    if (!report_to.empty()) argv.insert(argv.end(), {"--report-to", report_to});
    // The helper checks the epoch again under its own lock: a newer coordinator's command
    // may have come in between.
    if (epoch > 0) argv.insert(argv.end(), {"--epoch", std::to_string(epoch)});
    process::Options popts;
    // A session of its own: the helper must outlive this endpoint (it may even restart it).
    popts.new_session = true;
    popts.stdout_file = layout.run() / "helper.log";
    popts.stderr_file = layout.run() / "helper.log";
    HOIST_TRY(files::makeDirs(layout.run()));
    HOIST_ASSIGN(auto child, process::Child::start(argv, popts));
    log::info(kComponent, "restart helper started",
              {{"operation", op},
               {"generation", static_cast<std::int64_t>(generation)},
               {"pid", static_cast<std::int64_t>(child.pid())}});
    server->metrics().add("hoist_node_restarts_total");
    std::lock_guard lock(helpers_mutex);
    helpers.push_back(std::move(child));
    return op;
}

ServerReply NodeServer::Impl::postRestart(const ServerRequest& request) {
    if (auto auth = authorize(request); !auth) return errorReply(auth.error());
    auto body = RestartRequest::fromJson(request.body);
    if (!body) return errorReply(body.error());
    if (auto admitted = admitEpoch(layout, body->epoch, "restart"); !admitted)
        return errorReply(admitted.error());
    auto op = restartTo(static_cast<long>(body->generation), body->deployment, body->report_to,
                        body->epoch);
    if (!op) return errorReply(op.error());
    return ServerReply::json(202, RestartReply{*op, body->generation}.toJson());
}

// What POST /v1/restart does once its body is read; a pull node's restart runs it too.
Result<std::string> NodeServer::Impl::restartTo(long generation, const std::string& deployment,
                                                const std::string& report_to, std::int64_t epoch) {
    std::lock_guard change(change_mutex);
    HOIST_ASSIGN(auto gens, generations());
    HOIST_TRY(gens.load(generation));
    return launchHelper(generation, deployment, report_to, epoch);
}

ServerReply NodeServer::Impl::postRollback(const ServerRequest& request) {
    if (auto auth = authorize(request); !auth) return errorReply(auth.error());
    auto body = RollbackRequest::fromJson(request.body);
    if (!body) return errorReply(body.error());
    if (auto admitted = admitEpoch(layout, body->epoch, "rollback"); !admitted)
        return errorReply(admitted.error());
    std::lock_guard change(change_mutex);
    auto gens = generations();
    if (!gens) return errorReply(gens.error());
    auto prev = gens->previous();
    if (!prev) return errorReply(prev.error());
    if (!*prev)
        return errorReply(
            Error{Errc::NotFound, "rollback: no previous generation to go back to", 0});
    auto op = launchHelper(**prev, body->deployment, body->report_to, body->epoch);
    if (!op) return errorReply(op.error());
    return ServerReply::json(202, RestartReply{*op, **prev}.toJson());
}

ServerReply NodeServer::Impl::getTransaction(const ServerRequest& request) {
    auto wanted = request.queryParam("operation");
    auto matches = [&wanted](const std::optional<Journal>& journal) {
        return journal && (!wanted || journal->operation == *wanted);
    };
    auto txn = Journal::load(layout);
    if (!txn) {
        TransactionView damaged{true, {}};
        damaged.damaged = damageAdvice(txn.error());
        return ServerReply::json(200, damaged.toJson());
    }
    if (matches(*txn)) return ServerReply::json(200, TransactionView{true, *txn}.toJson());
    auto last = Journal::loadLast(layout);
    if (!last) return errorReply(last.error());
    if (matches(*last)) return ServerReply::json(200, TransactionView{false, *last}.toJson());
    if (wanted) {
        // Launched but not journaled yet: the helper is still starting.
        if (helperRunning()) return ServerReply::json(200, TransactionView{true, {}}.toJson());
        return errorReply(
            Error{Errc::NotFound, "no transaction with operation id '" + *wanted + "'", 0});
    }
    return ServerReply::json(200, TransactionView{}.toJson());
}

void NodeServer::Impl::collectMetrics(metrics::Registry& registry) {
    // The helper updates node.json's release after each swap.
    auto fresh = NodeConfig::load(layout);
    registry.replace(
        "hoist_node_release_info",
        {{metrics::label("node", config.id) + "," + metrics::label("role", config.role) + "," +
              metrics::label("release", fresh ? fresh->release : config.release),
          1.0}});
    if (auto gens = generations()) {
        if (auto cur = gens->current())
            registry.set("hoist_node_generation", {}, static_cast<double>(cur->value_or(0)));
    }
    {
        std::lock_guard lock(service_mutex);
        auto st = manager->status();
        registry.set("hoist_node_service_running", {}, st && st->running ? 1.0 : 0.0);
    }
    std::error_code ec;
    registry.set("hoist_node_transaction_active", {}, fs::exists(layout.txn(), ec) ? 1.0 : 0.0);
    if (auto outbox = Outbox::open(layout)) {
        if (auto queued = outbox->pending())
            registry.set("hoist_node_pings_queued", {}, static_cast<double>(queued->size()));
        registry.set("hoist_node_pings_damaged", {}, static_cast<double>(outbox->damaged().size()));
    }
    if (auto s = store()) {
        if (auto list = s->list())
            registry.set("hoist_node_packages", {}, static_cast<double>(list->size()));
    }
}

std::string NodeServer::Impl::address() const {
    if (!options.advertise_url.empty()) return options.advertise_url;
    std::string h = host;
    if (h == "0.0.0.0" || h.empty()) {
        char buf[256] = {};
        h = ::gethostname(buf, sizeof buf - 1) == 0 ? std::string(buf) : "127.0.0.1";
    }
    return (options.tls_cert.empty() ? "http://" : "https://") + h + ":" + std::to_string(port);
}

// Registers with the coordinator (retrying with backoff until it answers) before any status
// ping or pull ask goes out: the coordinator refuses both from a node it does not know. When
// it later answers a ping that way (its state was lost), registers again. Also reaps the
// helpers we launched.
void NodeServer::Impl::backgroundLoop() {
    // Done: accepted, refused for good, or not wanted.
    bool registered = !options.register_node || config.coordinator.empty();
    bool accepted = false;
    int attempt = 0;
    http::RetryPolicy backoff{.attempts = 0,
                              .base = std::chrono::milliseconds(200),
                              .cap = std::chrono::milliseconds(10000)};
    http::Client client;
    while (true) {
        (void)helperRunning();
        auto wait = std::chrono::milliseconds(1000);
        if (accepted && courier->parked()) {
            log::info(kComponent, "the coordinator no longer knows this node; registering again",
                      {{"coordinator", config.coordinator}});
            registered = accepted = false;
            attempt = 0;
        }
        if (!registered) {
            std::optional<long> cur;
            if (auto gens = generations()) {
                if (auto c = gens->current()) cur = *c;
            }
            auto fresh = NodeConfig::load(layout);
            Registration registration;
            registration.id = config.id;
            registration.role = config.role;
            registration.address = address();
            registration.release = fresh ? fresh->release : config.release;
            registration.generation = cur.value_or(0);
            if (options.pull_interval.count() > 0) registration.mode = "pull";
            http::Request req;
            req.method = "POST";
            req.url = http::joinUrl(config.coordinator, "/v1/nodes/register");
            req.body = registration.toJson();
            req.headers.push_back({"Content-Type", "application/json"});
            auto coordinator_token = config.coordinatorToken(layout);
            if (coordinator_token && !coordinator_token->empty())
                req.headers.push_back(http::bearer(*coordinator_token));
            // The secret the coordinator binds this node id to at its first registration.
            auto secret = nodeSecret(layout, true);
            if (secret)
                req.headers.push_back({std::string(kNodeSecretHeader), *secret});
            else
                log::error(kComponent, "cannot read or create the node secret",
                           {{"error", secret.error().describe()}});
            req.timeout = std::chrono::seconds(5);
            auto response = client.send(req);
            if (response && response->ok()) {
                registered = accepted = true;
                courier->resume();
                log::info(kComponent, "registered with the coordinator",
                          {{"coordinator", config.coordinator}});
            } else if (response && !http::isTransient(response)) {
                registered = true;  // refused for good: retrying would not change the answer
                log::warn(kComponent, "the coordinator refused the registration",
                          {{"status", static_cast<std::int64_t>(response->status)},
                           {"body", response->body.substr(0, 200)}});
            } else {
                wait = backoffDelay(backoff, attempt++);
                log::debug(kComponent, "registration failed; retrying",
                           {{"error", response ? "HTTP " + std::to_string(response->status)
                                               : response.error().describe()}});
            }
        }
        std::unique_lock lock(bg_mutex);
        if (registered && !registration_done) {
            registration_done = true;
            courier->start();
            bg_wake.notify_all();
        }
        if (bg_wake.wait_for(lock, wait, [this] { return stopping; })) return;
    }
}

// ---- pull mode

// Asks the coordinator what to do every pull_interval and does it. Any number of asks give
// the same result as one: an action already done, or under way, is reported, not repeated.
void NodeServer::Impl::pullLoop() {
    http::Client client;
    {
        std::unique_lock lock(bg_mutex);
        bg_wake.wait(lock, [this] { return stopping || registration_done; });
        if (stopping) return;
    }
    while (true) {
        pullOnce(client);
        std::unique_lock lock(bg_mutex);
        if (bg_wake.wait_for(lock, options.pull_interval, [this] { return stopping; })) return;
    }
}

void NodeServer::Impl::pullOnce(http::Client& client) {
    std::optional<long> current;
    if (auto gens = generations()) {
        if (auto c = gens->current()) current = *c;
    }
    http::Request req;
    req.url = http::joinUrl(config.coordinator, desiredPath(config.id, current.value_or(0)));
    if (auto bearer = config.coordinatorToken(layout); bearer && !bearer->empty())
        req.headers.push_back(http::bearer(*bearer));
    if (auto secret = nodeSecret(layout, false); secret && !secret->empty())
        req.headers.push_back({std::string(kNodeSecretHeader), *secret});
    // One short connection per ask: a keep-alive connection would hold one of the
    // coordinator's HTTP threads for every pull node between its asks.
    req.headers.push_back({"Connection", "close"});
    req.connect_timeout = std::chrono::seconds(2);
    req.timeout = std::chrono::seconds(10);
    auto response = client.send(req);
    std::string problem;
    if (!response)
        problem = response.error().describe();
    else if (!response->ok())
        problem = "HTTP " + std::to_string(response->status) + ": " + response->body.substr(0, 200);
    if (!problem.empty()) {
        // Said once per change, not once per ask.
        if (problem != last_pull_error)
            log::warn(kComponent, "cannot ask the coordinator for the desired state",
                      {{"coordinator", config.coordinator}, {"error", problem}});
        last_pull_error = problem;
        return;
    }
    last_pull_error.clear();
    auto desired = DesiredState::fromJson(response->body);
    if (!desired) {
        log::warn(kComponent, "the coordinator's answer is not understood",
                  {{"error", desired.error().describe()}});
        return;
    }
    // An answer from a coordinator that has lost its leadership is not acted on.
    if (auto admitted = admitEpoch(layout, desired->epoch, "the coordinator's answer"); !admitted) {
        problem = admitted.error().describe();
        if (problem != last_pull_error)
            log::warn(kComponent, "pull: answer refused", {{"error", problem}});
        last_pull_error = problem;
        return;
    }
    if (desired->action == "stage" && !desired->release.empty())
        pullStage(desired->deployment, desired->release);
    else if (desired->action == "restart" && desired->generation > 0)
        pullRestart(desired->deployment, static_cast<long>(desired->generation), desired->epoch);
}

void NodeServer::Impl::report(StatusPing ping) {
    // The same answer again within a few seconds: already reported (the outbox delivers it).
    auto key = detail::concat(ping.deployment, "|", ping.state, "|", ping.to_generation);
    auto now = std::chrono::steady_clock::now();
    if (key == last_report && now - last_report_at < std::chrono::seconds(5)) return;
    ping.node = config.id;
    auto outbox = Outbox::open(layout);
    if (!outbox) {
        log::warn(kComponent, "cannot open the outbox", {{"error", outbox.error().describe()}});
        return;
    }
    auto queued = outbox->enqueue(ping, Outbox::statusUrl(config.coordinator, config.id));
    if (!queued) {
        log::warn(kComponent, "cannot queue a status ping", {{"error", queued.error().describe()}});
        return;
    }
    last_report = key;
    last_report_at = now;
    if (courier) courier->notify();
}

void NodeServer::Impl::pullStage(const std::string& deployment, const std::string& release) {
    // Staging the same release again gives the same generation; only the report is kept quiet.
    auto key = detail::concat(deployment, "|staged|");
    if (last_report.starts_with(key) &&
        std::chrono::steady_clock::now() - last_report_at < std::chrono::seconds(5))
        return;
    std::int64_t from = 0;
    if (auto gens = generations()) {
        if (auto c = gens->current(); c && *c) from = **c;
    }
    StatusPing ping;
    ping.deployment = deployment;
    ping.from_generation = from;
    ping.release = release;
    auto staged = stageSet(release, {});
    if (!staged) {
        auto code = staged.error().code;
        if (code == Errc::Network || code == Errc::Timeout || code == Errc::Busy) {
            // Transient: the next ask tries again.
            log::warn(kComponent, "pull: stage failed; trying again",
                      {{"release", release}, {"error", staged.error().describe()}});
            return;
        }
        ping.state = "failed";
        ping.message = staged.error().describe();
        log::warn(kComponent, "pull: stage refused",
                  {{"release", release}, {"error", ping.message}});
        report(std::move(ping));
        return;
    }
    ping.state = "staged";
    ping.to_generation = staged->number;
    log::info(kComponent, "pull: staged",
              {{"release", release},
               {"generation", static_cast<std::int64_t>(staged->number)},
               {"deployment", deployment}});
    report(std::move(ping));
}

void NodeServer::Impl::pullRestart(const std::string& deployment, long generation,
                                   std::int64_t epoch) {
    // A swap under way reports its own steps. A damaged journal goes on to restartTo, whose
    // refusal is reported, so the coordinator learns why this node does not move.
    auto txn = Journal::load(layout);
    if ((txn && *txn) || helperRunning()) return;
    long current = 0;
    if (auto gens = generations()) {
        if (auto c = gens->current(); c && *c) current = **c;
    }
    StatusPing ping;
    ping.deployment = deployment;
    ping.to_generation = generation;
    auto fresh = NodeConfig::load(layout);
    ping.release = fresh ? fresh->release : config.release;
    if (current == generation) {
        // Done before (the coordinator may have missed it, or restarted): say so.
        ping.state = "healthy";
        ping.message = "already on generation " + std::to_string(generation);
        report(std::move(ping));
        return;
    }
    // This very restart ran and ended on the old set: report that, do not try it again.
    if (auto last = Journal::loadLast(layout); last && *last) {
        const Journal& j = **last;
        if (j.deployment == deployment && j.to_generation == generation &&
            (j.state == "rolled_back" || j.state == "failed")) {
            ping.state = j.state;
            ping.from_generation = j.from_generation;
            ping.message =
                "the restart to generation " + std::to_string(generation) + " ended " + j.state;
            report(std::move(ping));
            return;
        }
    }
    auto op = restartTo(generation, deployment, config.coordinator, epoch);
    if (!op) {
        if (op.error().code == Errc::Conflict || op.error().code == Errc::Busy) return;
        ping.state = "failed";
        ping.from_generation = current;
        ping.message = "restart refused: " + op.error().describe();
        log::warn(kComponent, "pull: restart refused",
                  {{"generation", static_cast<std::int64_t>(generation)}, {"error", ping.message}});
        report(std::move(ping));
        return;
    }
    log::info(kComponent, "pull: restart started",
              {{"generation", static_cast<std::int64_t>(generation)},
               {"operation", *op},
               {"deployment", deployment}});
}

// ---- NodeServer

NodeServer::NodeServer() : impl_(std::make_unique<Impl>()) {}
NodeServer::~NodeServer() {
    stop();
}

Result<std::unique_ptr<NodeServer>> NodeServer::create(NodeServerOptions options) {
    std::unique_ptr<NodeServer> self(new NodeServer());
    auto& d = *self->impl_;
    std::error_code ec;
    auto root = fs::absolute(options.layout.root, ec);
    d.layout = NodeLayout::at(ec ? options.layout.root : root);
    HOIST_TRY(d.layout.ensure());
    HOIST_ASSIGN(d.config, NodeConfig::load(d.layout));
    if (options.layouts_dir.empty()) {
        if (const char* env = std::getenv("HOIST_LAYOUTS"); env != nullptr && *env != '\0')
            options.layouts_dir = env;
    }
    {
        auto token_file = !options.token_file.empty()   ? options.token_file
                          : d.config.token_file.empty() ? fs::path()
                                                        : d.layout.root / d.config.token_file;
        std::error_code missing;
        if (!token_file.empty() &&
            (!options.token_file.empty() || fs::exists(token_file, missing))) {
            auto text = files::readFile(token_file, 4096);
            if (!text) return std::unexpected(text.error());
            // An empty file is the "no token" refusal below, as before.
            if (!strings::trim(*text).empty()) {
                HOIST_ASSIGN(d.token, daemon::Secret::fromFile(token_file, "node token"));
            }
        }
    }
    if (d.token.empty())
        return fail(Errc::Invalid, "no node token: write one to ",
                    (d.layout.root / d.config.token_file).string(),
                    " (mode 0600) or pass --token-file; every mutating route needs it");
    if (!d.config.role.empty()) {
        HOIST_ASSIGN(auto r, RoleRules::load(d.config.role, options.layouts_dir));
        d.rules = std::move(r);
    }
    HOIST_ASSIGN(d.manager, makeServiceManager(d.layout, d.config));
    // Leftovers of a serve killed mid-stage go now, unless another operation holds the node
    // (then its staging folders are live; the next stage removes what is stale).
    if (auto held =
            files::FileLock::acquire(d.layout.lock(), std::chrono::milliseconds(0), "serve start");
        held) {
        HOIST_TRY(d.storeForChange());
    } else {
        log::info(kComponent,
                  "the node is busy; stale store leftovers are removed at the next stage",
                  {{"reason", held.error().describe()}});
    }
    if (options.pull_interval.count() < 0)
        return fail(Errc::Invalid, "the pull interval must not be negative");
    if (options.pull_interval.count() > 0 && d.config.coordinator.empty())
        return fail(Errc::Invalid, "pull mode (--pull-interval-ms) needs a coordinator in ",
                    (d.layout.root / "node.json").string());
    // A node serving TLS does not send its tokens and reports in clear text.
    if (!options.tls_cert.empty() && d.config.coordinator.starts_with("http://"))
        return fail(Errc::Invalid, "this node serves TLS but node.json's coordinator '",
                    d.config.coordinator,
                    "' is plain HTTP: the node token would cross the network in clear; give "
                    "the coordinator an https:// URL");
    if (!options.advertise_url.empty() && !options.advertise_url.starts_with("http://") &&
        !options.advertise_url.starts_with("https://"))
        return fail(Errc::Invalid, "advertise URL '", options.advertise_url,
                    "' must be an http:// or https:// URL");
    d.helper = findHelper(options.restart_helper);
    if (d.helper.empty())
        log::warn(kComponent,
                  "restart-helper not found; restarts will fail (pass --restart-helper)");

    auto listen = options.listen.empty() ? d.config.listen : options.listen;
    HOIST_ASSIGN(auto address, http::parseHostPort(listen, "listen address"));
    d.host = address.first;
    int port = address.second;
    http::ServerOptions server_options;
    server_options.component = std::string(kComponent);
    server_options.host = d.host;
    server_options.port = port;
    server_options.threads = 8;
    server_options.tls_cert = options.tls_cert;
    server_options.tls_key = options.tls_key;
    server_options.tls_client_ca = options.tls_client_ca;
    server_options.tls_require_client_cert = !options.tls_client_ca.empty();
    HOIST_ASSIGN(d.server, http::Server::create(server_options));
    d.options = std::move(options);
    d.routes();
    return self;
}

Result<int> NodeServer::bind() {
    HOIST_ASSIGN(impl_->port, impl_->server->bind());
    return impl_->port;
}

Result<void> NodeServer::writePortFile(const fs::path& path) const {
    return impl_->server->writePortFile(path);
}

void NodeServer::run() {
    auto& d = *impl_;
    auto layout = d.layout;
    auto config = d.config;
    d.courier = std::make_unique<PingCourier>(layout, [layout, config] {
        auto token = config.coordinatorToken(layout);
        return token ? *token : std::string();
    });
    // Started by the background loop once the node is registered.
    d.background = std::thread([&d] { d.backgroundLoop(); });
    if (d.options.pull_interval.count() > 0) d.puller = std::thread([&d] { d.pullLoop(); });
    log::info(kComponent, "serving", {{"address", d.address()}, {"node", d.config.id}});
    d.server->run();
    {
        std::lock_guard lock(d.bg_mutex);
        d.stopping = true;
    }
    d.bg_wake.notify_all();
    if (d.background.joinable()) d.background.join();
    if (d.puller.joinable()) d.puller.join();
    d.courier->stop(std::chrono::seconds(2));
    log::info(kComponent, "stopped");
}

Result<void> NodeServer::reload() {
    auto& d = *impl_;
    auto token = d.token.reload();
    auto tls = d.server->reloadTls();
    if (!token) return token;
    return tls;
}

void NodeServer::stop() {
    if (impl_ && impl_->server) impl_->server->stop();
}

}  // namespace hoist::pkgmgr
