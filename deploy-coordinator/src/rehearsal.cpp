#include "rehearsal.hpp"

#include <charconv>
#include <functional>

#include "core/strings.hpp"
#include "pkgmgr/release.hpp"

namespace hoist::deploy_coordinator {

namespace {

Result<std::int64_t> parseDuration(std::string_view text, std::string_view item) {
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    std::string_view unit(end, static_cast<size_t>(text.data() + text.size() - end));
    std::int64_t scale = unit == "ms" ? 1 : unit == "s" ? 1000 : unit == "m" ? 60000 : 0;
    if (ec != std::errc() || scale == 0 || value <= 0)
        return fail(Errc::Invalid, "inject '", item, "': '", text,
                    "' is not a duration such as 500ms, 30s or 2m");
    return value * scale;
}

// One simulated node: what it runs and what it does wrong.
struct SimState {
    std::int64_t generation = 1;
    bool swapping = false;
    bool staging = false;
    std::int64_t seq = 0;
    std::int64_t swap_ms = 0;
    std::int64_t fail_ms = 0;
    const Fault* fault = nullptr;
    /// The fault is this release's recorded failure on the node, not an injected one.
    bool recorded_fault = false;
    /// A pull node: how often it asks, and whether it still does (a silent one stops once it
    /// has taken its restart).
    bool pull = false;
    std::int64_t interval_ms = 0;
    bool asking = true;

