// `cluster`: flags and verbs (CLI11), each verb handing over to its function in verbs_*.cpp.
#include "cluster/cli.hpp"

#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>

#include "core/cli.hpp"
#include "core/duration.hpp"
#include "core/strings.hpp"
#include "progress.hpp"
#include "verbs.hpp"

namespace hoist::cluster {

namespace {

std::string env(const char* name) {
    const char* value = std::getenv(name);
    return value != nullptr ? value : "";
}

/// CLI11 check for a duration flag ("30s", "5m").
CLI::Validator durationCheck() {
    return CLI::Validator(
        [](std::string& text) -> std::string {
            auto ms = duration::parseMs(text, "duration");
            return ms ? "" : ms.error().message;
        },
        "DURATION");
}

/// A bash completion script for `app`: its verbs, their verbs and each one's flags.
std::string bashCompletion(const CLI::App& app) {
    std::ostringstream cases;
    std::ostringstream paths;
    std::function<void(const CLI::App&, const std::string&)> walk = [&](const CLI::App& a,
                                                                        const std::string& path) {
        std::vector<std::string> words;
        auto subs = a.get_subcommands(std::function<bool(const CLI::App*)>());
        for (const CLI::App* s : subs) words.push_back(s->get_name());
        for (const CLI::App* at = &a; at != nullptr; at = at->get_parent())
            for (const CLI::Option* o : at->get_options())
                for (const auto& name : o->get_lnames()) words.push_back("--" + name);
        cases << "        \"" << path << "\") words=\"" << strings::join(words, " ") << "\" ;;\n";
        for (const CLI::App* s : subs) {
            std::string sub_path = path + " " + s->get_name();
            paths << "            \"" << sub_path << "\") path=\"$next\" ;;\n";
            walk(*s, sub_path);
        }
    };
    walk(app, "");
    std::ostringstream s;
    s << "# bash completion for cluster: source it, or put it in\n"
         "# /usr/share/bash-completion/completions/cluster (cluster completion bash > FILE)\n"
         "_cluster() {\n"
         "    local cur=${COMP_WORDS[COMP_CWORD]} path=\"\" next i words\n"
         "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
         "        next=\"$path ${COMP_WORDS[i]}\"\n"
         "        case \"$next\" in\n"
      << paths.str()
      << "        esac\n"
         "    done\n"
         "    case \"$path\" in\n"
      << cases.str()
      << "    esac\n"
         "    COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
         "}\n"
         "complete -F _cluster cluster\n";
    return s.str();
}

}  // namespace

int runCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    ClientOptions co;
    co.url = env("CLUSTER_URL");
    co.token = env("CLUSTER_TOKEN");
    co.token_file = env("CLUSTER_TOKEN_FILE");
    co.ca_file = env("CURL_CA_BUNDLE");
    bool json_out = false;
    std::string retry_for = "60s";

    CLI::App app{
        "cluster: the admin command line of the hoist deploy coordinator.\n"
        "Environment: CLUSTER_URL (the coordinator), CLUSTER_TOKEN (the bearer token itself), "
        "CLUSTER_TOKEN_FILE (a file holding it; --token-file wins over both), CURL_CA_BUNDLE "
        "(default of --ca-file)."};
    app.option_defaults()->always_capture_default();
    // Global flags are accepted after the verb too: `cluster nodes --json`.
    app.fallthrough();
    app.require_subcommand(1);
    app.footer(
        "Exit codes: 0 ok, 2 bad usage or input, 7 conflict (nothing to resume, another "
        "deployment runs), 10 a deployment ended other than done, 11 bad token, 12 halted.\n"
        "'cluster VERB --help' shows a verb's flags; 'cluster completion bash' prints bash "
        "completion.");
    app.add_option("--url", co.url, "coordinator URL ($CLUSTER_URL)");
    app.add_option("--token-file", co.token_file,
                   "file holding the bearer token ($CLUSTER_TOKEN_FILE; else $CLUSTER_TOKEN is "
                   "the token)");
    app.add_option("--ca-file", co.ca_file,
                   "PEM bundle of the CAs the coordinator's certificate chains to "
                   "($CURL_CA_BUNDLE; default: the system's)");
    app.add_option("--retry-for", retry_for,
                   "how long to retry while the coordinator is unreachable or answers 5xx (a "
                   "restart, a failover), with backoff up to 5s")
        ->check(durationCheck());
    app.add_flag("--json", json_out, "print one JSON object per command");

