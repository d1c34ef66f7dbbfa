#include "deploy_coordinator/cli.hpp"

#include <charconv>

#include <linux/close_range.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include "api.hpp"
#include "api_ui.hpp"
#include "core/cli.hpp"
#include "core/config_file.hpp"
#include "core/daemon.hpp"
#include "core/files.hpp"
#include "core/http_server.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"
#include "engine.hpp"
#include "etcd_client.hpp"
#include "etcd_state.hpp"
#include "replica.hpp"
#include "store_feed.hpp"

namespace hoist::deploy_coordinator {

namespace {

// The packaged default (hoist-coordinator.service's StateDirectory): never the working folder.
constexpr const char* kDefaultState = "/var/lib/hoist/coordinator/coordinator.db";

struct ServeOptions {
    std::string state = kDefaultState;
    bool init = false;
    std::string listen = "127.0.0.1:7000";
    std::string port_file;
    std::string advertise_url;
    std::string repo;
    std::vector<std::string> trusted_keys;
    bool allow_unsigned = false;
    std::string admin_token_file;
    std::string halt_token_file;
    std::string node_token_file;
    std::string provisioner;
    std::string provisioner_token_file;
    std::string tls_cert;
    std::string tls_key;
    std::string node_client_ca;
    std::string ca_file;
    std::string client_cert;
    std::string client_key;
    bool insecure_no_auth = false;
    size_t workers = 32;
    size_t http_threads = 32;
    std::int64_t poll_after_ms = 3000;
    std::int64_t down_after_ms = 30000;
    bool access_log = false;
    std::string prometheus;
    std::vector<std::string> gates;
    std::int64_t gate_error_grace_ms = 60000;
    std::string gate_on_fail = "hold";
    hoist::cli::LogOptions log;
    // HA replicas on etcd (--state etcd://...)
    std::string replica_id;
    std::int64_t lease_ttl_s = 5;
    std::int64_t etcd_timeout_ms = 2000;
    std::size_t etcd_max_txn_ops = 128;
    bool rejoin = false;
    std::vector<std::string> argv;
};

// A replica that lost the lead starts over as a new process (nothing of the old term's
// in-memory state survives), on the port it had, waiting for etcd rather than exiting.
[[noreturn]] void restartAsFollower(const ServeOptions& o, int port) {
    std::vector<std::string> args{o.argv.empty() ? std::string("deploy-coordinator") : o.argv[0]};
    for (std::size_t i = 1; i < o.argv.size(); ++i) {
        const auto& a = o.argv[i];
        if (a == "--rejoin") continue;
        if (a == "--listen") {
            ++i;
            continue;
        }
        if (a.starts_with("--listen=")) continue;
        args.push_back(a);
    }
    auto listen = o.listen.substr(0, o.listen.rfind(':')) + ":" + std::to_string(port);
    args.push_back("--listen");
    args.push_back(listen);
    args.push_back("--rejoin");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // The listening socket and etcd connections are not inherited: the new process binds the
    // same port.
    ::close_range(3, ~0U, 0);
    ::execv("/proc/self/exe", argv.data());
    std::_Exit(75);
}

Result<daemon::Secret> readToken(const std::string& file, std::string_view what) {
    return daemon::Secret::fromFile(file, std::string(what) + " token");
}

int serve(const ServeOptions& o, std::ostream& err) {
    auto failWith = [&err](const Error& e) {
        err << "deploy-coordinator: " << e.describe() << "\n";
        return exitCode(e.code);
    };
    Tokens tokens;
    auto admin = readToken(o.admin_token_file, "admin");
    if (!admin) return failWith(admin.error());
    if (admin->empty()) return failWith(Error{Errc::Invalid, "--admin-token-file is required", 0});
    auto halt = readToken(o.halt_token_file, "halt");
    auto node = readToken(o.node_token_file, "node");
    auto prov = readToken(o.provisioner_token_file, "provisioner");
    if (!halt) return failWith(halt.error());
    if (!node) return failWith(node.error());
    if (!prov) return failWith(prov.error());
    // No silent open door: every token the routes need, or --insecure-no-auth said aloud.
    std::vector<std::string> missing;
    if (node->empty()) missing.push_back("node-token-file");
    if (halt->empty()) missing.push_back("halt-token-file");
    if (!o.provisioner.empty() && prov->empty()) missing.push_back("provisioner-token-file");
    if (!missing.empty() && !o.insecure_no_auth)
        return failWith(daemon::missingCredential(
            "deploy-coordinator", "--" + strings::join(missing, ", --"), "a token file for each"));
    tokens.admin = *admin;
    tokens.halt = *halt;
    tokens.node = *node;
    tokens.node_client_cert = !o.node_client_ca.empty();
    if (!o.ca_file.empty() || !o.client_cert.empty() || !o.client_key.empty()) {
        if (o.client_cert.empty() != o.client_key.empty())
            return failWith(Error{Errc::Invalid, "--client-cert and --client-key go together", 0});
        http::setDefaultTls({o.ca_file, o.client_cert, o.client_key});
    }

    // Signals are blocked before any thread starts, so only the waiters see them: SIGHUP
    // re-reads the token files and the TLS files, SIGINT and SIGTERM stop.
    http::Server* server_ptr = nullptr;
    std::atomic<http::Server*> reload_target{nullptr};
    daemon::ReloadWaiter reloader([&] {
        daemon::reloadSecrets("deploy-coordinator", {tokens.admin, tokens.halt, tokens.node, *prov},
                              [&]() -> Result<void> {
                                  auto* s = reload_target.load();
                                  return s != nullptr ? s->reloadTls() : ok();
                              });
    });
    std::atomic<bool> stop_requested{false};
    http::SignalWaiter waiter([&] {
        stop_requested = true;
        daemon::notifyStopping();
        if (server_ptr != nullptr) server_ptr->stop();
    });

    EngineOptions eo;
    eo.repo_url = o.repo;
    for (const auto& key_file : o.trusted_keys) {
        auto pem = files::readFile(key_file, 64 * 1024);
        if (!pem) return failWith(withContext(pem.error(), "trusted key"));
        eo.trusted_keys.push_back(*pem);
    }
    if (eo.trusted_keys.empty() && !o.allow_unsigned && !o.repo.empty())
        log::warn("deploy-coordinator",
                  "no --trusted-key given: every release will be refused unless --allow-unsigned");
    eo.allow_unsigned = o.allow_unsigned;
    eo.node_token = tokens.node;
    eo.provisioner_url = o.provisioner;
    eo.provisioner_token = *prov;
    eo.workers = std::max<size_t>(1, o.workers);
    eo.poll_after = std::chrono::milliseconds(o.poll_after_ms);
    eo.down_after = std::chrono::milliseconds(o.down_after_ms);
    eo.gates.prometheus = o.prometheus;
    eo.gates.error_grace_ms = o.gate_error_grace_ms;
    eo.gates.on_fail = o.gate_on_fail;
    for (const auto& text : o.gates) {
        auto gate = GateSpec::parse(text);
        if (!gate) return failWith(withContext(gate.error(), "--gate"));
        eo.gates.gates.push_back(std::move(*gate));
    }
    if (auto valid = eo.gates.validate(); !valid) return failWith(valid.error());

    auto listen = http::parseHostPort(o.listen);
    if (!listen) return failWith(listen.error());
    if (o.state.empty()) return failWith(Error{Errc::Invalid, "--state must name a file", 0});
    // --state etcd://...: this process is one replica; otherwise the SQLite file.
    std::unique_ptr<etcd::Client> etcd_client;
    std::unique_ptr<EtcdStateStore> etcd_store;
    bool store_heard = true;
    std::unique_ptr<State> sqlite_state;
    std::optional<files::PidLock> state_lock;
    StateStore* store = nullptr;
    // An HA replica's election lease (at least 2 s: renewals go every third of it).
    const auto lease_ttl = std::chrono::seconds(std::max<std::int64_t>(2, o.lease_ttl_s));
    if (o.state.starts_with("etcd://")) {
        auto url = etcd::parseEtcdUrl(o.state);
        if (!url) return failWith(url.error());
        etcd::ClientOptions co;
        co.endpoints = url->endpoints;
        co.request_timeout =
            std::chrono::milliseconds(std::max<std::int64_t>(100, o.etcd_timeout_ms));
        auto client = etcd::Client::create(co);
        if (!client) return failWith(client.error());
        etcd_client = std::move(*client);
        etcd_store =
            std::make_unique<EtcdStateStore>(*etcd_client, url->prefix, o.etcd_max_txn_ops);
        // A halt written by a follower waits for the leader's acknowledgement: long enough for
        // a dead leader's lease to expire and a successor to take over and read the holds.
        etcd_store->setConfirmTimeout(2 * lease_ttl + std::chrono::seconds(2));
        // A replica rejoining (after it stepped down) starts without etcd: its API answers
        // 503 naming the store until etcd answers, and it campaigns once it does.
        auto reachable = etcd_store->ping();
        if (!reachable && !o.rejoin)
            return failWith(Error{reachable.error().code,
                                  reachable.error().message + " (start etcd, or check --state)",
                                  0});
        store_heard = reachable.has_value();
        store = etcd_store.get();
        eo.standby = true;
        // A replica taking over counts silence from half of --down-after-ms before its own
        // start whatever last_seen says (load()), so last_seen is written rarely: every 10 s
        // it would be 1,000 replicated puts a second at 10,000 nodes. Status, release and
        // generation are still written as they change.
        eo.seen_write_after =
            std::chrono::milliseconds(std::max<std::int64_t>(10000, 2 * o.down_after_ms));
    } else {
        if (o.state == kDefaultState &&
            !std::filesystem::is_directory(std::filesystem::path(o.state).parent_path()))
            return failWith(Error{Errc::NotFound,
                                  std::string("the default state folder ") +
                                      std::filesystem::path(o.state).parent_path().string() +
                                      " does not exist: install the hoist-coordinator package or "
                                      "pass --state FILE",
                                  0});
        // One coordinator per state file: a second would act on the same nodes without knowing
        // of the first (its holds, its rollout). The lock goes before anything reads or moves
        // the file.
        auto locked = files::PidLock::acquire(o.state + ".lock", "state file " + o.state);
        if (!locked)
            return failWith(Error{locked.error().code,
                                  locked.error().message +
                                      ": another deploy-coordinator runs on it; stop that one, "
                                      "or give this one its own --state",
                                  locked.error().sys_errno});
        state_lock.emplace(std::move(*locked));
        auto state = State::open(o.state, o.init);
        if (!state) return failWith(state.error());
        sqlite_state = std::move(*state);
        store = sqlite_state.get();
    }

    http::ServerOptions so;
    so.component = "deploy-coordinator";
    so.host = listen->first;
    so.port = listen->second;
    so.threads = std::max<size_t>(4, o.http_threads);
    so.tls_cert = o.tls_cert;
    so.tls_key = o.tls_key;
    so.tls_client_ca = o.node_client_ca;
    so.access_log = o.access_log;
    so.read_timeout = std::chrono::seconds(10);
    auto server = http::Server::create(so);
    if (!server) return failWith(server.error());
    if (!missing.empty())
        daemon::warnInsecure("deploy-coordinator", (*server)->metrics(),
                             strings::join(missing, ","));
    auto port = (*server)->bind();
    if (!port) return failWith(port.error());
    std::string scheme = o.tls_cert.empty() ? "http://" : "https://";
    std::string host = so.host == "0.0.0.0" ? "127.0.0.1" : so.host;
    eo.advertise_url =
        o.advertise_url.empty() ? scheme + host + ":" + std::to_string(*port) : o.advertise_url;

    // The live page's feed hears of every commit through the store the engine writes to.
    EventHub hub(*store);
    ObservedStore observed(*store, hub);
    std::unique_ptr<Replica> replica;
    std::unique_ptr<StoreFeed> feed;
    std::atomic<Replica*> replica_ptr{nullptr};
    if (etcd_store)
        eo.may_act = [&replica_ptr] {
            auto* r = replica_ptr.load();
            return r != nullptr && r->mayAct();
        };
    auto engine = Engine::create(observed, eo);
    if (!engine) return failWith(engine.error());
    Engine* engine_ptr = engine->get();
    auto watch =
        MonitorWatch::create(*store,
                             {[engine_ptr] { return engine_ptr->acting(); },
                              [engine_ptr](const std::string& source, const std::string& reason) {
                                  return engine_ptr->halt(source, reason, "coordinator");
                              },
                              nowMs,
                              [&replica_ptr]() -> Result<std::optional<std::int64_t>> {
                                  auto* r = replica_ptr.load();
                                  if (r == nullptr) return std::optional<std::int64_t>();
                                  return r->leaderSinceMs();
                              }},
                             /*load=*/!etcd_store);
    if (!watch) return failWith(watch.error());
    registerRoutes(**server, **engine, **watch, tokens);
    registerUiRoutes(**server, hub, tokens);
    if (etcd_store) {
        ReplicaOptions ro;
        ro.id = o.replica_id.empty() ? eo.advertise_url : o.replica_id;
        ro.url = eo.advertise_url;
        ro.ttl = lease_ttl;
        ro.store_heard = store_heard;
        int bound = *port;
        replica = std::make_unique<Replica>(
            *etcd_client, *etcd_store, ro,
            Replica::Hooks{[engine_ptr, watch_ptr = watch->get(), es = etcd_store.get(),
                            &replica_ptr](std::int64_t) -> Result<void> {
                               HOIST_TRY(es->recover());
                               // Silence counted from the takeover the followers read.
                               HOIST_TRY(watch_ptr->reload(replica_ptr.load()->leadingSinceMs()));
                               return engine_ptr->lead();
                           },
                           [&o, bound](const std::string&) { restartAsFollower(o, bound); },
                           [engine_ptr] {
                               auto r = engine_ptr->reloadHolds();
                               if (!r)
                                   log::warn("deploy-coordinator", "cannot read the holds",
                                             {{"error", r.error().describe()}});
                               return r.has_value();
                           }});
        replica_ptr = replica.get();
        Replica* rp = replica.get();
        std::string admin_token = tokens.admin;
        (*server)->route("GET", "/v1/cluster/coordinators",
                         [rp, admin_token](const http::ServerRequest& request) {
                             if (auto auth = http::requireBearer(request, admin_token); !auth)
                                 return http::ServerReply::error(auth.error());
                             auto body = rp->coordinatorsJson();
                             if (!body) return http::ServerReply::error(body.error());
                             return http::ServerReply::json(200, *body);
                         });
        (*server)->intercept(
            [rp](const http::ServerRequest& request) { return rp->intercept(request); });
        // A stream opened on a follower follows the leader's writes in etcd.
        feed = std::make_unique<StoreFeed>(*etcd_client, *etcd_store, hub, [rp, &hub] {
            return !rp->leading() && hub.listening();
        });
        (*server)->onMetrics([rp](metrics::Registry& r) { rp->collectMetrics(r); });
    }
    (*engine)->start();
    hub.start();
    if (feed) feed->start();
    (*watch)->start();
    if (replica) replica->start();
    if (!o.port_file.empty()) {
        if (auto written = (*server)->writePortFile(o.port_file); !written)
            return failWith(written.error());
    }
    log::info("deploy-coordinator", "listening",
              {{"address", so.host + ":" + std::to_string(*port)},
               {"state", o.state},
               {"advertise", eo.advertise_url}});
    server_ptr = server->get();
    reload_target = server->get();
    daemon::notifyReady("listening on " + so.host + ":" + std::to_string(*port));
    daemon::Watchdog watchdog(nullptr);
    if (!stop_requested) (*server)->run();
    reload_target = nullptr;
    server_ptr = nullptr;
    (*watch)->stop();
    (*engine)->stop();
    if (feed) feed->stop();
    hub.stop();
    // Last: the engine's final write is fenced on the lease this revokes (a clean stop hands
    // the lead over at once instead of after the ttl).
    if (replica) replica->stop();
    log::info("deploy-coordinator", "stopped");
    return 0;
}

}  // namespace

int runCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    ServeOptions o;
    o.argv = args;
    CLI::App app{"deploy-coordinator: rolling deploys across the fleet, status pings, halt holds"};
    hoist::cli::addConfigOption(app, "/etc/hoist/coordinator.toml");
    app.add_option("--state", o.state,
                   "SQLite state file (created when absent), or "
                   "etcd://HOST:PORT[,HOST:PORT...]/PREFIX to run as one of several replicas")
        ->capture_default_str();
    app.add_option("--replica-id", o.replica_id,
                   "this replica's name among the replicas (default: its advertised URL)");
    app.add_option("--lease-ttl", o.lease_ttl_s,
                   "seconds of the election lease (etcd state): a dead leader is replaced after "
                   "about this long");
    app.add_option("--etcd-timeout-ms", o.etcd_timeout_ms,
                   "each etcd request's time limit before the next member is tried");
    app.add_option("--etcd-max-txn-ops", o.etcd_max_txn_ops,
                   "operations per etcd txn (etcd's --max-txn-ops); larger steps are split");
    app.add_flag("--rejoin", o.rejoin,
                 "start even when etcd is unreachable, answering 503 naming it until it answers (a "
                 "replica restarting itself after losing the lead)");
    app.add_flag("--init", o.init,
                 "begin an empty state when the state file is empty or damaged (it is moved "
                 "aside, not deleted); without it such a file is refused");
    app.add_option("--listen", o.listen, "HOST:PORT to serve on (port 0: any free port)");
    app.add_option("--port-file", o.port_file, "write the bound port here");
    app.add_option("--advertise-url", o.advertise_url,
                   "this coordinator's URL as nodes reach it (report_to)");
    app.add_option("--repo", o.repo, "repository URL releases are fetched from");
    app.add_option("--trusted-key", o.trusted_keys,
                   "PEM public key trusted for release signatures (repeatable)");
    app.add_flag("--allow-unsigned", o.allow_unsigned, "accept releases without a valid signature");
    app.add_option("--admin-token-file", o.admin_token_file, "admin bearer token (required)");
    app.add_option("--halt-token-file", o.halt_token_file,
                   "bearer token of SLA monitors (POST /v1/halt)");
    app.add_option(
        "--node-token-file", o.node_token_file,
        "token nodes present (register, pings) and the coordinator presents to node endpoints");
    app.add_option("--provisioner", o.provisioner, "provisioner URL for node add/remove");
    app.add_option("--provisioner-token-file", o.provisioner_token_file,
                   "bearer token for the provisioner");
    app.add_option("--tls-cert", o.tls_cert, "serve HTTPS with this certificate");
    app.add_option("--tls-key", o.tls_key, "and this key");
    app.add_option("--node-client-ca", o.node_client_ca,
                   "mutual TLS: node routes (register, pings, desired) also need a client "
                   "certificate signed by this CA (PEM); needs --tls-cert");
    app.add_option("--ca-file", o.ca_file,
                   "CA bundle (PEM) trusted for https nodes, provisioner and repository "
                   "(default: the system's)");
    app.add_option(
        "--client-cert", o.client_cert,
        "client certificate (PEM) presented to nodes and the provisioner that ask for one");
    app.add_option("--client-key", o.client_key, "and its key");
    app.add_flag("--insecure-no-auth", o.insecure_no_auth,
                 "start without the node, halt or provisioner token (routes left open; warned at "
                 "start and as hoist_insecure_no_auth on /metrics); development only");
    app.add_option("--workers", o.workers, "threads for outgoing node requests");
    app.add_option("--http-threads", o.http_threads, "threads serving the API and pings");
    app.add_option("--poll-after-ms", o.poll_after_ms, "poll a node whose pings are this late");
    app.add_option("--down-after-ms", o.down_after_ms,
                   "check, then mark down, nodes silent this long");
    app.add_flag("--access-log", o.access_log, "log every request");
    app.add_option("--prometheus", o.prometheus,
                   "Prometheus URL metric gates query (GET URL/api/v1/query)");
    app.add_option("--gate", o.gates,
                   "a metric gate for deployments that name none, checked between waves: "
                   "'NAME: QUERY OP NUMBER [for DURATION]' (repeatable)");
    app.add_option("--gate-error-grace-ms", o.gate_error_grace_ms,
                   "a gate whose query keeps failing this long fails");
    app.add_option("--gate-on-fail", o.gate_on_fail,
                   "what a failing gate does: hold (the hold gate/NAME) or revert")
        ->check(CLI::IsMember({"hold", "revert"}));
    hoist::cli::addLogOptions(app, o.log);

    if (auto done = hoist::cli::parse(app, args, "deploy-coordinator", out, err)) return *done;
    hoist::cli::configureLogging(o.log);
    try {
        return serve(o, err);
    } catch (const std::exception& e) {
        err << "deploy-coordinator: internal error: " << e.what() << "\n";
        return exitCode(Errc::Internal);
    }
}

}  // namespace hoist::deploy_coordinator
