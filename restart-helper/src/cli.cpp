#include "restart_helper/cli.hpp"

#include <functional>

#include <CLI/CLI.hpp>

#include "core/cli.hpp"
#include "core/error.hpp"
#include "core/http_client.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "restart_helper/helper.hpp"

namespace hoist::restart_helper {

namespace {

struct Options {
    std::string root;
    std::string layouts;
    hoist::cli::LogOptions log;
    bool json = false;
    int lock_wait_ms = 10000;
    int ping_grace_ms = 3000;

    SwapRequest swap;
    bool no_start = false;
    BootstrapRequest bootstrap;
    std::vector<std::string> trusted_keys;
    int flush_timeout_ms = 10000;
    // TLS as a client (the repository, the coordinator): default $HOIST_CA_FILE etc., which
    // `pkgmgr serve` sets for the helper it starts.
    http::ClientTls tls = http::defaultTls();
};

void printJournal(std::ostream& out, const Journal& j, bool as_json) {
    if (as_json) {
        out << j.toJson() << "\n";
        return;
    }
    out << j.state << ": generation " << j.from_generation << " -> " << j.to_generation;
    if (!j.message.empty()) out << " (" << j.message << ")";
    out << "\n";
}

}  // namespace

int runCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    CLI::App app{"restart-helper: swaps a node's active set with health checks and rollback",
                 "restart-helper"};
    Options o;
    app.require_subcommand(1);
    app.add_option("--root", o.root, "node root (default: $HOIST_ROOT or /opt/hoist)");
    app.add_option("--layouts", o.layouts,
                   "role rules folder (default: $HOIST_LAYOUTS or built in)");
    hoist::cli::addLogOptions(app, o.log);
    app.add_option("--lock-wait", o.lock_wait_ms, "milliseconds to wait for the node lock")
        ->check(hoist::cli::wholeNumber(0));
    app.add_option("--ping-grace", o.ping_grace_ms,
                   "milliseconds to keep delivering status pings before exiting")
        ->check(hoist::cli::wholeNumber(0));
    app.add_flag("--json", o.json, "print results as JSON");
    app.add_option("--ca-file", o.tls.ca_file,
                   "PEM bundle of the CAs that https servers (repository, coordinator) must chain "
                   "to (default: $HOIST_CA_FILE, else the system's)");
    app.add_option("--client-cert", o.tls.client_cert,
                   "client certificate (PEM) for servers that ask for one ($HOIST_CLIENT_CERT)");
    app.add_option("--client-key", o.tls.client_key, "its private key (PEM) ($HOIST_CLIENT_KEY)");

    std::function<int(Helper&)> action;

    auto* swap = app.add_subcommand("swap",
                                    "stop the service, switch to a generation, start, check; "
                                    "roll back when it does not come up");
    swap->add_option("--to", o.swap.to, "the generation to switch to")->required();
    swap->add_option("--deployment", o.swap.deployment, "deployment id for the status pings");
    swap->add_option("--report-to", o.swap.report_to,
                     "coordinator URL for the status pings (default: node.json's)");
    swap->add_option("--operation", o.swap.operation, "operation id (default: a new one)");
    swap->add_option("--epoch", o.swap.epoch,
                     "coordinator epoch the restart was sent under; refused when the node has "
                     "seen a higher one (default: none)")
        ->check(hoist::cli::wholeNumber(0));
    swap->callback([&] {
        action = [&](Helper& h) {
            auto done = h.swap(o.swap);
            if (!done) {
                err << "restart-helper: " << done.error().describe() << "\n";
                return exitCode(done.error().code);
            }
            printJournal(out, *done, o.json);
            return exitCodeFor(done->state);
        };
    });

    auto* recover = app.add_subcommand(
        "recover", "finish or undo a swap a crash interrupted; at boot, start the service");
    recover->add_flag("--no-start", o.no_start,
                      "do not start the current generation's service when it is not running");
    recover->callback([&] {
        action = [&](Helper& h) {
            auto done = h.recover(!o.no_start);
            if (!done) {
                err << "restart-helper: " << done.error().describe() << "\n";
                return exitCode(done.error().code);
            }
            if (!*done) {
                if (o.json)
                    out << "{\"recovered\":null}\n";
                else
                    out << "nothing to recover\n";
                return 0;
            }
            printJournal(out, **done, o.json);
            return exitCodeFor((*done)->state);
        };
    });

