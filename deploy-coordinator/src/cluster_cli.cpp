#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <thread>

#include <CLI/CLI.hpp>

#include "core/crypto.hpp"
#include "core/files.hpp"
#include "core/http_client.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"
#include "deploy_coordinator/cli.hpp"
#include "deploy_coordinator/plan.hpp"
#include "module_release.hpp"

namespace hoist::deploy_coordinator {

namespace {

struct ClusterOptions {
    std::string url;
    std::string token;
    std::string token_file;
    bool json = false;
};

/// Talks to the coordinator's API; 4xx/5xx become errors carrying the server's message.
class Api {
public:
    explicit Api(const ClusterOptions& o) : o_(o) {}

    Result<std::string> call(const std::string& method, const std::string& path,
                             const std::string& body = "") {
        HOIST_TRY(ready());
        http::Request request;
        request.method = method;
        request.url = http::joinUrl(o_.url, path);
        request.headers.push_back(http::bearer(token_));
        if (!body.empty()) request.headers.push_back({"Content-Type", "application/json"});
        request.body = body;
        request.timeout = std::chrono::seconds(120);
        auto response =
            client_.send(request, {3, std::chrono::milliseconds(200), std::chrono::seconds(2)});
        if (!response)
            return std::unexpected(withContext(response.error(), "coordinator " + o_.url));
        if (response->ok()) return response->body;
        std::string message = "HTTP " + std::to_string(response->status);
        if (auto doc = json::parseObject(response->body, "reply")) {
            auto m = doc->FindMember("error");
            if (m != doc->MemberEnd() && m->value.IsString()) message = m->value.GetString();
        }
        return std::unexpected(Error{errcFromHttpStatus(response->status), message, 0});
    }

private:
    Result<void> ready() {
        if (!token_.empty()) return ok();
        if (o_.url.empty())
            return fail(Errc::Invalid, "no coordinator URL: set CLUSTER_URL or pass --url");
        if (!o_.token_file.empty()) {
            HOIST_ASSIGN(auto text, files::readFile(o_.token_file, 4096));
            token_ = std::string(strings::trim(text));
        } else {
            token_ = o_.token;
        }
        if (token_.empty())
            return fail(Errc::Unauthorized, "no token: set CLUSTER_TOKEN or pass --token-file");
        return ok();
    }

