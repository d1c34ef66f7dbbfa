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
    : state_(state),
      standby_(options.standby),
      options_(std::move(options)),
      gateway_(std::move(gateway)) {
    if (!gateway_) gateway_ = makeHttpGateway(options_.node_token, options_.stage_timeout);
}

Engine::~Engine() {
    stop();
}

Result<std::unique_ptr<Engine>> Engine::create(StateStore& state, EngineOptions options,
                                               std::unique_ptr<NodeGateway> gateway) {
    std::unique_ptr<Engine> engine(new Engine(state, std::move(options), std::move(gateway)));
    if (!engine->standby_) HOIST_TRY(engine->load());
    return engine;
}

namespace {
// How long after it ended a deployment's swapping nodes are still listened to after a restart.
constexpr std::int64_t kLingerMs = 24LL * 3600 * 1000;
}  // namespace

Result<void> Engine::load() {
    HOIST_ASSIGN(term_, state_.term());
    HOIST_ASSIGN(auto nodes, state_.nodes());
    auto now = nowMs();
    for (auto& n : nodes) {
        // Nobody pinged while we were down; count from now, so a restart marks nothing down.
        if (n.last_seen_ms < now)
            n.last_seen_ms = std::max(n.last_seen_ms, now - options_.down_after.count() / 2);
        ids_.insert(n.id);
        seen_written_[n.id] = n.last_seen_ms;
        nodes_.emplace(n.id, std::move(n));
    }
    HOIST_ASSIGN(holds_, state_.holds());
    if (!holds_.empty()) gate_.raise(std::chrono::milliseconds(0));
    HOIST_ASSIGN(auto deployments, state_.deployments(20));
    for (const auto& d : deployments) {
        if (d.active() && !active_) {
            HOIST_ASSIGN(active_, loadRollout(d));
            auto state = std::string(toString(d.state));
            log::info(kLog, "resuming deployment", {{"deployment", d.id}, {"state", state}});
            queueEvent("coordinator", "resume after restart", d.id, "", "state " + state);
        } else if ((d.state == DeploymentState::aborted || d.state == DeploymentState::failed) &&
                   now - d.finished_ms < kLingerMs) {
            // Ended while nodes were still swapping: their reports are still recorded (the
            // nodes keep their pings until one is taken), so they do not read "checking"
            // forever. Nothing more is sent to them.
            HOIST_ASSIGN(auto lingering, loadRollout(d));
            if (lingering->anyInFlight()) lingering_[d.id] = std::move(lingering);
        }
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
        if (node != nodes_.end()) slot.pull = node->second.pull();
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
    HOIST_ASSIGN(r->gates, GateConfig::fromJson(d.gates));
    r->index();
    r->stage_window = options_.stage_window;
    r->max_parallel = resolveMaxParallel(d.max_parallel, agents).value_or(1);
    r->last_progress_ms = now;
    return r;
}

void Engine::start() {
    pool_ = std::make_unique<WorkerPool>(options_.workers);
    check_pool_ = std::make_unique<WorkerPool>(options_.check_workers);
    running_ = true;
    thread_ = std::thread([this] { loop(); });
}

void Engine::stop() {
    {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
        stopping_ = true;
    }
    runner_.stop();
    if (thread_.joinable()) thread_.join();
    running_ = false;
    pool_.reset();
    check_pool_.reset();
    std::lock_guard lock(mutex_);
    auto written = flush(nowMs(), true);
    // Registrations taken but not yet committed are answered (a caller waits for them).
    for (auto& give : after_commit_) give(written);
    after_commit_.clear();
}

void Engine::post(std::function<void()> deliver) {
    runner_.post(std::move(deliver));
}

void Engine::queueEvent(std::string actor, std::string action, std::string deployment,
                        std::string node, std::string detail) {
    pending_events_.push_back({0, nowMs(), std::move(actor), std::move(action),
                               std::move(deployment), std::move(node), std::move(detail)});
}

RolloutSettings Engine::settings() const {
    return {options_.poll_after.count(), options_.stage_timeout.count()};
}

void Engine::apply(Output& out) {
    observeOutput(out);
    dispatchGates(out);
    for (auto& e : out.events) pending_events_.push_back(std::move(e));
    for (const auto& u : out.registry) {
        auto it = nodes_.find(u.node);
        if (it == nodes_.end()) continue;
        it->second.release = u.release;
        it->second.generation = u.generation;
        node_progress_.insert(u.node);
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
    // The term this action was committed under: a node that has seen a newer one refuses it.
    std::int64_t epoch = term_;
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
            return [this, deliver, address, version, epoch] {
                // A stage switches nothing, and can take minutes: the halt does not wait for
                // one already sent, but none is sent once a hold stands.
                StageOutcome outcome{StageOutcome::Kind::deferred, 0, ""};
                if (!gate_.raised() && (!options_.may_act || options_.may_act())) {
                    auto began = std::chrono::steady_clock::now();
                    outcome = gateway_->stage(address, version, epoch);
                    rollout_metrics_.stageFinished(
                        outcome.kind == StageOutcome::Kind::staged ? "staged" : "failed",
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - began)
                            .count());
                    actions_sent_++;
                } else {
                    actions_deferred_++;
                }
                deliver([outcome](Rollout& r, Slot& s, std::int64_t now, Output& out) {
                    r.onStage(s, outcome, now, out);
                });
            };
        case NodeAction::Kind::restart:
            return [this, deliver, address, dep, epoch, generation = action.generation,
                    report_to = options_.advertise_url] {
                RestartOutcome outcome{RestartOutcome::Kind::deferred, ""};
                // The hold check sits right before the send: nothing leaves once a halt is
                // answered.
                if ((!options_.may_act || options_.may_act()) && gate_.beginSend()) {
                    outcome = gateway_->restart(address, generation, dep, report_to, epoch);
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

namespace {
// A ping rewrites the node's row when last_seen is options_.seen_write_after newer: the row is
// written for what lasts (status, release, generation); last_seen on disk only has to be
// roughly right, since a restarted coordinator counts silence from its own start (load()).
constexpr std::size_t kPingsAckedWhileQueued = 4096;
}  // namespace

Result<void> Engine::onPing(const pkgmgr::StatusPing& ping) {
    pings_++;
    auto step = pkgmgr::parseHelperStep(ping.state);
    if (!step)
        return fail(Errc::Invalid, "status ping: field 'state' has the unknown value '", ping.state,
                    "'");
    // While the runner keeps up, a ping is answered once it is queued: its answer (taken, or
    // not registered) does not depend on the runner's turn, and the runner applies pings in
    // the order they came. Past kPingsAckedWhileQueued commands, a ping waits for its turn, so
    // a flood of pings slows its senders instead of filling memory.
    if (running_.load() && runner_.queued() < kPingsAckedWhileQueued) {
        {
            std::shared_lock lock(ids_mutex_);
            if (!ids_.contains(ping.node)) return std::unexpected(pkgmgr::notRegistered(ping.node));
        }
        runner_.post([this, ping, step = *step] { (void)pingOnRunner(ping, step); });
        return ok();
    }
    return run<void>("status ping", [&] { return pingOnRunner(ping, *step); });
}

Result<void> Engine::pingOnRunner(const pkgmgr::StatusPing& ping, pkgmgr::HelperStep step) {
    {
        auto now = nowMs();
        auto it = nodes_.find(ping.node);
        if (it == nodes_.end()) return std::unexpected(pkgmgr::notRegistered(ping.node));
        auto& rec = it->second;
        rec.last_seen_ms = now;
        bool changed = false;
        if (rec.is(NodeStatus::down)) {
            rec.set(NodeStatus::up);
            changed = true;
            queueEvent("node:" + ping.node, "node up", "", ping.node, "status ping");
        }
        if (step == pkgmgr::HelperStep::healthy && !ping.release.empty() &&
            (rec.release != ping.release || rec.generation != ping.to_generation)) {
            rec.release = ping.release;
            rec.generation = ping.to_generation;
            changed = true;
        }
        if (changed || now - seen_written_[ping.node] >= options_.seen_write_after.count())
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
        PingReport report{ping.seq, step, ping.from_generation, ping.to_generation, ping.message};
        if (!r->onPing(*slot, report, now, out)) {
            stale_pings_++;
            return ok();  // re-delivery
        }
        apply(out);
        return ok();
    }
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
        if (n.is(NodeStatus::removed)) continue;
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
    HOIST_ASSIGN(a->gates, gatesFor(request));
    a->d.gates = a->gates.toJson();
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
            slot.pull = n.pull();
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
        // A quick refusal before the release is fetched. A deployment that has just finished
        // is not busy: its step is committed and the runner drops it before it runs the start.
        std::lock_guard lock(mutex_);
        if (active_ && !isFinished(active_->d.state)) return busyRefusal(active_->d);
    }
    HOIST_ASSIGN(auto fetched, fetchRelease(request.version));
    HOIST_TRY(requireChange(fetched.first));
    return run<std::string>("starting a deployment",
                            [&] { return startOnRunner(request, fetched.first, fetched.second); });
}

Result<std::string> Engine::startOnRunner(const StartRequest& request,
                                          const pkgmgr::Release& release,
                                          const std::string& manifest) {
    if (gate_.raised())
        return fail(Errc::Halted, "starting a deployment refused: halted by ", holdSummary(),
                    "; an admin must clear it first (cluster unhalt)");
    if (active_ && !request.idempotency_key.empty() &&
        active_->d.idempotency_key == request.idempotency_key)
        return idempotentAnswer(*active_);
    if (active_) return busyRefusal(active_->d);
    auto now = nowMs();
    std::vector<Wave> waves;
    HOIST_ASSIGN(auto a, buildRollout(release, request, now, waves));
    HOIST_ASSIGN(auto number, state_.nextDeploymentNumber());
    a->d.id = "d-" + std::to_string(number);
    a->d.number = number;
    a->d.release_json = manifest;
    a->d.idempotency_key = request.idempotency_key;
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
    a->stage_window = options_.stage_window;
    active_ = std::move(a);
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
        for (const auto& row : rows) {
            bool timed = row.started_ms > 0 && row.finished_ms > row.started_ms;
            auto& k = known[row.node];
            if (row.state == NodeStep::done && timed && !k.recorded) {
                k.swap_ms = row.finished_ms - row.started_ms;
                k.recorded = true;
            }
            // The helper rolled back: the release failed its health check on this node.
            bool rolled_back =
                row.state == NodeStep::failed &&
                pkgmgr::parseHelperStep(row.node_state) == pkgmgr::HelperStep::rolled_back;
            if (rolled_back && timed && k.fail_ms == 0)
                k.fail_ms = row.finished_ms - row.started_ms;
            if (rolled_back && d.version == request.version && d.kind == "upgrade")
                k.failed_before = true;
        }
    }
    std::vector<Wave> waves;
    std::unique_ptr<Rollout> rollout;
    std::vector<std::string> notes;
    {
        std::lock_guard lock(mutex_);
        HOIST_ASSIGN(rollout, buildRollout(release, request, 0, waves));
        // A pull node acts when it next asks: how often it does, as measured.
        for (const auto& slot : rollout->slots)
            if (auto n = nodes_.find(slot.row.node); slot.pull && n != nodes_.end())
                known[slot.row.node].pull_interval_ms = n->second.ask_interval_ms;
        if (active_) notes.push_back(busyRefusal(active_->d).error().message);
        if (gate_.raised())
            notes.push_back("halted by " + holdSummary() +
                            ": the upgrade would be refused until an admin clears the hold "
                            "(cluster unhalt)");
    }
    rollout->d.id = "rehearsal";
    RehearsalSettings settings;
    // A standing hold bites at once: the rehearsal says so (hold_bit_ms 0).
    if (gate_.raised()) settings.hold_at_ms = 0;
    settings.rollout = this->settings();
    auto result = deploy_coordinator::rehearse(std::move(*rollout), known, faults, waves, settings);
    return rehearsalJson(result, request, settings, notes);
}
Result<std::string> Engine::command(const std::string& id, const std::string& verb,
                                    std::optional<std::int64_t> max_failures,
                                    const std::string& actor) {
    if (verb == "rollback") {
        HOIST_TRY(requireNoHold("rollback"));
        bool acting_one = false;
        {
            std::lock_guard lock(mutex_);
            acting_one = active_ && active_->d.id == id;
        }
        // One that has ended gets a rollback deployment of its own.
        if (!acting_one) return rollback(id, std::nullopt, actor);
    }
    HOIST_ASSIGN(auto answer,
                 run<std::optional<std::string>>(
                     "deployment " + verb, [&]() -> Result<std::optional<std::string>> {
                         if (!active_ || active_->d.id != id) return std::nullopt;
                         return commandOnRunner(id, verb, max_failures, actor);
                     }));
    if (answer) return *answer;
    HOIST_ASSIGN(auto found, state_.deployment(id));
    if (!found) return fail(Errc::NotFound, "deployment '", id, "' does not exist");
    if (verb == "resume")
        return fail(Errc::Conflict, "nothing to resume: deployment ", id, " is ",
                    toString(found->state), " (start a new one with cluster upgrade VERSION)");
    return fail(Errc::Conflict, "deployment ", id, " is ", toString(found->state),
                "; only a running deployment can ", verb);
}

Result<std::string> Engine::commandOnRunner(const std::string& id, const std::string& verb,
                                            std::optional<std::int64_t> max_failures,
                                            const std::string& actor) {
    (void)id;
    auto now = nowMs();
    auto& a = *active_;
    Output out;
    HOIST_TRY(a.command(verb, max_failures, actor, now, out));
    apply(out);
    bool held = gate_.raised();
    a.computeWaitingOn(held, held ? holdSummary() : "");
    std::vector<DeploymentNode> rows;
    for (const auto& slot : a.slots) rows.push_back(slot.row);
    auto d = a.d;
    HOIST_TRY(flush(now, false));
    return deploymentSummary(d, rows, false, 0);
}

}  // namespace hoist::deploy_coordinator
