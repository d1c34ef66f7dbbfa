#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <thread>

#include <CLI/CLI.hpp>

#include "cli_api.hpp"
#include "cli_print.hpp"
#include "core/cli.hpp"
#include "core/crypto.hpp"
#include "core/files.hpp"
#include "core/http_client.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"
#include "deploy_coordinator/cli.hpp"
#include "deploy_coordinator/plan.hpp"
#include "deploy_coordinator/states.hpp"
#include "module_release.hpp"

namespace hoist::deploy_coordinator {

namespace {

using namespace cli_print;
using namespace cli_api;

}  // namespace

int runClusterCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    ClusterOptions o;
    if (const char* url = std::getenv("CLUSTER_URL")) o.url = url;
    if (const char* token = std::getenv("CLUSTER_TOKEN")) o.token = token;
    CLI::App app{"cluster: admin CLI of the hoist deploy coordinator (CLUSTER_URL, CLUSTER_TOKEN)"};
    app.require_subcommand(1);
    app.add_option("--url", o.url, "coordinator URL (default: $CLUSTER_URL)");
    app.add_option("--token-file", o.token_file,
                   "file holding the bearer token (default: $CLUSTER_TOKEN)");
    app.add_flag("--json", o.json, "print JSON results");

    Api api(o);
    std::function<int()> action;
    auto failWith = [&err](const Error& e) {
        err << "cluster: " << e.describe() << "\n";
        return exitCode(e.code);
    };
    auto printJsonOr = [&](const Result<std::string>& r,
                           const std::function<void(const json::Value&)>& human) {
        if (!r) return failWith(r.error());
        if (o.json) {
            out << json::pretty(*r) << "\n";
            return 0;
        }
        auto doc = json::parse(*r, "reply");
        if (!doc) return failWith(doc.error());
        human(*doc);
        return 0;
    };

    // upgrade
    std::string version;
    std::string max_parallel = "1";
    std::int64_t max_failures = 0;
    std::int64_t min_healthy_ms = 0;
    bool auto_revert = false;
    bool dry_run = false;
    bool detach = false;
    auto* upgrade = app.add_subcommand("upgrade", "roll a release out across the fleet");
    upgrade->add_option("version", version, "release version")->required();
    upgrade->add_option("--max-parallel", max_parallel,
                        "agents at once: a count or a percentage (10%)");
    upgrade->add_option("--max-failures", max_failures,
                        "failed nodes tolerated before the rollout stops");
    upgrade->add_option("--min-healthy-ms", min_healthy_ms, "how long a node must stay healthy");
    upgrade->add_flag("--auto-revert", auto_revert,
                      "revert upgraded nodes when the failure budget is spent");
    upgrade->add_flag("--dry-run", dry_run, "show the plan, touch nothing");
    upgrade->add_flag("--detach", detach, "start it and return");
    bool rehearse = false;
    std::string inject;
    upgrade->add_flag(
        "--rehearse", rehearse,
        "predict the rollout on simulated nodes and a simulated clock; touch nothing");
    upgrade->add_option("--inject", inject,
                        "with --rehearse: faults, e.g. 'agent-3:health_fail,master-2:silent,"
                        "agent-*:slow=30s' (also stage_fail)");
    std::vector<std::string> gates;
    std::string prometheus;
    upgrade->add_option("--gate", gates,
                        "a metric gate checked after each wave settles, before the next: "
                        "'NAME: QUERY OP NUMBER [for DURATION]', e.g. 'error-rate: "
                        "sum(rate(http_errors_total[1m])) < 5 for 30s' (repeatable)");
    upgrade->add_option("--prometheus", prometheus,
                        "the Prometheus URL the gates query (default: the coordinator's)");
    upgrade->callback([&] {
        action = [&] {
            if (auto valid = validateMaxParallel(max_parallel); !valid)
                return failWith(valid.error());
            if (!prometheus.empty() && gates.empty())
                return failWith(Error{Errc::Invalid, "--prometheus goes with --gate", 0});
            if (dry_run) {
                auto r = api.call("GET", "/v1/plan?version=" + http::urlEncode(version) +
                                             "&max_parallel=" + http::urlEncode(max_parallel));
                return printJsonOr(r, [&](const json::Value& plan) { out << printPlan(plan); });
            }
            if (!inject.empty() && !rehearse)
                return failWith(Error{Errc::Invalid, "--inject goes with --rehearse", 0});
            json::Writer w;
            w.beginObject()
                .field("version", version)
                .field("max_parallel", max_parallel)
                .field("max_failures", max_failures)
                .field("auto_revert", auto_revert)
                .field("min_healthy_ms", min_healthy_ms);
            if (rehearse) w.field("inject", inject);
            if (!gates.empty()) {
                w.key("gates").beginArray();
                for (const auto& g : gates) w.value(g);
                w.endArray();
                if (!prometheus.empty()) w.field("prometheus", prometheus);
            }
            w.endObject();
            if (rehearse) {
                auto r = api.call("POST", "/v1/rehearsals", w.str());
                return printJsonOr(r, [&](const json::Value& p) { out << printRehearsal(p); });
            }
            auto started = api.call("POST", "/v1/deployments", w.str());
            if (!started) return failWith(started.error());
            auto doc = json::parseObject(*started, "deployment");
            if (!doc) return failWith(doc.error());
            std::string id = str(*doc, "id");
            if (detach) {
                if (o.json)
                    out << json::pretty(*started) << "\n";
                else
                    out << "started " << id << " (" << version
                        << "); follow it with 'cluster status'\n";
                return 0;
            }
            if (!o.json) err << "started " << id << " (" << version << ")\n";
            return follow(api, id, o.json, out, err);
        };
    });