    const ClusterOptions& o_;
    std::string token_;
    http::Client client_;
};

std::string str(const json::Value& obj, const char* key) {
    auto m = obj.FindMember(key);
    return m != obj.MemberEnd() && m->value.IsString() ? m->value.GetString() : "";
}
std::int64_t num(const json::Value& obj, const char* key) {
    auto m = obj.FindMember(key);
    return m != obj.MemberEnd() && m->value.IsInt64() ? m->value.GetInt64() : 0;
}
const json::Value* member(const json::Value& obj, const char* key) {
    auto m = obj.FindMember(key);
    return m != obj.MemberEnd() ? &m->value : nullptr;
}

/// "master 3/3  agent 40/100" from a deployment's roles counts.
std::string roleCounts(const json::Value& d) {
    std::vector<std::string> parts;
    if (const auto* roles = member(d, "roles"); roles != nullptr && roles->IsObject()) {
        std::vector<std::pair<std::string, const json::Value*>> list;
        for (auto it = roles->MemberBegin(); it != roles->MemberEnd(); ++it)
            list.emplace_back(it->name.GetString(), &it->value);
        std::sort(list.begin(), list.end(), [](const auto& x, const auto& y) {
            return roleRank(x.first) != roleRank(y.first) ? roleRank(x.first) < roleRank(y.first)
                                                          : x.first < y.first;
        });
        for (const auto& [role, c] : list)
            parts.push_back(detail::concat(role, " ", num(*c, "done") + num(*c, "skipped"), "/",
                                           num(*c, "total")));
    }
    return strings::join(parts, "  ");
}

bool finished(const std::string& state) {
    return state == "done" || state == "failed" || state == "aborted" || state == "reverted" ||
           state == "rolled_back" || state == "held";
}

int finishCode(const std::string& state) {
    if (state == "done") return 0;
    return exitCode(Errc::Unhealthy);
}

std::string describeDeployment(const json::Value& d) {
    const auto* counts = member(d, "counts");
    std::string line = detail::concat(str(d, "id"), " ", str(d, "version"), " ", str(d, "state"),
                                      ": ", roleCounts(d));
    if (counts != nullptr) {
        line += detail::concat("  failed ", num(*counts, "failed"), "  in flight ",
                               num(*counts, "in_flight"));
        if (num(*counts, "reverted") > 0)
            line += detail::concat("  reverted ", num(*counts, "reverted"));
    }
    if (!str(d, "waiting_on").empty()) line += "; waiting on " + str(d, "waiting_on");
    if (!str(d, "message").empty()) line += " (" + str(d, "message") + ")";
    return line;
}

/// Follows a deployment until it finishes or a hold stops it; returns the exit code.
int follow(Api& api, const std::string& id, bool json_out, std::ostream& out, std::ostream& err) {
    bool tty = &out == &std::cout && ::isatty(STDOUT_FILENO) != 0 && !json_out;
    std::string last_line;
    while (true) {
        auto text = api.call("GET", "/v1/deployments/" + id + "?nodes=0&events=0");
        if (!text) {
            err << "cluster: " << text.error().describe() << "\n";
            return exitCode(text.error().code);
        }
        auto doc = json::parseObject(*text, "deployment");
        if (!doc) {
            err << "cluster: " << doc.error().describe() << "\n";
            return exitCode(Errc::Internal);
        }
        std::string state = str(*doc, "state");
        std::string waiting = str(*doc, "waiting_on");
        bool halted = waiting.starts_with("hold:");
        if (!json_out) {
            std::string line = describeDeployment(*doc);
            if (tty) {
                const auto* c = member(*doc, "counts");
                std::int64_t total = c ? num(*c, "total") : 0;
                std::int64_t finished_nodes =
                    c ? num(*c, "done") + num(*c, "failed") + num(*c, "skipped") : 0;
                int width = 30;
                int filled = total > 0 ? static_cast<int>(finished_nodes * width / total) : 0;
                std::string bar = "[" + std::string(static_cast<size_t>(filled), '#') +
                                  std::string(static_cast<size_t>(width - filled), '-') + "]";
                out << "\r" << bar << " " << (total > 0 ? finished_nodes * 100 / total : 0) << "% "
                    << line << "\x1b[K" << std::flush;
            } else if (line != last_line) {
                out << line << "\n" << std::flush;
            }
            last_line = line;
        }
        if (finished(state) || halted) {
            if (tty) out << "\n";
            if (json_out) out << json::pretty(*text) << "\n";
            if (halted) {
                err << "cluster: deployment " << id << " is halted (" << waiting
                    << "); it continues when an admin runs 'cluster resume'\n";
                return exitCode(Errc::Halted);
            }
            if (state != "done") err << "cluster: deployment " << id << " ended " << state << "\n";
            return finishCode(state);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(tty ? 250 : 500));
    }
}

std::string printPlan(const json::Value& plan) {
    std::ostringstream s;
    s << "plan for " << str(plan, "version") << ": " << num(plan, "nodes") << " nodes, agents "
      << num(plan, "max_parallel") << " at a time\n";
    if (const auto* halted = member(plan, "halted");
        halted != nullptr && halted->IsBool() && halted->GetBool())
        s << "note: a hold stands; the upgrade would be refused until an admin clears it\n";
    if (const auto* waves = member(plan, "waves"); waves != nullptr && waves->IsArray()) {
        int n = 0;
        for (const auto& w : waves->GetArray()) {
            std::vector<std::string> ids;
            const auto* nodes = member(w, "nodes");
            size_t count = nodes != nullptr && nodes->IsArray() ? nodes->Size() : 0;
            if (nodes != nullptr && nodes->IsArray())
                for (const auto& id : nodes->GetArray()) {
                    if (ids.size() == 5) {
                        ids.push_back("...");
                        break;
                    }
                    ids.push_back(id.GetString());
                }
            s << "wave " << ++n << " (" << str(w, "role") << ", " << count
              << "): " << strings::join(ids, " ") << "\n";
        }
    }
    if (const auto* roles = member(plan, "roles"); roles != nullptr && roles->IsObject()) {
        for (auto it = roles->MemberBegin(); it != roles->MemberEnd(); ++it) {
            const auto& r = it->value;
            s << "role " << it->name.GetString() << " (from "
              << (str(r, "from").empty() ? "?" : str(r, "from")) << "):";
            for (const char* kind : {"add", "remove", "keep"}) {
                const auto* list = member(r, kind);
                if (list == nullptr || !list->IsArray()) continue;
                const char* mark = kind[0] == 'a' ? " +" : kind[0] == 'r' ? " -" : " =";
                for (const auto& id : list->GetArray()) s << mark << id.GetString();
            }
            s << "\n";
        }
    }
    for (const char* kind : {"skipped", "refused"}) {
        const auto* list = member(plan, kind);
        if (list == nullptr || !list->IsArray() || list->Empty()) continue;
        s << kind << " ("
          << (kind[0] == 's' ? "already on the version" : "upgrade_from does not allow it") << "):";
        for (const auto& id : list->GetArray()) s << " " << id.GetString();
        s << "\n";
    }
    return s.str();
}

std::string latestDeployment(Api& api, Error& error) {
    auto text = api.call("GET", "/v1/deployments?limit=1");
    if (!text) {
        error = text.error();
        return "";
    }
    auto doc = json::parseObject(*text, "deployments");
    if (!doc) {
        error = doc.error();
        return "";
    }
    const auto* list = member(*doc, "deployments");
    if (list == nullptr || !list->IsArray() || list->Empty()) {
        error = Error{Errc::NotFound, "no deployment yet", 0};
        return "";
    }
    return str((*list)[0], "id");
}

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
    upgrade->callback([&] {
        action = [&] {
            if (auto valid = validateMaxParallel(max_parallel); !valid)
                return failWith(valid.error());
            if (dry_run) {
                auto r = api.call("GET", "/v1/plan?version=" + http::urlEncode(version) +
                                             "&max_parallel=" + http::urlEncode(max_parallel));
                return printJsonOr(r, [&](const json::Value& plan) { out << printPlan(plan); });
            }
            json::Writer w;
            w.beginObject()
                .field("version", version)
                .field("max_parallel", max_parallel)
                .field("max_failures", max_failures)
                .field("auto_revert", auto_revert)
                .field("min_healthy_ms", min_healthy_ms)
                .endObject();
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
            bool halted = hd && member(*hd, "halted") != nullptr && (*hd)["halted"].IsBool() &&
                          (*hd)["halted"].GetBool();
            if (halted || !resume_source.empty()) {
                auto r = api.call("DELETE", resume_source.empty()
                                                ? "/v1/halt"
                                                : "/v1/halt/" + http::urlEncode(resume_source));
                if (!r) return failWith(r.error());
                out << "holds cleared\n";
            }
            Error e;
            std::string id = latestDeployment(api, e);
            if (id.empty()) return 0;
            auto d = api.call("GET", "/v1/deployments/" + id + "?nodes=0&events=0");
            if (!d) return failWith(d.error());
            auto doc = json::parseObject(*d, "deployment");
            if (!doc) return failWith(doc.error());
            std::string state = str(*doc, "state");
            if (state == "paused" || state == "held") {
                std::string body;
                if (resume_failures)
                    body = detail::concat("{\"max_failures\":", *resume_failures, "}");
                auto r = api.call("POST", "/v1/deployments/" + id + "/resume", body);
                if (!r) return failWith(r.error());
                out << "resumed " << id << "\n";
            } else if (state == "staging" || state == "rolling" || state == "reverting") {
                out << id << " continues (" << state << ")\n";
            }
            return 0;
        };
    });

    std::string verb_target;
    auto addVerb = [&](const std::string& verb, const std::string& help) {
        auto* sub = app.add_subcommand(verb, help);
        sub->add_option("deployment", verb_target, "deployment id (default: the latest)");
        sub->callback([&, verb] {
            action = [&, verb] {
                if (verb_target.empty()) {
                    Error e;
                    verb_target = latestDeployment(api, e);
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

    std::vector<std::string> reversed(args.rbegin(), args.rend());
    if (!reversed.empty()) reversed.pop_back();
    try {
        app.parse(reversed);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) {
            out << app.help();
            return 0;
        }
        err << "cluster: " << e.what() << "\nrun 'cluster --help' for usage\n";
        return exitCode(Errc::Invalid);
    }
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
