#include "engine.hpp"

#include <algorithm>

#include <map>
#include "core/log.hpp"
#include "core/strings.hpp"

#include "deploy_coordinator/plan.hpp"
#include "rehearsal.hpp"
#include "views.hpp"

namespace hoist::deploy_coordinator {

namespace {
constexpr std::string_view kLog = "deploy-coordinator";
}  // namespace

Engine::Engine(StateStore& state, EngineOptions options, std::unique_ptr<NodeGateway> gateway)
    : state_(state), options_(std::move(options)), gateway_(std::move(gateway)) {
    if (!gateway_) gateway_ = makeHttpGateway(options_.node_token, options_.stage_timeout);
}

Engine::~Engine() {
    stop();
}

Result<std::unique_ptr<Engine>> Engine::create(StateStore& state, EngineOptions options,
                                               std::unique_ptr<NodeGateway> gateway) {
    std::unique_ptr<Engine> engine(new Engine(state, std::move(options), std::move(gateway)));
    HOIST_TRY(engine->load());
    return engine;
}

Result<void> Engine::load() {
    HOIST_ASSIGN(term_, state_.term());
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
        HOIST_ASSIGN(active_, loadRollout(d));
        auto state = std::string(toString(d.state));
        log::info(kLog, "resuming deployment", {{"deployment", d.id}, {"state", state}});
        queueEvent("coordinator", "resume after restart", d.id, "", "state " + state);
        break;
    }
    return ok();
}

Result<std::unique_ptr<Rollout>> Engine::loadRollout(const Deployment& d) {
    auto r = std::make_unique<Rollout>();
    r->d = d;
    HOIST_ASSIGN(auto rows, state_.deploymentNodes(d.id));
    std::int64_t agents = 0;
    auto now = nowMs();
    for (auto& row : rows) {
        Slot slot;
        if (row.role == "agent") ++agents;
        auto node = nodes_.find(row.node);
        if (node != nodes_.end()) slot.pull = node->second.mode == "pull";
        // Whatever was in flight when we stopped is checked with the node before anything
        // is sent again: a poll tells whether the restart arrived. A pull node asks again
        // and is answered the action it was handed (its own checks keep it from acting twice).
        if (row.state == NodeStep::staging && !slot.pull)
            row.state = next(row.state, NodeEvent::stage_lost).value_or(row.state);
        slot.row = std::move(row);
        slot.last_heard_ms = 0;
        slot.healthy_since_ms = now;
        r->slots.push_back(std::move(slot));
    }
    r->index();
    r->max_parallel = resolveMaxParallel(d.max_parallel, agents).value_or(1);
    r->last_progress_ms = now;
    return r;
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
    pending_events_.push_back({0, nowMs(), std::move(actor), std::move(action),
                               std::move(deployment), std::move(node), std::move(detail)});
}

RolloutSettings Engine::settings() const {
    return {options_.poll_after.count(), options_.stage_timeout.count()};
}