    std::function<int(Context&)> action;
    auto verb = [&](CLI::App& parent, const std::string& name, const std::string& help) {
        auto* sub = parent.add_subcommand(name, help);
        sub->fallthrough();
        return sub;
    };

    // upgrade: its options live in one struct, so a new flag is one add_option line here and
    // one field in UpgradeOptions.
    UpgradeOptions up;
    {
        auto* s = verb(app, "upgrade", "roll a release out across the fleet and follow it");
        s->add_option("version", up.version, "release version")->required();
        s->add_option("--max-parallel", up.max_parallel,
                      "agents at once: a count or a percentage of the agents (10%)");
        s->add_option("--max-failures", up.max_failures,
                      "failed nodes tolerated before the rollout stops");
        s->add_option("--min-healthy", up.min_healthy,
                      "how long a node must stay healthy before it counts as done")
            ->check(durationCheck());
        s->add_option("--node-deadline", up.node_deadline,
                      "a node that has not finished this long after it started fails")
            ->check(durationCheck());
        s->add_option("--progress-deadline", up.progress_deadline,
                      "the deployment fails when no node finishes for this long (holds and "
                      "pauses excluded)")
            ->check(durationCheck());
        s->add_flag("--auto-revert", up.auto_revert,
                    "revert upgraded nodes when the failure budget is spent");
        s->add_flag("--dry-run", up.dry_run, "show the plan, touch nothing");
        s->add_flag("--detach", up.detach, "start it and return (re-attach with cluster follow)");
        s->add_flag("--watch", up.watch, "with --detach: follow it all the same");
        s->add_flag("--rehearse", up.rehearse,
                    "predict the rollout on simulated nodes and a simulated clock; touch nothing");
        s->add_option("--inject", up.inject,
                      "with --rehearse: faults, e.g. 'agent-3:health_fail,master-2:silent,"
                      "agent-*:slow=30s' (also stage_fail)");
        s->add_option("--gate", up.gates,
                      "a metric gate checked after each wave settles, before the next: "
                      "'NAME: QUERY OP NUMBER [for DURATION]', e.g. 'error-rate: "
                      "sum(rate(http_errors_total[1m])) < 5 for 30s' (repeatable)");
        s->add_option("--prometheus", up.prometheus,
                      "the Prometheus URL the gates query (default: the coordinator's)");
        s->add_option("--idempotency-key", up.idempotency_key,
                      "key that makes the start safe to send again: a retry with the same key "
                      "gets the same deployment (default: a new one per run)");
        s->callback([&] { action = [&](Context& c) { return upgrade(c, up); }; });
    }

    std::string follow_id;
    {
        auto* s = verb(app, "follow", "re-attach to a deployment and follow it until it ends");
        s->add_option("deployment", follow_id,
                      "deployment id (default: the acting one, else the newest)");
        s->callback([&] { action = [&](Context& c) { return follow(c, follow_id); }; });
    }

    std::string status_id;
    bool status_watch = false;
    {
        auto* s =
            verb(app, "status", "the holds and the deployment acting on nodes (else the newest)");
        s->add_option("deployment", status_id, "deployment id");
        s->add_flag("--watch", status_watch, "keep following the deployment until it ends");
        s->callback(
            [&] { action = [&](Context& c) { return status(c, status_id, status_watch); }; });
    }

    std::string plan_version;
    std::string plan_parallel = "1";
    {
        auto* s = verb(app, "plan", "the waves and each role's package diff (touches nothing)");
        s->add_option("version", plan_version, "release version")->required();
        s->add_option("--max-parallel", plan_parallel, "agents at once: a count or a percentage");
        s->callback(
            [&] { action = [&](Context& c) { return plan(c, plan_version, plan_parallel); }; });
    }

