// The verbs about the fleet, the audit log, monitors and modules.
#include <map>

#include "core/duration.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"
#include "progress.hpp"
#include "verbs.hpp"

namespace hoist::cluster {

namespace {

/// With --json, the reply as it came (each route answers one object); otherwise `human`.
template <typename T, typename F>
int show(Context& c, const Result<std::string>& r, std::string_view what, F human) {
    if (!r) return failWith(c, r.error());
    if (c.json) {
        c.out << json::pretty(*r) << "\n";
        return 0;
    }
    auto typed = parseAs<T>(*r, what);
    if (!typed) return failWith(c, typed.error());
    human(*typed);
    return 0;
}

}  // namespace

int nodes(Context& c) {
    return show<Fleet>(c, c.client.get("/v1/nodes"), "nodes", [&](const Fleet& f) {
        for (const auto& n : f.nodes)
            c.out << n.node << "  " << n.role << "  " << n.status << "  " << n.mode << "  release "
                  << n.release << "  generation " << n.generation << "  last seen " << n.last_seen
                  << "\n";
    });
}

int history(Context& c, int limit, bool events) {
    if (events)
        return show<AuditLog>(c, c.client.get("/v1/events?limit=" + std::to_string(limit)),
                              "events", [&](const AuditLog& log) {
                                  for (const auto& e : log.events)
                                      c.out << e.time << "  " << e.actor << "  " << e.action
                                            << (e.deployment.empty() ? "" : "  " + e.deployment)
                                            << (e.node.empty() ? "" : "  " + e.node)
                                            << (e.detail.empty() ? "" : "  " + e.detail) << "\n";
                              });
    return show<DeploymentList>(c, c.client.get("/v1/deployments?limit=" + std::to_string(limit)),
                                "deployments", [&](const DeploymentList& l) {
                                    for (const auto& d : l.deployments)
                                        c.out << d.created << "  " << progressLine(d) << "\n";
                                });
}

int nodeAdd(Context& c, const std::string& role, std::int64_t count) {
    json::Writer w;
    w.beginObject().field("role", role).field("count", count).endObject();
    // The key goes to the provisioner, which launches nothing twice for one key.
    auto r = c.client.post("/v1/cluster/nodes", w.str(), Retry::Safe, newIdempotencyKey());
    if (!r) return failWith(c, r.error());
    auto doc = json::parseObject(*r, "node request");
    if (!doc) return failWith(c, doc.error());
    std::vector<std::string> ids;
    if (auto list = json::optArray(*doc, "nodes", "node request"); list && *list != nullptr)
        for (const auto& n : (*list)->GetArray())
            if (n.IsObject())
                if (auto id = json::optString(n, "id", "node"); id && *id) ids.push_back(**id);
    if (c.json) {
        json::Writer j;
        j.beginObject().key("ids").beginArray();
        for (const auto& id : ids) j.value(id);
        j.endArray().key("reply").raw(*r).endObject();
        c.out << json::pretty(j.str()) << "\n";
        return 0;
    }
    c.out << "requested " << count << " " << role << " node(s): " << strings::join(ids, " ")
          << "\n";
    return 0;
}

int nodeRemove(Context& c, const std::string& node) {
    auto r = c.client.del("/v1/cluster/nodes/" + http::urlEncode(node));
    if (!r) return failWith(c, r.error());
    if (c.json) {
        c.out << json::pretty(*r) << "\n";
        return 0;
    }
    c.out << "removed " << node << "\n";
    return 0;
}

int nodeForget(Context& c, const std::string& node, const std::string& reason) {
    auto r =
        c.client.del("/v1/nodes/" + http::urlEncode(node) + "?reason=" + http::urlEncode(reason));
    if (!r) {
        if (r.error().code == Errc::NotFound)
            c.err << "cluster: (cluster nodes lists the nodes the coordinator knows)\n";
        return failWith(c, r.error());
    }
    if (c.json) {
        c.out << json::pretty(r->empty() ? std::string("{}") : *r) << "\n";
        return 0;
    }
    c.out << "forgot " << node << "; it registers again if it still runs\n";
    return 0;
}

int monitors(Context& c) {
    return show<Monitors>(c, c.client.get("/v1/monitors"), "monitors", [&](const Monitors& m) {
        if (m.monitors.empty()) c.out << "no monitor is watched\n";
        for (const auto& mon : m.monitors)
            c.out << mon.name << "  allowance " << duration::format(mon.allowance_ms)
                  << "  last beat " << mon.last_beat << (mon.silent ? "  SILENT" : "") << "\n";
    });
}

int monitorRemove(Context& c, const std::string& name) {
    auto r = c.client.del("/v1/monitors/" + http::urlEncode(name));
    if (!r) return failWith(c, r.error());
    if (c.json) {
        c.out << json::pretty(*r) << "\n";
        return 0;
    }
    c.out << "no longer watching " << name
          << "; a hold it put stands until cluster unhalt --source heartbeat/" << name
          << " --reason TEXT\n";
    return 0;
}

int module(Context& c, ModuleOptions mo, const std::string& max_parallel, std::int64_t max_failures,
           bool detach) {
    if (mo.base_version.empty()) {
        auto fleet_text = c.client.get("/v1/nodes");
        if (!fleet_text) return failWith(c, fleet_text.error());
        auto fleet = parseAs<Fleet>(*fleet_text, "nodes");
        if (!fleet) return failWith(c, fleet.error());
        std::map<std::string, int> count;
        for (const auto& n : fleet->nodes)
            if (deploy_coordinator::parseNodeStatus(n.status) !=
                    deploy_coordinator::NodeStatus::removed &&
                !n.release.empty())
                count[n.release]++;
        int best = 0;
        for (const auto& [v, n] : count)
            if (n > best) best = n, mo.base_version = v;
        if (mo.base_version.empty())
            return failWith(c, Error{Errc::NotFound, "no node reports a release; pass --base", 0});
    }
    auto derived = publishModuleRelease(mo, c.err);
    if (!derived) return failWith(c, derived.error());
    c.err << "published release " << *derived << "\n";
    UpgradeOptions o;
    o.version = *derived;
    o.max_parallel = max_parallel;
    o.max_failures = max_failures;
    o.detach = detach;
    return upgrade(c, o);
}

}  // namespace hoist::cluster
