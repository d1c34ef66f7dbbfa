#include <atomic>
#include <memory>

#include "cli_internal.hpp"
#include "core/config_file.hpp"
#include "core/daemon.hpp"
#include "core/http_server.hpp"
#include "core/log.hpp"
#include "pkgmgr/node_server.hpp"

namespace hoist::pkgmgr {

namespace {

struct ServeOptions {
    std::string listen;
    std::string port_file;
    std::string token_file;
    std::string restart_helper;
    std::string layouts;
    int parallel = 8;
    int fetch_retry_for_s = 300;
    int lock_wait_ms = 2000;
    bool no_register = false;
    int pull_interval_ms = 0;
    std::string advertise_url;
    std::string tls_cert;
    std::string tls_key;
    std::string tls_client_ca;
    std::string ca_file;
    std::string client_cert;
    std::string client_key;
};

int serve(Cli& cli, const ServeOptions& o) {
    // Signals are waited for in threads of their own; block them before any thread starts.
    // SIGHUP re-reads the token and TLS files; SIGINT and SIGTERM stop.
    std::atomic<NodeServer*> running{nullptr};
    daemon::ReloadWaiter reloader([&running] {
        auto* s = running.load();
        if (s == nullptr) return;
        daemon::notifyReloading();
        if (auto reloaded = s->reload(); !reloaded)
            log::warn("pkgmgr", "reload: kept the old token or TLS files",
                      {{"error", reloaded.error().describe()}});
        else
            log::info("pkgmgr", "reloaded");
        daemon::notifyReady("reloaded");
    });
    std::atomic<bool> stop_requested{false};
    http::SignalWaiter waiter([&running, &stop_requested] {
        stop_requested = true;
        daemon::notifyStopping();
        if (auto* s = running.load()) s->stop();
    });
    if (o.client_cert.empty() != o.client_key.empty())
        return cli.fail(Error{Errc::Invalid, "--client-cert and --client-key go together", 0});
    if (!o.ca_file.empty() || !o.client_cert.empty())
        http::setDefaultTls({o.ca_file, o.client_cert, o.client_key});
    NodeServerOptions options;
    options.layout = cli.layout();
    options.listen = o.listen;
    options.token_file = o.token_file;
    options.restart_helper = o.restart_helper;
    options.layouts_dir = o.layouts;
    options.fetch_parallel = o.parallel;
    if (o.fetch_retry_for_s < 0 || o.fetch_retry_for_s > 86400)
        return cli.fail(Error{Errc::Invalid, "--fetch-retry-for must be 0 to 86400 seconds", 0});
    options.fetch_retry_for = std::chrono::seconds(o.fetch_retry_for_s);
    options.lock_wait = std::chrono::milliseconds(o.lock_wait_ms);
    options.register_node = !o.no_register;
    options.pull_interval = std::chrono::milliseconds(o.pull_interval_ms);
    options.advertise_url = o.advertise_url;
    options.tls_cert = o.tls_cert;
    options.tls_key = o.tls_key;
    options.tls_client_ca = o.tls_client_ca;
    auto server = NodeServer::create(options);
    if (!server) return cli.fail(server.error());
    if (auto bound = (*server)->bind(); !bound) return cli.fail(bound.error());
    if (!o.port_file.empty()) {
        if (auto written = (*server)->writePortFile(o.port_file); !written)
            return cli.fail(written.error());
    }
    running = server->get();
    if (stop_requested) return 0;
    daemon::notifyReady("serving");
    daemon::Watchdog watchdog(nullptr);
    (*server)->run();
    return 0;
}

}  // namespace

void addNodeCommands(Cli& cli) {
    auto o = std::make_shared<ServeOptions>();
    auto* sub = cli.app.add_subcommand("serve", "run the node endpoint (HTTP, JSON)");
    hoist::cli::addConfigOption(*sub, "/etc/hoist/node.toml");
    sub->add_option("--listen", o->listen, "host:port (default: node.json's listen; port 0: any)");
    sub->add_option("--port-file", o->port_file, "write the bound port here");
    sub->add_option("--token-file", o->token_file,
                    "bearer token for mutating routes (default: node.json's token_file)");
    sub->add_option(
        "--restart-helper", o->restart_helper,
        "restart-helper binary (default: $HOIST_RESTART_HELPER, beside pkgmgr, or PATH)");
    sub->add_option("--layouts", o->layouts,
                    "role rules folder (default: $HOIST_LAYOUTS or built in)");
    sub->add_option("--parallel", o->parallel, "packages stage fetches at once")
        ->check(hoist::cli::wholeNumber(1, 256));
    sub->add_option("--fetch-retry-for", o->fetch_retry_for_s,
                    "seconds a package fetch keeps retrying an unreachable repository")
        ->capture_default_str();
    sub->add_option("--lock-wait", o->lock_wait_ms, "milliseconds to wait for the node lock")
        ->check(hoist::cli::wholeNumber(0));
    sub->add_flag("--no-register", o->no_register, "do not announce this node to the coordinator");
    sub->add_option("--pull-interval-ms", o->pull_interval_ms,
                    "pull mode: ask the coordinator for the desired state this often and apply it "
                    "(0, the default: push mode, the coordinator calls this endpoint)")
        ->check(hoist::cli::wholeNumber(0));
    sub->add_option("--advertise-url", o->advertise_url,
                    "the address registered with the coordinator (default: http://HOST:PORT as "
                    "bound)");
    sub->add_option("--tls-cert", o->tls_cert,
                    "serve HTTPS only, with this certificate (PEM); node.json's coordinator must "
                    "then be https://");
    sub->add_option("--tls-key", o->tls_key, "and this key (PEM)");
    sub->add_option(
        "--tls-client-ca", o->tls_client_ca,
        "mutual TLS: callers (the coordinator) present a certificate signed by this CA");
    sub->add_option("--ca-file", o->ca_file,
                    "CA bundle (PEM) trusted for the https coordinator and repository (default: "
                    "the system's; passed on to the restart helper)");
    sub->add_option("--client-cert", o->client_cert,
                    "client certificate (PEM) presented to a coordinator that asks for one");
    sub->add_option("--client-key", o->client_key, "and its key");
    sub->callback([&cli, o] { cli.action = [&cli, o] { return serve(cli, *o); }; });
}

}  // namespace hoist::pkgmgr
