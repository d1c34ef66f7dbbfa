#include "engine.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "core/json.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"
#include "deploy_coordinator/plan.hpp"

namespace hoist::deploy_coordinator {

namespace {
constexpr std::string_view kLog = "deploy-coordinator";

bool isForwardInFlight(const std::string& s) {
    return s == "restarting" || s == "restarted" || s == "settling";
}
bool isRevertInFlight(const std::string& s) {
    return s == "reverting" || s == "revert_sent";
}
bool isForwardTerminal(const std::string& s) {
    return s == "done" || s == "failed" || s == "skipped";
}
bool isDeploymentFinished(const std::string& s) {
    return s == "done" || s == "failed" || s == "aborted" || s == "reverted" || s == "rolled_back";
}

using pkgmgr::NodeView;

/// Whether a swap is under way (GET /v1/transaction, pkgmgr::TransactionView), and its step.
std::pair<bool, std::string> transactionView(const http::Response& response) {
    if (response.status != 200) return {false, ""};
    auto view = pkgmgr::TransactionView::fromJson(response.body);
    if (!view || !view->active) return {false, ""};
    return {view->underWay(), view->step()};
}

std::string errorText(const Result<http::Response>& r) {
    if (!r) return r.error().describe();
    std::string body = r->body.substr(0, 200);
    auto doc = json::parseObject(r->body, "reply");
    if (doc) {
        auto m = doc->FindMember("error");
        if (m != doc->MemberEnd() && m->value.IsString()) body = m->value.GetString();
    }
    return detail::concat("HTTP ", r->status, ": ", body);
}

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
}  // namespace

struct Engine::Slot {
    DeploymentNode row;
    std::string address;
    bool dirty = false;
    /// A task for this node is queued or running.
    bool busy = false;
    std::int64_t last_heard_ms = 0;
    std::int64_t healthy_since_ms = 0;
    std::int64_t retry_at_ms = 0;
    int busy_retries = 0;
    /// A pull node: nothing is sent to it; its actions are offered and handed out when it asks.
    bool pull = false;
    /// When the action its state calls for (pending: stage, staged or revert_pending:
    /// restart) was offered to the pull node; 0: none offered. Only in memory: after a
    /// restart the engine offers again what is still due.
    std::int64_t offered_ms = 0;
    /// When the pull node last asked, and the generation it said it runs (-1: not said).
    std::int64_t last_pull_ms = 0;
    std::int64_t last_pull_generation = -1;
};

struct Engine::Active {
    Deployment d;
    pkgmgr::Release release;
    std::vector<Slot> slots;  // in rollout order
    std::unordered_map<std::string, size_t> index;
    bool row_dirty = false;
    std::int64_t last_progress_ms = 0;
    std::int64_t max_parallel = 1;