    std::string halt_reason;
    std::string halt_source;
    {
        auto* s = verb(app, "halt",
                       "put a hold: no node action, deployment or provisioning until an admin "
                       "runs unhalt (halt or admin token)");
        s->add_option("--reason", halt_reason, "why")->required();
        s->add_option("--source", halt_source, "name of the hold (default: admin or monitor)");
        s->callback(
            [&] { action = [&](Context& c) { return halt(c, halt_reason, halt_source); }; });
    }

    std::string unhalt_reason;
    std::string unhalt_source;
    {
        auto* s = verb(app, "unhalt",
                       "clear the holds (admin): the only verb that does; the reason goes to the "
                       "audit log");
        s->add_option("--reason", unhalt_reason, "why it is safe to go on")->required();
        s->add_option("--source", unhalt_source, "clear only this hold (default: every hold)");
        s->callback(
            [&] { action = [&](Context& c) { return unhalt(c, unhalt_source, unhalt_reason); }; });
    }

    std::optional<std::int64_t> resume_failures;
    bool resume_watch = false;
    {
        auto* s = verb(app, "resume",
                       "resume a paused or held deployment (admin); holds stay: that is unhalt");
        s->add_option("--max-failures", resume_failures,
                      "new failure budget for a held deployment");
        s->add_flag("--watch", resume_watch, "follow it once resumed");
        s->callback(
            [&] { action = [&](Context& c) { return resume(c, resume_failures, resume_watch); }; });
    }

    std::string verb_target;
    std::string rollback_to;
    bool verb_watch = false;
    for (const auto& [name, help] : std::vector<std::pair<std::string, std::string>>{
             {"rollback", "put every node a deployment upgraded back on its previous generation"},
             {"pause", "stop starting new nodes (running swaps finish)"},
             {"abort", "end a deployment; running swaps finish, nothing more starts"}}) {
        auto* s = verb(app, name, help);
        s->add_option("deployment", verb_target,
                      name == "rollback"
                          ? "deployment id (default: the acting one, else the newest that changed "
                            "nodes)"
                          : "deployment id (default: the acting one, else the newest)");
        if (name == "rollback") {
            s->add_option("--to", rollback_to,
                          "go back to a named earlier release: the generations the newest "
                          "deployment of it left");
            s->add_flag("--watch", verb_watch, "follow the rollback until it ends");
        }
        s->callback([&, name] {
            action = [&, name](Context& c) {
                if (!rollback_to.empty()) {
                    if (!verb_target.empty())
                        return failWith(c, Error{Errc::Invalid,
                                                 "give a deployment or --to VERSION, not both", 0});
                    return rollbackTo(c, rollback_to, verb_watch);
                }
                return command(c, name, verb_target, verb_watch);
            };
        });
    }

    {
        auto* s = verb(app, "nodes", "the fleet: id, role, status, mode, release, generation");
        s->callback([&] { action = [&](Context& c) { return nodes(c); }; });
    }

    int history_limit = 20;
    bool history_events = false;
    {
        auto* s = verb(app, "history", "past deployments (with --events, the audit log)");
        s->add_option("--limit", history_limit, "how many");
        s->add_flag("--events", history_events, "show the audit log instead");
        s->callback([&] {
            action = [&](Context& c) { return history(c, history_limit, history_events); };
        });
    }

    std::string node_role;
    std::int64_t node_count = 1;
    std::string node_id;
    std::string forget_reason;
    {
        auto* node = verb(app, "node", "add, remove or forget nodes");
        node->require_subcommand(1);
        auto* add = verb(*node, "add", "provision new nodes (prints their ids)");
        add->add_option("--role", node_role, "master or agent")->required();
        add->add_option("--count", node_count, "how many")->check(CLI::Range(1, 1000));
        add->callback(
            [&] { action = [&](Context& c) { return nodeAdd(c, node_role, node_count); }; });
        auto* remove = verb(*node, "remove", "decommission a node through the provisioner");
        remove->add_option("node", node_id, "node id")->required();
        remove->callback([&] { action = [&](Context& c) { return nodeRemove(c, node_id); }; });
        auto* forget = verb(*node, "forget",
                            "drop a node from the coordinator's registry (DELETE /v1/nodes/ID)");
        forget->add_option("node", node_id, "node id")->required();
        forget->add_option("--reason", forget_reason, "why (kept in the audit log)")->required();
        forget->callback(
            [&] { action = [&](Context& c) { return nodeForget(c, node_id, forget_reason); }; });
    }