    std::string deployment;
    auto* status = app.add_subcommand("status", "the running (or latest) deployment and the holds");
    status->add_option("deployment", deployment, "deployment id (default: the latest)");
    status->callback([&] {
        action = [&] {
            if (deployment.empty()) {
                Error e;
                deployment = latestDeployment(api, e);
                if (deployment.empty() && e.code != Errc::NotFound) return failWith(e);
            }
            auto holds = api.call("GET", "/v1/halt");
            if (!holds) return failWith(holds.error());
            if (o.json) {
                std::string d = "null";
                if (!deployment.empty()) {
                    auto r = api.call("GET", "/v1/deployments/" + deployment + "?events=20");
                    if (!r) return failWith(r.error());
                    d = *r;
                }
                json::Writer w;
                w.beginObject().key("deployment").raw(d).key("halt").raw(*holds).endObject();
                out << json::pretty(w.str()) << "\n";
                return 0;
            }
            auto hd = json::parseObject(*holds, "halt");
            if (hd) {
                if (const auto* list = member(*hd, "holds"); list != nullptr && list->IsArray()) {
                    if (list->Empty()) out << "no holds\n";
                    for (const auto& h : list->GetArray()) {
                        out << "HALTED by " << str(h, "source") << " since " << str(h, "since")
                            << ": " << str(h, "reason") << "\n";
                        if (const auto* alerts = member(h, "alerts");
                            alerts != nullptr && alerts->IsArray() && !alerts->Empty())
                            out << "  " << alerts->Size() << " alert(s) firing when it was put\n";
                        if (auto resolved = str(h, "resolved"); !resolved.empty())
                            out << "  resolved by the monitor at " << resolved
                                << ": clear it with `cluster resume --source " << str(h, "source")
                                << "`\n";
                    }
                }
            }
            if (deployment.empty()) {
                out << "no deployment yet\n";
                return 0;
            }
            auto r = api.call("GET", "/v1/deployments/" + deployment + "?nodes=0&events=0");
            if (!r) return failWith(r.error());
            auto d = json::parseObject(*r, "deployment");
            if (!d) return failWith(d.error());
            out << describeDeployment(*d) << "\n";
            return 0;
        };
    });

