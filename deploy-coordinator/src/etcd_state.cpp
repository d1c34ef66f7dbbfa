#include "etcd_state.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <tuple>

#include "core/crypto.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"

namespace hoist::deploy_coordinator {

namespace {

using etcd::Op;

constexpr std::int64_t kEventsPerRevision = 100000;

std::string keyContext(const std::string& key) {
    return "etcd key " + key;
}

// Every value opens with the schema, so a foreign value is named as such, not half-read.
Result<json::Document> parseValue(const etcd::KeyValue& kv) {
    auto ctx = keyContext(kv.key);
    auto doc = json::parseObject(kv.value, ctx);
    if (!doc) return fail(Errc::Corrupt, doc.error().message);
    auto schema = json::getString(*doc, "schema", ctx);
    if (!schema) return fail(Errc::Corrupt, schema.error().message);
    if (*schema != EtcdStateStore::kSchema)
        return fail(Errc::Corrupt, ctx, " has the foreign schema '", *schema,
                    "' (this build reads ", EtcdStateStore::kSchema, ")");
    return std::move(*doc);
}

template <class T>
Result<T> corrupt(Result<T> r) {
    if (r) return r;
    return fail(Errc::Corrupt, r.error().message);
}

json::Writer& open(json::Writer& w) {
    return w.beginObject().field("schema", EtcdStateStore::kSchema);
}

std::string encode(const NodeRecord& n) {
    json::Writer w;
    open(w)
        .field("id", n.id)
        .field("role", n.role)
        .field("address", n.address)
        .field("release", n.release)
        .field("generation", n.generation)
        .field("status", n.status)
        .field("registered_ms", n.registered_ms)
        .field("last_seen_ms", n.last_seen_ms)
        .field("mode", n.mode)
        .field("secret_hash", n.secret_hash)
        .endObject();
    return w.str();
}

Result<NodeRecord> decodeNode(const etcd::KeyValue& kv) {
    HOIST_ASSIGN(auto doc, parseValue(kv));
    auto ctx = keyContext(kv.key);
    NodeRecord n;
    HOIST_ASSIGN(n.id, corrupt(json::getString(doc, "id", ctx)));
    HOIST_ASSIGN(n.role, corrupt(json::getString(doc, "role", ctx)));
    HOIST_ASSIGN(n.address, corrupt(json::getString(doc, "address", ctx)));
    HOIST_ASSIGN(n.release, corrupt(json::getString(doc, "release", ctx)));
    HOIST_ASSIGN(n.generation, corrupt(json::getInt(doc, "generation", ctx)));
    HOIST_ASSIGN(n.status, corrupt(json::getString(doc, "status", ctx)));
    HOIST_ASSIGN(n.registered_ms, corrupt(json::getInt(doc, "registered_ms", ctx)));
    HOIST_ASSIGN(n.last_seen_ms, corrupt(json::getInt(doc, "last_seen_ms", ctx)));
    HOIST_ASSIGN(n.mode, corrupt(json::getString(doc, "mode", ctx)));
    // Optional: nodes registered before per-node secrets have none ("").
    HOIST_ASSIGN(auto secret_hash, corrupt(json::optString(doc, "secret_hash", ctx)));
    n.secret_hash = secret_hash.value_or("");
    return n;
}

std::string encode(const Deployment& d) {
    json::Writer w;
    open(w)
        .field("id", d.id)
        .field("number", d.number)
        .field("version", d.version)
        .field("kind", d.kind)
        .field("undoes", d.undoes)
        .field("state", toString(d.state))
        .field("max_parallel", d.max_parallel)
        .field("max_failures", d.max_failures)
        .field("auto_revert", d.auto_revert)
        .field("min_healthy_ms", d.min_healthy_ms)
        .field("node_deadline_ms", d.node_deadline_ms)
        .field("progress_deadline_ms", d.progress_deadline_ms)
        .field("release_json", d.release_json)
        .field("created_by", d.created_by)
        .field("waiting_on", d.waiting_on)
        .field("message", d.message)
        .field("created_ms", d.created_ms)
        .field("updated_ms", d.updated_ms)
        .field("finished_ms", d.finished_ms)
        .field("idempotency_key", d.idempotency_key)
        .field("gates", d.gates)
        .endObject();
    return w.str();
}

Result<Deployment> decodeDeployment(const etcd::KeyValue& kv) {
    HOIST_ASSIGN(auto doc, parseValue(kv));
    auto ctx = keyContext(kv.key);
    Deployment d;
    HOIST_ASSIGN(d.id, corrupt(json::getString(doc, "id", ctx)));
    HOIST_ASSIGN(d.number, corrupt(json::getInt(doc, "number", ctx)));
    HOIST_ASSIGN(d.version, corrupt(json::getString(doc, "version", ctx)));
    HOIST_ASSIGN(d.kind, corrupt(json::getString(doc, "kind", ctx)));
    HOIST_ASSIGN(d.undoes, corrupt(json::getString(doc, "undoes", ctx)));
    // Optional: written since hoist-coordinator/1 records gained them ("" when absent).
    HOIST_ASSIGN(auto key, corrupt(json::optString(doc, "idempotency_key", ctx)));
    d.idempotency_key = key.value_or("");
    HOIST_ASSIGN(auto gates, corrupt(json::optString(doc, "gates", ctx)));
    d.gates = gates.value_or("");
    HOIST_ASSIGN(auto state, corrupt(json::getString(doc, "state", ctx)));
    auto parsed = parseDeploymentState(state);
    if (!parsed) return fail(Errc::Corrupt, ctx, ": unknown deployment state '", state, "'");
    d.state = *parsed;
    HOIST_ASSIGN(d.max_parallel, corrupt(json::getString(doc, "max_parallel", ctx)));
    HOIST_ASSIGN(d.max_failures, corrupt(json::getInt(doc, "max_failures", ctx)));
    HOIST_ASSIGN(d.auto_revert, corrupt(json::getBool(doc, "auto_revert", ctx)));
    HOIST_ASSIGN(d.min_healthy_ms, corrupt(json::getInt(doc, "min_healthy_ms", ctx)));
    HOIST_ASSIGN(d.node_deadline_ms, corrupt(json::getInt(doc, "node_deadline_ms", ctx)));
    HOIST_ASSIGN(d.progress_deadline_ms, corrupt(json::getInt(doc, "progress_deadline_ms", ctx)));
    HOIST_ASSIGN(d.release_json, corrupt(json::getString(doc, "release_json", ctx)));
    HOIST_ASSIGN(d.created_by, corrupt(json::getString(doc, "created_by", ctx)));
    HOIST_ASSIGN(d.waiting_on, corrupt(json::getString(doc, "waiting_on", ctx)));
    HOIST_ASSIGN(d.message, corrupt(json::getString(doc, "message", ctx)));
    HOIST_ASSIGN(d.created_ms, corrupt(json::getInt(doc, "created_ms", ctx)));
    HOIST_ASSIGN(d.updated_ms, corrupt(json::getInt(doc, "updated_ms", ctx)));
    HOIST_ASSIGN(d.finished_ms, corrupt(json::getInt(doc, "finished_ms", ctx)));
    return d;
}

std::string encode(const DeploymentNode& n) {
    json::Writer w;
    open(w)
        .field("deployment", n.deployment)
        .field("node", n.node)
        .field("role", n.role)
        .field("ord", n.ord)
        .field("state", toString(n.state))
        .field("node_state", n.node_state)
        .field("from_release", n.from_release)
        .field("from_generation", n.from_generation)
        .field("target_generation", n.target_generation)
        .field("last_seq", n.last_seq)
        .field("restarts", n.restarts)
        .field("started_ms", n.started_ms)
        .field("finished_ms", n.finished_ms)
        .field("message", n.message)
        .endObject();
    return w.str();
}

Result<DeploymentNode> decodeDeploymentNode(const etcd::KeyValue& kv) {
    HOIST_ASSIGN(auto doc, parseValue(kv));
    auto ctx = keyContext(kv.key);
    DeploymentNode n;
    HOIST_ASSIGN(n.deployment, corrupt(json::getString(doc, "deployment", ctx)));
    HOIST_ASSIGN(n.node, corrupt(json::getString(doc, "node", ctx)));
    HOIST_ASSIGN(n.role, corrupt(json::getString(doc, "role", ctx)));
    HOIST_ASSIGN(n.ord, corrupt(json::getInt(doc, "ord", ctx)));
    HOIST_ASSIGN(auto state, corrupt(json::getString(doc, "state", ctx)));
    auto step = parseNodeStep(state);
    if (!step) return fail(Errc::Corrupt, ctx, ": unknown node step '", state, "'");
    n.state = *step;
    HOIST_ASSIGN(n.node_state, corrupt(json::getString(doc, "node_state", ctx)));
    HOIST_ASSIGN(n.from_release, corrupt(json::getString(doc, "from_release", ctx)));
    HOIST_ASSIGN(n.from_generation, corrupt(json::getInt(doc, "from_generation", ctx)));
    HOIST_ASSIGN(n.target_generation, corrupt(json::getInt(doc, "target_generation", ctx)));
    HOIST_ASSIGN(n.last_seq, corrupt(json::getInt(doc, "last_seq", ctx)));
    HOIST_ASSIGN(n.restarts, corrupt(json::getInt(doc, "restarts", ctx)));
    HOIST_ASSIGN(n.started_ms, corrupt(json::getInt(doc, "started_ms", ctx)));
    HOIST_ASSIGN(n.finished_ms, corrupt(json::getInt(doc, "finished_ms", ctx)));
    HOIST_ASSIGN(n.message, corrupt(json::getString(doc, "message", ctx)));
    return n;
}

std::string encode(const Hold& h) {
    json::Writer w;
    open(w)
        .field("source", h.source)
        .field("reason", h.reason)
        .field("by", h.by)
        .field("since_ms", h.since_ms)
        .field("alerts_json", h.alerts_json)
        .field("resolved_ms", h.resolved_ms)
        .endObject();
    return w.str();
}

std::string encode(const MonitorRecord& m) {
    json::Writer w;
    open(w)
        .field("name", m.name)
        .field("allowance_ms", m.allowance_ms)
        .field("last_beat_ms", m.last_beat_ms)
        .endObject();
    return w.str();
}

Result<MonitorRecord> decodeMonitor(const etcd::KeyValue& kv) {
    HOIST_ASSIGN(auto doc, parseValue(kv));
    auto ctx = keyContext(kv.key);
    MonitorRecord m;
    HOIST_ASSIGN(m.name, corrupt(json::getString(doc, "name", ctx)));
    HOIST_ASSIGN(m.allowance_ms, corrupt(json::getInt(doc, "allowance_ms", ctx)));
    HOIST_ASSIGN(m.last_beat_ms, corrupt(json::getInt(doc, "last_beat_ms", ctx)));
    return m;
}

std::string encode(const Event& e, std::size_t index) {
    json::Writer w;
    open(w)
        .field("index", static_cast<std::int64_t>(index))
        .field("time_ms", e.time_ms == 0 ? nowMs() : e.time_ms)
        .field("actor", e.actor)
        .field("action", e.action)
        .field("deployment", e.deployment)
        .field("node", e.node)
        .field("detail", e.detail)
        .endObject();
    return w.str();
}

// The id is the write's revision and the event's place in it: ids grow with every write.
Result<Event> decodeEvent(const etcd::KeyValue& kv) {
    HOIST_ASSIGN(auto doc, parseValue(kv));
    auto ctx = keyContext(kv.key);
    Event e;
    HOIST_ASSIGN(auto index, corrupt(json::getInt(doc, "index", ctx)));
    if (index < 0 || index >= kEventsPerRevision)
        return fail(Errc::Corrupt, ctx, ": field 'index' must be 0 to ", kEventsPerRevision - 1);
    e.id = kv.create_revision * kEventsPerRevision + index;
    HOIST_ASSIGN(e.time_ms, corrupt(json::getInt(doc, "time_ms", ctx)));
    HOIST_ASSIGN(e.actor, corrupt(json::getString(doc, "actor", ctx)));
    HOIST_ASSIGN(e.action, corrupt(json::getString(doc, "action", ctx)));
    HOIST_ASSIGN(e.deployment, corrupt(json::getString(doc, "deployment", ctx)));
    HOIST_ASSIGN(e.node, corrupt(json::getString(doc, "node", ctx)));
    HOIST_ASSIGN(e.detail, corrupt(json::getString(doc, "detail", ctx)));
    return e;
}

std::string eventScope(std::string_view deployment) {
    return deployment.empty() ? std::string("_") : std::string(deployment);
}

}  // namespace

Result<Hold> EtcdStateStore::decodeHold(const etcd::KeyValue& kv) {
    HOIST_ASSIGN(auto doc, parseValue(kv));
    auto ctx = keyContext(kv.key);
    Hold h;
    HOIST_ASSIGN(h.source, corrupt(json::getString(doc, "source", ctx)));
    HOIST_ASSIGN(h.reason, corrupt(json::getString(doc, "reason", ctx)));
    HOIST_ASSIGN(h.by, corrupt(json::getString(doc, "by", ctx)));
    HOIST_ASSIGN(h.since_ms, corrupt(json::getInt(doc, "since_ms", ctx)));
    HOIST_ASSIGN(h.alerts_json, corrupt(json::getString(doc, "alerts_json", ctx)));
    HOIST_ASSIGN(h.resolved_ms, corrupt(json::getInt(doc, "resolved_ms", ctx)));
    return h;
}

Result<NodeRecord> EtcdStateStore::decodeNodeValue(const etcd::KeyValue& kv) {
    return decodeNode(kv);
}
Result<Deployment> EtcdStateStore::decodeDeploymentValue(const etcd::KeyValue& kv) {
    return decodeDeployment(kv);
}
Result<DeploymentNode> EtcdStateStore::decodeDeploymentNodeValue(const etcd::KeyValue& kv) {
    return decodeDeploymentNode(kv);
}
Result<Event> EtcdStateStore::decodeEventValue(const etcd::KeyValue& kv) {
    return decodeEvent(kv);
}

EtcdStateStore::EtcdStateStore(etcd::Client& client, std::string prefix, std::size_t max_txn_ops)
    : client_(client),
      prefix_(std::move(prefix)),
      max_txn_ops_(std::max<std::size_t>(8, max_txn_ops)) {}

void EtcdStateStore::setLeadership(std::int64_t epoch, std::string key, std::int64_t lease) {
    std::lock_guard lock(mutex_);
    highest_number_.reset();
    epoch_ = epoch;
    election_key_ = std::move(key);
    lease_ = lease;
}

Result<std::int64_t> EtcdStateStore::term() {
    std::lock_guard lock(mutex_);
    return epoch_;
}

Result<void> EtcdStateStore::claim(std::int64_t term) {
    std::lock_guard lock(mutex_);
    if (term != epoch_ || term == 0)
        return fail(Errc::Conflict, "term ", term,
                    " is not this replica's: terms are won in the etcd election (this replica's "
                    "epoch is ",
                    epoch_, ")");
    return ok();
}

Result<void> EtcdStateStore::ping() {
    etcd::RangeRequest r;
    r.key = prefix_;
    r.range_end = etcd::prefixEnd(prefix_);
    r.count_only = true;
    auto answered = client_.range(r);
    if (!answered)
        return fail(Errc::Network, "state store etcd (", strings::join(client_.endpoints(), ","),
                    ") is unreachable: ", answered.error().message);
    return ok();
}

std::vector<Op> EtcdStateStore::eventOps(const std::vector<Event>& events) {
    std::vector<Op> ops;
    // Unique without coordination: replicas may each append (a halt to a follower).
    auto batch = crypto::randomHex(8);
    for (std::size_t i = 0; i < events.size(); ++i) {
        char index[24];
        std::snprintf(index, sizeof index, "%06zu", i);
        ops.push_back(Op::put(
            prefix_ + "events/" + eventScope(events[i].deployment) + "/" + batch + "-" + index,
            encode(events[i], i)));
    }
    return ops;
}

Result<void> EtcdStateStore::commit(const StepWrite& w, std::int64_t term, bool /*durable*/) {
    // etcd answers a write only once a quorum has it in its log: every write is durable.
    if (w.empty()) return ok();
    std::vector<etcd::Compare> fence;
    if (term != 0) {
        std::lock_guard lock(mutex_);
        if (term != epoch_)
            return fail(Errc::Conflict, "write refused: this replica writes as epoch ", term,
                        " but leads as epoch ", epoch_, " (it is not the leader)");
        fence.push_back({etcd::Compare::Target::create,
                         etcd::Compare::Result::equal,
                         election_key_,
                         epoch_,
                         {}});
        fence.push_back({etcd::Compare::Target::lease,
                         etcd::Compare::Result::equal,
                         election_key_,
                         lease_,
                         {}});
    } else if (w.deployment || !w.nodes.empty() || !w.registry.empty() || !w.forget_nodes.empty()) {
        return fail(Errc::Conflict,
                    "write refused: only the leader writes rollout state (this replica does not "
                    "lead)");
    }
    // The leader's steps go out one at a time (staged parts of one are never taken for
    // leftovers of another). A step whose rows were left half applied (its marker committed)
    // is finished first: the step after it must not land under it.
    std::unique_lock staging(staging_mutex_, std::defer_lock);
    if (!fence.empty()) staging.lock();
    if (!fence.empty() && unapplied_.load()) HOIST_TRY(recoverLocked());
    // Bulk rows (registry, per-node rows) apart from the small part (holds, the deployment
    // row): a step too large for one txn is staged (etcd_staged.cpp).
    std::vector<Op> bulk;
    for (const auto& n : w.registry) bulk.push_back(Op::put(prefix_ + "nodes/" + n.id, encode(n)));
    for (const auto& id : w.forget_nodes) bulk.push_back(Op::remove(prefix_ + "nodes/" + id));
    for (const auto& n : w.nodes)
        bulk.push_back(
            Op::put(prefix_ + "deployment-nodes/" + n.deployment + "/" + n.node, encode(n)));
    std::vector<Op> control;
    if (w.clear_holds)
        control.push_back(Op::remove(prefix_ + "holds/", etcd::prefixEnd(prefix_ + "holds/")));
    for (const auto& source : w.delete_holds)
        control.push_back(Op::remove(prefix_ + "holds/" + source));
    for (const auto& h : w.put_holds)
        control.push_back(Op::put(prefix_ + "holds/" + h.source, encode(h)));
    std::optional<std::int64_t> number;
    if (w.deployment) {
        control.push_back(
            Op::put(prefix_ + "deployments/" + w.deployment->id, encode(*w.deployment)));
        // The highest number handed out; a lower one (an older deployment's row) never lowers it.
        std::optional<std::int64_t> highest;
        {
            std::lock_guard lock(mutex_);
            highest = highest_number_;
        }
        if (!highest) {
            auto next = nextDeploymentNumber();
            if (!next) return std::unexpected(next.error());
            highest = *next - 1;
        }
        if (w.deployment->number > *highest) {
            number = w.deployment->number;
            control.push_back(Op::put(prefix_ + "meta/deployment-number", std::to_string(*number)));
        } else {
            number = *highest;
        }
    }
    auto events = eventOps(w.events);
    auto remember = [&] {
        if (!number) return;
        std::lock_guard lock(mutex_);
        highest_number_ = std::max(highest_number_.value_or(0), *number);
    };

    const auto total = bulk.size() + control.size() + events.size();
    if (total <= max_txn_ops_) {
        std::vector<Op> ops = std::move(bulk);
        for (auto& op : control) ops.push_back(std::move(op));
        for (auto& op : events) ops.push_back(std::move(op));
        HOIST_TRY(fencedTxn(fence, ops, term));
        remember();
        return ok();
    }
    if (fence.empty()) {
        // A follower's write (holds and audit events only): idempotent puts, in order.
        for (auto& op : events) control.push_back(std::move(op));
        for (std::size_t at = 0; at < control.size(); at += max_txn_ops_) {
            auto end = std::min(control.size(), at + max_txn_ops_);
            std::vector<Op> chunk(control.begin() + static_cast<long>(at),
                                  control.begin() + static_cast<long>(end));
            HOIST_TRY(fencedTxn(fence, chunk, term));
        }
        return ok();
    }
    // Staged: the events go with the bulk when they do not fit beside the marker.
    if (control.size() + events.size() + 1 > max_txn_ops_)
        for (auto& op : events) bulk.push_back(std::move(op));
    else
        for (auto& op : events) control.push_back(std::move(op));
    HOIST_TRY(commitStaged(fence, std::move(bulk), std::move(control), term));
    remember();
    return ok();
}

Result<void> EtcdStateStore::fencedTxn(const std::vector<etcd::Compare>& fence,
                                       const std::vector<Op>& ops, std::int64_t term) {
    auto done = client_.txn(fence, ops);
    if (!done) return std::unexpected(unavailable(done.error()));
    if (fence.empty() || done->succeeded) return ok();
    return fail(Errc::Conflict, "write refused by etcd: the election key of epoch ", term,
                " is gone or no longer this replica's (another replica leads)");
}

Result<std::vector<etcd::KeyValue>> EtcdStateStore::rangePrefix(const std::string& prefix,
                                                                std::int64_t limit,
                                                                bool newest_first) {
    etcd::RangeRequest r;
    r.key = prefix;
    r.range_end = etcd::prefixEnd(prefix);
    r.limit = limit;
    if (newest_first) {
        r.sort_order = etcd::RangeRequest::Sort::descend;
        r.sort_target = etcd::RangeRequest::Target::create;
    }
    auto answer = client_.range(r);
    if (!answer) return std::unexpected(unavailable(answer.error()));
    // A staged step committed but not yet applied is part of what was committed: it is laid
    // over what the read found, as of the same revision.
    return overlayStaged(prefix, std::move(*answer));
}

Error EtcdStateStore::unavailable(const Error& e) const {
    if (e.code != Errc::Network && e.code != Errc::Timeout) return e;
    return Error{Errc::Unhealthy,
                 "state store etcd (" + strings::join(client_.endpoints(), ",") +
                     ") did not answer: " + e.message,
                 0};
}

Result<std::vector<NodeRecord>> EtcdStateStore::nodes() {
    HOIST_ASSIGN(auto kvs, rangePrefix(prefix_ + "nodes/"));
    std::vector<NodeRecord> out;
    for (const auto& kv : kvs) {
        HOIST_ASSIGN(auto n, decodeNode(kv));
        out.push_back(std::move(n));
    }
    return out;
}

Result<std::vector<Hold>> EtcdStateStore::holds() {
    HOIST_ASSIGN(auto kvs, rangePrefix(prefix_ + "holds/"));
    std::vector<Hold> out;
    for (const auto& kv : kvs) {
        HOIST_ASSIGN(auto h, decodeHold(kv));
        out.push_back(std::move(h));
    }
    std::sort(out.begin(), out.end(), [](const Hold& a, const Hold& b) {
        return std::tie(a.since_ms, a.source) < std::tie(b.since_ms, b.source);
    });
    return out;
}

Result<std::vector<Deployment>> EtcdStateStore::deployments(int limit) {
    HOIST_ASSIGN(auto kvs, rangePrefix(prefix_ + "deployments/"));
    std::vector<Deployment> out;
    for (const auto& kv : kvs) {
        HOIST_ASSIGN(auto d, decodeDeployment(kv));
        out.push_back(std::move(d));
    }
    std::sort(out.begin(), out.end(),
              [](const Deployment& a, const Deployment& b) { return a.number > b.number; });
    if (limit >= 0 && out.size() > static_cast<std::size_t>(limit))
        out.resize(static_cast<std::size_t>(limit));
    return out;
}

Result<std::optional<Deployment>> EtcdStateStore::deployment(std::string_view id) {
    etcd::RangeRequest r;
    r.key = prefix_ + "deployments/" + std::string(id);
    auto answer = client_.range(r);
    if (!answer) return std::unexpected(unavailable(answer.error()));
    if (answer->kvs.empty()) return std::optional<Deployment>();
    HOIST_ASSIGN(auto d, decodeDeployment(answer->kvs.front()));
    return std::optional<Deployment>(std::move(d));
}

Result<std::vector<DeploymentNode>> EtcdStateStore::deploymentNodes(std::string_view deployment) {
    HOIST_ASSIGN(auto kvs,
                 rangePrefix(prefix_ + "deployment-nodes/" + std::string(deployment) + "/"));
    std::vector<DeploymentNode> out;
    for (const auto& kv : kvs) {
        HOIST_ASSIGN(auto n, decodeDeploymentNode(kv));
        out.push_back(std::move(n));
    }
    std::sort(out.begin(), out.end(),
              [](const DeploymentNode& a, const DeploymentNode& b) { return a.ord < b.ord; });
    return out;
}

Result<std::vector<Event>> EtcdStateStore::events(std::optional<std::string_view> deployment,
                                                  int limit) {
    auto scope = prefix_ + "events/" + (deployment ? eventScope(*deployment) + "/" : "");
    HOIST_ASSIGN(auto kvs, rangePrefix(scope, limit, true));
    std::vector<Event> out;
    for (const auto& kv : kvs) {
        HOIST_ASSIGN(auto e, decodeEvent(kv));
        out.push_back(std::move(e));
    }
    std::sort(out.begin(), out.end(), [](const Event& a, const Event& b) { return a.id < b.id; });
    // A staged step laid over the read may add some: the newest `limit` are kept.
    if (limit > 0 && out.size() > static_cast<std::size_t>(limit))
        out.erase(out.begin(), out.end() - limit);
    return out;
}

Result<std::int64_t> EtcdStateStore::nextDeploymentNumber() {
    etcd::RangeRequest r;
    r.key = prefix_ + "meta/deployment-number";
    HOIST_ASSIGN(auto answer, client_.range(r));
    if (answer.kvs.empty()) return std::int64_t{1};
    const auto& text = answer.kvs.front().value;
    std::int64_t number = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (ec != std::errc() || end != text.data() + text.size() || number < 0)
        return fail(Errc::Corrupt, keyContext(r.key), " must hold a deployment number, not '",
                    text.substr(0, 40), "'");
    return number + 1;
}

Result<std::vector<MonitorRecord>> EtcdStateStore::monitors() {
    HOIST_ASSIGN(auto kvs, rangePrefix(prefix_ + "monitors/"));
    std::vector<MonitorRecord> out;
    for (const auto& kv : kvs) {
        HOIST_ASSIGN(auto m, decodeMonitor(kv));
        out.push_back(std::move(m));
    }
    return out;
}

Result<void> EtcdStateStore::writeMonitor(const std::optional<MonitorRecord>& put,
                                          std::string_view remove,
                                          const std::vector<Event>& events) {
    std::vector<Op> ops;
    if (put) ops.push_back(Op::put(prefix_ + "monitors/" + put->name, encode(*put)));
    if (!remove.empty()) ops.push_back(Op::remove(prefix_ + "monitors/" + std::string(remove)));
    for (auto& op : eventOps(events)) ops.push_back(std::move(op));
    if (ops.empty()) return ok();
    HOIST_ASSIGN(auto done, client_.txn({}, ops));
    (void)done;
    return ok();
}

}  // namespace hoist::deploy_coordinator
