#include "engine.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "core/json.hpp"
#include "deploy_coordinator/plan.hpp"
#include "views.hpp"

namespace hoist::deploy_coordinator {

void writeEvent(json::Writer& w, const Event& e) {
    w.beginObject()
        .field("id", e.id)
        .field("time", formatTime(e.time_ms))
        .field("actor", e.actor)
        .field("action", e.action)
        .field("deployment", e.deployment)
        .field("node", e.node)
        .field("detail", e.detail)
        .endObject();
}

void writeNode(json::Writer& w, const NodeRecord& n) {
    w.beginObject()
        .field("node", n.id)
        .field("role", n.role)
        .field("address", n.address)
        .field("release", n.release)
        .field("generation", n.generation)
        .field("status", n.status)
        .field("mode", n.mode)
        .field("registered", formatTime(n.registered_ms))
        .field("last_seen", formatTime(n.last_seen_ms))
        .endObject();
}

std::string Engine::deploymentSummary(const Deployment& d, const std::vector<DeploymentNode>& nodes,
                                      bool with_nodes, int events) {
    struct Counts {
        std::int64_t total = 0, done = 0, failed = 0, in_flight = 0, pending = 0, skipped = 0,
                     reverted = 0;
    };
    std::map<std::string, Counts> roles;
    Counts all;
    for (const auto& n : nodes) {
        for (Counts* c : {&all, &roles[n.role]}) {
            c->total++;
            auto s = n.state;
            if (s == NodeStep::done)
                c->done++;
            else if (s == NodeStep::failed || s == NodeStep::revert_failed)
                c->failed++;
            else if (s == NodeStep::skipped)
                c->skipped++;
            else if (s == NodeStep::reverted)
                c->reverted++;
            else if (isForwardInFlight(s) || isRevertInFlight(s))
                c->in_flight++;
            else
                c->pending++;
        }
    }
    auto writeCounts = [](json::Writer& w, const Counts& c) {
        w.beginObject()
            .field("total", c.total)
            .field("done", c.done)
            .field("failed", c.failed)
            .field("in_flight", c.in_flight)
            .field("pending", c.pending)
            .field("skipped", c.skipped)
            .field("reverted", c.reverted)
            .endObject();
    };
    json::Writer w;
    w.beginObject()
        .field("id", d.id)
        .field("version", d.version)
        .field("kind", d.kind)
        .field("undoes", d.undoes)
        .field("state", toString(d.state))
        .field("waiting_on", d.waiting_on)
        .field("max_parallel", d.max_parallel)
        .field("max_failures", d.max_failures)
        .field("auto_revert", d.auto_revert)
        .field("min_healthy_ms", d.min_healthy_ms)
        .field("node_deadline_ms", d.node_deadline_ms)
        .field("progress_deadline_ms", d.progress_deadline_ms)
        .field("created_by", d.created_by)
        .field("created", formatTime(d.created_ms))
        .field("updated", formatTime(d.updated_ms))
        .field("finished", formatTime(d.finished_ms))
        .field("message", d.message);
    w.key("counts");
    writeCounts(w, all);
    w.key("roles").beginObject();
    for (const auto& [role, c] : roles) {
        w.key(role);
        writeCounts(w, c);
    }
    w.endObject();
    if (with_nodes) {
        w.key("nodes").beginArray();
        for (const auto& n : nodes) {
            w.beginObject()
                .field("node", n.node)
                .field("role", n.role)
                .field("state", toString(n.state))
                .field("node_state", n.node_state)
                .field("from_release", n.from_release)
                .field("from_generation", n.from_generation)
                .field("target_generation", n.target_generation)
                .field("restarts", n.restarts)
                .field("started", formatTime(n.started_ms))
                .field("finished", formatTime(n.finished_ms))
                .field("message", n.message)
                .endObject();
        }
        w.endArray();
    }
    if (events > 0) {
        w.key("events").beginArray();
        if (auto list = state_.events(std::string_view(d.id), events))
            for (const auto& e : *list) writeEvent(w, e);
        w.endArray();
    }
    w.endObject();
    return w.str();
}

Result<std::string> Engine::deploymentJson(const std::string& id, bool with_nodes, int events) {
    Deployment d;
    std::vector<DeploymentNode> rows;
    {
        std::lock_guard lock(mutex_);
        if (active_ && active_->d.id == id) {
            d = active_->d;
            rows.reserve(active_->slots.size());
            for (const auto& s : active_->slots) rows.push_back(s.row);
        }
    }
    if (d.id.empty()) {
        HOIST_ASSIGN(auto found, state_.deployment(id));
        if (!found) return fail(Errc::NotFound, "deployment '", id, "' does not exist");
        d = *found;
        HOIST_ASSIGN(rows, state_.deploymentNodes(id));
    }
    return deploymentSummary(d, rows, with_nodes, events);
}

Result<std::string> Engine::deploymentsJson(int limit) {
    HOIST_ASSIGN(auto list, state_.deployments(limit));
    json::Writer w;
    w.beginObject().key("deployments").beginArray();
    for (const auto& d : list) {
        HOIST_ASSIGN(auto text, deploymentJson(d.id, false, 0));
        w.raw(text);
    }
    w.endArray();
    // The deployment that may act on nodes (reverting included), which need not be the newest:
    // `cluster status` shows it first.
    std::string acting;
    {
        std::lock_guard lock(mutex_);
        if (active_) acting = active_->d.id;
    }
    // A follower holds no rollout: the acting one is the store's newest unfinished deployment.
    if (standby_ && acting.empty()) {
        HOIST_ASSIGN(auto recent, state_.deployments(20));
        for (const auto& d : recent)
            if (d.active()) {
                acting = d.id;
                break;
            }
    }
    w.field("acting", acting).endObject();
    return w.str();
}

Result<std::string> Engine::eventsJson(int limit) {
    HOIST_ASSIGN(auto list, state_.events(std::nullopt, limit));
    json::Writer w;
    w.beginObject().key("events").beginArray();
    for (const auto& e : list) writeEvent(w, e);
    w.endArray().endObject();
    return w.str();
}

namespace {
// "gates": null, or {"prometheus","on_fail","error_grace_ms","gates":[text...]}: checked
// after each wave settles, before the next starts.
void writeGates(json::Writer& w, const GateConfig& gates) {
    w.key("gates");
    if (gates.empty()) {
        w.null();
        return;
    }
    w.beginObject()
        .field("prometheus", gates.prometheus)
        .field("on_fail", gates.on_fail)
        .field("error_grace_ms", gates.error_grace_ms)
        .key("gates")
        .beginArray();
    for (const auto& g : gates.gates) w.value(g.text());
    w.endArray().endObject();
}
}  // namespace

Result<std::string> Engine::planJson(const std::string& version, const std::string& max_parallel) {
    HOIST_TRY(validateMaxParallel(max_parallel));
    HOIST_ASSIGN(auto fetched, fetchRelease(version));
    auto& release = fetched.first;
    std::vector<PlanNode> plan_nodes;
    std::map<std::string, std::map<std::string, int>> from_by_role;
    std::vector<std::string> skipped;
    std::vector<std::string> refused;
    std::int64_t agents = 0;
    // A follower holds no registry or holds: it plans on a fresh read of the store's.
    std::vector<NodeRecord> fleet;
    bool halted = gate_.raised();
    if (standby_) {
        HOIST_ASSIGN(fleet, state_.nodes());
        HOIST_ASSIGN(auto holds, state_.holds());
        halted = !holds.empty();
    } else {
        std::lock_guard lock(mutex_);
        for (const auto& [_, n] : nodes_) fleet.push_back(n);
    }
    for (const auto& n : fleet) {
        const auto& id = n.id;
        if (n.is(NodeStatus::removed)) continue;
        if (n.release == release.version) {
            skipped.push_back(id);
            continue;
        }
        if (!release.allowsUpgradeFrom(n.release)) refused.push_back(id);
        plan_nodes.push_back({id, n.role});
        from_by_role[n.role][n.release]++;
        if (n.role == "agent") ++agents;
    }
    std::sort(skipped.begin(), skipped.end(), naturalLess);
    std::sort(refused.begin(), refused.end(), naturalLess);
    HOIST_ASSIGN(auto limit, resolveMaxParallel(max_parallel, agents));
    // An upgrade that would change no node is refused; the plan says so and plans no wave.
    auto nothing = nothingToDo(release, fleet);
    auto waves = nothing ? std::vector<Wave>{} : planWaves(plan_nodes, limit);
    json::Writer w;
    w.beginObject()
        .field("version", release.version)
        .field("max_parallel", limit)
        .field("nodes", static_cast<std::int64_t>(plan_nodes.size()))
        .field("halted", halted)
        .field("nothing_to_do", nothing.value_or(""));
    writeGates(w, options_.gates);
    w.key("waves").beginArray();
    for (const auto& wave : waves) {
        w.beginObject().field("role", wave.role).key("nodes").beginArray();
        for (const auto& id : wave.nodes) w.value(id);
        w.endArray().endObject();
    }
    w.endArray();
    w.key("roles").beginObject();
    std::set<std::string> roles;
    for (const auto& [role, _] : release.roles) roles.insert(role);
    for (const auto& [role, _] : from_by_role) roles.insert(role);
    for (const auto& role : roles) {
        std::string from;
        int best = 0;
        for (const auto& [v, count] : from_by_role[role])
            if (count > best) best = count, from = v;
        std::vector<pkgmgr::PackageRef> old_refs;
        bool from_known = false;
        if (!from.empty()) {
            if (auto old = fetchRelease(from)) {
                old_refs = old->first.packagesFor(role).value_or(std::vector<pkgmgr::PackageRef>{});
                from_known = true;
            }
        }
        auto new_refs = release.packagesFor(role).value_or(std::vector<pkgmgr::PackageRef>{});
        w.key(role).beginObject().field("from", from).field("from_known", from_known);
        auto contains = [](const std::vector<pkgmgr::PackageRef>& list,
                           const pkgmgr::PackageRef& r) {
            return std::find(list.begin(), list.end(), r) != list.end();
        };
        w.key("add").beginArray();
        for (const auto& r : new_refs)
            if (!contains(old_refs, r)) w.value(r.id);
        w.endArray().key("remove").beginArray();
        for (const auto& r : old_refs)
            if (!contains(new_refs, r)) w.value(r.id);
        w.endArray().key("keep").beginArray();
        for (const auto& r : new_refs)
            if (contains(old_refs, r)) w.value(r.id);
        w.endArray().endObject();
    }
    w.endObject();
    w.key("skipped").beginArray();
    for (const auto& id : skipped) w.value(id);
    w.endArray().key("refused").beginArray();
    for (const auto& id : refused) w.value(id);
    w.endArray().endObject();
    return w.str();
}

std::string rehearsalJson(const Rehearsal& r, const StartRequest& request,
                          const RehearsalSettings& settings,
                          const std::vector<std::string>& notes) {
    auto optional = [](json::Writer& w, std::string_view key, std::optional<std::int64_t> v) {
        w.key(key);
        if (v)
            w.value(*v);
        else
            w.null();
    };
    std::int64_t recorded = 0;
    std::int64_t recorded_pull = 0;
    for (const auto& n : r.nodes) {
        if (n.swap_source == "recorded") ++recorded;
        if (n.pull_interval_source == "recorded") ++recorded_pull;
    }
    json::Writer w;
    w.beginObject()
        .field("version", request.version)
        .field("max_parallel", request.max_parallel)
        .field("max_failures", request.max_failures)
        .field("auto_revert", request.auto_revert)
        .field("outcome", toString(r.outcome))
        .field("message", r.message)
        .field("total_ms", r.total_ms)
        .field("cut_short", r.cut_short);
    optional(w, "budget_stop_ms", r.budget_stop_ms);
    optional(w, "hold_bit_ms", r.hold_bit_ms);
    optional(w, "revert_start_ms", r.revert_start_ms);
    w.key("assumptions")
        .beginObject()
        .field("default_swap_ms", settings.default_swap_ms)
        .field("default_health_fail_ms", settings.default_health_fail_ms)
        .field("stage_ms", settings.stage_ms)
        .field("recorded_swaps", recorded)
        .field("default_pull_interval_ms", settings.default_pull_interval_ms)
        .field("recorded_pull_intervals", recorded_pull)
        .endObject();
    writeGates(w, r.gates);
    w.key("notes").beginArray();
    for (const auto& n : notes) w.value(n);
    w.endArray().key("waves").beginArray();
    for (const auto& wave : r.waves) {
        w.beginObject().field("role", wave.role).key("nodes").beginArray();
        for (const auto& id : wave.nodes) w.value(id);
        w.endArray();
        optional(w, "start_ms", wave.start_ms >= 0 ? std::optional(wave.start_ms) : std::nullopt);
        optional(w, "end_ms", wave.end_ms >= 0 ? std::optional(wave.end_ms) : std::nullopt);
        w.endObject();
    }
    w.endArray().key("nodes").beginArray();
    for (const auto& n : r.nodes) {
        w.beginObject()
            .field("node", n.node)
            .field("role", n.role)
            .field("wave", static_cast<std::int64_t>(n.wave))
            .field("swap_ms", n.swap_ms)
            .field("swap_source", n.swap_source)
            .field("fault", n.fault)
            .field("fault_source", n.fault_source)
            .field("fail_ms", n.fail_ms)
            .field("state", toString(n.step))
            .field("message", n.message)
            .field("mode", toString(n.pull ? NodeMode::pull : NodeMode::push));
        if (n.pull)
            w.field("pull_interval_ms", n.pull_interval_ms)
                .field("pull_interval_source", n.pull_interval_source)
                .field("waited_ms", n.waited_ms);
        optional(w, "start_ms", n.start_ms >= 0 ? std::optional(n.start_ms) : std::nullopt);
        optional(w, "end_ms", n.end_ms >= 0 ? std::optional(n.end_ms) : std::nullopt);
        w.endObject();
    }
    w.endArray().key("timeline").beginArray();
    for (const auto& m : r.timeline)
        w.beginObject().field("at_ms", m.at_ms).field("what", m.what).endObject();
    w.endArray().endObject();
    return w.str();
}

}  // namespace hoist::deploy_coordinator