    std::string plan_version;
    std::string plan_parallel = "1";
    auto* plan =
        app.add_subcommand("plan", "the waves and each role's package diff (touches nothing)");
    plan->add_option("version", plan_version, "release version")->required();
    plan->add_option("--max-parallel", plan_parallel, "agents at once: a count or a percentage");
    plan->callback([&] {
        action = [&] {
            auto r = api.call("GET", "/v1/plan?version=" + http::urlEncode(plan_version) +
                                         "&max_parallel=" + http::urlEncode(plan_parallel));
            return printJsonOr(r, [&](const json::Value& p) { out << printPlan(p); });
        };
    });

    std::string reason;
    std::string source;
    auto* halt = app.add_subcommand(
        "halt", "put a hold: no node action, deployment or provisioning until cleared");
    halt->add_option("--reason", reason, "why")->required();
    halt->add_option("--source", source,
                     "name of the hold (default: who you are: admin or monitor)");
    halt->callback([&] {
        action = [&] {
            json::Writer w;
            w.beginObject().field("reason", reason);
            if (!source.empty()) w.field("source", source);
            w.endObject();
            auto r = api.call("POST", "/v1/halt", w.str());
            return printJsonOr(r, [&](const json::Value& h) {
                out << "halted: hold '" << str(h, "source") << "' since " << str(h, "since")
                    << "\n";
                if (auto warning = str(h, "warning"); !warning.empty())
                    err << "cluster: warning: " << warning << "\n";
            });
        };
    });

    std::string resume_source;
    std::optional<std::int64_t> resume_failures;
    auto* resume = app.add_subcommand(
        "resume", "clear the holds (admin) and resume a paused or held deployment");
    resume->add_option("--source", resume_source, "clear only this hold");
    resume->add_option("--max-failures", resume_failures,
                       "new failure budget for a held deployment");
    resume->callback([&] {
        action = [&] {
            auto holds = api.call("GET", "/v1/halt");
            if (!holds) return failWith(holds.error());
            auto hd = json::parseObject(*holds, "halt");
            bool cleared = false;
            bool halted = hd && member(*hd, "halted") != nullptr && (*hd)["halted"].IsBool() &&
                          (*hd)["halted"].GetBool();
            if (halted || !resume_source.empty()) {
                auto r = api.call("DELETE", resume_source.empty()
                                                ? "/v1/halt"
                                                : "/v1/halt/" + http::urlEncode(resume_source));
                if (!r) return failWith(r.error());
                out << "holds cleared\n";
                cleared = true;
            }
            auto nothing = [&](const std::string& why) {
                if (cleared) return 0;
                err << "cluster: nothing to resume: no hold stands, and " << why << "\n";
                return exitCode(Errc::Conflict);
            };
            Error e;
            std::string id = latestDeployment(api, e);
            if (id.empty()) return nothing("there is no deployment");
            auto d = api.call("GET", "/v1/deployments/" + id + "?nodes=0&events=0");
            if (!d) return failWith(d.error());
            auto doc = json::parseObject(*d, "deployment");
            if (!doc) return failWith(doc.error());
            std::string state = str(*doc, "state");
            auto parsed = parseDeploymentState(state);
            if (parsed == DeploymentState::paused || parsed == DeploymentState::held) {
                std::string body;
                if (resume_failures)
                    body = detail::concat("{\"max_failures\":", *resume_failures, "}");
                auto r = api.call("POST", "/v1/deployments/" + id + "/resume", body);
                if (!r) return failWith(r.error());
                out << "resumed " << id << "\n";
            } else if (parsed && isActive(*parsed)) {
                out << id << " continues (" << state << ")\n";
            } else {
                return nothing("deployment " + id + " is " + state);
            }
            return 0;
        };
    });