    bool is(FaultKind kind) const { return fault != nullptr && fault->kind == kind; }
};

const Fault* faultFor(const std::vector<Fault>& faults, const std::string& node) {
    for (const auto& f : faults)
        if (f.kind != FaultKind::hold && pkgmgr::globMatch(f.pattern, node)) return &f;
    return nullptr;
}

}  // namespace

std::string_view toString(FaultKind kind) {
    switch (kind) {
        case FaultKind::health_fail:
            return "health_fail";
        case FaultKind::silent:
            return "silent";
        case FaultKind::slow:
            return "slow";
        case FaultKind::stage_fail:
            return "stage_fail";
        case FaultKind::hold:
            return "hold";
    }
    return "unknown";
}

Result<std::vector<Fault>> parseFaults(std::string_view text) {
    std::vector<Fault> faults;
    for (const auto& raw : strings::split(text, ',')) {
        std::string_view item = strings::trim(raw);
        if (item.empty()) continue;
        if (item.starts_with("hold=")) {
            Fault f{"*", FaultKind::hold, 0};
            HOIST_ASSIGN(f.ms, parseDuration(item.substr(5), item));
            faults.push_back(std::move(f));
            continue;
        }
        auto colon = item.find(':');
        if (colon == std::string_view::npos || colon == 0)
            return fail(Errc::Invalid, "inject '", item,
                        "': expected NODE:FAULT, such as agent-3:health_fail or agent-*:slow=30s");
        Fault f;
        f.pattern = std::string(item.substr(0, colon));
        std::string_view what = item.substr(colon + 1);
        auto eq = what.find('=');
        std::string_view name = what.substr(0, eq);
        if (name == "hold") {
            return fail(Errc::Invalid, "inject '", item,
                        "': a hold names no node: hold=TIME, such as hold=2m");
        } else if (name == "health_fail") {
            f.kind = FaultKind::health_fail;
        } else if (name == "silent") {
            f.kind = FaultKind::silent;
        } else if (name == "stage_fail") {
            f.kind = FaultKind::stage_fail;
        } else if (name == "slow") {
            f.kind = FaultKind::slow;
            if (eq == std::string_view::npos)
                return fail(Errc::Invalid, "inject '", item,
                            "': slow needs a time, as in slow=30s");
            HOIST_ASSIGN(f.ms, parseDuration(what.substr(eq + 1), item));
        } else {
            return fail(Errc::Invalid, "inject '", item, "': unknown fault '", name,
                        "' (health_fail, silent, slow=TIME, stage_fail)");
        }
        if (f.kind != FaultKind::slow && eq != std::string_view::npos)
            return fail(Errc::Invalid, "inject '", item, "': ", name, " takes no value");
        faults.push_back(std::move(f));
    }
    return faults;
}

Rehearsal rehearse(Rollout r, const std::map<std::string, SimNode>& nodes,
                   const std::vector<Fault>& faults, const std::vector<Wave>& waves,
                   const RehearsalSettings& settings) {
    Rehearsal result;
    result.gates = r.gates;
    std::map<std::string, SimState> sim;
    std::map<std::string, size_t> line_of;
    std::map<std::string, int> wave_of;
    // This release failed on these nodes before: predicted to fail again.
    std::vector<Fault> recorded_failures;
    for (const auto& [id, known] : nodes)
        if (known.failed_before) recorded_failures.push_back({id, FaultKind::health_fail, 0});
    for (size_t w = 0; w < waves.size(); ++w) {
        result.waves.push_back({waves[w].role, waves[w].nodes, -1, -1});
        for (const auto& id : waves[w].nodes) wave_of[id] = static_cast<int>(w) + 1;
    }
    for (auto& slot : r.slots) {
        auto& s = sim[slot.row.node];
        s.generation = slot.row.from_generation;
        s.fault = faultFor(faults, slot.row.node);
        std::string fault_source = s.fault ? "injected" : "";
        if (!s.fault) {
            s.fault = faultFor(recorded_failures, slot.row.node);
            if (s.fault) fault_source = "recorded";
            s.recorded_fault = s.fault != nullptr;
        }
        auto known = nodes.find(slot.row.node);
        bool recorded = known != nodes.end() && known->second.recorded;
        s.swap_ms = recorded ? known->second.swap_ms : settings.default_swap_ms;
        s.fail_ms = known != nodes.end() && known->second.fail_ms > 0
                        ? known->second.fail_ms
                        : settings.default_health_fail_ms;
        Rehearsal::NodeLine line;
        line.node = slot.row.node;
        line.role = slot.row.role;
        line.wave = slot.row.state == NodeStep::skipped ? 0 : wave_of[slot.row.node];
        line.swap_source = recorded ? "recorded" : "default";
        if (s.is(FaultKind::slow)) {
            s.swap_ms = s.fault->ms;
            line.swap_source = "injected";
        }
        line.swap_ms = s.swap_ms;
        if (s.fault) line.fault = std::string(toString(s.fault->kind));
        line.fault_source = fault_source;
        if (s.is(FaultKind::health_fail)) line.fail_ms = s.fail_ms;
        if (slot.pull) {
            bool measured = known != nodes.end() && known->second.pull_interval_ms > 0;
            s.pull = true;
            s.interval_ms =
                measured ? known->second.pull_interval_ms : settings.default_pull_interval_ms;
            line.pull = true;
            line.pull_interval_ms = s.interval_ms;
            line.pull_interval_source = measured ? "recorded" : "default";
        }
        line.step = slot.row.state;
        line_of[line.node] = result.nodes.size();
        result.nodes.push_back(std::move(line));
    }

    // Events at a time run in the order they were scheduled. A pull node's asks come for
    // ever: `work` counts the other events, the ones that can still move the rollout.
    struct Due {
        std::function<void(std::int64_t, Output&)> hear;
        bool ask = false;
    };
    std::multimap<std::int64_t, Due> queue;
    std::int64_t work = 0;
    auto at = [&](std::int64_t when, const std::string& node, auto hear) {
        ++work;
        queue.emplace(when, Due{[&r, node, hear](std::int64_t now, Output& out) {
                                    if (Slot* slot = r.find(node)) hear(r, *slot, now, out);
                                },
                                false});
    };
    auto note = [&](std::int64_t now, std::string what) {
        result.timeline.push_back({now, std::move(what)});
    };

    // The swap to generation `to`, begun at `now`; the helper reports its end by a ping. A new
    // generation that never turns healthy is rolled back once the health deadline passes:
    // that, not the usual swap, is how long its swap takes. A silent pull node takes its
    // restart and is never heard from again (a silent push node never answers the request).
    auto swap = [&](const std::string& id, std::int64_t to, std::int64_t now) {
        auto& node = sim[id];
        node.swapping = true;
        if (node.pull && node.is(FaultKind::silent)) {
            node.asking = false;
            return;
        }
        Slot* target = r.find(id);
        bool will_fail = target != nullptr && to == target->row.target_generation &&
                         node.is(FaultKind::health_fail);
        at(now + (will_fail ? node.fail_ms : node.swap_ms), id,
           [&node, to](Rollout& ro, Slot& slot, std::int64_t t, Output& o) {
               node.swapping = false;
               bool forward = to == slot.row.target_generation;
               bool fails = forward && node.is(FaultKind::health_fail);
               if (!fails) node.generation = to;
               PingReport ping{
                   ++node.seq,
                   fails ? pkgmgr::HelperStep::rolled_back : pkgmgr::HelperStep::healthy,
                   slot.row.from_generation, to,
                   !fails ? ""
                   : node.recorded_fault
                       ? "recorded health_fail: the helper rolled this release back "
                         "on this node before"
                       : "injected health_fail: the new generation never turned "
                         "healthy"};
               ro.onPing(slot, ping, t, o);
           });
    };

    std::optional<std::int64_t> hold_at = settings.hold_at_ms;
    for (const auto& f : faults)
        if (f.kind == FaultKind::hold && (!hold_at || f.ms < *hold_at)) hold_at = f.ms;
    auto held_at = [&](std::int64_t t) { return hold_at && t >= *hold_at; };

    // A pull node asks (GET /v1/nodes/{node}/desired, saying the generation it runs) and is
    // answered by the model, as the engine answers it. It stages within its ask, so its next
    // ask comes an interval after the stage ends; a restart only starts the helper.
    std::function<void(std::int64_t, const std::string&)> ask_at;
    auto asked = [&](const std::string& id, std::int64_t t, Output& o) {
        auto& node = sim[id];
        Slot* slot = r.find(id);
        if (!node.asking || slot == nullptr) return;
        auto offered = slot->offered_ms;
        auto before = slot->row.state;
        PullAnswer answer = r.onAsk(*slot, node.generation, held_at(t), t, o);
        std::int64_t next = t + settings.reply_ms + node.interval_ms;
        if (slot->row.state != before) {  // handed out now (not again)
            auto& line = result.nodes[line_of[id]];
            std::int64_t waited = offered ? t - *offered : 0;
            line.waited_ms += waited;
            note(t, detail::concat(id, " (pull) asks and takes its ",
                                   answer.kind == PullAnswer::Kind::stage ? "stage" : "restart",
                                   ", offered ", waited, " ms before"));
        }
        if (answer.kind == PullAnswer::Kind::stage && !node.staging) {
            node.staging = true;
            next += settings.stage_ms;
            at(t + settings.stage_ms, id,
               [&node](Rollout& ro, Slot& sl, std::int64_t when, Output& out) {
                   node.staging = false;
                   bool fails = node.is(FaultKind::stage_fail);
                   PingReport ping{++node.seq,
                                   fails ? pkgmgr::HelperStep::failed : pkgmgr::HelperStep::staged,
                                   node.generation, fails ? 0 : node.generation + 1,
                                   fails ? "injected stage_fail" : ""};
                   ro.onPing(sl, ping, when, out);
               });
        } else if (answer.kind == PullAnswer::Kind::restart && !node.swapping &&
                   node.generation != answer.generation) {
            swap(id, answer.generation, t);
        }
        if (node.asking) ask_at(next, id);
    };
    ask_at = [&](std::int64_t when, const std::string& id) {
        queue.emplace(when,
                      Due{[&asked, id](std::int64_t t, Output& o) { asked(id, t, o); }, true});
    };
    for (const auto& slot : r.slots)
        if (slot.pull && slot.row.state != NodeStep::skipped)
            ask_at(sim[slot.row.node].interval_ms, slot.row.node);

    auto take = [&](Output& out, std::int64_t now) {
        for (const auto& e : out.events) {
            auto it = line_of.find(e.node);
            if (it != line_of.end()) {
                auto& line = result.nodes[it->second];
                if ((e.action == "restart" || e.action == "revert") && line.start_ms < 0)
                    line.start_ms = now;
                if (e.action.starts_with("node ")) {
                    if (line.end_ms < 0) {
                        line.end_ms = now;
                        line.message = e.detail;
                    }
                    note(now, e.node + " " + e.action.substr(5) +
                                  (e.detail.empty() ? "" : ": " + e.detail));
                }
            } else if (e.action.starts_with("deployment ") || e.action.starts_with("gate")) {
                note(now, e.action + (e.detail.empty() ? "" : ": " + e.detail));
            }
        }
        if (out.state_changed) {
            if (r.d.state == DeploymentState::held) result.budget_stop_ms = now;
            if (r.d.state == DeploymentState::reverting && !result.revert_start_ms) {
                result.revert_start_ms = now;
                if (r.d.message.starts_with("auto-revert")) result.budget_stop_ms = now;
            }
        }
        // A gate's query is assumed to hold (the rehearsal has no metrics): it shows where the
        // gates come and what their `for` times add.
        for (const auto& q : out.gate_queries) {
            ++work;
            queue.emplace(now + settings.reply_ms,
                          Due{[&r, gate = q.gate](std::int64_t t, Output& o) {
                                  r.onGateSample(gate, GateSample{std::nullopt, "", true}, t, o);
                              },
                              false});
        }
        for (const auto& action : out.actions) {
            auto& node = sim[action.node];
            std::int64_t reply = now + settings.reply_ms;
            switch (action.kind) {
                case NodeAction::Kind::stage:
                    at(now + settings.stage_ms, action.node,
                       [&node](Rollout& ro, Slot& slot, std::int64_t t, Output& o) {
                           if (node.is(FaultKind::stage_fail))
                               ro.onStage(slot,
                                          {StageOutcome::Kind::failed, 0, "injected stage_fail"}, t,
                                          o);
                           else
                               ro.onStage(slot,
                                          {StageOutcome::Kind::staged, node.generation + 1, ""}, t,
                                          o);
                       });
                    break;
                case NodeAction::Kind::restart: {
                    std::int64_t to = action.generation;
                    if (node.is(FaultKind::silent)) {
                        at(reply, action.node,
                           [](Rollout& ro, Slot& slot, std::int64_t t, Output& o) {
                               ro.onRestart(slot, {RestartOutcome::Kind::lost, "no answer"}, t, o);
                           });
                        break;
                    }
                    at(reply, action.node, [](Rollout& ro, Slot& slot, std::int64_t t, Output& o) {
                        ro.onRestart(slot, {RestartOutcome::Kind::accepted, ""}, t, o);
                    });
                    swap(action.node, to, now);
                    break;
                }
                case NodeAction::Kind::poll:
                    at(reply, action.node,
                       [&node](Rollout& ro, Slot& slot, std::int64_t t, Output& o) {
                           PollOutcome p;
                           p.reachable = !node.is(FaultKind::silent);
                           p.under_way = node.swapping;
                           p.view = {node.generation, "", true};
                           ro.onPoll(slot, p, t, o);
                       });
                    break;
                case NodeAction::Kind::probe:
                    at(reply, action.node,
                       [&node](Rollout& ro, Slot& slot, std::int64_t t, Output& o) {
                           std::optional<NodeView> view;
                           if (!node.is(FaultKind::silent))
                               view = NodeView{node.generation, "", true};
                           ro.onProbe(slot, view, t, o);
                       });
                    break;
            }
        }
        out = Output{};
    };

    std::int64_t now = 0;
    std::int64_t last_tick = 0;
    Output out;
    r.last_progress_ms = 0;
    auto held = [&] { return held_at(now); };
    bool hold_noted = false;
    auto noteHold = [&] {
        if (hold_noted || !held()) return;
        hold_noted = true;
        note(now, "hold: no new stage or restart starts; the nodes in flight finish");
    };
    noteHold();
    r.tick(now, held(), "simulated", settings.rollout, out);
    take(out, now);
    // A hold ends the simulation once nothing is in flight or queued: nothing moves after.
    auto stopped = [&] {
        return isFinished(r.d.state) || r.d.state == DeploymentState::held ||
               (held() && work == 0 && !r.anyInFlight());
    };
    while (!stopped()) {
        std::int64_t next_tick = last_tick + 1000;
        now = queue.empty() ? next_tick : std::min(queue.begin()->first, next_tick);
        if (now > settings.limit_ms) {
            result.cut_short = true;
            break;
        }
        while (!queue.empty() && queue.begin()->first <= now) {
            auto due = std::move(queue.begin()->second);
            queue.erase(queue.begin());
            if (!due.ask) --work;
            due.hear(now, out);
            take(out, now);
        }
        noteHold();
        // The engine ticks every few milliseconds: a state change acts at once.
        for (int again = 0; again < 4; ++again) {
            r.tick(now, held(), "simulated", settings.rollout, out);
            bool changed = out.state_changed;
            take(out, now);
            if (!changed) break;
        }
        last_tick = now;
    }
    result.outcome = r.d.state;
    result.message = r.d.message;
    if (held() && isActive(r.d.state) && r.d.state != DeploymentState::held) {
        result.hold_bit_ms = *hold_at;
        result.message =
            detail::concat("stopped by a hold from ", *hold_at, " ms: ", r.count(NodeStep::done),
                           " nodes done, ", r.count(NodeStep::failed), " failed, ",
                           r.count(NodeStep::pending) + r.count(NodeStep::staged),
                           " wait for the hold to be cleared");
    }
    result.total_ms = now;
    for (auto& line : result.nodes) {
        if (Slot* slot = r.find(line.node)) line.step = slot->row.state;
        if (line.wave > 0) {
            auto& wave = result.waves[static_cast<size_t>(line.wave - 1)];
            if (line.start_ms >= 0 && (wave.start_ms < 0 || line.start_ms < wave.start_ms))
                wave.start_ms = line.start_ms;
            if (line.end_ms >= 0) wave.end_ms = std::max(wave.end_ms, line.end_ms);
        }
    }
    return result;
}

}  // namespace hoist::deploy_coordinator
