#include <atomic>
#include <memory>

#include "cli_internal.hpp"
#include "core/http_server.hpp"
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
};

int serve(Cli& cli, const ServeOptions& o) {
    // Signals are waited for in a thread of their own; block them before any thread starts.
    std::atomic<NodeServer*> running{nullptr};
    std::atomic<bool> stop_requested{false};
    http::SignalWaiter waiter([&running, &stop_requested] {
        stop_requested = true;
        if (auto* s = running.load()) s->stop();
    });
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
    auto server = NodeServer::create(options);
    if (!server) return cli.fail(server.error());
    if (auto bound = (*server)->bind(); !bound) return cli.fail(bound.error());
    if (!o.port_file.empty()) {
        if (auto written = (*server)->writePortFile(o.port_file); !written)
            return cli.fail(written.error());
    }
    running = server->get();
    if (stop_requested) return 0;
    (*server)->run();
    return 0;
}

}  // namespace

void addNodeCommands(Cli& cli) {
    auto o = std::make_shared<ServeOptions>();
    auto* sub = cli.app.add_subcommand("serve", "run the node endpoint (HTTP, JSON)");
    sub->add_option("--listen", o->listen, "host:port (default: node.json's listen; port 0: any)");
    sub->add_option("--port-file", o->port_file, "write the bound port here");
    sub->add_option("--token-file", o->token_file,
                    "bearer token for mutating routes (default: node.json's token_file)");
    sub->add_option("--restart-helper", o->restart_helper,
                    "restart-helper binary (default: $HOIST_RESTART_HELPER, beside pkgmgr, or PATH)");
    sub->add_option("--layouts", o->layouts, "role rules folder (default: $HOIST_LAYOUTS or built in)");
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
    sub->callback([&cli, o] { cli.action = [&cli, o] { return serve(cli, *o); }; });
}

}  // namespace hoist::pkgmgr
