#include "restart_helper/helper.hpp"

#include <unistd.h>
#include <cstdlib>
#include <thread>

#include "core/crypto.hpp"
#include "core/files.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "helper_impl.hpp"
#include "pkgmgr/epoch.hpp"
#include "pkgmgr/status.hpp"
#include "pkgmgr/wire.hpp"
#include "recovery.hpp"

namespace hoist::restart_helper {

using pkgmgr::Generation;
using pkgmgr::ServiceLaunch;

int exitCodeFor(std::string_view terminal_state) {
    auto step = pkgmgr::parseHelperStep(terminal_state);
    if (step == pkgmgr::HelperStep::healthy) return kExitHealthy;
    if (step == pkgmgr::HelperStep::rolled_back) return kExitRolledBack;
    return kExitFailed;
}

std::string HelperStatus::toJson() const {
    json::Writer w;
    w.beginObject();
    w.key("current");
    if (current)
        w.value(static_cast<std::int64_t>(*current));
    else
        w.null();
    w.key("transaction");
    if (transaction)
        w.raw(transaction->toJson());
    else
        w.null();
    w.key("last");
    if (last)
        w.raw(last->toJson());
    else
        w.null();
    w.key("service")
        .beginObject()
        .field("running", service_running)
        .field("detail", service_detail)
        .endObject();
    w.field("pings_queued", static_cast<std::uint64_t>(pings_queued));
    w.key("pings_damaged").beginArray();
    for (const auto& file : pings_damaged) w.value(file.string());
    w.endArray();
    w.endObject();
    return w.str();
}

namespace {

/// A journal that does not parse, with the command that clears it.
Result<std::optional<Journal>> adviseOnDamage(Result<std::optional<Journal>> loaded) {
    if (loaded || loaded.error().code != Errc::Corrupt) return loaded;
    return fail(Errc::Corrupt, loaded.error().describe(),
                "; run 'restart-helper recover' to set it aside and bring the current "
                "generation up");
}

}  // namespace

// ---- Impl

Helper::Impl::Impl(HelperOptions o) : options(std::move(o)), layout(options.layout) {
    if (options.layouts_dir.empty()) {
        const char* env = std::getenv("HOIST_LAYOUTS");
        if (env != nullptr && *env != '\0') options.layouts_dir = env;
    }
}

Helper::Impl::~Impl() {
    stopCourier();
}

Result<void> Helper::Impl::openStore() {
    if (!store) {
        HOIST_ASSIGN(auto s, pkgmgr::Store::open(layout));
        store.emplace(std::move(s));
    }
    if (!gens) {
        HOIST_ASSIGN(auto g, pkgmgr::Generations::open(layout));
        gens.emplace(std::move(g));
    }
    return ok();
}

Result<void> Helper::Impl::loadNode() {
    HOIST_TRY(openStore());
    if (!config) {
        HOIST_ASSIGN(auto c, pkgmgr::NodeConfig::load(layout));
        config.emplace(std::move(c));
    }
    return useConfig();
}

Result<void> Helper::Impl::useConfig() {
    if (!rules) {
        HOIST_ASSIGN(auto r, pkgmgr::RoleRules::load(config->role, options.layouts_dir));
        rules.emplace(std::move(r));
    }
    if (!manager) {
        HOIST_ASSIGN(auto m, pkgmgr::makeServiceManager(layout, *config));
        manager = std::move(m);
    }
    return ok();
}

Result<void> Helper::Impl::lockNode() {
    if (node_lock) return ok();
    HOIST_ASSIGN(auto held,
                 files::FileLock::acquire(layout.lock(), options.lock_wait, "restart-helper"));
    node_lock.emplace(std::move(held));
    if (gens) gens->setCallerHoldsLock(true);
    return ok();
}

void Helper::Impl::ping(const Journal& j) {
    if (j.report_to.empty() || !config) return;
    auto outbox = pkgmgr::Outbox::open(layout);
    if (!outbox) {
        log::warn(kComponent, "cannot open the outbox", {{"error", outbox.error().describe()}});
        return;
    }
    pkgmgr::StatusPing p;
    p.node = config->id;
    p.deployment = j.deployment;
    p.state = j.state;
    p.from_generation = j.from_generation;
    p.to_generation = j.to_generation;
    p.release = j.release;
    p.message = j.message;
    auto queued = outbox->enqueue(p, pkgmgr::Outbox::statusUrl(j.report_to, config->id));
    if (!queued) {
        log::warn(kComponent, "cannot queue a status ping", {{"error", queued.error().describe()}});
        return;
    }
    if (!deliver_pings) return;
    if (!courier) {
        auto node_layout = layout;
        auto node_config = *config;
        courier = std::make_unique<pkgmgr::PingCourier>(layout, [node_layout, node_config] {
            auto token = node_config.coordinatorToken(node_layout);
            return token ? *token : std::string();
        });
        courier->start();
    }
    courier->notify();
}

void Helper::Impl::stopCourier() {
    if (!courier) return;
    auto left = courier->stop(options.ping_grace);
    if (left > 0)
        log::warn(kComponent, "status pings left in the outbox for later",
                  {{"count", static_cast<std::uint64_t>(left)}});
    courier.reset();
}

Result<void> Helper::Impl::step(Journal& j, std::string_view state, std::string_view message) {
    HOIST_TRY(j.enter(layout, state, message));
    log::info(kComponent, std::string(state),
              {{"operation", j.operation},
               {"from", static_cast<std::int64_t>(j.from_generation)},
               {"to", static_cast<std::int64_t>(j.to_generation)},
               {"message", std::string(message)}});
    ping(j);
    crashPoint("helper." + std::string(state));
    return ok();
}

Result<ServiceLaunch> Helper::Impl::launchFor(long generation) {
    HOIST_ASSIGN(auto gen, gens->load(generation));
    return pkgmgr::prepareLaunch(layout, *store, gen, *rules);
}

Result<void> Helper::Impl::stopService(std::optional<std::chrono::milliseconds> known_timeout) {
    if (known_timeout) return manager->stop(*known_timeout);
    // The stop timeout is that of the generation whose service runs (pidfile), else current's.
    std::chrono::milliseconds timeout{10000};
    HOIST_ASSIGN(auto st, manager->status());
    long running_gen = st.generation;
    if (running_gen == 0) {
        HOIST_ASSIGN(auto cur, gens->current());
        running_gen = cur.value_or(0);
    }
    if (running_gen != 0) {
        auto launch = launchFor(running_gen);
        if (launch) timeout = std::chrono::milliseconds(launch->spec.stop_timeout_ms);
    }
    return manager->stop(timeout);
}

Result<void> Helper::Impl::checkService(const ServiceLaunch& launch) {
    auto* mgr = manager.get();
    pkgmgr::HealthContext context{layout, [mgr]() -> std::optional<std::string> {
                                      auto st = mgr->status();
                                      if (!st) return st.error().describe();
                                      if (!st->running) return st->detail;
                                      return std::nullopt;
                                  }};
    if (!launch.spec.health) {
        // No health check declared: the service counts as healthy while it keeps running.
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        if (auto gone = context.gone())
            return fail(Errc::Unhealthy, "the service stopped: ", *gone);
        return ok();
    }
    return pkgmgr::waitHealthy(*launch.spec.health, context);
}

Result<Journal> Helper::Impl::close(Journal j) {
    // node.json names the release of the generation that now runs.
    auto cur = gens->current();
    if (cur && *cur && config) {
        auto gen = gens->load(**cur);
        if (gen && !gen->release.empty() && gen->release != config->release) {
            config->release = gen->release;
            if (auto saved = config->save(layout); !saved)
                log::warn(kComponent, "cannot update node.json",
                          {{"error", saved.error().describe()}});
        }
    }
    HOIST_TRY(j.close(layout));
    crashPoint("helper.closed");
    log::info(kComponent, "done", {{"operation", j.operation}, {"state", j.state}});
    return j;
}

Result<Journal> Helper::Impl::finish(Journal j, std::string_view state, std::string_view message) {
    HOIST_TRY(step(j, state, message));
    return close(std::move(j));
}

Result<Journal> Helper::Impl::forward(Journal j) {
    HOIST_ASSIGN(auto launch, launchFor(j.to_generation));
    HOIST_ASSIGN(auto st, manager->status());
    bool running = st.running && st.generation == j.to_generation;
    if (!running) HOIST_TRY(stopService());
    return startAndCheck(std::move(j), launch, !running);
}

Result<Journal> Helper::Impl::startAndCheck(Journal j, const pkgmgr::ServiceLaunch& launch,
                                            bool start) {
    if (start) {
        HOIST_TRY(step(j, "starting"));
        if (auto started = manager->start(launch); !started)
            return rollBack(std::move(j), started.error());
        crashPoint("helper.started");
    }
    HOIST_TRY(step(j, "checking"));
    if (auto healthy = checkService(launch); !healthy)
        return rollBack(std::move(j), healthy.error());
    crashPoint("helper.checked");
    return finish(std::move(j), "healthy", "");
}

Result<Journal> Helper::Impl::rollBack(Journal j, const Error& why) {
    std::string reason =
        "generation " + std::to_string(j.to_generation) + " did not come up: " + why.describe();
    log::warn(kComponent, "rolling back", {{"reason", reason}});
    if (j.from_generation == 0 || j.from_generation == j.to_generation)
        return finish(std::move(j), "failed", reason + "; no other generation to go back to");
    HOIST_TRY(step(j, "rolling_back", reason));
    return continueRollBack(std::move(j), reason);
}

Result<Journal> Helper::Impl::continueRollBack(Journal j, const std::string& reason) {
    HOIST_ASSIGN(auto cur, gens->current());
    HOIST_ASSIGN(auto st, manager->status());
    bool old_runs =
        cur && *cur == j.from_generation && st.running && st.generation == j.from_generation;
    HOIST_ASSIGN(auto launch, launchFor(j.from_generation));
    if (!old_runs) {
        HOIST_TRY(stopService());
        crashPoint("helper.rb_stopped");
        HOIST_TRY(gens->activate(j.from_generation));
        crashPoint("helper.rb_swapped");
        if (auto started = manager->start(launch); !started)
            return finish(std::move(j), "failed",
                          reason + "; the old generation would not start either: " +
                              started.error().describe());
        crashPoint("helper.rb_started");
    }
    if (auto healthy = checkService(launch); !healthy)
        return finish(
            std::move(j), "failed",
            reason + "; the old generation is not healthy either: " + healthy.error().describe());
    return finish(std::move(j), "rolled_back", reason);
}

Result<Journal> Helper::Impl::runSwap(Journal j) {
    // Everything that reads the generations happens while the old service still serves: the
    // downtime holds only the stop, the switch, the journal writes and the start.
    HOIST_ASSIGN(auto launch, launchFor(j.to_generation));
    HOIST_ASSIGN(auto running, manager->status());
    std::optional<std::chrono::milliseconds> stop_timeout;
    if (long old_gen = running.generation != 0 ? running.generation : j.from_generation;
        old_gen != 0) {
        if (auto old_launch = launchFor(old_gen))
            stop_timeout = std::chrono::milliseconds(old_launch->spec.stop_timeout_ms);
    }
    HOIST_TRY(step(j, "stopping"));
    HOIST_TRY(stopService(stop_timeout));
    crashPoint("helper.stopped");
    HOIST_TRY(step(j, "swapping"));
    if (auto activated = gens->activate(j.to_generation); !activated) {
        // Nothing was switched: bring the old service back.
        return rollBack(std::move(j), activated.error());
    }
    crashPoint("helper.swapped");
    return startAndCheck(std::move(j), launch, true);
}

Result<std::optional<Journal>> Helper::Impl::recoverDamagedJournal(const Error& damage) {
    // What the interrupted transaction was is lost: keep the bytes for a person, and bring the
    // current generation up (started unless it runs, checked) as a transaction of its own.
    auto aside = layout.run() / ("txn.json.damaged-" + crypto::randomHex(4));
    HOIST_TRY(files::makeDirs(layout.run()));
    HOIST_TRY(files::renameDurable(layout.txn(), aside));
    log::warn(kComponent,
              "the journal is damaged; it was set aside and the current generation is "
              "brought up",
              {{"error", damage.describe()}, {"kept_as", aside.string()}});
    HOIST_ASSIGN(auto cur, gens->current());
    if (!cur) return std::optional<Journal>();
    Journal j;
    j.operation = "op-" + crypto::randomHex(8);
    j.kind = "swap";
    j.from_generation = *cur;
    j.to_generation = *cur;
    j.recovered = true;
    if (auto gen = gens->load(*cur)) j.release = gen->release;
    HOIST_ASSIGN(auto done, forward(std::move(j)));
    return std::optional<Journal>(std::move(done));
}

Result<std::optional<Journal>> Helper::Impl::recoverLocked(bool start_service,
                                                           bool set_aside_damaged) {
    auto repaired = gens->recover();
    if (!repaired) return std::unexpected(repaired.error());
    for (const auto& action : repaired->actions)
        log::info(kComponent, "recover", {{"action", action}});
    auto loaded = Journal::load(layout);
    if (!loaded && loaded.error().code == Errc::Corrupt && set_aside_damaged)
        return recoverDamagedJournal(loaded.error());
    HOIST_ASSIGN(auto journal, adviseOnDamage(std::move(loaded)));
    HOIST_ASSIGN(auto cur, gens->current());
    RecoveryFacts facts{journal, cur, start_service, false};
    if (!journal && start_service && cur) {
        HOIST_ASSIGN(auto st, manager->status());
        facts.service_running = st.running;
    }
    auto action = decideRecovery(facts);
    if (action == RecoveryAction::none) return std::optional<Journal>();
    if (action == RecoveryAction::start_service) {
        log::info(kComponent, "starting the service of the current generation",
                  {{"generation", static_cast<std::int64_t>(*cur)}});
        HOIST_ASSIGN(auto launch, launchFor(*cur));
        HOIST_TRY(manager->stop(std::chrono::milliseconds(launch.spec.stop_timeout_ms)));
        HOIST_TRY(manager->start(launch));
        return std::optional<Journal>();
    }
    Journal j = std::move(*journal);
    j.recovered = true;
    log::warn(kComponent, "recovering an interrupted transaction",
              {{"operation", j.operation},
               {"state", j.state},
               {"pid", j.pid},
               {"action", std::string(actionName(action))}});
    Result<Journal> done = fail(Errc::Internal, "unreachable");
    switch (action) {
        case RecoveryAction::none:
        case RecoveryAction::start_service:
            break;
        case RecoveryAction::close: {
            HOIST_ASSIGN(auto closed, close(std::move(j)));
            return std::optional<Journal>(std::move(closed));
        }
        case RecoveryAction::continue_rollback:
            done = continueRollBack(j, j.message);
            break;
        case RecoveryAction::fail_bootstrap:
            done = finish(j, "failed",
                          "the bootstrap was interrupted before its generation was "
                          "activated; run bootstrap again");
            break;
        case RecoveryAction::adopt_bootstrap:
            j.to_generation = *cur;
            done = forward(j);
            break;
        case RecoveryAction::forward:
            done = forward(j);
            break;
        case RecoveryAction::activate_then_forward:
            HOIST_TRY(gens->activate(j.to_generation));
            done = forward(j);
            break;
        case RecoveryAction::roll_back: {
            std::string reason = "the swap to generation " + std::to_string(j.to_generation) +
                                 " was interrupted in state '" + j.state + "'";
            HOIST_TRY(step(j, "rolling_back", reason));
            done = continueRollBack(j, reason);
            break;
        }
    }
    if (!done) return std::unexpected(done.error());
    return std::optional<Journal>(std::move(*done));
}

// ---- Helper

Helper::Helper(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Helper::~Helper() = default;
Helper::Helper(Helper&&) noexcept = default;
Helper& Helper::operator=(Helper&&) noexcept = default;

Result<Helper> Helper::open(HelperOptions options) {
    std::error_code ec;
    auto absolute = fs::absolute(options.layout.root, ec);
    if (!ec) options.layout = pkgmgr::NodeLayout::at(absolute);
    HOIST_TRY(options.layout.ensure());
    return Helper(std::make_unique<Impl>(std::move(options)));
}

Result<Journal> Helper::swap(const SwapRequest& request) {
    auto& d = *impl_;
    HOIST_TRY(d.loadNode());
    HOIST_TRY(d.lockNode());
    HOIST_TRY(pkgmgr::admitEpoch(d.layout, request.epoch, "restart"));
    HOIST_TRY(d.recoverLocked(false));
    HOIST_ASSIGN(auto target, d.gens->load(request.to));
    // A damaged package is refused while the old service still runs.
    HOIST_TRY(d.gens->requireIntact(target.packages));
    HOIST_ASSIGN(auto cur, d.gens->current());
    Journal j;
    j.operation = request.operation.empty() ? "op-" + crypto::randomHex(8) : request.operation;
    j.kind = "swap";
    j.deployment = request.deployment;
    j.report_to = request.report_to.empty() ? d.config->coordinator : request.report_to;
    j.release = target.release;
    j.from_generation = cur.value_or(0);
    j.to_generation = request.to;
    auto done = d.runSwap(std::move(j));
    d.stopCourier();
    return done;
}

Result<std::optional<Journal>> Helper::recover(bool start_service) {
    auto& d = *impl_;
    HOIST_TRY(d.loadNode());
    HOIST_TRY(d.lockNode());
    auto done = d.recoverLocked(start_service, true);
    d.stopCourier();
    return done;
}

Result<HelperStatus> Helper::status() {
    auto& d = *impl_;
    HOIST_TRY(d.loadNode());
    HelperStatus s;
    HOIST_ASSIGN(s.current, d.gens->current());
    HOIST_ASSIGN(s.transaction, adviseOnDamage(Journal::load(d.layout)));
    HOIST_ASSIGN(s.last, Journal::loadLast(d.layout));
    HOIST_ASSIGN(auto st, d.manager->status());
    s.service_running = st.running;
    s.service_detail = st.detail;
    HOIST_ASSIGN(auto outbox, pkgmgr::Outbox::open(d.layout));
    HOIST_ASSIGN(auto queued, outbox.pending());
    s.pings_queued = queued.size();
    s.pings_damaged = outbox.damaged();
    return s;
}

Result<FlushResult> Helper::flush(std::chrono::milliseconds timeout) {
    auto& d = *impl_;
    HOIST_TRY(d.loadNode());
    HOIST_ASSIGN(auto outbox, pkgmgr::Outbox::open(d.layout));
    HOIST_ASSIGN(auto token, d.config->coordinatorToken(d.layout));
    http::Client client;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    int attempt = 0;
    http::RetryPolicy backoff{.attempts = 0,
                              .base = std::chrono::milliseconds(100),
                              .cap = std::chrono::milliseconds(2000)};
    while (true) {
        auto drained = outbox.drain(client, token, std::chrono::seconds(3));
        std::size_t left = 1;
        if (drained)
            left = drained->left;
        else if (drained.error().code != Errc::Busy)
            return std::unexpected(drained.error());
        if (left == 0) return FlushResult{0, outbox.damaged()};
        if (std::chrono::steady_clock::now() >= deadline) {
            HOIST_ASSIGN(auto queued, outbox.pending());
            return FlushResult{queued.size(), outbox.damaged()};
        }
        std::this_thread::sleep_for(backoffDelay(backoff, attempt++));
    }
}

}  // namespace hoist::restart_helper
