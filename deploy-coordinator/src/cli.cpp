#include "deploy_coordinator/cli.hpp"

#include <charconv>

#include <CLI/CLI.hpp>

#include "api.hpp"
#include "core/cli.hpp"
#include "core/config_file.hpp"
#include "core/daemon.hpp"
#include "core/files.hpp"
#include "core/http_server.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"
#include "engine.hpp"

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
    std::string log_level = "info";
    std::string log_format = "text";
};

Result<daemon::Secret> readToken(const std::string& file, std::string_view what) {
    return daemon::Secret::fromFile(file, std::string(what) + " token");
}

Result<std::pair<std::string, int>> parseListen(const std::string& listen) {
    auto colon = listen.rfind(':');
    if (colon == std::string::npos)
        return fail(Errc::Invalid, "--listen '", listen,
                    "' must be HOST:PORT (port 0 picks a free one)");
    int port = -1;
    auto digits = std::string_view(listen).substr(colon + 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (ec != std::errc() || end != digits.data() + digits.size() || port < 0 || port > 65535)
        return fail(Errc::Invalid, "--listen '", listen, "': port must be 0 to 65535");
    return std::pair{listen.substr(0, colon), port};
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
        return failWith(daemon::missingCredential("deploy-coordinator",
                                                  "--" + strings::join(missing, ", --"),
                                                  "a token file for each"));
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
        daemon::notifyReloading();
        bool all = true;
        for (auto* secret : {&tokens.admin, &tokens.halt, &tokens.node, &*prov}) {
            if (auto r = secret->reload(); !r) {
                all = false;
                log::warn("deploy-coordinator", "reload: kept the old token",
                          {{"error", r.error().describe()}});
            }
        }
        if (auto* s = reload_target.load()) {
            if (auto r = s->reloadTls(); !r) {
                all = false;
                log::warn("deploy-coordinator", "reload: kept the old TLS files",
                          {{"error", r.error().describe()}});
            }
        }
        log::info("deploy-coordinator", all ? "reloaded" : "reloaded with errors");
        daemon::notifyReady("reloaded");
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

    auto listen = parseListen(o.listen);
    if (!listen) return failWith(listen.error());
    if (o.state.empty()) return failWith(Error{Errc::Invalid, "--state must name a file", 0});
    if (o.state == kDefaultState && !std::filesystem::is_directory(
                                        std::filesystem::path(o.state).parent_path()))
        return failWith(Error{Errc::NotFound,
                              std::string("the default state folder ") +
                                  std::filesystem::path(o.state).parent_path().string() +
                                  " does not exist: install the hoist-coordinator package or "
                                  "pass --state FILE",
                              0});
    auto state = State::open(o.state, o.init);
    if (!state) return failWith(state.error());

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
        daemon::warnInsecure("deploy-coordinator", (*server)->metrics(), strings::join(missing, ","));
    auto port = (*server)->bind();
    if (!port) return failWith(port.error());
    std::string scheme = o.tls_cert.empty() ? "http://" : "https://";
    std::string host = so.host == "0.0.0.0" ? "127.0.0.1" : so.host;
    eo.advertise_url =
        o.advertise_url.empty() ? scheme + host + ":" + std::to_string(*port) : o.advertise_url;

    auto engine = Engine::create(**state, eo);
    if (!engine) return failWith(engine.error());
    Engine* engine_ptr = engine->get();
    auto watch = MonitorWatch::create(
        **state, {[engine_ptr] { return engine_ptr->acting(); },
                  [engine_ptr](const std::string& source, const std::string& reason) {
                      return engine_ptr->halt(source, reason, "coordinator");
                  },
                  nowMs});
    if (!watch) return failWith(watch.error());
    registerRoutes(**server, **engine, **watch, tokens);
    (*engine)->start();
    (*watch)->start();
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
    log::info("deploy-coordinator", "stopped");
    return 0;
}

}  // namespace

int runCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    ServeOptions o;
    CLI::App app{"deploy-coordinator: rolling deploys across the fleet, status pings, halt holds"};
    hoist::cli::addConfigOption(app, "/etc/hoist/coordinator.toml");
    app.add_option("--state", o.state, "SQLite state file (created when absent)")
        ->capture_default_str();
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
    app.add_option("--client-cert", o.client_cert,
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
    app.add_option("--log-level", o.log_level, "debug, info, warn or error")
        ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
    app.add_option("--log-format", o.log_format, "text or json")
        ->check(CLI::IsMember({"text", "json"}));

    if (auto done = hoist::cli::parse(app, args, "deploy-coordinator", out, err)) return *done;
    log::Level level = log::Level::Info;
    log::Format format = log::Format::Text;
    log::parseLevel(o.log_level, level);
    log::parseFormat(o.log_format, format);
    log::configure(level, format);
    try {
        return serve(o, err);
    } catch (const std::exception& e) {
        err << "deploy-coordinator: internal error: " << e.what() << "\n";
        return exitCode(Errc::Internal);
    }
}

}  // namespace hoist::deploy_coordinator
