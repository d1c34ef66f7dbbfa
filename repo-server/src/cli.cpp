#include <atomic>

#include <CLI/CLI.hpp>

#include "core/cli.hpp"
#include "core/config_file.hpp"
#include "core/daemon.hpp"
#include "core/http_server.hpp"
#include "core/log.hpp"
#include "repo_server/server.hpp"

namespace hoist::repo_server {

namespace {
constexpr std::string_view kComponent = "repo-server";

int serve(const Options& options, std::ostream& err, const std::string& port_file) {
    auto failWith = [&err](const Error& e) {
        err << "repo-server: " << e.describe() << "\n";
        return exitCode(e.code);
    };
    // Signals are blocked before any thread starts: SIGHUP re-reads the token and TLS files.
    std::atomic<http::Server*> running{nullptr};
    daemon::Secret token;
    daemon::ReloadWaiter reloader([&running, &token] {
        daemon::reloadSecrets(kComponent, {token}, [&running]() -> Result<void> {
            auto* s = running.load();
            return s != nullptr ? s->reloadTls() : ok();
        });
    });
    std::atomic<bool> stop_requested{false};
    http::SignalWaiter waiter([&running, &stop_requested] {
        log::info(kComponent, "stopping on a signal");
        stop_requested = true;
        daemon::notifyStopping();
        if (auto* s = running.load()) s->stop();
    });
    auto repo = Repository::open(options.root);
    if (!repo) return failWith(repo.error());
    auto server = makeServer(options, std::make_shared<Repository>(std::move(*repo)), &token);
    if (!server) return failWith(server.error());
    auto port = (*server)->bind();
    if (!port) return failWith(port.error());
    if (!port_file.empty()) {
        if (auto written = (*server)->writePortFile(port_file); !written)
            return failWith(written.error());
    }
    http::Server* raw = server->get();
    log::info(kComponent, "serving",
              {{"root", options.root.string()},
               {"host", options.host},
               {"port", *port},
               {"tls", options.tls_cert.empty() ? "off" : "on"},
               {"uploads", options.token_file.empty() ? "disabled" : "enabled"}});
    running = raw;
    daemon::notifyReady("serving on " + options.host + ":" + std::to_string(*port));
    daemon::Watchdog watchdog(nullptr);
    if (!stop_requested) raw->run();
    running = nullptr;
    log::info(kComponent, "stopped");
    return 0;
}
}  // namespace

int runCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    CLI::App app{
        "repo-server: serves a hoist package repository (packages/<sha256>, "
        "releases/<version>.json) "
        "and accepts uploads with a bearer token",
        "repo-server"};
    Options options;
    std::string root;
    std::string listen = "127.0.0.1:8070";
    std::string port_file;
    std::string token_file;
    hoist::cli::LogOptions log_options;
    bool no_access_log = false;
    hoist::cli::addConfigOption(app, "/etc/hoist/repo-server.toml");
    app.add_option("--root", root, "the repository folder (created when absent)")->required();
    app.add_option("--listen", listen, "HOST:PORT to listen on; port 0 picks a free one")
        ->capture_default_str();
    app.add_option("--port-file", port_file, "write the bound port to this file");
    app.add_option("--token-file", token_file,
                   "file holding the bearer token that uploads must present (none: read-only)");
    app.add_option("--tls-cert", options.tls_cert, "PEM certificate: serve HTTPS");
    app.add_option("--tls-key", options.tls_key, "PEM private key for --tls-cert");
    app.add_option("--tls-client-ca", options.tls_client_ca,
                   "mutual TLS: every client must present a certificate signed by this CA (PEM)");
    app.add_option("--max-upload-bytes", options.max_upload_bytes,
                   "largest package upload accepted")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--threads", options.threads,
                   "requests handled at once (connections cost no thread)")
        ->capture_default_str()
        ->check(CLI::Range(1, 4096));
    app.add_flag("--no-access-log", no_access_log, "do not log a line per request");
    hoist::cli::addLogOptions(app, log_options);

    if (auto done = hoist::cli::parse(app, args, "repo-server", out, err)) return *done;
    if (options.tls_cert.empty() != options.tls_key.empty()) {
        err << "repo-server: --tls-cert and --tls-key go together\n";
        return exitCode(Errc::Invalid);
    }
    auto address = http::parseHostPort(listen);
    if (!address) {
        err << "repo-server: " << address.error().describe() << "\n";
        return exitCode(address.error().code);
    }
    hoist::cli::configureLogging(log_options);
    options.root = root;
    options.host = address->first;
    options.port = address->second;
    options.token_file = token_file;
    options.access_log = !no_access_log;
    try {
        return serve(options, err, port_file);
    } catch (const std::exception& e) {
        err << "repo-server: internal error: " << e.what() << "\n";
        return exitCode(Errc::Internal);
    }
}

}  // namespace hoist::repo_server