    Slot* find(const std::string& node) {
        auto it = index.find(node);
        return it == index.end() ? nullptr : &slots[it->second];
    }
    void touch(Slot& slot) { slot.dirty = true; }
};

Engine::Engine(State& state, EngineOptions options) : state_(state), options_(std::move(options)) {}

Engine::~Engine() {
    stop();
}

Result<std::unique_ptr<Engine>> Engine::create(State& state, EngineOptions options) {
    std::unique_ptr<Engine> engine(new Engine(state, std::move(options)));
    HOIST_TRY(engine->load());
    return engine;
}

Result<void> Engine::load() {
    HOIST_ASSIGN(auto nodes, state_.nodes());
    auto now = nowMs();
    for (auto& n : nodes) {
        // Nobody pinged while we were down; count from now, so a restart marks nothing down.
        if (n.last_seen_ms < now)
            n.last_seen_ms = std::max(n.last_seen_ms, now - options_.down_after.count() / 2);
        nodes_.emplace(n.id, std::move(n));
    }
    HOIST_ASSIGN(holds_, state_.holds());
    if (!holds_.empty()) gate_.raise(std::chrono::milliseconds(0));
    HOIST_ASSIGN(auto deployments, state_.deployments(20));
    for (const auto& d : deployments) {
        if (!d.active()) continue;
        HOIST_ASSIGN(active_, loadActive(d));
        log::info(kLog, "resuming deployment", {{"deployment", d.id}, {"state", d.state}});
        queueEvent("coordinator", "resume after restart", d.id, "", "state " + d.state);
        break;
    }
    return ok();
}

Result<std::unique_ptr<Engine::Active>> Engine::loadActive(const Deployment& d) {
    auto a = std::make_unique<Active>();
    a->d = d;
    HOIST_ASSIGN(a->release, pkgmgr::Release::parse(d.release_json));
    HOIST_ASSIGN(auto rows, state_.deploymentNodes(d.id));
    std::int64_t agents = 0;
    auto now = nowMs();
    for (auto& row : rows) {
        Slot slot;
        if (row.role == "agent") ++agents;
        auto node = nodes_.find(row.node);
        if (node != nodes_.end()) {
            slot.address = node->second.address;
            slot.pull = node->second.mode == "pull";
        }
        // Whatever was in flight when we stopped is checked with the node before anything
        // is sent again: a poll tells whether the restart arrived. A pull node asks again
        // and is answered the action it was handed (its own checks keep it from acting twice).
        if (row.state == "staging" && !slot.pull) row.state = "pending";
        slot.row = std::move(row);
        slot.last_heard_ms = 0;
        slot.healthy_since_ms = now;
        a->index.emplace(slot.row.node, a->slots.size());
        a->slots.push_back(std::move(slot));
    }
    a->max_parallel = resolveMaxParallel(d.max_parallel, agents).value_or(1);
    a->last_progress_ms = now;
    return a;
}

void Engine::start() {
    pool_ = std::make_unique<WorkerPool>(options_.workers);
    check_pool_ = std::make_unique<WorkerPool>(options_.check_workers);
    thread_ = std::thread([this] { loop(); });
}

void Engine::stop() {
    {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
        stopping_ = true;
    }
    wake_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    pool_.reset();
    check_pool_.reset();
    std::lock_guard lock(mutex_);
    (void)flush(nowMs(), true);
}

void Engine::post(std::function<void()> deliver) {
    {
        std::lock_guard lock(mutex_);
        inbox_.push_back(std::move(deliver));
        wake_ = true;
    }
    wake_cv_.notify_one();
}

void Engine::queueEvent(std::string actor, std::string action, std::string deployment,
                        std::string node, std::string detail) {
    Event e;
    e.time_ms = nowMs();
    e.actor = std::move(actor);
    e.action = std::move(action);
    e.deployment = std::move(deployment);
    e.node = std::move(node);
    e.detail = std::move(detail);
    pending_events_.push_back(std::move(e));
}

void Engine::loop() {
    while (true) {
        std::vector<std::function<void(http::Client&)>> to_send;
        {
            std::unique_lock lock(mutex_);
            wake_cv_.wait_for(lock, std::chrono::milliseconds(50),
                              [this] { return wake_ || stopping_; });
            if (stopping_) return;
            wake_ = false;
            auto now = nowMs();
            while (!inbox_.empty()) {
                auto deliver = std::move(inbox_.front());
                inbox_.pop_front();
                deliver();
            }
            tick(now);
            // Registry rows that only pings touched are written outside the lock, so a
            // large batch does not stall the pings arriving meanwhile.
            bool slots_dirty = pending_events_.size() > 0 || (active_ && active_->row_dirty);
            if (active_ && !slots_dirty)
                for (const auto& s : active_->slots)
                    if (s.dirty) {
                        slots_dirty = true;
                        break;
                    }
            if (!slots_dirty && !node_dirty_.empty() && now - last_node_flush_ms_ >= 1000) {
                std::vector<NodeRecord> rows;
                rows.reserve(node_dirty_.size());
                for (const auto& [id, _] : node_dirty_)
                    if (auto it = nodes_.find(id); it != nodes_.end()) rows.push_back(it->second);
                node_dirty_.clear();
                last_node_flush_ms_ = now;
                to_send.swap(outgoing_);
                lock.unlock();
                auto written = state_.transaction([&](State::Tx& tx) -> Result<void> {
                    for (const auto& row : rows) HOIST_TRY(tx.putNode(row));
                    return ok();
                });
                if (!written)
                    log::error(kLog, "cannot write the registry",
                               {{"error", written.error().describe()}});
                for (auto& task : to_send) pool_->post(std::move(task));
                continue;
            }
            // Persist before acting: a node action leaves only after the state that says it
            // was started is committed.
            auto flushed = flush(now, false);
            if (!flushed) {
                log::error(kLog, "cannot write the state; node actions wait",
                           {{"error", flushed.error().describe()}});
                continue;
            }
            to_send.swap(outgoing_);
        }
        for (auto& task : to_send) pool_->post(std::move(task));
    }
}

Result<void> Engine::flush(std::int64_t now, bool force_nodes) {
    bool nodes_due = force_nodes || now - last_node_flush_ms_ >= 1000;
    bool have_slots = false;
    if (active_) {
        for (const auto& s : active_->slots)
            if (s.dirty) {
                have_slots = true;
                break;
            }
    }
    // Registry rows a node's progress changed go in the same transaction as that progress.
    bool have_nodes = (nodes_due || have_slots) && !node_dirty_.empty();
    if (!have_slots && !have_nodes && pending_events_.empty() && !(active_ && active_->row_dirty))
        return ok();
    auto result = state_.transaction([&](State::Tx& tx) -> Result<void> {
        if (active_) {
            if (active_->row_dirty) {
                active_->d.updated_ms = now;
                HOIST_TRY(tx.putDeployment(active_->d));
            }
            for (const auto& s : active_->slots)
                if (s.dirty) HOIST_TRY(tx.putDeploymentNode(s.row));
        }
        if (have_nodes)
            for (const auto& [id, _] : node_dirty_) {
                auto it = nodes_.find(id);
                if (it != nodes_.end()) HOIST_TRY(tx.putNode(it->second));
            }
        for (const auto& e : pending_events_) HOIST_TRY(tx.appendEvent(e));
        return ok();
    });
    if (!result) return result;
    if (active_) {
        active_->row_dirty = false;
        for (auto& s : active_->slots) s.dirty = false;
        if (isDeploymentFinished(active_->d.state)) active_.reset();
    }
    if (have_nodes) {
        node_dirty_.clear();
        last_node_flush_ms_ = now;
    }
    pending_events_.clear();
    return ok();
}

// ---------------------------------------------------------------------------------------------
// Node actions. Each runs on a pool thread and posts its outcome back to the loop.

void Engine::dispatchStage(Active& owner, Slot& target) {
    if (target.pull) {
        // Nothing is sent to a pull node: the stage waits for it to ask (desired()).
        if (target.offered_ms == 0) target.offered_ms = nowMs();
        return;
    }
    target.busy = true;
    target.row.state = "staging";
    owner.touch(target);
    std::string dep = owner.d.id;
    std::string node = target.row.node;
    std::string address = target.address;
    std::string version = owner.d.version;
    outgoing_.push_back([this, dep, node, address, version](http::Client& client) {
        std::vector<http::Header> headers;
        if (!options_.node_token.empty()) headers.push_back(http::bearer(options_.node_token));
        // The registry already knows the node's generation and release (registration and
        // pings); one request per node keeps staging a large fleet quick.
        std::optional<NodeView> view;
        Result<http::Response> staged = fail(Errc::Halted, "held");
        // A stage switches nothing, and can take minutes: the halt does not wait for one
        // already sent, but none is sent once a hold stands.
        bool deferred = gate_.raised();
        if (!deferred) {
            http::Request request;
            request.method = "POST";
            request.url = http::joinUrl(address, "/v1/stage");
            request.headers = headers;
            request.headers.push_back({"Content-Type", "application/json"});
            request.body = pkgmgr::StageRequest{version, std::nullopt}.toJson();
            request.timeout = options_.stage_timeout;
            staged =
                client.send(request, {3, std::chrono::milliseconds(200), std::chrono::seconds(2)});
            actions_sent_++;
        } else {
            actions_deferred_++;
        }
        post([this, dep, node, view, staged = std::move(staged), deferred] {
            if (!active_ || active_->d.id != dep) return;
            auto& a = *active_;
            Slot* slot = a.find(node);
            if (slot == nullptr) return;
            slot->busy = false;
            auto now = nowMs();
            if (deferred) {
                slot->row.state = "pending";
                a.touch(*slot);
                return;
            }
            if (!staged || !staged->ok()) {
                finishNode(a, *slot, "failed", "staging failed: " + errorText(staged), now);
                return;
            }
            auto reply = pkgmgr::StageReply::fromJson(staged->body);
            if (!reply) {
                finishNode(a, *slot, "failed", "staging failed: " + reply.error().describe(), now);
                return;
            }
            std::int64_t generation = reply->generation;
            slot->row.target_generation = generation;
            if (view) {
                slot->row.from_generation = view->generation;
                if (!view->release.empty()) slot->row.from_release = view->release;
            }
            slot->row.state = "staged";
            slot->row.node_state = "staged";
            a.touch(*slot);
            a.last_progress_ms = now;
        });
    });
}

void Engine::dispatchRestart(Active& owner, Slot& target, std::int64_t generation,
                             std::int64_t started) {
    bool revert = target.row.state == "revert_pending" || target.row.state == "reverting";
    if (target.pull) {
        // Offered, not sent: it counts toward max_parallel until the node takes it, and its
        // state changes (committed before the reply) only when the node asks.
        if (target.offered_ms == 0) target.offered_ms = started;
        (void)generation;
        return;
    }
    target.busy = true;
    target.row.state = revert ? "reverting" : "restarting";
    target.row.started_ms = started;
    target.last_heard_ms = started;
    owner.touch(target);
    queueEvent("coordinator", revert ? "revert" : "restart", owner.d.id, target.row.node,
               detail::concat("to generation ", generation));
    std::string dep = owner.d.id;
    std::string node = target.row.node;
    std::string address = target.address;
    std::string report_to = options_.advertise_url;
    outgoing_.push_back([this, dep, node, address, report_to, generation](http::Client& client) {
        Result<http::Response> reply = fail(Errc::Halted, "held");
        // The hold check sits right before the send: nothing leaves once a halt is answered.
        bool deferred = !gate_.beginSend();
        if (!deferred) {
            http::Request request;
            request.method = "POST";
            request.url = http::joinUrl(address, "/v1/restart");
            if (!options_.node_token.empty())
                request.headers.push_back(http::bearer(options_.node_token));
            request.headers.push_back({"Content-Type", "application/json"});
            request.body = pkgmgr::RestartRequest{generation, dep, report_to}.toJson();
            request.timeout = std::chrono::seconds(30);
            reply = client.send(request);
            gate_.endSend();
            actions_sent_++;
        } else {
            actions_deferred_++;
        }
        post([this, dep, node, reply = std::move(reply), deferred] {
            if (!active_ || active_->d.id != dep) return;
            auto& a = *active_;
            Slot* slot = a.find(node);
            if (slot == nullptr) return;
            slot->busy = false;
            auto now = nowMs();
            bool reverting = slot->row.state == "reverting" || slot->row.state == "revert_sent";
            if (deferred) {
                if (slot->row.state == "restarting") slot->row.state = "staged";
                if (slot->row.state == "reverting") slot->row.state = "revert_pending";
                a.touch(*slot);
                queueEvent("coordinator", "deferred by hold", a.d.id, node, "");
                return;
            }
            if (reply && (reply->status == 202 || reply->ok())) {
                slot->row.restarts += 1;
                if (slot->row.state == "restarting") slot->row.state = "restarted";
                if (slot->row.state == "reverting") slot->row.state = "revert_sent";
                slot->last_heard_ms = now;
                a.touch(*slot);
                return;
            }
            if (reply && reply->status == 409) {
                // Another transaction runs on the node; try again shortly, a few times.
                if (++slot->busy_retries <= 10) {
                    slot->row.state = reverting ? "revert_pending" : "staged";
                    slot->retry_at_ms = now + 1000;
                    a.touch(*slot);
                    return;
                }
            }
            if (!reply) {
                // Unknown whether it arrived: the poll asks the node before anything is resent.
                slot->last_heard_ms = 0;
                slot->row.message = "restart request failed: " + reply.error().describe();
                a.touch(*slot);
                return;
            }
            finishNode(a, *slot, reverting ? "revert_failed" : "failed",
                       "restart refused: " + errorText(reply), now);
        });
    });
}

void Engine::dispatchPoll(Active& owner, Slot& target) {
    target.busy = true;
    std::string dep = owner.d.id;
    std::string node = target.row.node;
    std::string address = target.address;
    outgoing_.push_back([this, dep, node, address](http::Client& client) {
        std::vector<http::Header> headers;
        if (!options_.node_token.empty()) headers.push_back(http::bearer(options_.node_token));
        http::Request get;
        get.url = http::joinUrl(address, "/v1/transaction");
        get.headers = headers;
        get.timeout = std::chrono::seconds(5);
        auto txn = client.send(get);
        get.url = http::joinUrl(address, "/v1/node");
        auto view_reply = client.send(get);
        std::optional<NodeView> view;
        if (view_reply && view_reply->ok())
            if (auto v = NodeView::fromJson(view_reply->body)) view = *v;
        std::pair<bool, std::string> under_way{false, ""};
        bool reachable = txn.has_value() && view.has_value();
        if (txn) under_way = transactionView(*txn);
        post([this, dep, node, reachable, under_way, view] {
            if (!active_ || active_->d.id != dep) return;
            auto& a = *active_;
            Slot* slot = a.find(node);
            if (slot == nullptr) return;
            slot->busy = false;
            auto now = nowMs();
            if (!reachable) {
                slot->last_heard_ms = now;  // poll again after poll_after; deadlines still run
                return;
            }
            auto nit = nodes_.find(node);
            if (nit != nodes_.end()) nit->second.last_seen_ms = now;
            auto& s = slot->row.state;
            bool revert = s == "reverting" || s == "revert_sent";
            std::int64_t want = revert ? slot->row.from_generation : slot->row.target_generation;
            if (under_way.first) {
                if (s == "restarting" || s == "reverting") slot->row.restarts += 1;
                if (s == "restarting") s = "restarted";
                if (s == "reverting") s = "revert_sent";
                slot->row.node_state = under_way.second.empty() ? "swapping" : under_way.second;
                slot->last_heard_ms = now;
                a.touch(*slot);
                return;
            }
            if (view->generation == want && want > 0) {
                if (s == "restarting" || s == "reverting") {
                    // The restart arrived before we stopped: count it, never send it again.
                    slot->row.restarts += 1;
                }
                applyNodeState(
                    a, *slot, view->healthy ? "healthy" : "failed", now,
                    view->healthy ? "seen healthy by poll" : "unhealthy on the new generation");
                return;
            }
            if (s == "restarting" || s == "reverting") {
                // The node never got it: send it now (it is still persisted as started).
                dispatchRestart(a, *slot, want, now);
                return;
            }
            applyNodeState(a, *slot, "rolled_back", now,
                           detail::concat("node is on generation ", view->generation,
                                          " with no swap under way"));
        });
    });
}

void Engine::dispatchProbe(Active& owner, Slot& target) {
    target.busy = true;
    std::string dep = owner.d.id;
    std::string node = target.row.node;
    std::string address = target.address;
    outgoing_.push_back([this, dep, node, address](http::Client& client) {
        http::Request get;
        get.url = http::joinUrl(address, "/v1/node");
        if (!options_.node_token.empty()) get.headers.push_back(http::bearer(options_.node_token));
        get.timeout = std::chrono::seconds(5);
        auto reply = client.send(get, {3, std::chrono::milliseconds(100), std::chrono::seconds(1)});
        std::optional<NodeView> view;
        if (reply && reply->ok())
            if (auto v = NodeView::fromJson(reply->body)) view = *v;
        post([this, dep, node, view] {
            if (!active_ || active_->d.id != dep) return;
            auto& a = *active_;
            Slot* slot = a.find(node);
            if (slot == nullptr) return;
            slot->busy = false;
            if (slot->row.state != "settling") return;
            auto now = nowMs();
            if (view && view->healthy && view->generation == slot->row.target_generation)
                finishNode(a, *slot, "done", "", now);
            else
                finishNode(a, *slot, "failed",
                           view ? "unhealthy before min_healthy_ms passed"
                                : "unreachable before min_healthy_ms passed",
                           now);
        });
    });
}

// ---------------------------------------------------------------------------------------------
// State machine.

void Engine::finishNode(Active& a, Slot& slot, const std::string& state, const std::string& message,
                        std::int64_t now) {
    slot.row.state = state;
    slot.row.finished_ms = now;
    if (!message.empty()) slot.row.message = message;
    a.touch(slot);
    a.last_progress_ms = now;
    queueEvent("coordinator", "node " + state, a.d.id, slot.row.node, message);
    if (state == "done" || state == "reverted") {
        auto it = nodes_.find(slot.row.node);
        if (it != nodes_.end()) {
            it->second.release = state == "done" ? a.d.version : slot.row.from_release;
            it->second.generation =
                state == "done" ? slot.row.target_generation : slot.row.from_generation;
            node_dirty_[slot.row.node] = true;
        }
    }
}

void Engine::applyStaged(Active& a, Slot& slot, std::int64_t generation,
                         std::int64_t from_generation, std::int64_t now) {
    if (generation <= 0) {
        finishNode(a, slot, "failed", "the staged report names no generation", now);
        return;
    }
    slot.row.target_generation = generation;
    if (from_generation > 0) slot.row.from_generation = from_generation;
    slot.row.state = "staged";
    slot.row.node_state = "staged";
    slot.offered_ms = 0;
    slot.last_heard_ms = now;
    a.touch(slot);
    a.last_progress_ms = now;
}

void Engine::applyNodeState(Active& a, Slot& slot, const std::string& node_state, std::int64_t now,
                            const std::string& message) {
    auto& s = slot.row.state;
    slot.row.node_state = node_state;
    slot.last_heard_ms = now;
    a.touch(slot);
    bool revert = s == "reverting" || s == "revert_sent";
    bool forward = s == "restarting" || s == "restarted";
    if (!revert && !forward) return;
    // A pull node took its restart when the first report of it arrives (a push node when it
    // answered 202).
    if (slot.pull && (s == "restarting" || s == "reverting")) slot.row.restarts += 1;
    if (s == "restarting") s = "restarted";
    if (s == "reverting") s = "revert_sent";
    if (node_state == "healthy") {
        if (revert) {
            finishNode(a, slot, "reverted", message, now);
        } else {
            s = "settling";
            slot.healthy_since_ms = now;
            if (a.d.min_healthy_ms <= 0) finishNode(a, slot, "done", message, now);
        }
    } else if (node_state == "rolled_back" || node_state == "failed") {
        finishNode(a, slot, revert ? "revert_failed" : "failed",
                   message.empty() ? "the restart helper reported " + node_state : message, now);
    }
}

Result<void> Engine::onPing(const pkgmgr::StatusPing& ping) {
    pings_++;
    {
        std::lock_guard lock(mutex_);
        auto now = nowMs();
        auto it = nodes_.find(ping.node);
        if (it == nodes_.end()) return std::unexpected(pkgmgr::notRegistered(ping.node));
        auto& rec = it->second;
        rec.last_seen_ms = now;
        if (rec.status == "down") {
            rec.status = "up";
            queueEvent("node:" + ping.node, "node up", "", ping.node, "status ping");
        }
        if (ping.state == "healthy" && !ping.release.empty()) {
            rec.release = ping.release;
            rec.generation = ping.to_generation;
        }
        node_dirty_[ping.node] = true;
        if (!active_ || ping.deployment.empty() || active_->d.id != ping.deployment) return ok();
        Slot* slot = active_->find(ping.node);
        if (slot == nullptr) return ok();
        if (ping.seq <= slot->row.last_seq) {
            stale_pings_++;
            return ok();  // re-delivery
        }
        slot->row.last_seq = ping.seq;
        if (ping.state == "staged" || ping.state == "staging") {
            // A pull node reports the stage it was handed; push nodes answer the request.
            if (slot->pull && slot->row.state == "staging" && ping.state == "staged")
                applyStaged(*active_, *slot, ping.to_generation, ping.from_generation, now);
        } else if (slot->pull && slot->row.state == "staging" && ping.state == "failed") {
            finishNode(*active_, *slot, "failed", "staging failed: " + ping.message, now);
        } else {
            applyNodeState(*active_, *slot, ping.state, now, ping.message);
        }
        wake_ = true;
    }
    wake_cv_.notify_one();
    return ok();
}

void Engine::setDeploymentState(Active& a, const std::string& state, const std::string& actor,
                                const std::string& detail, std::int64_t now) {
    if (a.d.state == state) return;
    a.d.state = state;
    a.row_dirty = true;
    if (isDeploymentFinished(state)) a.d.finished_ms = now;
    queueEvent(actor, "deployment " + state, a.d.id, "", detail);
    log::info(kLog, "deployment state", {{"deployment", a.d.id}, {"state", state}});
}

void Engine::tick(std::int64_t now) {
    if (now - last_sweep_ms_ >= options_.sweep_interval.count()) {
        last_sweep_ms_ = now;
        sweepNodes(now);
    }
    if (!active_) return;
    auto& a = *active_;
    // Timers that do not start node actions run even under a hold: deadlines, polls, probes.
    bool hand_out_stage = a.d.state == "staging" && !gate_.raised();
    bool hand_out_restart = a.d.state == "rolling" && !gate_.raised();
    bool hand_out_revert = a.d.state == "reverting" && !gate_.raised();
    for (auto& slot : a.slots) {
        auto& s = slot.row.state;
        if (slot.busy) continue;
        if (slot.pull &&
            pullTimers(a, slot, now, hand_out_stage, hand_out_restart, hand_out_revert))
            continue;
        bool forward = s == "restarting" || s == "restarted";
        bool revert = isRevertInFlight(s);
        if ((forward || revert || s == "settling") && a.d.node_deadline_ms > 0 &&
            now - slot.row.started_ms > a.d.node_deadline_ms) {
            finishNode(a, slot, revert ? "revert_failed" : "failed",
                       detail::concat("no healthy report within the node deadline (",
                                      a.d.node_deadline_ms, " ms)"),
                       now);
            continue;
        }
        if ((forward || revert) && now - slot.last_heard_ms >= options_.poll_after.count()) {
            // A restart persisted but maybe never sent is only resent after the poll, and
            // never while a hold stands.
            if ((s == "restarting" || s == "reverting") && gate_.raised()) continue;
            dispatchPoll(a, slot);
            continue;
        }
        if (s == "settling" && now - slot.healthy_since_ms >= a.d.min_healthy_ms) {
            dispatchProbe(a, slot);
        }
    }
    if (a.d.state == "staging" || a.d.state == "rolling")
        advanceForward(a, now);
    else if (a.d.state == "reverting")
        advanceRevert(a, now);
    if (a.d.active() && a.d.progress_deadline_ms > 0 && !gate_.raised() && a.d.state != "paused" &&
        a.d.state != "held" && now - a.last_progress_ms > a.d.progress_deadline_ms) {
        a.d.message = detail::concat("no node finished within the progress deadline (",
                                     a.d.progress_deadline_ms, " ms)");
        setDeploymentState(a, "failed", "coordinator", a.d.message, now);
    }
    if (a.d.active() && gate_.raised()) a.last_progress_ms = now;
    computeWaitingOn(a, now);
}

bool Engine::pullTimers(Active& a, Slot& slot, std::int64_t now, bool stage_due, bool restart_due,
                        bool revert_due) {
    auto& s = slot.row.state;
    if (slot.offered_ms > 0) {
        bool offerable = s == "pending" || s == "staged" || s == "revert_pending";
        bool takeable = (s == "pending" && stage_due) || (s == "staged" && restart_due) ||
                        (s == "revert_pending" && revert_due);
        std::int64_t limit = s == "pending" ? options_.stage_timeout.count() : a.d.node_deadline_ms;
        if (!offerable) {
            slot.offered_ms = 0;
        } else if (!takeable) {
            slot.offered_ms = now;  // an offer nobody may take (a hold, a pause) does not age
        } else if (limit > 0 && now - slot.offered_ms > limit) {
            // A pull node that stops asking fails like a push node that stops answering.
            bool stage = s == "pending";
            slot.offered_ms = 0;
            finishNode(a, slot, s == "revert_pending" ? "revert_failed" : "failed",
                       detail::concat("the pull node did not ask for its ",
                                      stage ? "stage" : "restart", " within ", limit, " ms"),
                       now);
            return true;
        }
    }
    if (s == "staging" && stage_due && options_.stage_timeout.count() > 0 &&
        now - slot.row.started_ms > options_.stage_timeout.count()) {
        finishNode(a, slot, "failed",
                   detail::concat("no staged report within the stage timeout (",
                                  options_.stage_timeout.count(), " ms)"),
                   now);
        return true;
    }
    bool in_flight = s == "restarting" || s == "restarted" || isRevertInFlight(s);
    if ((in_flight || s == "settling") && a.d.node_deadline_ms > 0 &&
        now - slot.row.started_ms > a.d.node_deadline_ms) {
        finishNode(a, slot, isRevertInFlight(s) ? "revert_failed" : "failed",
                   detail::concat("no healthy report within the node deadline (",
                                  a.d.node_deadline_ms, " ms)"),
                   now);
        return true;
    }
    // No poll and no probe: a pull node is never called. Lost pings are made up for by its
    // next ask (it reports where it stands), and the asks after min_healthy_ms, from the
    // target generation, stand in for the health probe.
    if (s == "settling" && now - slot.healthy_since_ms >= a.d.min_healthy_ms &&
        slot.last_pull_ms >= slot.healthy_since_ms + a.d.min_healthy_ms) {
        if (slot.last_pull_generation < 0 ||
            slot.last_pull_generation == slot.row.target_generation)
            finishNode(a, slot, "done", "", now);
        else
            finishNode(
                a, slot, "failed",
                detail::concat("the node runs generation ", slot.last_pull_generation, ", not ",
                               slot.row.target_generation, ", before min_healthy_ms passed"),
                now);
    }
    return true;
}

void Engine::advanceForward(Active& a, std::int64_t now) {
    std::int64_t failed = 0;
    for (const auto& slot : a.slots)
        if (slot.row.state == "failed") ++failed;
    if (failed > a.d.max_failures) {
        a.d.message =
            detail::concat(failed, " nodes failed, more than max_failures ", a.d.max_failures);
        if (a.d.auto_revert) {
            a.d.message = "auto-revert: " + a.d.message;
            setDeploymentState(a, "reverting", "coordinator", a.d.message, now);
        } else {
            setDeploymentState(a, "held", "coordinator", a.d.message, now);
        }
        return;
    }
    if (gate_.raised()) return;
    if (a.d.state == "staging") {
        bool waiting = false;
        for (auto& slot : a.slots) {
            if (slot.row.state == "pending" && !slot.busy) dispatchStage(a, slot);
            if (slot.row.state == "pending" || slot.row.state == "staging") waiting = true;
        }
        if (!waiting) setDeploymentState(a, "rolling", "coordinator", "every node staged", now);
        return;
    }
    // Rolling: the first role rank with unfinished nodes acts; masters (and other non-agent
    // roles) one at a time, agents up to max_parallel at once.
    int rank = 3;
    for (const auto& slot : a.slots)
        if (!isForwardTerminal(slot.row.state)) rank = std::min(rank, roleRank(slot.row.role));
    if (rank == 3) {
        setDeploymentState(a, "done", "coordinator", "", now);
        return;
    }
    dispatchWave(a, rank, false, now);
}

void Engine::dispatchWave(Active& a, int rank, bool revert, std::int64_t now) {
    const std::string due = revert ? "revert_pending" : "staged";
    auto under_way = revert ? isRevertInFlight : isForwardInFlight;
    std::int64_t limit = rank == 1 ? a.max_parallel : 1;
    std::int64_t in_flight = 0;
    // A restart offered to a pull node counts as in flight from the offer on.
    for (const auto& slot : a.slots)
        if (roleRank(slot.row.role) == rank &&
            (under_way(slot.row.state) || (slot.row.state == due && slot.offered_ms > 0)))
            ++in_flight;
    for (size_t i = 0; i < a.slots.size() && in_flight < limit; ++i) {
        auto& slot = a.slots[revert ? a.slots.size() - 1 - i : i];
        if (roleRank(slot.row.role) != rank || slot.row.state != due || slot.busy ||
            slot.offered_ms > 0 || slot.retry_at_ms > now)
            continue;
        dispatchRestart(a, slot, revert ? slot.row.from_generation : slot.row.target_generation,
                        now);
        ++in_flight;
    }
}

void Engine::advanceRevert(Active& a, std::int64_t now) {
    // Forward swaps still running finish first; then every upgraded node goes back, agents
    // first (max_parallel at once), masters last, one at a time.
    bool forward_busy = false;
    for (const auto& slot : a.slots)
        if (isForwardInFlight(slot.row.state) || slot.row.state == "staging") forward_busy = true;
    if (forward_busy) return;
    for (auto& slot : a.slots) {
        if (slot.row.state == "done") {
            slot.row.state = "revert_pending";
            a.touch(slot);
        } else if (slot.row.state == "pending" || slot.row.state == "staged") {
            slot.row.state = "skipped";
            slot.offered_ms = 0;
            a.touch(slot);
        }
    }
    if (gate_.raised()) return;
    int rank = -1;
    for (const auto& slot : a.slots)
        if (slot.row.state == "revert_pending" || isRevertInFlight(slot.row.state))
            rank = std::max(rank, roleRank(slot.row.role));
    if (rank < 0) {
        bool auto_revert = a.d.message.starts_with("auto-revert");
        setDeploymentState(a, auto_revert ? "reverted" : "rolled_back", "coordinator", "", now);
        return;
    }
    dispatchWave(a, rank, true, now);
}

void Engine::computeWaitingOn(Active& a, std::int64_t now) {
    (void)now;
    std::string waiting;
    if (gate_.raised() && a.d.active()) {
        std::vector<std::string> parts;
        for (const auto& h : holds_) parts.push_back(h.source + " (" + h.reason + ")");
        waiting = "hold: " + strings::join(parts, ", ");
    } else if (a.d.state == "paused") {
        waiting = "paused by an admin";
    } else if (a.d.state == "held") {
        waiting = "failure budget: " + a.d.message;
    } else if (a.d.state == "staging") {
        size_t staged = 0;
        for (const auto& s : a.slots)
            if (s.row.state != "pending" && s.row.state != "staging") ++staged;
        waiting = detail::concat("staging: ", staged, " of ", a.slots.size(), " nodes staged");
    } else if (a.d.state == "rolling" || a.d.state == "reverting") {
        std::vector<std::string> names;
        size_t count = 0;
        std::string sample_state;
        for (const auto& s : a.slots)
            if (isForwardInFlight(s.row.state) || isRevertInFlight(s.row.state)) {
                if (names.size() < 3) names.push_back(s.row.node);
                if (sample_state.empty()) sample_state = s.row.node_state;
                ++count;
            }
        if (count == 1)
            waiting =
                "health of " + names[0] + (sample_state.empty() ? "" : " (" + sample_state + ")");
        else if (count > 1)
            waiting = detail::concat("health of ", count, " nodes (", strings::join(names, ", "),
                                     count > names.size() ? ", ..." : "", ")");
        else
            waiting = "the next node";
        if (count == 0) {
            std::vector<std::string> offered;
            for (const auto& s : a.slots)
                if (s.offered_ms > 0 &&
                    (s.row.state == "staged" || s.row.state == "revert_pending"))
                    offered.push_back(s.row.node);
            if (offered.size() == 1)
                waiting = "pull node " + offered[0] + " to ask for its restart";
            else if (!offered.empty())
                waiting = detail::concat(offered.size(), " pull nodes to ask for their restarts");
        }
    }
    if (waiting != a.d.waiting_on) {
        a.d.waiting_on = waiting;
        a.row_dirty = true;
    }
}

void Engine::sweepNodes(std::int64_t now) {
    size_t started = 0;
    for (auto& [id, rec] : nodes_) {
        if (rec.status == "removed" || node_checking_.count(id) != 0) continue;
        if (now - rec.last_seen_ms < options_.down_after.count()) continue;
        if (rec.mode == "pull") {
            // Never called: a pull node that stopped asking is down until it asks again.
            if (rec.status == "up") {
                rec.status = "down";
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
        check_pool_->post([this, node, address](http::Client& client) {
            http::Request get;
            get.url = http::joinUrl(address, "/v1/node");
            if (!options_.node_token.empty())
                get.headers.push_back(http::bearer(options_.node_token));
            get.timeout = std::chrono::seconds(3);
            get.connect_timeout = std::chrono::seconds(2);
            auto reply = client.send(get);
            bool up = reply && reply->ok();
            post([this, node, up] {
                node_checking_.erase(node);
                auto it = nodes_.find(node);
                if (it == nodes_.end()) return;
                auto& r = it->second;
                auto t = nowMs();
                if (up) {
                    r.last_seen_ms = t;
                    if (r.status == "down") {
                        r.status = "up";
                        queueEvent("coordinator", "node up", "", node, "answered a poll");
                    }
                } else if (r.status == "up") {
                    r.status = "down";
                    queueEvent("coordinator", "node down", "", node, "stopped answering");
                    log::warn(kLog, "node down", {{"node", node}});
                }
                node_dirty_[node] = true;
            });
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Registry.

Result<std::string> Engine::registerNode(NodeRecord node) {
    HOIST_TRY(pkgmgr::validateName(node.id));
    if (node.role.empty())
        return fail(Errc::Invalid, "registration of '", node.id, "': field 'role' is empty");
    if (!node.address.starts_with("http://") && !node.address.starts_with("https://"))
        return fail(Errc::Invalid, "registration of '", node.id, "': address '", node.address,
                    "' must be an http:// or https:// URL");
    std::lock_guard lock(mutex_);
    auto now = nowMs();
    auto it = nodes_.find(node.id);
    bool changed = it == nodes_.end() || it->second.address != node.address ||
                   it->second.role != node.role || it->second.status != "up" ||
                   it->second.mode != node.mode;
    node.registered_ms = it == nodes_.end() ? now : it->second.registered_ms;
    node.last_seen_ms = now;
    node.status = "up";
    if (it != nodes_.end() && node.release.empty()) node.release = it->second.release;
    auto written = state_.transaction([&](State::Tx& tx) -> Result<void> {
        HOIST_TRY(tx.putNode(node));
        if (changed)
            HOIST_TRY(tx.appendEvent({0, now, "node:" + node.id, "register", "", node.id,
                                      node.role + " at " + node.address + " release " +
                                          node.release + (node.mode == "pull" ? " (pull)" : "")}));
        return ok();
    });
    if (!written) return std::unexpected(written.error());
    nodes_[node.id] = node;
    node_dirty_[node.id] = true;  // rewritten by the next flush, after any older snapshot
    if (active_) {
        if (Slot* slot = active_->find(node.id)) {
            slot->address = node.address;
            bool pull = node.mode == "pull";
            if (slot->pull != pull) {
                // The next action goes the new way; a stage handed out to a pull node is
                // sent again (stage is idempotent).
                slot->pull = pull;
                slot->offered_ms = 0;
                if (!pull && slot->row.state == "staging") {
                    slot->row.state = "pending";
                    active_->touch(*slot);
                }
            }
        }
    }
    json::Writer w;
    writeNode(w, node);
    return w.str();
}

Result<std::string> Engine::desired(const std::string& id, std::optional<std::int64_t> generation) {
    pkgmgr::DesiredState answer;
    bool held = false;
    {
        std::lock_guard lock(mutex_);
        auto it = nodes_.find(id);
        if (it == nodes_.end()) return std::unexpected(pkgmgr::notRegistered(id));
        auto& rec = it->second;
        if (rec.mode != "pull")
            return fail(Errc::Conflict, "node '", id,
                        "' is registered in push mode: the coordinator sends it its actions "
                        "(register with \"mode\": \"pull\" to ask for them)");
        auto now = nowMs();
        // Asking is a sign of life, as a ping is.
        rec.last_seen_ms = now;
        if (rec.status == "down") {
            rec.status = "up";
            queueEvent("node:" + id, "node up", "", id, "asked for its desired state");
        }
        node_dirty_[id] = true;
        Slot* slot = active_ && rec.status != "removed" ? active_->find(id) : nullptr;
        if (slot != nullptr) {
            auto& a = *active_;
            slot->last_pull_ms = now;
            slot->last_pull_generation = generation.value_or(-1);
            slot->last_heard_ms = std::max(slot->last_heard_ms, now);
            auto& s = slot->row.state;
            const auto& ds = a.d.state;
            // Handed out before: the same action again. New: only what the engine offered,
            // while the deployment may act.
            bool again_stage = s == "staging";
            bool again_restart = s == "restarting" || s == "restarted";
            bool again_revert = s == "reverting" || s == "revert_sent";
            bool new_stage = s == "pending" && slot->offered_ms > 0 && ds == "staging";
            bool new_restart = s == "staged" && slot->offered_ms > 0 && ds == "rolling";
            bool new_revert = s == "revert_pending" && slot->offered_ms > 0 && ds == "reverting";
            bool any = a.d.active() && (again_stage || again_restart || again_revert || new_stage ||
                                        new_restart || new_revert);
            // The same gate as a push action, checked under the engine lock: once a halt has
            // been answered, nothing is handed out, not even again.
            if (any && !gate_.beginSend()) {
                held = true;
                any = false;
            }
            if (any) {
                if (new_stage) {
                    s = "staging";
                    slot->row.started_ms = now;
                    slot->offered_ms = 0;
                    a.touch(*slot);
                    queueEvent("coordinator", "stage", a.d.id, id,
                               "release " + a.d.version + ", handed out on request");
                    actions_sent_++;
                } else if (new_restart || new_revert) {
                    std::int64_t to =
                        new_revert ? slot->row.from_generation : slot->row.target_generation;
                    s = new_revert ? "reverting" : "restarting";
                    slot->row.started_ms = now;
                    slot->last_heard_ms = now;
                    slot->offered_ms = 0;
                    a.touch(*slot);
                    queueEvent("coordinator", new_revert ? "revert" : "restart", a.d.id, id,
                               detail::concat("to generation ", to, ", handed out on request"));
                    actions_sent_++;
                }
                answer.deployment = a.d.id;
                answer.release = a.d.version;
                if (new_stage || again_stage) {
                    answer.action = "stage";
                } else {
                    answer.action = "restart";
                    bool revert = new_revert || again_revert;
                    answer.generation =
                        revert ? slot->row.from_generation : slot->row.target_generation;
                    if (revert) answer.release = slot->row.from_release;
                }
                // Persist before acting: the reply leaves only once the state saying the
                // action started is committed. (flush may end the deployment: slot and a are
                // not used after it.)
                if (slot->dirty || !pending_events_.empty()) {
                    auto flushed = flush(now, false);
                    if (!flushed) {
                        gate_.endSend();
                        return std::unexpected(flushed.error());
                    }
                }
                gate_.endSend();
                wake_ = true;
            }
        }
        held = held || gate_.raised();
    }
    if (answer.action != "none") wake_cv_.notify_one();
    answer.held = held;
    return answer.toJson();
}

std::string Engine::nodesJson() {
    std::vector<NodeRecord> list;
    {
        std::lock_guard lock(mutex_);
        for (const auto& [_, n] : nodes_) list.push_back(n);
    }
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
    std::lock_guard lock(mutex_);
    auto it = nodes_.find(id);
    if (it == nodes_.end()) return ok();
    it->second.status = "removed";
    queueEvent(actor, "node removed", "", id, "decommissioned through the provisioner");
    node_dirty_[id] = true;
    return flush(nowMs(), true);
}

// ---------------------------------------------------------------------------------------------
// Deployments.

Result<std::pair<pkgmgr::Release, std::string>> Engine::fetchRelease(const std::string& version) {
    HOIST_TRY(pkgmgr::validateVersion(version));
    if (options_.repo_url.empty())
        return fail(Errc::Invalid,
                    "no repository configured (start the coordinator with --repo URL)");
    thread_local http::Client client;
    http::Request get;
    get.url = http::joinUrl(options_.repo_url, "releases/" + version + ".json");
    get.timeout = std::chrono::seconds(30);
    auto fetched = client.send(get, {3, std::chrono::milliseconds(200), std::chrono::seconds(2)});
    if (!fetched && get.url.starts_with("file://"))
        return fail(Errc::NotFound, "release ", version, " is not in the repository ",
                    options_.repo_url);
    if (!fetched) return std::unexpected(fetched.error());
    auto& manifest = *fetched;
    if (manifest.status == 404)
        return fail(Errc::NotFound, "release ", version, " is not in the repository ",
                    options_.repo_url);
    if (!manifest.ok())
        return fail(Errc::Network, "fetching release ", version, " from ", get.url, ": HTTP ",
                    manifest.status);
    get.url += ".sig";
    auto sig = client.send(get, {3, std::chrono::milliseconds(200), std::chrono::seconds(2)});
    std::optional<std::string> signature;
    if (!sig) {
        // file:// reports a missing file as a transport error.
        if (!get.url.starts_with("file://")) return std::unexpected(sig.error());
    } else if (sig->ok()) {
        signature = sig->body;
    } else if (sig->status != 404) {
        return fail(Errc::Network, "fetching ", get.url, ": HTTP ", sig->status);
    }
    std::optional<std::string_view> sig_view;
    if (signature) sig_view = *signature;
    HOIST_ASSIGN(auto release,
                 pkgmgr::loadVerifiedRelease(manifest.body, sig_view, options_.trusted_keys,
                                             options_.allow_unsigned, "release " + version));
    if (release.version != version)
        return fail(Errc::Invalid, "releases/", version, ".json names version '", release.version,
                    "'");
    return std::pair{std::move(release), std::move(manifest.body)};
}

Result<std::string> Engine::currentRelease() {
    HOIST_ASSIGN(auto deployments, state_.deployments(1000));
    for (const auto& d : deployments)  // newest first
        if (d.state == "done") return d.version;
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

bool Engine::acting() {
    std::lock_guard lock(mutex_);
    return active_ != nullptr;
}

Result<void> Engine::requireNoHold(std::string_view what) {
    std::lock_guard lock(holds_mutex_);
    if (!gate_.raised()) return ok();
    return fail(Errc::Halted, what, " refused: halted by ", holdSummary(),
                "; an admin must clear the hold (DELETE /v1/halt)");
}

std::string Engine::holdSummary() {
    std::vector<std::string> parts;
    for (const auto& h : holds_) parts.push_back(h.source + " (" + h.reason + ")");
    return strings::join(parts, ", ");
}

Result<std::string> Engine::startDeployment(const StartRequest& request) {
    HOIST_TRY(validateMaxParallel(request.max_parallel));
    if (request.max_failures < 0) return fail(Errc::Invalid, "max_failures must not be negative");
    if (request.min_healthy_ms < 0 || request.node_deadline_ms < 0 ||
        request.progress_deadline_ms < 0)
        return fail(
            Errc::Invalid,
            "min_healthy_ms, node_deadline_ms and progress_deadline_ms must not be negative");
    HOIST_TRY(requireNoHold("starting a deployment"));
    {
        std::lock_guard lock(mutex_);
        if (active_)
            return fail(Errc::Conflict, "deployment ", active_->d.id, " of ", active_->d.version,
                        " is ", active_->d.state, "; abort it or wait for it to finish");
    }
    HOIST_ASSIGN(auto fetched, fetchRelease(request.version));
    auto& [release, manifest] = fetched;

    std::lock_guard hold_lock(holds_mutex_);
    std::lock_guard lock(mutex_);
    if (gate_.raised())
        return fail(Errc::Halted, "starting a deployment refused: halted by ", holdSummary(),
                    "; an admin must clear the hold (DELETE /v1/halt)");
    if (active_)
        return fail(Errc::Conflict, "deployment ", active_->d.id, " of ", active_->d.version,
                    " is ", active_->d.state, "; abort it or wait for it to finish");
    std::vector<PlanNode> plan_nodes;
    std::vector<std::string> refused;
    std::int64_t agents = 0;
    for (const auto& [id, n] : nodes_) {
        if (n.status == "removed") continue;
        if (!release.roles.contains(n.role))
            return fail(Errc::Invalid, "release ", release.version, " has no packages for role '",
                        n.role, "' (node ", id, ")");
        if (n.release != release.version && !release.allowsUpgradeFrom(n.release))
            refused.push_back(id + " runs '" + n.release + "'");
        plan_nodes.push_back({id, n.role});
        if (n.role == "agent") ++agents;
    }
    if (plan_nodes.empty()) return fail(Errc::Invalid, "no nodes are registered");
    if (!refused.empty()) {
        std::sort(refused.begin(), refused.end());
        if (refused.size() > 5) refused.resize(5), refused.push_back("...");
        return fail(Errc::Conflict, "release ", release.version,
                    " may not upgrade these nodes (upgrade_from: ",
                    strings::join(release.upgrade_from, " "), "): ", strings::join(refused, "; "));
    }
    HOIST_ASSIGN(auto number, state_.nextDeploymentNumber());
    auto now = nowMs();
    auto a = std::make_unique<Active>();
    a->d.id = "d-" + std::to_string(number);
    a->d.number = number;
    a->d.version = release.version;
    a->d.state = "staging";
    a->d.max_parallel = request.max_parallel;
    a->d.max_failures = request.max_failures;
    a->d.auto_revert = request.auto_revert;
    a->d.min_healthy_ms = request.min_healthy_ms;
    a->d.node_deadline_ms = request.node_deadline_ms;
    a->d.progress_deadline_ms = request.progress_deadline_ms;
    a->d.release_json = manifest;
    a->d.created_by = request.actor;
    a->d.created_ms = now;
    a->d.updated_ms = now;
    a->max_parallel = *resolveMaxParallel(request.max_parallel, agents);
    a->release = release;
    a->last_progress_ms = now;
    std::int64_t ord = 0;
    for (const auto& wave : planWaves(plan_nodes, a->max_parallel)) {
        for (const auto& id : wave.nodes) {
            const auto& n = nodes_.at(id);
            Slot slot;
            slot.row.deployment = a->d.id;
            slot.row.node = id;
            slot.row.role = n.role;
            slot.row.ord = ord++;
            slot.row.from_release = n.release;
            slot.row.from_generation = n.generation;
            slot.row.state = n.release == release.version ? "skipped" : "pending";
            if (slot.row.state == "skipped") slot.row.message = "already on " + release.version;
            slot.address = n.address;
            slot.pull = n.mode == "pull";
            a->index.emplace(id, a->slots.size());
            a->slots.push_back(std::move(slot));
        }
    }
    computeWaitingOn(*a, now);
    auto written = state_.transaction([&](State::Tx& tx) -> Result<void> {
        HOIST_TRY(tx.putDeployment(a->d));
        for (const auto& s : a->slots) HOIST_TRY(tx.putDeploymentNode(s.row));
        HOIST_TRY(tx.appendEvent(
            {0, now, request.actor, "deployment start", a->d.id, "",
             detail::concat("version ", a->d.version, " on ", a->slots.size(),
                            " nodes, max_parallel ", a->d.max_parallel, ", max_failures ",
                            a->d.max_failures, a->d.auto_revert ? ", auto-revert" : "")}));
        return ok();
    });
    if (!written) return std::unexpected(written.error());
    log::info(kLog, "deployment started",
              {{"deployment", a->d.id},
               {"version", a->d.version},
               {"nodes", static_cast<std::int64_t>(a->slots.size())}});
    std::vector<DeploymentNode> rows;
    for (const auto& s : a->slots) rows.push_back(s.row);
    auto summary = deploymentSummary(a->d, rows, false, 0);
    active_ = std::move(a);
    wake_ = true;
    wake_cv_.notify_one();
    return summary;
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
            const auto& s = n.state;
            if (s == "done")
                c->done++;
            else if (s == "failed" || s == "revert_failed")
                c->failed++;
            else if (s == "skipped")
                c->skipped++;
            else if (s == "reverted")
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
        .field("state", d.state)
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
                .field("state", n.state)
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
    w.endArray().endObject();
    return w.str();
}

Result<std::string> Engine::command(const std::string& id, const std::string& verb,
                                    std::optional<std::int64_t> max_failures,
                                    const std::string& actor) {
    if (verb == "rollback") HOIST_TRY(requireNoHold("rollback"));
    std::unique_lock lock(mutex_);
    auto now = nowMs();
    if (verb == "rollback" && (!active_ || active_->d.id != id)) {
        if (active_)
            return fail(Errc::Conflict, "deployment ", active_->d.id, " is ", active_->d.state,
                        "; abort it before rolling back ", id);
        HOIST_ASSIGN(auto found, state_.deployment(id));
        if (!found) return fail(Errc::NotFound, "deployment '", id, "' does not exist");
        if (found->state == "rolled_back" || found->state == "reverted")
            return fail(Errc::Conflict, "deployment ", id, " is already ", found->state);
        HOIST_ASSIGN(active_, loadActive(*found));
    }
    if (!active_ || active_->d.id != id) {
        lock.unlock();
        HOIST_ASSIGN(auto found, state_.deployment(id));
        if (!found) return fail(Errc::NotFound, "deployment '", id, "' does not exist");
        return fail(Errc::Conflict, "deployment ", id, " is ", found->state,
                    "; only a running deployment can ", verb);
    }
    auto& a = *active_;
    const auto& s = a.d.state;
    if (verb == "pause") {
        if (s != "staging" && s != "rolling")
            return fail(Errc::Conflict, "deployment ", id, " is ", s,
                        "; only staging or rolling deployments pause");
        setDeploymentState(a, "paused", actor, "", now);
    } else if (verb == "resume") {
        if (s != "paused" && s != "held")
            return fail(Errc::Conflict, "deployment ", id, " is ", s,
                        "; only paused or held deployments resume");
        if (max_failures) {
            a.d.max_failures = *max_failures;
            a.row_dirty = true;
        }
        bool staging = false;
        for (const auto& slot : a.slots)
            if (slot.row.state == "pending" || slot.row.state == "staging") staging = true;
        a.last_progress_ms = now;
        setDeploymentState(a, staging ? "staging" : "rolling", actor,
                           max_failures ? detail::concat("max_failures ", *max_failures) : "", now);
    } else if (verb == "abort") {
        a.d.message = "aborted by " + actor;
        setDeploymentState(a, "aborted", actor, "", now);
    } else if (verb == "rollback") {
        a.d.message = "rollback requested by " + actor;
        a.d.state = "";  // leave a finished state behind; setDeploymentState records the change
        a.d.finished_ms = 0;
        setDeploymentState(a, "reverting", actor, "", now);
    } else {
        return fail(Errc::Invalid, "unknown deployment action '", verb,
                    "' (pause, resume, abort, rollback)");
    }
    computeWaitingOn(a, now);
    std::vector<DeploymentNode> rows;
    for (const auto& slot : a.slots) rows.push_back(slot.row);
    auto d = a.d;
    HOIST_TRY(flush(now, false));
    wake_ = true;
    wake_cv_.notify_one();
    return deploymentSummary(d, rows, false, 0);
}

Result<std::string> Engine::eventsJson(int limit) {
    HOIST_ASSIGN(auto list, state_.events(std::nullopt, limit));
    json::Writer w;
    w.beginObject().key("events").beginArray();
    for (const auto& e : list) writeEvent(w, e);
    w.endArray().endObject();
    return w.str();
}

Result<std::string> Engine::planJson(const std::string& version, const std::string& max_parallel) {
    HOIST_TRY(validateMaxParallel(max_parallel));
    HOIST_ASSIGN(auto fetched, fetchRelease(version));
    auto& release = fetched.first;
    std::vector<PlanNode> plan_nodes;
    std::map<std::string, std::map<std::string, int>> from_by_role;
    std::vector<std::string> skipped;
    std::vector<std::string> refused;
    std::int64_t agents = 0;
    {
        std::lock_guard lock(mutex_);
        for (const auto& [id, n] : nodes_) {
            if (n.status == "removed") continue;
            if (n.release == release.version) {
                skipped.push_back(id);
                continue;
            }
            if (!release.allowsUpgradeFrom(n.release)) refused.push_back(id);
            plan_nodes.push_back({id, n.role});
            from_by_role[n.role][n.release]++;
            if (n.role == "agent") ++agents;
        }
    }
    std::sort(skipped.begin(), skipped.end(), naturalLess);
    std::sort(refused.begin(), refused.end(), naturalLess);
    HOIST_ASSIGN(auto limit, resolveMaxParallel(max_parallel, agents));
    auto waves = planWaves(plan_nodes, limit);
    json::Writer w;
    w.beginObject()
        .field("version", release.version)
        .field("max_parallel", limit)
        .field("nodes", static_cast<std::int64_t>(plan_nodes.size()))
        .field("halted", gate_.raised());
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

// ---------------------------------------------------------------------------------------------
// Holds.

Result<std::string> Engine::halt(const std::string& source, const std::string& reason,
                                 const std::string& by, const HoldDetails& details) {
    std::lock_guard hold_lock(holds_mutex_);
    bool was_raised = gate_.raised();
    // Gate first, so workers stop at once; wait for sends already past it; then persist; the
    // reply goes out only after all three.
    gate_.raise(std::chrono::milliseconds(5000));
    Hold hold{source, reason, by, nowMs(), details.alerts_json, 0};
    bool existed = false;
    bool unchanged = false;
    {
        std::lock_guard lock(mutex_);
        for (const auto& h : holds_)
            if (h.source == source) {
                existed = true;
                hold.since_ms = h.since_ms;
                unchanged = h.reason == reason && h.alerts_json == details.alerts_json &&
                            h.resolved_ms == 0 && h.by == by;
            }
    }
    if (!unchanged) {
        std::string detail = source + ": " + reason;
        if (!details.audit_note.empty()) detail += " [" + details.audit_note + "]";
        auto written = state_.transaction(
            [&](State::Tx& tx) -> Result<void> {
                HOIST_TRY(tx.putHold(hold));
                return tx.appendEvent({0, nowMs(), by, "halt", "", "", detail});
            },
            true);
        if (!written) {
            if (!was_raised) gate_.lower();
            return std::unexpected(written.error());
        }
        std::lock_guard lock(mutex_);
        std::erase_if(holds_, [&](const Hold& h) { return h.source == source; });
        holds_.push_back(hold);
        if (active_) computeWaitingOn(*active_, nowMs());
        log::warn(kLog, "halt", {{"source", source}, {"reason", reason}, {"by", by}});
    }
    json::Writer w;
    w.beginObject()
        .field("source", hold.source)
        .field("reason", hold.reason)
        .field("by", hold.by)
        .field("since", formatTime(hold.since_ms))
        .field("new", !existed);
    if (!details.warning.empty()) w.field("warning", details.warning);
    w.endObject();
    return w.str();
}

Result<std::string> Engine::resolveHold(const std::string& source, const std::string& by,
                                        const std::string& audit_note) {
    std::lock_guard hold_lock(holds_mutex_);
    std::optional<Hold> hold;
    {
        std::lock_guard lock(mutex_);
        for (const auto& h : holds_)
            if (h.source == source) hold = h;
    }
    auto now = nowMs();
    if (hold && hold->resolved_ms == 0) hold->resolved_ms = now;
    std::string detail = source + ": the monitor reports its alerts resolved" +
                         (hold ? "; the hold stands until an admin clears it"
                               : "; no hold of that source stands");
    if (!audit_note.empty()) detail += " [" + audit_note + "]";
    auto written = state_.transaction(
        [&](State::Tx& tx) -> Result<void> {
            if (hold) HOIST_TRY(tx.putHold(*hold));
            return tx.appendEvent({0, now, by, "halt resolved", "", "", detail});
        },
        true);
    if (!written) return std::unexpected(written.error());
    if (hold) {
        std::lock_guard lock(mutex_);
        for (auto& h : holds_)
            if (h.source == source) h.resolved_ms = hold->resolved_ms;
    }
    log::info(kLog, "halt resolved by monitor", {{"source", source}, {"by", by}});
    json::Writer w;
    w.beginObject().field("source", source).field("holds", hold.has_value());
    if (hold) w.field("resolved", formatTime(hold->resolved_ms));
    w.field("message", hold ? "the hold stands until an admin clears it (cluster resume --source " +
                                  source + ")"
                            : "no hold of that source stands");
    w.endObject();
    return w.str();
}

Result<std::string> Engine::clearHolds(std::optional<std::string> source,
                                       const std::string& actor) {
    std::lock_guard hold_lock(holds_mutex_);
    std::vector<Hold> current;
    {
        std::lock_guard lock(mutex_);
        current = holds_;
    }
    std::vector<Hold> cleared;
    for (const auto& h : current)
        if (!source || h.source == *source) cleared.push_back(h);
    if (source && cleared.empty())
        return fail(Errc::NotFound, "no hold from source '", *source, "'");
    auto now = nowMs();
    auto written = state_.transaction(
        [&](State::Tx& tx) -> Result<void> {
            HOIST_TRY(
                tx.deleteHolds(source ? std::optional<std::string_view>(*source) : std::nullopt));
            for (const auto& h : cleared)
                HOIST_TRY(tx.appendEvent(
                    {0, now, actor, "halt cleared", "", "", h.source + ": " + h.reason}));
            return ok();
        },
        true);
    if (!written) return std::unexpected(written.error());
    {
        std::lock_guard lock(mutex_);
        if (source)
            std::erase_if(holds_, [&](const Hold& h) { return h.source == *source; });
        else
            holds_.clear();
        if (holds_.empty()) gate_.lower();
        if (active_) active_->last_progress_ms = now;
        wake_ = true;
    }
    wake_cv_.notify_one();
    log::info(kLog, "halt cleared",
              {{"by", actor}, {"cleared", static_cast<std::int64_t>(cleared.size())}});
    json::Writer w;
    w.beginObject().key("cleared").beginArray();
    for (const auto& h : cleared) w.value(h.source);
    w.endArray().endObject();
    return w.str();
}

std::string Engine::holdsJson() {
    std::vector<Hold> list;
    {
        std::lock_guard lock(mutex_);
        list = holds_;
    }
    json::Writer w;
    w.beginObject().field("halted", !list.empty()).key("holds").beginArray();
    for (const auto& h : list)
        w.beginObject()
            .field("source", h.source)
            .field("reason", h.reason)
            .field("by", h.by)
            .field("since", formatTime(h.since_ms))
            .field("resolved", formatTime(h.resolved_ms))
            .key("alerts")
            .raw(h.alerts_json)
            .endObject();
    w.endArray().endObject();
    return w.str();
}

Result<void> Engine::recordEvent(Event event) {
    if (event.time_ms == 0) event.time_ms = nowMs();
    return state_.transaction([&](State::Tx& tx) { return tx.appendEvent(event); });
}

void Engine::collectMetrics(metrics::Registry& r) {
    r.describe("hoist_coordinator_nodes", "gauge", "registered nodes by status");
    r.describe("hoist_coordinator_holds", "gauge", "standing halt holds");
    r.describe("hoist_coordinator_deployment_nodes", "gauge",
               "nodes of the running deployment by state");
    r.describe("hoist_coordinator_pings_total", "counter", "status pings received");
    r.describe("hoist_coordinator_stale_pings_total", "counter",
               "status pings ignored as re-deliveries");
    r.describe("hoist_coordinator_node_actions_total", "counter",
               "stage and restart requests sent to nodes or handed out to pull nodes");
    r.describe("hoist_coordinator_node_actions_deferred_total", "counter",
               "node actions stopped by a hold before sending");
    r.describe("hoist_coordinator_queued_tasks", "gauge",
               "outgoing node requests waiting for a worker");
    std::map<std::string, double> by_status{{"up", 0}, {"down", 0}, {"removed", 0}};
    std::map<std::string, double> by_state;
    double holds = 0;
    {
        std::lock_guard lock(mutex_);
        for (const auto& [_, n] : nodes_) by_status[n.status]++;
        if (active_)
            for (const auto& s : active_->slots) by_state[s.row.state]++;
        holds = static_cast<double>(holds_.size());
    }
    for (const auto& [k, v] : by_status)
        r.set("hoist_coordinator_nodes", "status=\"" + k + "\"", v);
    for (const auto& [k, v] : by_state)
        r.set("hoist_coordinator_deployment_nodes", "state=\"" + k + "\"", v);
    r.set("hoist_coordinator_holds", "", holds);
    r.set("hoist_coordinator_pings_total", "", static_cast<double>(pings_.load()));
    r.set("hoist_coordinator_stale_pings_total", "", static_cast<double>(stale_pings_.load()));
    r.set("hoist_coordinator_node_actions_total", "", static_cast<double>(actions_sent_.load()));
    r.set("hoist_coordinator_node_actions_deferred_total", "",
          static_cast<double>(actions_deferred_.load()));
    if (pool_) r.set("hoist_coordinator_queued_tasks", "", static_cast<double>(pool_->queued()));
}

}  // namespace hoist::deploy_coordinator
