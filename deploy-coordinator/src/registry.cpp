#include "engine.hpp"

#include <algorithm>
#include <map>

#include "core/crypto.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "deploy_coordinator/plan.hpp"
#include "pkgmgr/node_config.hpp"
#include "pkgmgr/wire.hpp"
#include "views.hpp"

namespace hoist::deploy_coordinator {

namespace {
constexpr std::string_view kLog = "deploy-coordinator";
}  // namespace

void Engine::sweepNodes(std::int64_t now) {
    size_t started = 0;
    for (auto& [id, rec] : nodes_) {
        if (rec.is(NodeStatus::removed) || node_checking_.count(id) != 0) continue;
        if (now - rec.last_seen_ms < options_.down_after.count()) continue;
        if (rec.pull()) {
            // Never called: a pull node that stopped asking is down until it asks again.
            if (rec.is(NodeStatus::up)) {
                rec.set(NodeStatus::down);
                queueEvent("coordinator", "node down", "", id, "stopped asking");
                log::warn(kLog, "node down", {{"node", id}});
                node_dirty_[id] = true;
            }
            continue;
        }
        if (started++ >= 256) break;
        node_checking_[id] = true;
        std::string node = id;
        std::string address = rec.address;
        check_pool_->post([this, node, address](http::Client&) {
            bool up = gateway_->answers(address);
            post([this, node, up] {
                node_checking_.erase(node);
                auto it = nodes_.find(node);
                if (it == nodes_.end()) return;
                auto& r = it->second;
                auto t = nowMs();
                if (up) {
                    r.last_seen_ms = t;
                    if (r.is(NodeStatus::down)) {
                        r.set(NodeStatus::up);
                        queueEvent("coordinator", "node up", "", node, "answered a poll");
                    }
                } else if (r.is(NodeStatus::up)) {
                    r.set(NodeStatus::down);
                    queueEvent("coordinator", "node down", "", node, "stopped answering");
                    log::warn(kLog, "node down", {{"node", node}});
                }
                node_dirty_[node] = true;
            });
        });
    }
}

// ---------------------------------------------------------------------------------------------

namespace {
// A node secret as pkgmgr::nodeSecret writes it: enough randomness that only its holder has it.
bool wellFormedSecret(std::string_view secret) {
    return secret.size() >= 32 && secret.size() <= 128 &&
           std::all_of(secret.begin(), secret.end(),
                       [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}
}  // namespace

Result<std::string> Engine::registerNode(NodeRecord node) {
    return registerNode(std::move(node), NodeCredential{true, {}});
}

Result<void> Engine::checkNodeSecret(const std::string& id, const NodeCredential& credential) {
    if (credential.admin) return ok();
    std::string presented = credential.secret.empty() ? "" : crypto::sha256Hex(credential.secret);
    std::lock_guard lock(mutex_);
    auto it = nodes_.find(id);
    if (it == nodes_.end() || it->second.secret_hash.empty()) return ok();
    if (!presented.empty() && crypto::constantTimeEquals(presented, it->second.secret_hash))
        return ok();
    return fail(Errc::Unauthorized, "node '", id, "' is bound to its own secret (header ",
                pkgmgr::kNodeSecretHeader, ") and this request does not present it");
}

Result<void> Engine::forgetNode(const std::string& id, const std::string& actor,
                                const std::string& reason) {
    // On the runner: no step that still holds the node's row is written after the forget.
    return run<void>("forgetting node '" + id + "'", [&]() -> Result<void> {
        auto it = nodes_.find(id);
        if (it == nodes_.end()) return fail(Errc::NotFound, "node '", id, "' is not registered");
        if (active_ && active_->find(id) != nullptr)
            return fail(Errc::Conflict, "node '", id, "' is part of deployment ", active_->d.id,
                        ", which is under way: wait for it to end (or abort it with `cluster "
                        "abort ",
                        active_->d.id, "`), then forget the node");
        const auto& n = it->second;
        auto now = nowMs();
        StepWrite write;
        write.forget_nodes.push_back(id);
        // Pending events go first, in order, in the same transaction.
        write.events = pending_events_;
        write.events.push_back(
            {0, now, actor, "node forgotten", "", id,
             reason + " (was " + n.role + " at " + n.address + ", " + n.status + ")"});
        HOIST_TRY(state_.commit(write, term_, true));
        pending_events_.clear();
        log::info(kLog, "node forgotten", {{"node", id}, {"by", actor}, {"reason", reason}});
        nodes_.erase(it);
        node_dirty_.erase(id);
        node_progress_.erase(id);
        node_checking_.erase(id);
        seen_written_.erase(id);
        {
            std::unique_lock ids_lock(ids_mutex_);
            ids_.erase(id);
        }
        return ok();
    });
}

Result<std::string> Engine::registerNode(NodeRecord node, const NodeCredential& credential) {
    HOIST_TRY(pkgmgr::validateName(node.id));
    if (!credential.secret.empty() && !wellFormedSecret(credential.secret))
        return fail(Errc::Invalid, "registration of '", node.id, "': header ",
                    pkgmgr::kNodeSecretHeader, " must be 32 to 128 lowercase hex characters");
    if (node.role.empty())
        return fail(Errc::Invalid, "registration of '", node.id, "': field 'role' is empty");
    if (!node.address.starts_with("http://") && !node.address.starts_with("https://"))
        return fail(Errc::Invalid, "registration of '", node.id, "': address '", node.address,
                    "' must be an http:// or https:// URL");
    std::string presented = credential.secret.empty() ? "" : crypto::sha256Hex(credential.secret);
    // Answered once the step holding the registration is committed: registrations arriving
    // together (a fleet booting) share one write.
    auto body =
        [this, &node, &credential, &presented](
            std::shared_ptr<Answer<std::string>> answer) -> std::optional<Result<std::string>> {
        if (auto it = nodes_.find(node.id); it != nodes_.end() && !credential.admin) {
            const auto& known = it->second;
            if (!known.secret_hash.empty()) {
                if (presented.empty() || !crypto::constantTimeEquals(presented, known.secret_hash))
                    return fail(Errc::Unauthorized, "registration of '", node.id,
                                "': the node is bound to its own secret and this registration "
                                "does not present it (a reinstalled node: forget it first with "
                                "`cluster node forget ",
                                node.id, "`, or register it with the admin token)");
            } else if (known.is(NodeStatus::up) && known.address != node.address) {
                return fail(Errc::Conflict, "registration of '", node.id, "': the node is up at ",
                            known.address, "; registering it from ", node.address,
                            " needs the admin token (or forget it first with `cluster node "
                            "forget ",
                            node.id, "`)");
            }
        }
        node.secret_hash = presented;
        registerOnRunner(node, credential.admin);
        json::Writer w;
        writeNode(w, node);
        after_commit_.push_back([answer, text = w.str()](const Result<void>& written) {
            if (written)
                answer->give(text);
            else
                answer->give(std::unexpected(written.error()));
        });
        return std::nullopt;
    };
    return call<std::string>(Runner::Lane::normal, "registration of '" + node.id + "'", body);
}

void Engine::registerOnRunner(NodeRecord& node, bool by_admin) {
    auto now = nowMs();
    auto it = nodes_.find(node.id);
    bool changed = it == nodes_.end() || it->second.address != node.address ||
                   it->second.role != node.role || !it->second.is(NodeStatus::up) ||
                   it->second.mode != node.mode || it->second.secret_hash != node.secret_hash;
    node.registered_ms = it == nodes_.end() ? now : it->second.registered_ms;
    node.last_seen_ms = now;
    node.set(NodeStatus::up);
    if (it != nodes_.end() && node.release.empty()) node.release = it->second.release;
    if (it != nodes_.end()) node.ask_interval_ms = it->second.ask_interval_ms;
    if (changed)
        queueEvent("node:" + node.id, "register", "", node.id,
                   node.role + " at " + node.address + " release " + node.release +
                       (node.pull() ? " (pull)" : "") +
                       (node.secret_hash.empty() ? "" : ", own secret") +
                       (by_admin ? ", by the admin" : ""));
    nodes_[node.id] = node;
    {
        std::unique_lock lock(ids_mutex_);
        ids_.insert(node.id);
    }
    node_progress_.insert(node.id);  // in this step's write, unbounded by the registry share
    if (active_) {
        if (Slot* slot = active_->find(node.id)) {
            bool pull = node.pull();
            if (slot->pull != pull) {
                // The next action goes the new way; a stage handed out to a pull node is
                // sent again (stage is idempotent).
                slot->pull = pull;
                slot->offered_ms.reset();
                if (!pull && slot->row.state == NodeStep::staging)
                    active_->step(*slot, NodeEvent::stage_lost);
                // Its timers change with its mode.
                active_->index();
            }
        }
    }
}

Result<std::string> Engine::nodesView(const std::string& format) {
    if (format == "prometheus-sd") {
        if (!standby_) return nodesPrometheusSd();
        HOIST_ASSIGN(auto rows, state_.nodes());
        return nodesPrometheusSd(std::move(rows));
    }
    if (format != "json")
        return fail(Errc::Invalid, "GET /v1/nodes: unknown format '", format,
                    "' (formats: json, prometheus-sd)");
    if (!standby_) return nodesJson();
    // A follower answers from the store: what the leader last committed.
    HOIST_ASSIGN(auto rows, state_.nodes());
    return nodesJson(std::move(rows));
}

std::string Engine::nodesJson() {
    std::vector<NodeRecord> list;
    {
        std::lock_guard lock(mutex_);
        for (const auto& [_, n] : nodes_) list.push_back(n);
    }
    return nodesJson(std::move(list));
}

std::string Engine::nodesJson(std::vector<NodeRecord> list) {
    std::sort(list.begin(), list.end(), [](const NodeRecord& x, const NodeRecord& y) {
        if (roleRank(x.role) != roleRank(y.role)) return roleRank(x.role) < roleRank(y.role);
        return naturalLess(x.id, y.id);
    });
    json::Writer w;
    w.beginObject().key("nodes").beginArray();
    for (const auto& n : list) writeNode(w, n);
    w.endArray().endObject();
    return w.str();
}

Result<NodeRecord> Engine::node(const std::string& id) {
    std::lock_guard lock(mutex_);
    auto it = nodes_.find(id);
    if (it == nodes_.end()) return fail(Errc::NotFound, "node '", id, "' is not registered");
    return it->second;
}

Result<void> Engine::markRemoved(const std::string& id, const std::string& actor) {
    return run<void>("removal of '" + id + "'", [&]() -> Result<void> {
        auto it = nodes_.find(id);
        if (it == nodes_.end()) return ok();
        it->second.set(NodeStatus::removed);
        queueEvent(actor, "node removed", "", id, "decommissioned through the provisioner");
        node_progress_.insert(id);
        return flush(nowMs(), false);
    });
}

Result<std::string> Engine::currentRelease() {
    HOIST_ASSIGN(auto deployments, state_.deployments(1000));
    for (const auto& d : deployments)  // newest first
        if (d.state == DeploymentState::done ||
            (d.kind == "rollback" && d.state == DeploymentState::rolled_back))
            return d.version;
    HOIST_ASSIGN(auto nodes, state_.nodes());
    std::map<std::string, int> counts;
    for (const auto& n : nodes)
        if (!n.release.empty()) ++counts[n.release];
    std::string best;
    int best_count = 0;
    for (const auto& [release, count] : counts) {
        if (count > best_count) {
            best = release;
            best_count = count;
        }
    }
    return best;
}

}  // namespace hoist::deploy_coordinator