    std::string monitor_name;
    {
        auto* mon = verb(app, "monitors", "the monitors the dead man's switch watches");
        mon->callback([&] {
            if (!action) action = [&](Context& c) { return monitors(c); };
        });
        auto* remove = verb(*mon, "remove", "stop watching a monitor (admin; audited)");
        remove->add_option("name", monitor_name, "monitor name")->required();
        remove->callback(
            [&] { action = [&](Context& c) { return monitorRemove(c, monitor_name); }; });
    }

    ModuleOptions mo;
    mo.repo_url = env("CLUSTER_REPO");
    mo.signing_key_file = env("CLUSTER_SIGNING_KEY");
    mo.repo_token_file = env("CLUSTER_REPO_TOKEN_FILE");
    std::string module_parallel = "1";
    std::int64_t module_failures = 0;
    bool module_detach = false;
    {
        auto* module_cmd =
            verb(app, "module",
                 "install or remove a module: a derived, signed release rolled out like any other");
        module_cmd->require_subcommand(1);
        for (const std::string name : {"install", "remove"}) {
            auto* s =
                verb(*module_cmd, name,
                     name == "install" ? "add a module package (a tarball file, uploaded if needed)"
                                       : "remove a module package by name");
            s->add_option("package", mo.package,
                          name == "install" ? "package tarball path" : "package name")
                ->required();
            s->add_option("--repo", mo.repo_url, "repository URL ($CLUSTER_REPO)");
            s->add_option("--repo-token-file", mo.repo_token_file,
                          "upload token of the repository ($CLUSTER_REPO_TOKEN_FILE)");
            s->add_option("--signing-key", mo.signing_key_file,
                          "Ed25519 private key (PEM) to sign the derived release "
                          "($CLUSTER_SIGNING_KEY)");
            s->add_option("--base", mo.base_version,
                          "release to derive from (default: the fleet's current one)");
            s->add_option("--version", mo.new_version,
                          "version of the derived release (default: <base>+<module> or "
                          "<base>+no-<module>)");
            s->add_option("--role", mo.roles, "roles to change (default: every role)");
            s->add_option("--max-parallel", module_parallel, "agents at once");
            s->add_option("--max-failures", module_failures, "failure budget");
            s->add_flag("--detach", module_detach, "start it and return");
            s->callback([&, name] {
                action = [&, name](Context& c) {
                    mo.install = name == "install";
                    return module(c, mo, module_parallel, module_failures, module_detach);
                };
            });
        }
    }

    std::string shell;
    {
        auto* s = verb(app, "completion", "print a shell completion script (bash)");
        s->add_option("shell", shell, "the shell")->required()->check(CLI::IsMember({"bash"}));
        s->callback([&] {
            action = [&](Context& c) {
                c.out << bashCompletion(app);
                return 0;
            };
        });
    }

    if (auto done = hoist::cli::parse(app, args, "cluster", out, err)) return *done;
    if (!action) {
        err << "cluster: no command given; run 'cluster --help'\n";
        return exitCode(Errc::Invalid);
    }
    auto retry_ms = duration::parseMs(retry_for, "--retry-for");
    if (!retry_ms) {
        err << "cluster: " << retry_ms.error().describe() << "\n";
        return exitCode(Errc::Invalid);
    }
    co.retry_for = std::chrono::milliseconds(*retry_ms);
    Client client(co, err);
    Context c{client, out, err};
    c.json = json_out;
    c.tty = &out == &std::cout && ::isatty(STDOUT_FILENO) != 0 && !json_out;
    c.width = c.tty ? terminalWidth() : 80;
    c.poll = std::chrono::milliseconds(c.tty ? 250 : 500);
    try {
        return action(c);
    } catch (const std::exception& e) {
        err << "cluster: internal error: " << e.what() << "\n";
        return exitCode(Errc::Internal);
    }
}

}  // namespace hoist::cluster