    std::string verb_target;
    std::string rollback_to;
    auto addVerb = [&](const std::string& verb, const std::string& help) {
        auto* sub = app.add_subcommand(verb, help);
        if (verb == "rollback")
            sub->add_option("--to", rollback_to,
                            "go back to a named earlier release: the generations the newest "
                            "deployment of it left");
        sub->add_option(
            "deployment", verb_target,
            verb == "rollback"
                ? "deployment id (default: the acting one, else the newest that changed nodes)"
                : "deployment id (default: the acting one, else the newest)");
        sub->callback([&, verb] {
            action = [&, verb] {
                if (!rollback_to.empty()) {
                    if (!verb_target.empty())
                        return failWith(
                            Error{Errc::Invalid, "give a deployment or --to VERSION, not both", 0});
                    json::Writer w;
                    w.beginObject().field("to", rollback_to).endObject();
                    auto r = api.call("POST", "/v1/rollbacks", w.str());
                    return printJsonOr(
                        r, [&](const json::Value& d) { out << describeDeployment(d) << "\n"; });
                }
                if (verb_target.empty()) {
                    Error e;
                    verb_target = latestDeployment(api, e, verb == "rollback");
                    if (verb_target.empty()) return failWith(e);
                }
                auto r = api.call("POST", "/v1/deployments/" + verb_target + "/" + verb);
                return printJsonOr(
                    r, [&](const json::Value& d) { out << describeDeployment(d) << "\n"; });
            };
        });
    };
    addVerb("rollback", "put every node a deployment upgraded back on its previous generation");
    addVerb("pause", "stop starting new nodes (running swaps finish)");
    addVerb("abort", "end a deployment; running swaps finish, nothing more starts");

    auto* nodes = app.add_subcommand("nodes", "the fleet");
    nodes->callback([&] {
        action = [&] {
            return printJsonOr(api.call("GET", "/v1/nodes"), [&](const json::Value& doc) {
                const auto* list = member(doc, "nodes");
                if (list == nullptr || !list->IsArray()) return;
                for (const auto& n : list->GetArray())
                    out << str(n, "node") << "  " << str(n, "role") << "  " << str(n, "status")
                        << "  " << str(n, "mode") << "  release " << str(n, "release")
                        << "  generation " << num(n, "generation") << "  last seen "
                        << str(n, "last_seen") << "\n";
            });
        };
    });

    int history_limit = 20;
    bool history_events = false;
    auto* history =
        app.add_subcommand("history", "past deployments (and with --events the audit log)");
    history->add_option("--limit", history_limit, "how many");
    history->add_flag("--events", history_events, "show the audit log instead");
    history->callback([&] {
        action = [&] {
            if (history_events) {
                return printJsonOr(
                    api.call("GET", "/v1/events?limit=" + std::to_string(history_limit)),
                    [&](const json::Value& doc) {
                        const auto* list = member(doc, "events");
                        if (list == nullptr || !list->IsArray()) return;
                        for (const auto& e : list->GetArray())
                            out << str(e, "time") << "  " << str(e, "actor") << "  "
                                << str(e, "action")
                                << (str(e, "deployment").empty() ? "" : "  " + str(e, "deployment"))
                                << (str(e, "node").empty() ? "" : "  " + str(e, "node"))
                                << (str(e, "detail").empty() ? "" : "  " + str(e, "detail"))
                                << "\n";
                    });
            }
            return printJsonOr(
                api.call("GET", "/v1/deployments?limit=" + std::to_string(history_limit)),
                [&](const json::Value& doc) {
                    const auto* list = member(doc, "deployments");
                    if (list == nullptr || !list->IsArray()) return;
                    for (const auto& d : list->GetArray())
                        out << str(d, "created") << "  " << describeDeployment(d) << "\n";
                });
        };
    });

    std::string node_role;
    std::int64_t node_count = 1;
    std::string node_id;
    auto* node = app.add_subcommand("node", "add or remove nodes through the provisioner");
    node->require_subcommand(1);
    auto* node_add = node->add_subcommand("add", "provision new nodes");
    node_add->add_option("--role", node_role, "master or agent")->required();
    node_add->add_option("--count", node_count, "how many");
    node_add->callback([&] {
        action = [&] {
            json::Writer w;
            w.beginObject().field("role", node_role).field("count", node_count).endObject();
            return printJsonOr(
                api.call("POST", "/v1/cluster/nodes", w.str()), [&](const json::Value&) {
                    out << "requested " << node_count << " " << node_role << " node(s)\n";
                });
        };
    });
    auto* node_remove = node->add_subcommand("remove", "decommission a node");
    node_remove->add_option("node", node_id, "node id")->required();
    node_remove->callback([&] {
        action = [&] {
            return printJsonOr(api.call("DELETE", "/v1/cluster/nodes/" + http::urlEncode(node_id)),
                               [&](const json::Value&) { out << "removed " << node_id << "\n"; });
        };
    });

