// Pull offers on the engine's side: GET /v1/nodes/{node}/desired, answered on the runner from
// the rollout model (Rollout::onAsk), committed before the answer leaves.
#include "engine.hpp"

#include "pkgmgr/wire.hpp"

namespace hoist::deploy_coordinator {

Result<std::string> Engine::desired(const std::string& id, std::optional<std::int64_t> generation) {
    return run<std::string>("desired state of '" + id + "'",
                            [&] { return desiredOnRunner(id, generation); });
}

Result<std::string> Engine::desiredOnRunner(const std::string& id,
                                            std::optional<std::int64_t> generation) {
    PullAnswer answer;
    std::string deployment;
    bool held = false;
    std::int64_t epoch = 0;
    {
        epoch = term_;  // on the runner, which holds the state lock
        auto it = nodes_.find(id);
        if (it == nodes_.end()) return std::unexpected(pkgmgr::notRegistered(id));
        auto& rec = it->second;
        if (!rec.pull())
            return fail(Errc::Conflict, "node '", id,
                        "' is registered in push mode: the coordinator sends it its actions "
                        "(register with \"mode\": \"pull\" to ask for them)");
        auto now = nowMs();
        // Asking is a sign of life, as a ping is.
        rec.last_seen_ms = now;
        if (rec.last_ask_idle && now > rec.last_ask_ms) rec.ask_interval_ms = now - rec.last_ask_ms;
        rec.last_ask_ms = now;
        rec.last_ask_idle = false;
        if (rec.is(NodeStatus::down)) {
            rec.set(NodeStatus::up);
            queueEvent("node:" + id, "node up", "", id, "asked for its desired state");
        }
        node_dirty_[id] = true;
        Slot* slot = active_ && !rec.is(NodeStatus::removed) ? active_->find(id) : nullptr;
        if (slot != nullptr) {
            // The same gate as a push action, passed under the engine lock: once a halt has
            // been answered, nothing is handed out, not even again.
            bool may_send = gate_.beginSend();
            Output out;
            answer = active_->onAsk(*slot, generation, !may_send, now, out);
            deployment = active_->d.id;
            if (!out.events.empty()) actions_sent_++;
            apply(out);
            // Persist before acting: the reply leaves only once the state saying the action
            // started is committed. (flush may end the deployment: slot is not used after.)
            if (answer.kind != PullAnswer::Kind::none &&
                (slot->dirty || !pending_events_.empty())) {
                auto flushed = flush(now, false);
                if (!flushed) {
                    if (may_send) gate_.endSend();
                    return std::unexpected(flushed.error());
                }
            }
            if (may_send) gate_.endSend();
            held = !may_send;
        }
        held = held || gate_.raised();
    }
    pkgmgr::DesiredState reply;
    reply.action = answer.kind == PullAnswer::Kind::stage     ? "stage"
                   : answer.kind == PullAnswer::Kind::restart ? "restart"
                                                              : "none";
    reply.deployment = answer.kind == PullAnswer::Kind::none ? "" : deployment;
    reply.release = answer.release;
    reply.generation = answer.generation;
    reply.held = held;
    reply.epoch = epoch;
    if (answer.kind == PullAnswer::Kind::none) {
        // The next ask comes one pull interval from now: it measures the interval.
        auto it = nodes_.find(id);
        if (it != nodes_.end()) it->second.last_ask_idle = true;
    }
    return reply.toJson();
}

}  // namespace hoist::deploy_coordinator