void Engine::loop() {
    while (true) {
        std::vector<std::function<void()>> to_send;
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
            if (active_ && !slots_dirty) slots_dirty = active_->anyDirty();
            if (!slots_dirty && !node_dirty_.empty() && now - last_node_flush_ms_ >= 1000) {
                std::vector<NodeRecord> rows;
                rows.reserve(node_dirty_.size());
                for (const auto& [id, _] : node_dirty_)
                    if (auto it = nodes_.find(id); it != nodes_.end()) rows.push_back(it->second);
                node_dirty_.clear();
                last_node_flush_ms_ = now;
                to_send.swap(outgoing_);
                registry_writing_ = true;
                lock.unlock();
                StepWrite write;
                write.registry = std::move(rows);
                auto written = state_.commit(write, term_);
                if (!written)
                    log::error(kLog, "cannot write the registry",
                               {{"error", written.error().describe()}});
                lock.lock();
                registry_writing_ = false;
                lock.unlock();
                registry_cv_.notify_all();
                for (auto& task : to_send)
                    pool_->post([t = std::move(task)](http::Client&) { t(); });
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
        for (auto& task : to_send) pool_->post([t = std::move(task)](http::Client&) { t(); });
    }
}

Result<void> Engine::flush(std::int64_t now, bool force_nodes) {
    bool nodes_due = force_nodes || now - last_node_flush_ms_ >= 1000;
    bool have_slots = active_ && active_->anyDirty();
    bool have_lingering = std::any_of(lingering_.begin(), lingering_.end(),
                                      [](const auto& l) { return l.second->anyDirty(); });
    have_slots = have_slots || have_lingering;
    // Registry rows a node's progress changed go in the same transaction as that progress.
    bool have_nodes = (nodes_due || have_slots) && !node_dirty_.empty();
    if (!have_slots && !have_nodes && pending_events_.empty() && !(active_ && active_->row_dirty))
        return ok();
    // One step, one conditional write: the deployment, the nodes it changed, the registry
    // rows their progress changed, and the audit events.
    StepWrite write;
    for (const auto& [_, l] : lingering_)
        for (auto i : l->dirtySlots()) write.nodes.push_back(l->slots[i].row);
    if (active_) {
        if (active_->row_dirty) {
            active_->d.updated_ms = now;
            write.deployment = active_->d;
        }
        for (auto i : active_->dirtySlots()) write.nodes.push_back(active_->slots[i].row);
    }
    if (have_nodes)
        for (const auto& [id, _] : node_dirty_)
            if (auto it = nodes_.find(id); it != nodes_.end()) write.registry.push_back(it->second);
    write.events = pending_events_;
    auto result = state_.commit(write, term_);
    if (!result) return result;
    for (auto it = lingering_.begin(); it != lingering_.end();) {
        it->second->clearDirty();
        it = it->second->anyInFlight() ? std::next(it) : lingering_.erase(it);
    }
    if (active_) {
        active_->row_dirty = false;
        active_->clearDirty();
        if (isFinished(active_->d.state)) {
            if (active_->anyInFlight()) {
                auto id = active_->d.id;
                lingering_[id] = std::move(active_);
            }
            active_.reset();
        }
    }
    if (have_nodes) {
        node_dirty_.clear();
        last_node_flush_ms_ = now;
    }
    pending_events_.clear();
    return ok();
}

void Engine::apply(Output& out) {
    for (auto& e : out.events) pending_events_.push_back(std::move(e));
    for (const auto& u : out.registry) {
        auto it = nodes_.find(u.node);
        if (it == nodes_.end()) continue;
        it->second.release = u.release;
        it->second.generation = u.generation;
        node_dirty_[u.node] = true;
    }
    if (out.state_changed && active_)
        log::info(
            kLog, "deployment state",
            {{"deployment", active_->d.id}, {"state", std::string(toString(active_->d.state))}});
    for (const auto& action : out.actions) outgoing_.push_back(task(action));
    out = Output{};
}

// Each node action runs on a pool thread through the gateway and posts its outcome back to
// the loop, where the model hears it (if the deployment is still the one that sent it).
std::function<void()> Engine::task(const NodeAction& action) {
    std::string dep = active_->d.id;
    std::string version = active_->d.version;
    std::string node = action.node;
    auto it = nodes_.find(node);
    std::string address = it == nodes_.end() ? "" : it->second.address;
    auto deliver = [this, dep, node](auto hear) {
        post([this, dep, node, hear = std::move(hear)] {
            if (!active_ || active_->d.id != dep) return;
            Slot* slot = active_->find(node);
            if (slot == nullptr) return;
            Output out;
            hear(*active_, *slot, nowMs(), out);
            apply(out);
        });
    };
    switch (action.kind) {
        case NodeAction::Kind::stage:
            return [this, deliver, address, version] {
                // A stage switches nothing, and can take minutes: the halt does not wait for
                // one already sent, but none is sent once a hold stands.
                StageOutcome outcome{StageOutcome::Kind::deferred, 0, ""};
                if (!gate_.raised()) {
                    outcome = gateway_->stage(address, version);
                    actions_sent_++;
                } else {
                    actions_deferred_++;
                }
                deliver([outcome](Rollout& r, Slot& s, std::int64_t now, Output& out) {
                    r.onStage(s, outcome, now, out);
                });
            };
        case NodeAction::Kind::restart:
            return [this, deliver, address, dep, generation = action.generation,
                    report_to = options_.advertise_url] {
                RestartOutcome outcome{RestartOutcome::Kind::deferred, ""};
                // The hold check sits right before the send: nothing leaves once a halt is
                // answered.
                if (gate_.beginSend()) {
                    outcome = gateway_->restart(address, generation, dep, report_to);
                    gate_.endSend();
                    actions_sent_++;
                } else {
                    actions_deferred_++;
                }
                deliver([outcome](Rollout& r, Slot& s, std::int64_t now, Output& out) {
                    r.onRestart(s, outcome, now, out);
                });
            };
        case NodeAction::Kind::poll:
            return [this, deliver, address, node] {
                auto outcome = gateway_->poll(address);
                deliver([this, outcome, node](Rollout& r, Slot& s, std::int64_t now, Output& out) {
                    if (outcome.reachable)
                        if (auto nit = nodes_.find(node); nit != nodes_.end())
                            nit->second.last_seen_ms = now;
                    r.onPoll(s, outcome, now, out);
                });
            };
        case NodeAction::Kind::probe:
            return [this, deliver, address] {
                auto view = gateway_->probe(address);
                deliver([view](Rollout& r, Slot& s, std::int64_t now, Output& out) {
                    r.onProbe(s, view, now, out);
                });
            };
    }
    return [] {};
}

void Engine::tick(std::int64_t now) {
    if (now - last_sweep_ms_ >= options_.sweep_interval.count()) {
        last_sweep_ms_ = now;
        sweepNodes(now);
    }
    if (!active_) return;
    Output out;
    bool held = gate_.raised();
    active_->tick(now, held, held ? holdSummary() : "", settings(), out);
    apply(out);
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
        Rollout* r = nullptr;
        if (active_ && active_->d.id == ping.deployment) {
            r = active_.get();
        } else if (auto l = lingering_.find(ping.deployment); l != lingering_.end()) {
            r = l->second.get();
        }
        if (r == nullptr || ping.deployment.empty()) return ok();
        Slot* slot = r->find(ping.node);
        if (slot == nullptr) return ok();
        Output out;
        PingReport report{ping.seq, ping.state, ping.from_generation, ping.to_generation,
                          ping.message};
        if (!r->onPing(*slot, report, now, out)) {
            stale_pings_++;
            return ok();  // re-delivery
        }
        apply(out);
        wake_ = true;
    }
    wake_cv_.notify_one();
    return ok();
}

