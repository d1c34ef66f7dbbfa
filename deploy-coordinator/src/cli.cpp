#include "deploy_coordinator/cli.hpp"

#include <charconv>

#include <CLI/CLI.hpp>

#include "api.hpp"
#include "core/cli.hpp"
#include "core/files.hpp"
#include "core/http_server.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"
#include "engine.hpp"

namespace hoist::deploy_coordinator {

namespace {

struct ServeOptions {
    std::string state = "coordinator.db";
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
    size_t workers = 32;
    size_t http_threads = 32;
    std::int64_t poll_after_ms = 3000;
    std::int64_t down_after_ms = 30000;
    bool access_log = false;
    std::string log_level = "info";
    std::string log_format = "text";
};

Result<std::string> readToken(const std::string& file, std::string_view what) {
    if (file.empty()) return std::string();
    auto text = files::readFile(file, 4096);
    if (!text) return std::unexpected(withContext(text.error(), std::string(what) + " token file"));
    std::string token(strings::trim(*text));
    if (token.empty()) return fail(Errc::Invalid, what, " token file ", file, " is empty");
    return token;
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
    // Signals are blocked before any thread starts, so only the waiter sees them.
    std::unique_ptr<http::Server> server_holder;
    http::Server* server_ptr = nullptr;
    std::atomic<bool> stop_requested{false};
    http::SignalWaiter waiter([&] {
        stop_requested = true;
        if (server_ptr != nullptr) server_ptr->stop();
    });

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
    tokens.admin = *admin;
    tokens.halt = *halt;
    tokens.node = *node;

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
    // One coordinator per state file: a second would act on the same nodes without knowing of
    // the first (its holds, its rollout). The lock goes before anything reads or moves the file.
    auto state_lock = files::PidLock::acquire(o.state + ".lock", "state file " + o.state);
    if (!state_lock)
        return failWith(Error{state_lock.error().code,
                              state_lock.error().message +
                                  ": another deploy-coordinator runs on it; stop that one, or "
                                  "give this one its own --state",
                              state_lock.error().sys_errno});
    auto state = State::open(o.state, o.init);
    if (!state) return failWith(state.error());

    http::ServerOptions so;
    so.component = "deploy-coordinator";
    so.host = listen->first;
    so.port = listen->second;
    so.threads = std::max<size_t>(4, o.http_threads);
    so.tls_cert = o.tls_cert;
    so.tls_key = o.tls_key;
    so.access_log = o.access_log;
    so.read_timeout = std::chrono::seconds(10);
    auto server = http::Server::create(so);
    if (!server) return failWith(server.error());
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
    if (!stop_requested) (*server)->run();
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
    app.add_option("--state", o.state, "SQLite state file (created when absent)");
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