    auto* bootstrap =
        app.add_subcommand("bootstrap", "turn an empty root into a running node from a repository");
    bootstrap->add_option("--repo", o.bootstrap.repository, "repository URL (http, https, file)")
        ->required();
    bootstrap->add_option("--release", o.bootstrap.release, "release version")->required();
    bootstrap->add_option("--role", o.bootstrap.role, "node role (master, agent)")->required();
    bootstrap->add_option("--coordinator", o.bootstrap.coordinator, "coordinator URL");
    bootstrap->add_option("--id", o.bootstrap.id, "node id (default: the host name)");
    auto* unsigned_flag = bootstrap->add_flag("--allow-unsigned", o.bootstrap.allow_unsigned,
                                              "accept a release without a signature");
    bootstrap
        ->add_option("--trusted-key", o.trusted_keys, "public key (PEM) releases are signed with")
        ->excludes(unsigned_flag);
    bootstrap->add_option("--coordinator-token-file", o.bootstrap.coordinator_token_file,
                          "file with the token this node presents to the coordinator");
    bootstrap->add_option("--service-manager", o.bootstrap.service_manager, "process or systemd")
        ->check(CLI::IsMember({"process", "systemd"}));
    bootstrap->add_option("--systemd-unit", o.bootstrap.systemd_unit,
                          "unit of the service (systemd)");
    bootstrap->add_option("--listen", o.bootstrap.listen, "address `pkgmgr serve` listens on");
    bootstrap->add_option("--parallel", o.bootstrap.parallel, "packages fetched at once");
    bootstrap->callback([&] {
        action = [&](Helper& h) {
            for (const auto& key : o.trusted_keys) o.bootstrap.trusted_keys.emplace_back(key);
            auto done = h.bootstrap(o.bootstrap);
            if (!done) {
                err << "restart-helper: " << done.error().describe() << "\n";
                return exitCode(done.error().code);
            }
            printJournal(out, *done, o.json);
            return exitCodeFor(done->state);
        };
    });

    auto* status =
        app.add_subcommand("status", "the transaction under way, the last one, the service");
    status->callback([&] {
        action = [&](Helper& h) {
            auto s = h.status();
            if (!s) {
                err << "restart-helper: " << s.error().describe() << "\n";
                return exitCode(s.error().code);
            }
            if (o.json) {
                out << s->toJson() << "\n";
                return 0;
            }
            out << "current generation: " << (s->current ? std::to_string(*s->current) : "none")
                << "\n";
            out << "service: " << (s->service_running ? "running" : "not running");
            if (!s->service_detail.empty()) out << " (" << s->service_detail << ")";
            out << "\n";
            if (s->transaction)
                out << "transaction: " << s->transaction->operation << " " << s->transaction->state
                    << "\n";
            if (s->last)
                out << "last transaction: " << s->last->operation << " " << s->last->state
                    << (s->last->message.empty() ? "" : " (" + s->last->message + ")") << "\n";
            out << "pings queued: " << s->pings_queued << "\n";
            if (!s->pings_damaged.empty())
                out << "pings damaged (set aside, never sent): " << s->pings_damaged.size() << "\n";
            return 0;
        };
    });

    auto* flush = app.add_subcommand("flush", "deliver the queued status pings now");
    flush->add_option("--timeout", o.flush_timeout_ms, "milliseconds to keep trying");
    flush->callback([&] {
        action = [&](Helper& h) {
            auto flushed = h.flush(std::chrono::milliseconds(o.flush_timeout_ms));
            if (!flushed) {
                err << "restart-helper: " << flushed.error().describe() << "\n";
                return exitCode(flushed.error().code);
            }
            if (o.json) {
                json::Writer w;
                w.beginObject().field("left", static_cast<std::uint64_t>(flushed->left));
                w.key("damaged").beginArray();
                for (const auto& file : flushed->damaged) w.value(file.string());
                w.endArray().endObject();
                out << w.str() << "\n";
            } else {
                out << flushed->left << " pings left\n";
            }
            if (!flushed->damaged.empty()) {
                err << "restart-helper: " << flushed->damaged.size()
                    << " queued ping(s) were unreadable and set aside, never sent:";
                for (const auto& file : flushed->damaged) err << " " << file.string();
                err << "\n(the coordinator may have missed those steps: check 'cluster status'; "
                       "delete the files once looked at)\n";
                return exitCode(Errc::Corrupt);
            }
            return flushed->left == 0 ? 0 : exitCode(Errc::Network);
        };
    });

    // Global options (--json, --root, ...) may also come after the verb.
    for (auto* sub : app.get_subcommands({})) sub->fallthrough();

    if (auto done = hoist::cli::parse(app, args, "restart-helper", out, err)) return *done;
    hoist::cli::configureLogging(o.log);
    if (o.tls.client_cert.empty() != o.tls.client_key.empty()) {
        err << "restart-helper: --client-cert and --client-key go together\n";
        return exitCode(Errc::Invalid);
    }
    http::setDefaultTls(o.tls);

    HelperOptions options;
    options.layout = pkgmgr::NodeLayout::at(o.root.empty() ? pkgmgr::NodeLayout::defaultRoot()
                                                           : fs::path(o.root));
    options.layouts_dir = o.layouts;
    options.lock_wait = std::chrono::milliseconds(o.lock_wait_ms);
    options.ping_grace = std::chrono::milliseconds(o.ping_grace_ms);
    auto helper = Helper::open(options);
    if (!helper) {
        err << "restart-helper: " << helper.error().describe() << "\n";
        return exitCode(helper.error().code);
    }
    try {
        return action(*helper);
    } catch (const std::exception& e) {
        err << "restart-helper: internal error: " << e.what() << "\n";
        return exitCode(Errc::Internal);
    }
}

}  // namespace hoist::restart_helper
