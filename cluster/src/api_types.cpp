#include "cluster/api_types.hpp"

#include <algorithm>

namespace hoist::cluster {

namespace {

std::string optStr(const json::Value& v, std::string_view key, std::string_view ctx, Error& error) {
    auto r = json::optString(v, key, ctx);
    if (!r) {
        error = r.error();
        return "";
    }
    return r->value_or("");
}

std::int64_t optNum(const json::Value& v, std::string_view key, std::string_view ctx,
                    Error& error) {
    auto r = json::optInt(v, key, ctx);
    if (!r) {
        error = r.error();
        return 0;
    }
    return r->value_or(0);
}

/// Reads each element of the array `key` (absent: none) as T.
template <typename T>
Result<std::vector<T>> list(const json::Value& v, std::string_view key, std::string_view ctx) {
    HOIST_ASSIGN(const json::Value* array, json::optArray(v, key, ctx));
    std::vector<T> out;
    if (array == nullptr) return out;
    for (const auto& item : array->GetArray()) {
        if (!item.IsObject())
            return fail(Errc::Invalid, ctx, ": each of '", key, "' must be an object");
        HOIST_ASSIGN(auto t, T::fromJson(item));
        out.push_back(std::move(t));
    }
    return out;
}

int roleRank(std::string_view role) {
    return role == "master" ? 0 : role == "agent" ? 1 : 2;
}

}  // namespace

Result<Counts> Counts::fromJson(const json::Value& v) {
    constexpr std::string_view ctx = "deployment counts";
    Counts c;
    HOIST_ASSIGN(c.total, json::getInt(v, "total", ctx));
    Error e;
    c.done = optNum(v, "done", ctx, e);
    c.failed = optNum(v, "failed", ctx, e);
    c.in_flight = optNum(v, "in_flight", ctx, e);
    c.pending = optNum(v, "pending", ctx, e);
    c.skipped = optNum(v, "skipped", ctx, e);
    c.reverted = optNum(v, "reverted", ctx, e);
    if (!e.message.empty()) return std::unexpected(e);
    return c;
}

Result<DeploymentNode> DeploymentNode::fromJson(const json::Value& v) {
    constexpr std::string_view ctx = "deployment node";
    DeploymentNode n;
    HOIST_ASSIGN(n.node, json::getString(v, "node", ctx));
    HOIST_ASSIGN(n.state, json::getString(v, "state", ctx));
    Error e;
    n.role = optStr(v, "role", ctx, e);
    n.message = optStr(v, "message", ctx, e);
    n.started = optStr(v, "started", ctx, e);
    n.finished = optStr(v, "finished", ctx, e);
    if (!e.message.empty()) return std::unexpected(e);
    return n;
}

bool DeploymentNode::is(deploy_coordinator::NodeStep step) const {
    return deploy_coordinator::parseNodeStep(state) == step;
}

bool DeploymentNode::failed() const {
    using deploy_coordinator::NodeStep;
    return is(NodeStep::failed) || is(NodeStep::revert_failed);
}

Result<Deployment> Deployment::fromJson(const json::Value& v) {
    constexpr std::string_view ctx = "deployment";
    Deployment d;
    HOIST_ASSIGN(d.id, json::getString(v, "id", ctx));
    HOIST_ASSIGN(d.state, json::getString(v, "state", ctx));
    Error e;
    d.version = optStr(v, "version", ctx, e);
    d.kind = optStr(v, "kind", ctx, e);
    d.undoes = optStr(v, "undoes", ctx, e);
    d.waiting_on = optStr(v, "waiting_on", ctx, e);
    d.message = optStr(v, "message", ctx, e);
    d.created = optStr(v, "created", ctx, e);
    d.finished_at = optStr(v, "finished", ctx, e);
    d.max_failures = optNum(v, "max_failures", ctx, e);
    d.min_healthy_ms = optNum(v, "min_healthy_ms", ctx, e);
    d.node_deadline_ms = optNum(v, "node_deadline_ms", ctx, e);
    d.progress_deadline_ms = optNum(v, "progress_deadline_ms", ctx, e);
    if (!e.message.empty()) return std::unexpected(e);
    if (auto mp = v.FindMember("max_parallel"); mp != v.MemberEnd())
        d.max_parallel = mp->value.IsString()  ? mp->value.GetString()
                         : mp->value.IsInt64() ? std::to_string(mp->value.GetInt64())
                                               : "";
    HOIST_ASSIGN(auto revert, json::optBool(v, "auto_revert", ctx));
    d.auto_revert = revert.value_or(false);
    HOIST_ASSIGN(const json::Value* counts, json::optObject(v, "counts", ctx));
    if (counts != nullptr) {
        HOIST_ASSIGN(d.counts, Counts::fromJson(*counts));
    }
    HOIST_ASSIGN(const json::Value* roles, json::optObject(v, "roles", ctx));
    if (roles != nullptr)
        for (auto it = roles->MemberBegin(); it != roles->MemberEnd(); ++it) {
            if (!it->value.IsObject())
                return fail(Errc::Invalid, ctx, ": each of 'roles' must be an object");
            HOIST_ASSIGN(auto c, Counts::fromJson(it->value));
            d.roles.emplace_back(it->name.GetString(), c);
        }
    std::stable_sort(d.roles.begin(), d.roles.end(), [](const auto& x, const auto& y) {
        return roleRank(x.first) != roleRank(y.first) ? roleRank(x.first) < roleRank(y.first)
                                                      : x.first < y.first;
    });
    HOIST_ASSIGN(d.nodes, list<DeploymentNode>(v, "nodes", ctx));
    return d;
}

bool Deployment::is(deploy_coordinator::DeploymentState s) const {
    return deploy_coordinator::parseDeploymentState(state) == s;
}
bool Deployment::ended() const {
    auto s = deploy_coordinator::parseDeploymentState(state);
    return s && deploy_coordinator::isFinished(*s);
}
bool Deployment::heldByBudget() const {
    return is(deploy_coordinator::DeploymentState::held);
}
bool Deployment::halted() const {
    return waiting_on.starts_with("hold:");
}

Result<DeploymentList> DeploymentList::fromJson(const json::Value& v) {
    DeploymentList l;
    HOIST_ASSIGN(l.deployments, list<Deployment>(v, "deployments", "deployments"));
    HOIST_ASSIGN(auto acting, json::optString(v, "acting", "deployments"));
    l.acting = acting.value_or("");
    return l;
}

Result<Hold> Hold::fromJson(const json::Value& v) {
    constexpr std::string_view ctx = "hold";
    Hold h;
    HOIST_ASSIGN(h.source, json::getString(v, "source", ctx));
    Error e;
    h.reason = optStr(v, "reason", ctx, e);
    h.by = optStr(v, "by", ctx, e);
    h.since = optStr(v, "since", ctx, e);
    h.resolved = optStr(v, "resolved", ctx, e);
    if (!e.message.empty()) return std::unexpected(e);
    HOIST_ASSIGN(const json::Value* alerts, json::optArray(v, "alerts", ctx));
    h.alerts = alerts != nullptr ? alerts->Size() : 0;
    return h;
}

Result<HaltView> HaltView::fromJson(const json::Value& v) {
    HaltView h;
    HOIST_ASSIGN(auto halted, json::optBool(v, "halted", "halt"));
    HOIST_ASSIGN(h.holds, list<Hold>(v, "holds", "halt"));
    h.halted = halted.value_or(!h.holds.empty());
    return h;
}

Result<FleetNode> FleetNode::fromJson(const json::Value& v) {
    constexpr std::string_view ctx = "node";
    FleetNode n;
    HOIST_ASSIGN(n.node, json::getString(v, "node", ctx));
    Error e;
    n.role = optStr(v, "role", ctx, e);
    n.address = optStr(v, "address", ctx, e);
    n.release = optStr(v, "release", ctx, e);
    n.generation = optNum(v, "generation", ctx, e);
    n.status = optStr(v, "status", ctx, e);
    n.mode = optStr(v, "mode", ctx, e);
    n.last_seen = optStr(v, "last_seen", ctx, e);
    if (!e.message.empty()) return std::unexpected(e);
    return n;
}

Result<Fleet> Fleet::fromJson(const json::Value& v) {
    Fleet f;
    HOIST_ASSIGN(f.nodes, list<FleetNode>(v, "nodes", "nodes"));
    return f;
}

Result<Monitor> Monitor::fromJson(const json::Value& v) {
    constexpr std::string_view ctx = "monitor";
    Monitor m;
    HOIST_ASSIGN(m.name, json::getString(v, "name", ctx));
    Error e;
    m.allowance_ms = optNum(v, "allowance_ms", ctx, e);
    m.last_beat = optStr(v, "last_beat", ctx, e);
    if (!e.message.empty()) return std::unexpected(e);
    HOIST_ASSIGN(auto silent, json::optBool(v, "silent", ctx));
    m.silent = silent.value_or(false);
    return m;
}

Result<Monitors> Monitors::fromJson(const json::Value& v) {
    Monitors m;
    HOIST_ASSIGN(m.monitors, list<Monitor>(v, "monitors", "monitors"));
    return m;
}

Result<Replica> Replica::fromJson(const json::Value& v) {
    constexpr std::string_view ctx = "replica";
    Replica r;
    HOIST_ASSIGN(r.id, json::getString(v, "id", ctx));
    Error e;
    r.url = optStr(v, "url", ctx, e);
    r.epoch = optNum(v, "epoch", ctx, e);
    r.last_renewal = optStr(v, "last_renewal", ctx, e);
    r.refused = optStr(v, "refused", ctx, e);
    if (!e.message.empty()) return std::unexpected(e);
    HOIST_ASSIGN(auto leader, json::optBool(v, "leader", ctx));
    r.leader = leader.value_or(false);
    return r;
}

Result<Coordinators> Coordinators::fromJson(const json::Value& v) {
    constexpr std::string_view ctx = "coordinators";
    Coordinators c;
    Error e;
    // "leader" is null while no replica leads.
    if (auto it = v.FindMember("leader"); it == v.MemberEnd() || !it->value.IsNull())
        c.leader = optStr(v, "leader", ctx, e);
    c.epoch = optNum(v, "epoch", ctx, e);
    if (!e.message.empty()) return std::unexpected(e);
    HOIST_ASSIGN(c.replicas, list<Replica>(v, "replicas", ctx));
    return c;
}

Result<AuditEvent> AuditEvent::fromJson(const json::Value& v) {
    constexpr std::string_view ctx = "event";
    AuditEvent a;
    HOIST_ASSIGN(a.action, json::getString(v, "action", ctx));
    Error e;
    a.time = optStr(v, "time", ctx, e);
    a.actor = optStr(v, "actor", ctx, e);
    a.deployment = optStr(v, "deployment", ctx, e);
    a.node = optStr(v, "node", ctx, e);
    a.detail = optStr(v, "detail", ctx, e);
    if (!e.message.empty()) return std::unexpected(e);
    return a;
}

Result<AuditLog> AuditLog::fromJson(const json::Value& v) {
    AuditLog l;
    HOIST_ASSIGN(l.events, list<AuditEvent>(v, "events", "events"));
    return l;
}

}  // namespace hoist::cluster
