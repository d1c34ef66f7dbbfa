// The verbs that start, follow and steer deployments, and the holds.
#include <set>
#include <thread>

#include "core/duration.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"
#include "print.hpp"
#include "progress.hpp"
#include "verbs.hpp"

namespace hoist::cluster {

using DS = deploy_coordinator::DeploymentState;

int failWith(Context& c, const Error& e) {
    c.err << "cluster: " << e.describe() << "\n";
    return exitCode(e.code);
}

namespace {

/// Prints `text` (an object) under `key` of one JSON object: {"key": text}.
void printWrapped(Context& c, std::string_view key, const std::string& text) {
    json::Writer w;
    w.beginObject().key(key).raw(text).endObject();
    c.out << json::pretty(w.str()) << "\n";
}

/// The deployment an admin means when naming none: the acting one, else the newest; with
/// `changed`, the newest that changed nodes and was not undone (what rollback undoes).
Result<std::string> latestDeployment(Context& c, bool changed = false) {
    HOIST_ASSIGN(auto text,
                 c.client.get(changed ? "/v1/deployments?limit=100" : "/v1/deployments?limit=1"));
    HOIST_ASSIGN(auto list, parseAs<DeploymentList>(text, "deployments"));
    if (!list.acting.empty()) return list.acting;
    if (list.deployments.empty())
        return fail(Errc::NotFound, "no deployment yet (cluster upgrade VERSION starts one)");
    if (!changed) return list.deployments.front().id;
    std::set<std::string> undone;
    for (const auto& d : list.deployments)
        if (!d.undoes.empty()) undone.insert(d.undoes);
    for (const auto& d : list.deployments) {
        if (d.is(DS::rolled_back) || d.is(DS::reverted) || d.kind == "rollback" ||
            undone.contains(d.id))
            continue;
        if (d.counts.done > 0) return d.id;
    }
    return fail(
        Errc::NotFound,
        "no deployment changed any node (nothing to roll back; cluster history lists them)");
}

/// The settings as POST /v1/deployments and /v1/rehearsals take them.
Result<std::string> startBody(const UpgradeOptions& o) {
    HOIST_ASSIGN(auto min_healthy, duration::parseMs(o.min_healthy, "--min-healthy"));
    HOIST_ASSIGN(auto node_deadline, duration::parseMs(o.node_deadline, "--node-deadline"));
    HOIST_ASSIGN(auto progress_deadline,
                 duration::parseMs(o.progress_deadline, "--progress-deadline"));
    if (node_deadline == 0 || progress_deadline == 0)
        return fail(Errc::Invalid, "--node-deadline and --progress-deadline must be over 0s");
    json::Writer w;
    w.beginObject()
        .field("version", o.version)
        .field("max_parallel", o.max_parallel)
        .field("max_failures", o.max_failures)
        .field("auto_revert", o.auto_revert)
        .field("min_healthy_ms", min_healthy)
        .field("node_deadline_ms", node_deadline)
        .field("progress_deadline_ms", progress_deadline);
    if (o.rehearse) w.field("inject", o.inject);
    if (!o.gates.empty()) {
        w.key("gates").beginArray();
        for (const auto& g : o.gates) w.value(g);
        w.endArray();
        if (!o.prometheus.empty()) w.field("prometheus", o.prometheus);
    }
    w.endObject();
    return w.str();
}

Result<void> validateMaxParallel(const std::string& text) {
    std::string digits = text.ends_with('%') ? text.substr(0, text.size() - 1) : text;
    bool good = !digits.empty() && digits.size() <= 6 &&
                digits.find_first_not_of("0123456789") == std::string::npos &&
                std::stoll(digits) > 0 && (!text.ends_with('%') || std::stoll(digits) <= 100);
    if (!good)
        return fail(Errc::Invalid, "--max-parallel '", text,
                    "' must be a count over 0 or a percentage of the agents (\"10%\")");
    return ok();
}

/// Deployment `id` started by this invocation or found: follow it, or say how to.
// A deployment a command answered with: followed with --watch, else shown once.
int showOrFollow(Context& c, const std::string& text, bool watch) {
    auto d = parseAs<Deployment>(text, "deployment");
    if (!d) return failWith(c, d.error());
    if (watch) return follow(c, d->id);
    if (c.json) {
        printWrapped(c, "deployment", text);
        return 0;
    }
    c.out << progressLine(*d) << "\n";
    return 0;
}

int startedOrFollow(Context& c, const std::string& text, bool detach, bool watch) {
    auto d = parseAs<Deployment>(text, "deployment");
    if (!d) return failWith(c, d.error());
    if (detach && !watch) {
        if (c.json)
            printWrapped(c, "deployment", text);
        else
            c.out << "started " << d->id << " (" << d->version
                  << "); follow it with 'cluster follow " << d->id << "'\n";
        return 0;
    }
    if (!c.json) c.err << "started " << d->id << " (" << d->version << ")\n";
    return follow(c, d->id);
}

}  // namespace

int follow(Context& c, std::string id) {
    if (id.empty()) {
        auto latest = latestDeployment(c);
        if (!latest) return failWith(c, latest.error());
        id = *latest;
    }
    LiveView view(c.out, c.width);
    std::string last;
    Deployment d;
    while (true) {
        auto text = c.client.get("/v1/deployments/" + http::urlEncode(id) + "?nodes=0&events=0");
        if (!text) {
            view.finish();
            return failWith(c, withContext(text.error(), "following deployment " + id));
        }
        auto parsed = parseAs<Deployment>(*text, "deployment");
        if (!parsed) {
            view.finish();
            return failWith(c, parsed.error());
        }
        d = std::move(*parsed);
        if (!c.json) {
            if (c.tty) {
                view.draw(progressLines(d, c.width));
            } else if (auto line = progressLine(d); line != last) {
                c.out << line << "\n" << std::flush;
                last = line;
            }
        }
        if (d.ended() || d.heldByBudget() || d.halted()) break;
        std::this_thread::sleep_for(c.poll);
    }
    view.finish();
    // The nodes, for the failed ones and their reasons.
    auto full = c.client.get("/v1/deployments/" + http::urlEncode(id) + "?nodes=1&events=0");
    if (!full) return failWith(c, full.error());
    auto with_nodes = parseAs<Deployment>(*full, "deployment");
    if (!with_nodes) return failWith(c, with_nodes.error());
    auto failed = failedNodeLines(*with_nodes, 0);
    if (c.json) {
        json::Writer w;
        w.beginObject().key("deployment").raw(*full).key("failed").beginArray();
        for (const auto& n : with_nodes->nodes)
            if (n.failed())
                w.beginObject()
                    .field("node", n.node)
                    .field("role", n.role)
                    .field("state", n.state)
                    .field("reason", n.message)
                    .endObject();
        w.endArray().endObject();
        c.out << json::pretty(w.str()) << "\n";
    } else if (!failed.empty()) {
        c.out << failed.size() << " node(s) failed:\n";
        for (const auto& line : failed) c.out << line << "\n";
    }
    if (d.halted() && !d.ended()) {
        c.err << "cluster: deployment " << id << " is halted (" << d.waiting_on
              << "); it goes on once an admin clears the hold: cluster unhalt --reason TEXT, then "
                 "cluster follow "
              << id << "\n";
        return exitCode(Errc::Halted);
    }
    if (d.is(DS::done)) return 0;
    c.err << "cluster: deployment " << id << " ended " << d.state;
    if (!d.waiting_on.empty()) c.err << " (" << d.waiting_on << ")";
    if (d.heldByBudget())
        c.err << "; raise the budget (cluster resume --max-failures N --watch) or undo it "
                 "(cluster rollback --watch)";
    else if (d.is(DS::failed) || d.is(DS::aborted))
        c.err << "; undo what it changed with cluster rollback " << id;
    c.err << "\n";
    return exitCode(Errc::Unhealthy);
}

int upgrade(Context& c, const UpgradeOptions& o) {
    if (auto valid = validateMaxParallel(o.max_parallel); !valid) return failWith(c, valid.error());
    if (!o.inject.empty() && !o.rehearse)
        return failWith(c, Error{Errc::Invalid, "--inject goes with --rehearse", 0});
    if (!o.prometheus.empty() && o.gates.empty())
        return failWith(c, Error{Errc::Invalid, "--prometheus goes with --gate", 0});
    if (o.dry_run) return plan(c, o.version, o.max_parallel);
    auto body = startBody(o);
    if (!body) return failWith(c, body.error());
    if (o.rehearse) {
        auto r = c.client.post("/v1/rehearsals", *body, Retry::Safe);
        if (!r) return failWith(c, r.error());
        if (c.json) {
            c.out << json::pretty(*r) << "\n";
            return 0;
        }
        auto doc = json::parseObject(*r, "rehearsal");
        if (!doc) return failWith(c, doc.error());
        c.out << printRehearsal(*doc);
        return 0;
    }
    // The key makes the POST safe to send again: a retry after a timeout gets the deployment
    // the first attempt started, not a 409.
    std::string key = o.idempotency_key.empty() ? newIdempotencyKey() : o.idempotency_key;
    auto started = c.client.post("/v1/deployments", *body, Retry::Safe, key);
    if (!started) return failWith(c, started.error());
    return startedOrFollow(c, *started, o.detach, o.watch);
}

int status(Context& c, std::string id, bool watch) {
    if (id.empty()) {
        auto latest = latestDeployment(c);
        if (!latest && latest.error().code != Errc::NotFound) return failWith(c, latest.error());
        id = latest.value_or("");
    }
    auto holds_text = c.client.get("/v1/halt");
    if (!holds_text) return failWith(c, holds_text.error());
    auto holds = parseAs<HaltView>(*holds_text, "halt");
    if (!holds) return failWith(c, holds.error());
    // Replicas on etcd only: a single coordinator on SQLite has no such route (404).
    auto coordinators_text = c.client.get("/v1/cluster/coordinators");
    if (c.json && !watch) {
        std::string d = "null";
        if (!id.empty()) {
            auto r = c.client.get("/v1/deployments/" + http::urlEncode(id) + "?events=20");
            if (!r) return failWith(c, r.error());
            d = *r;
        }
        json::Writer w;
        w.beginObject().key("deployment").raw(d).key("halt").raw(*holds_text);
        if (coordinators_text) w.key("coordinators").raw(*coordinators_text);
        w.endObject();
        c.out << json::pretty(w.str()) << "\n";
        return 0;
    }
    if (!c.json && coordinators_text) {
        if (auto cd = parseAs<Coordinators>(*coordinators_text, "coordinators")) {
            c.out << "coordinators: "
                  << (cd->leader.empty()
                          ? std::string("no leader (election under way)")
                          : "leader " + cd->leader + " (epoch " + std::to_string(cd->epoch) + ")")
                  << "\n";
            for (const auto& r : cd->replicas) {
                c.out << "  " << r.id << "  " << r.url << "  " << (r.leader ? "leader" : "follower")
                      << "  renewed " << r.last_renewal << "\n";
                if (!r.refused.empty()) c.out << "    REFUSED TO LEAD: " << r.refused << "\n";
            }
        }
    }
    if (!c.json) {
        if (holds->holds.empty()) c.out << "no holds\n";
        for (const auto& h : holds->holds) {
            c.out << "HALTED by " << h.source << " since " << h.since << ": " << h.reason << "\n";
            if (h.alerts > 0) c.out << "  " << h.alerts << " alert(s) firing when it was put\n";
            if (!h.resolved.empty())
                c.out << "  resolved by the monitor at " << h.resolved
                      << ": clear it with `cluster unhalt --source " << h.source
                      << " --reason TEXT`\n";
        }
    }
    if (id.empty()) {
        if (!c.json) c.out << "no deployment yet\n";
        return 0;
    }
    if (watch) return follow(c, id);
    auto r = c.client.get("/v1/deployments/" + http::urlEncode(id) + "?nodes=0&events=0");
    if (!r) return failWith(c, r.error());
    auto d = parseAs<Deployment>(*r, "deployment");
    if (!d) return failWith(c, d.error());
    c.out << progressLine(*d) << "\n";
    return 0;
}

int plan(Context& c, const std::string& version, const std::string& max_parallel) {
    auto r = c.client.get("/v1/plan?version=" + http::urlEncode(version) +
                          "&max_parallel=" + http::urlEncode(max_parallel));
    if (!r) return failWith(c, r.error());
    if (c.json) {
        c.out << json::pretty(*r) << "\n";
        return 0;
    }
    auto doc = json::parseObject(*r, "plan");
    if (!doc) return failWith(c, doc.error());
    c.out << printPlan(*doc);
    return 0;
}

int halt(Context& c, const std::string& reason, const std::string& source) {
    json::Writer w;
    w.beginObject().field("reason", reason);
    if (!source.empty()) w.field("source", source);
    w.endObject();
    // A halt sent twice is one hold (the same source renews it): safe to retry.
    auto r = c.client.post("/v1/halt", w.str(), Retry::Safe);
    if (!r) return failWith(c, r.error());
    if (c.json) {
        c.out << json::pretty(*r) << "\n";
        return 0;
    }
    auto h = parseAs<Hold>(*r, "hold");
    if (!h) return failWith(c, h.error());
    c.out << "halted: hold '" << h->source << "' since " << h->since
          << "; an admin clears it with: cluster unhalt --source " << h->source
          << " --reason TEXT\n";
    auto doc = json::parseObject(*r, "hold");
    if (doc)
        if (auto warning = json::optString(*doc, "warning", "hold"); warning && *warning)
            c.err << "cluster: warning: " << **warning << "\n";
    return 0;
}

int unhalt(Context& c, const std::string& source, const std::string& reason) {
    if (strings::trim(reason).empty())
        return failWith(c, Error{Errc::Invalid, "--reason must say why the hold may go", 0});
    std::string path = source.empty() ? "/v1/halt" : "/v1/halt/" + http::urlEncode(source);
    auto r = c.client.del(path + "?reason=" + http::urlEncode(reason));
    if (!r) return failWith(c, r.error());
    if (c.json) {
        c.out << json::pretty(*r) << "\n";
        return 0;
    }
    auto doc = json::parseObject(*r, "unhalt");
    if (!doc) return failWith(c, doc.error());
    auto cleared = json::optStringArray(*doc, "cleared", "unhalt");
    if (!cleared) return failWith(c, cleared.error());
    if (cleared->empty())
        c.out << "no hold stood\n";
    else
        c.out << "cleared " << cleared->size() << " hold(s): " << strings::join(*cleared, ", ")
              << "\n";
    return 0;
}

int resume(Context& c, std::optional<std::int64_t> max_failures, bool watch) {
    auto id = latestDeployment(c);
    auto holds_text = c.client.get("/v1/halt");
    if (!holds_text) return failWith(c, holds_text.error());
    auto holds = parseAs<HaltView>(*holds_text, "halt");
    if (!holds) return failWith(c, holds.error());
    std::string hold_note = holds->halted
                                ? "; a hold stands (cluster status shows it): only cluster unhalt "
                                  "--reason TEXT clears it"
                                : "";
    if (!id) {
        if (id.error().code != Errc::NotFound) return failWith(c, id.error());
        c.err << "cluster: nothing to resume: there is no deployment" << hold_note << "\n";
        return exitCode(Errc::Conflict);
    }
    auto text = c.client.get("/v1/deployments/" + http::urlEncode(*id) + "?nodes=0&events=0");
    if (!text) return failWith(c, text.error());
    auto d = parseAs<Deployment>(*text, "deployment");
    if (!d) return failWith(c, d.error());
    if (!d->is(DS::paused) && !d->is(DS::held)) {
        c.err << "cluster: nothing to resume: deployment " << d->id << " is " << d->state
              << (d->ended() ? "" : " (it goes on by itself)") << hold_note << "\n";
        return exitCode(holds->halted ? Errc::Halted : Errc::Conflict);
    }
    std::string body;
    if (max_failures) body = detail::concat("{\"max_failures\":", *max_failures, "}");
    auto r = c.client.post("/v1/deployments/" + http::urlEncode(d->id) + "/resume", body);
    if (!r) return failWith(c, r.error());
    if (!hold_note.empty()) c.err << "cluster: resumed, but" << hold_note.substr(1) << "\n";
    if (watch) return follow(c, d->id);
    if (c.json) {
        printWrapped(c, "deployment", *r);
        return 0;
    }
    c.out << "resumed " << d->id << "; follow it with 'cluster follow " << d->id << "'\n";
    return 0;
}

int command(Context& c, const std::string& verb, std::string id, bool watch) {
    if (id.empty()) {
        auto latest = latestDeployment(c, verb == "rollback");
        if (!latest) return failWith(c, latest.error());
        id = *latest;
    }
    auto r = c.client.post("/v1/deployments/" + http::urlEncode(id) + "/" + verb, "");
    if (!r) return failWith(c, r.error());
    return showOrFollow(c, *r, watch);
}

int rollbackTo(Context& c, const std::string& version, bool watch) {
    json::Writer w;
    w.beginObject().field("to", version).endObject();
    auto r = c.client.post("/v1/rollbacks", w.str(), Retry::Safe, newIdempotencyKey());
    if (!r) return failWith(c, r.error());
    return showOrFollow(c, *r, watch);
}

}  // namespace hoist::cluster
