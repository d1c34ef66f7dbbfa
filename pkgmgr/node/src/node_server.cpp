#include "pkgmgr/node_server.hpp"

#include "node_server_impl.hpp"

namespace hoist::pkgmgr {

namespace {

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

}  // namespace

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