namespace {
Result<void> validateStart(const StartRequest& request) {
    HOIST_TRY(validateMaxParallel(request.max_parallel));
    if (request.max_failures < 0) return fail(Errc::Invalid, "max_failures must not be negative");
    if (request.min_healthy_ms < 0 || request.node_deadline_ms < 0 ||
        request.progress_deadline_ms < 0)
        return fail(
            Errc::Invalid,
            "min_healthy_ms, node_deadline_ms and progress_deadline_ms must not be negative");
    return ok();
}
}  // namespace

Result<std::unique_ptr<Rollout>> Engine::buildRollout(const pkgmgr::Release& release,
                                                      const StartRequest& request, std::int64_t now,
                                                      std::vector<Wave>& waves) {
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
    auto a = std::make_unique<Rollout>();
    a->d.version = release.version;
    a->d.max_parallel = request.max_parallel;
    a->d.max_failures = request.max_failures;
    a->d.auto_revert = request.auto_revert;
    a->d.min_healthy_ms = request.min_healthy_ms;
    a->d.node_deadline_ms = request.node_deadline_ms;
    a->d.progress_deadline_ms = request.progress_deadline_ms;
    a->d.created_by = request.actor;
    a->d.created_ms = now;
    a->d.updated_ms = now;
    HOIST_ASSIGN(a->max_parallel, resolveMaxParallel(request.max_parallel, agents));
    a->last_progress_ms = now;
    std::int64_t ord = 0;
    waves = planWaves(plan_nodes, a->max_parallel);
    for (const auto& wave : waves) {
        for (const auto& id : wave.nodes) {
            const auto& n = nodes_.at(id);
            Slot slot;
            slot.row.node = id;
            slot.row.role = n.role;
            slot.row.ord = ord++;
            slot.row.from_release = n.release;
            slot.row.from_generation = n.generation;
            bool skip = n.release == release.version;
            slot.row.state = skip ? NodeStep::skipped : NodeStep::pending;
            if (skip) slot.row.message = "already on " + release.version;
            slot.pull = n.mode == "pull";
            a->slots.push_back(std::move(slot));
        }
    }
    a->index();
    return a;
}

