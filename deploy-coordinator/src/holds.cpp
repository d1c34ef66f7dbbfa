#include "holds.hpp"

#include "core/json.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"
#include "engine.hpp"

namespace hoist::deploy_coordinator {

namespace {
constexpr std::string_view kLog = "deploy-coordinator";
}  // namespace

bool ActionGate::beginSend() {
    sending_.fetch_add(1);
    if (raised_.load()) {
        endSend();
        return false;
    }
    return true;
}

void ActionGate::endSend() {
    if (sending_.fetch_sub(1) == 1) {
        std::lock_guard lock(mutex_);
        idle_.notify_all();
    }
}

void ActionGate::raise(std::chrono::milliseconds max_wait) {
    raised_.store(true);
    std::unique_lock lock(mutex_);
    idle_.wait_for(lock, max_wait, [this] { return sending_.load() == 0; });
}

bool Engine::acting() {
    std::lock_guard lock(mutex_);
    return active_ != nullptr;
}

Result<void> Engine::requireNoHold(std::string_view what) {
    if (!gate_.raised()) return ok();
    auto holds = holdSummary();
    return fail(Errc::Halted, what, " refused: halted by ",
                holds.empty() ? std::string("a halt being recorded") : holds,
                "; an admin must clear the hold (cluster unhalt)");
}

std::string Engine::holdSummary() {
    std::vector<std::string> parts;
    std::lock_guard lock(holds_data_mutex_);
    for (const auto& h : holds_) parts.push_back(h.source + " (" + h.reason + ")");
    return strings::join(parts, ", ");
}

// A halt raises the gate on the caller's thread, at once: no worker sends a node action from
// then on, and the sends already past it are waited for. Then the caller writes the hold
// itself, through the store's hold path (StateStore::commitHolds), which does not wait for the
// runner or the step it is committing. The reply leaves once the hold is on disk.
Result<std::string> Engine::halt(const std::string& source, const std::string& reason,
                                 const std::string& by, const HoldDetails& details) {
    auto t0 = std::chrono::steady_clock::now();
    std::unique_lock hold_lock(holds_mutex_);
    bool was_raised = gate_.raised();
    gate_.raise(std::chrono::milliseconds(5000));
    auto t1 = std::chrono::steady_clock::now();
    Hold hold{source, reason, by, nowMs(), details.alerts_json, 0};
    bool existed = false;
    bool unchanged = false;
    {
        std::lock_guard lock(holds_data_mutex_);
        for (const auto& h : holds_)
            if (h.source == source) {
                existed = true;
                hold.since_ms = h.since_ms;
                unchanged = h.reason == reason && h.alerts_json == details.alerts_json &&
                            h.resolved_ms == 0 && h.by == by;
            }
    }
    // A monitor repeating itself (Alertmanager's repeat_interval) writes nothing.
    if (!unchanged) {
        auto written = putHold(hold, details);
        auto timing = lastCommitTiming();
        if (!written) {
            if (!was_raised) gate_.lower();
            return std::unexpected(written.error());
        }
        auto t2 = std::chrono::steady_clock::now();
        auto us = [](auto d) {
            return static_cast<std::int64_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(d).count());
        };
        auto received = details.received.time_since_epoch().count() != 0 ? details.received : t0;
        // Where the halt's time went: from the request's header to the handler (http_us), the
        // gate, the store's lock, the statements and the commit with its fsync.
        log::warn(kLog, "halt",
                  {{"source", source},
                   {"reason", reason},
                   {"by", by},
                   {"http_us", us(t0 - received)},
                   {"gate_us", us(t1 - t0)},
                   {"store_wait_us", timing.wait_us},
                   {"write_us", timing.write_us},
                   {"sync_us", timing.sync_us},
                   {"hold_written_us", us(t2 - t1)},
                   {"total_us", us(t2 - received)}});
    }
    // Where another replica sends the node actions (HA), the answer waits until that one has
    // the hold in force; outside the lock, since this replica may be the one about to lead.
    hold_lock.unlock();
    HOIST_TRY(state_.confirmHolds());
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

Result<void> Engine::putHold(const Hold& hold, const HoldDetails& details) {
    std::string detail = hold.source + ": " + hold.reason;
    if (!details.audit_note.empty()) detail += " [" + details.audit_note + "]";
    StepWrite write;
    write.put_holds.push_back(hold);
    write.events.push_back({0, nowMs(), hold.by, "halt", "", "", detail});
    HOIST_TRY(state_.commitHolds(write));
    settleHolds();
    std::lock_guard lock(holds_data_mutex_);
    std::erase_if(holds_, [&](const Hold& h) { return h.source == hold.source; });
    holds_.push_back(hold);
    return ok();
}

// The store's upkeep after a holds write (the journal folded, the holds file checkpointed),
// on the runner (its priority lane, which a standby replica runs too): never on the halt's
// path.
void Engine::settleHolds() {
    runner_.post([this] { state_.settleHolds(); }, Runner::Lane::priority);
}

Result<std::string> Engine::resolveHold(const std::string& source, const std::string& by,
                                        const std::string& audit_note) {
    std::lock_guard hold_lock(holds_mutex_);
    std::optional<Hold> hold;
    {
        std::lock_guard lock(holds_data_mutex_);
        for (const auto& h : holds_)
            if (h.source == source) hold = h;
    }
    auto now = nowMs();
    if (hold && hold->resolved_ms == 0) hold->resolved_ms = now;
    std::string detail =
        source + ": the monitor reports its alerts resolved" +
        (hold ? "; the hold stands until an admin clears it" : "; no hold of that source stands");
    if (!audit_note.empty()) detail += " [" + audit_note + "]";
    StepWrite write;
    if (hold) write.put_holds.push_back(*hold);
    write.events.push_back({0, now, by, "halt resolved", "", "", detail});
    HOIST_TRY(state_.commitHolds(write));
    settleHolds();
    if (hold) {
        std::lock_guard lock(holds_data_mutex_);
        for (auto& h : holds_)
            if (h.source == source) h.resolved_ms = hold->resolved_ms;
    }
    log::info(kLog, "halt resolved by monitor", {{"source", source}, {"by", by}});
    json::Writer w;
    w.beginObject().field("source", source).field("holds", hold.has_value());
    if (hold) w.field("resolved", formatTime(hold->resolved_ms));
    w.field("message", hold ? "the hold stands until an admin clears it (cluster unhalt --source " +
                                  source + ")"
                            : "no hold of that source stands");
    w.endObject();
    return w.str();
}

Result<std::string> Engine::clearHolds(std::optional<std::string> source,
                                       const std::string& actor) {
    return clearHolds(std::move(source), actor, "");
}

Result<std::string> Engine::clearHolds(std::optional<std::string> source, const std::string& actor,
                                       const std::string& reason) {
    std::unique_lock hold_lock(holds_mutex_);
    std::vector<Hold> current;
    {
        std::lock_guard lock(holds_data_mutex_);
        current = holds_;
    }
    std::vector<Hold> cleared;
    for (const auto& h : current)
        if (!source || h.source == *source) cleared.push_back(h);
    if (source && cleared.empty())
        return fail(Errc::NotFound, "no hold from source '", *source, "'");
    auto now = nowMs();
    StepWrite write;
    if (source)
        write.delete_holds.push_back(*source);
    else
        write.clear_holds = true;
    for (const auto& h : cleared)
        write.events.push_back(
            {0, now, actor, "halt cleared", "", "",
             h.source + ": " + h.reason + (reason.empty() ? "" : "; cleared because: " + reason)});
    HOIST_TRY(state_.commitHolds(write));
    settleHolds();
    {
        std::lock_guard data_lock(holds_data_mutex_);
        if (source)
            std::erase_if(holds_, [&](const Hold& h) { return h.source == *source; });
        else
            holds_.clear();
    }
    // The gate goes down on the runner, with the deployment's progress clock restarting where
    // the hold ended, unless a halt came meanwhile: a halt does not wait for this turn.
    hold_lock.unlock();
    auto lowered = run<void>(
        "clearing holds",
        [&]() -> Result<void> {
            std::lock_guard data_lock(holds_data_mutex_);
            if (holds_.empty()) gate_.lower();
            if (active_) active_->last_progress_ms = now;
            return ok();
        },
        Runner::Lane::priority);
    if (!lowered) return std::unexpected(lowered.error());
    runner_.wake();
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
        std::lock_guard lock(holds_data_mutex_);
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
    StepWrite write;
    write.events.push_back(std::move(event));
    return state_.commit(write, term_);
}

}  // namespace hoist::deploy_coordinator