    ModuleOptions mo;
    if (const char* repo = std::getenv("CLUSTER_REPO")) mo.repo_url = repo;
    if (const char* key = std::getenv("CLUSTER_SIGNING_KEY")) mo.signing_key_file = key;
    if (const char* token = std::getenv("CLUSTER_REPO_TOKEN_FILE")) mo.repo_token_file = token;
    auto* module = app.add_subcommand(
        "module",
        "install or remove a module: a derived, signed release rolled out like any other");
    module->require_subcommand(1);
    for (const char* verb : {"install", "remove"}) {
        auto* sub = module->add_subcommand(
            verb, std::string(verb) == "install"
                      ? "add a module package (a tarball file, uploaded if needed)"
                      : "remove a module package by name");
        sub->add_option("package", mo.package,
                        std::string(verb) == "install" ? "package tarball path" : "package name")
            ->required();
        sub->add_option("--repo", mo.repo_url, "repository URL (default: $CLUSTER_REPO)");
        sub->add_option("--repo-token-file", mo.repo_token_file,
                        "upload token of the repository (default: $CLUSTER_REPO_TOKEN_FILE)");
        sub->add_option("--signing-key", mo.signing_key_file,
                        "Ed25519 private key (PEM) to sign the derived release (default: "
                        "$CLUSTER_SIGNING_KEY)");
        sub->add_option("--base", mo.base_version,
                        "release to derive from (default: the fleet's current one)");
        sub->add_option(
            "--version", mo.new_version,
            "version of the derived release (default: <base>+<module> or <base>-no-<module>)");
        sub->add_option("--role", mo.roles, "roles to change (default: every role)");
        sub->add_option("--max-parallel", max_parallel, "agents at once");
        sub->add_option("--max-failures", max_failures, "failure budget");
        sub->add_flag("--detach", detach, "start it and return");
        sub->callback([&, verb] {
            action = [&, verb] {
                mo.install = std::string(verb) == "install";
                if (mo.base_version.empty()) {
                    auto fleet = api.call("GET", "/v1/nodes");
                    if (!fleet) return failWith(fleet.error());
                    auto doc = json::parseObject(*fleet, "nodes");
                    if (!doc) return failWith(doc.error());
                    std::map<std::string, int> count;
                    if (const auto* list = member(*doc, "nodes");
                        list != nullptr && list->IsArray())
                        for (const auto& n : list->GetArray())
                            if (str(n, "status") != "removed" && !str(n, "release").empty())
                                count[str(n, "release")]++;
                    int best = 0;
                    for (const auto& [v, c] : count)
                        if (c > best) best = c, mo.base_version = v;
                    if (mo.base_version.empty())
                        return failWith(
                            Error{Errc::NotFound, "no node reports a release; pass --base", 0});
                }
                auto derived = publishModuleRelease(mo, err);
                if (!derived) return failWith(derived.error());
                err << "published release " << *derived << "\n";
                json::Writer w;
                w.beginObject()
                    .field("version", *derived)
                    .field("max_parallel", max_parallel)
                    .field("max_failures", max_failures)
                    .endObject();
                auto started = api.call("POST", "/v1/deployments", w.str());
                if (!started) return failWith(started.error());
                auto sd = json::parseObject(*started, "deployment");
                if (!sd) return failWith(sd.error());
                std::string id = str(*sd, "id");
                if (detach) {
                    out << "started " << id << " (" << *derived << ")\n";
                    return 0;
                }
                return follow(api, id, o.json, out, err);
            };
        });
    }

    if (auto done = hoist::cli::parse(app, args, "cluster", out, err)) return *done;
    if (!action) {
        err << "cluster: no command given; run 'cluster --help'\n";
        return exitCode(Errc::Invalid);
    }
    try {
        return action();
    } catch (const std::exception& e) {
        err << "cluster: internal error: " << e.what() << "\n";
        return exitCode(Errc::Internal);
    }
}

}  // namespace hoist::deploy_coordinator