Result<std::string> Engine::startDeployment(const StartRequest& request) {
    HOIST_TRY(validateStart(request));
    HOIST_TRY(requireNoHold("starting a deployment"));
    {
        std::lock_guard lock(mutex_);
        if (active_) return busyRefusal(active_->d);
    }
    HOIST_ASSIGN(auto fetched, fetchRelease(request.version));
    auto& [release, manifest] = fetched;
    HOIST_TRY(requireChange(release));

    std::lock_guard hold_lock(holds_mutex_);
    std::lock_guard lock(mutex_);
    if (gate_.raised())
        return fail(Errc::Halted, "starting a deployment refused: halted by ", holdSummary(),
                    "; an admin must clear it first (cluster resume)");
    if (active_) return busyRefusal(active_->d);
    auto now = nowMs();
    std::vector<Wave> waves;
    HOIST_ASSIGN(auto a, buildRollout(release, request, now, waves));
    HOIST_ASSIGN(auto number, state_.nextDeploymentNumber());
    a->d.id = "d-" + std::to_string(number);
    a->d.number = number;
    a->d.release_json = manifest;
    for (auto& slot : a->slots) slot.row.deployment = a->d.id;
    a->computeWaitingOn(false, "");
    StepWrite write;
    write.deployment = a->d;
    for (const auto& s : a->slots) write.nodes.push_back(s.row);
    write.events.push_back(
        {0, now, request.actor, "deployment start", a->d.id, "",
         detail::concat("version ", a->d.version, " on ", a->slots.size(), " nodes, max_parallel ",
                        a->d.max_parallel, ", max_failures ", a->d.max_failures,
                        a->d.auto_revert ? ", auto-revert" : "")});
    auto written = state_.commit(write, term_);
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

Result<std::string> Engine::rehearse(const StartRequest& request, const std::string& inject) {
    HOIST_TRY(validateStart(request));
    HOIST_ASSIGN(auto faults, parseFaults(inject));
    HOIST_ASSIGN(auto fetched, fetchRelease(request.version));
    auto& release = fetched.first;
    HOIST_TRY(requireChange(release));
    // Each node's last finished swap, newest deployment first.
    std::map<std::string, SimNode> known;
    HOIST_ASSIGN(auto past, state_.deployments(20));
    for (const auto& d : past) {
        HOIST_ASSIGN(auto rows, state_.deploymentNodes(d.id));
        for (const auto& row : rows)
            if (row.state == NodeStep::done && row.started_ms > 0 &&
                row.finished_ms > row.started_ms && !known.contains(row.node))
                known[row.node] = {row.finished_ms - row.started_ms, true};
    }
    std::vector<Wave> waves;
    std::unique_ptr<Rollout> rollout;
    std::vector<std::string> notes;
    {
        std::lock_guard lock(mutex_);
        HOIST_ASSIGN(rollout, buildRollout(release, request, 0, waves));
        if (active_) notes.push_back(busyRefusal(active_->d).error().message);
        if (gate_.raised())
            notes.push_back("halted by " + holdSummary() +
                            ": the upgrade would be refused until an admin clears the hold "
                            "(cluster resume)");
    }
    rollout->d.id = "rehearsal";
    RehearsalSettings settings;
    settings.rollout = this->settings();
    auto result = deploy_coordinator::rehearse(std::move(*rollout), known, faults, waves, settings);
    return rehearsalJson(result, request, settings, notes);
}
Result<std::string> Engine::command(const std::string& id, const std::string& verb,
                                    std::optional<std::int64_t> max_failures,
                                    const std::string& actor) {
    if (verb == "rollback") HOIST_TRY(requireNoHold("rollback"));
    std::unique_lock lock(mutex_);
    auto now = nowMs();
    if (verb == "rollback" && (!active_ || active_->d.id != id)) {
        lock.unlock();
        return rollback(id, std::nullopt, actor);
    }
    std::unique_ptr<Rollout> loaded;
    Rollout* r = loaded ? loaded.get() : active_ && active_->d.id == id ? active_.get() : nullptr;
    if (r == nullptr) {
        lock.unlock();
        HOIST_ASSIGN(auto found, state_.deployment(id));
        if (!found) return fail(Errc::NotFound, "deployment '", id, "' does not exist");
        if (verb == "resume")
            return fail(Errc::Conflict, "nothing to resume: deployment ", id, " is ",
                        toString(found->state), " (start a new one with cluster upgrade VERSION)");
        return fail(Errc::Conflict, "deployment ", id, " is ", toString(found->state),
                    "; only a running deployment can ", verb);
    }
    Output out;
    HOIST_TRY(r->command(verb, max_failures, actor, now, out));
    if (loaded) active_ = std::move(loaded);
    auto& a = *active_;
    apply(out);
    bool held = gate_.raised();
    a.computeWaitingOn(held, held ? holdSummary() : "");
    std::vector<DeploymentNode> rows;
    for (const auto& slot : a.slots) rows.push_back(slot.row);
    auto d = a.d;
    HOIST_TRY(flush(now, false));
    wake_ = true;
    wake_cv_.notify_one();
    return deploymentSummary(d, rows, false, 0);
}

}  // namespace hoist::deploy_coordinator
