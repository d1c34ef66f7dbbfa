#include <map>

#include "core/log.hpp"
#include "deploy_coordinator/plan.hpp"
#include "engine.hpp"

namespace hoist::deploy_coordinator {

// A rollback of a deployment that has ended, or to a named release, is a deployment of its
// own (kind "rollback"): the one it undoes keeps its outcome, and history shows both. Each
// node goes back to a generation it ran before, so nothing is staged: the rollout starts
// reverting.
Result<std::string> Engine::rollback(const std::optional<std::string>& id,
                                     const std::optional<std::string>& to,
                                     const std::string& actor) {
    return rollback(id, to, actor, "");
}

Result<std::string> Engine::rollback(const std::optional<std::string>& id,
                                     const std::optional<std::string>& to, const std::string& actor,
                                     const std::string& idempotency_key) {
    HOIST_TRY(requireNoHold("rollback"));
    HOIST_ASSIGN(auto history, state_.deployments(1000));  // newest first
    const Deployment* source = nullptr;
    for (const auto& d : history) {
        if (id && d.id == *id) source = &d;
        if (!id && to && d.kind == "upgrade" && d.version == *to &&
            d.state == DeploymentState::done && source == nullptr)
            source = &d;
    }
    if (source == nullptr) {
        if (id) return fail(Errc::NotFound, "deployment '", *id, "' does not exist");
        return fail(Errc::NotFound, "no deployment brought the fleet to ", to.value_or(""),
                    " (cluster history lists them)");
    }
    for (const auto& d : history)
        if (id && d.kind == "rollback" && d.undoes == *id)
            return fail(Errc::Conflict, "deployment ", *id, " was already rolled back by ", d.id,
                        " (", toString(d.state),
                        "); cluster rollback --to VERSION goes back to a "
                        "named release");
    if (id && source->kind == "rollback")
        return fail(Errc::Conflict, "deployment ", *id,
                    " is a rollback; to go forward again, upgrade (cluster upgrade VERSION)");
    HOIST_ASSIGN(auto rows, state_.deploymentNodes(source->id));
    return run<std::string>("rollback", [&] {
        return rollbackOnRunner(id, to, actor, idempotency_key, *source, rows);
    });
}

Result<std::string> Engine::rollbackOnRunner(const std::optional<std::string>& id,
                                             const std::optional<std::string>& to,
                                             const std::string& actor,
                                             const std::string& idempotency_key,
                                             const Deployment& src,
                                             const std::vector<DeploymentNode>& rows) {
    const Deployment* source = &src;
    if (gate_.raised())
        return fail(Errc::Halted, "rollback refused: halted by ", holdSummary(),
                    "; an admin must clear the hold (cluster unhalt)");
    // A retry that raced the first attempt finds it here, started.
    if (active_ && !idempotency_key.empty() && active_->d.idempotency_key == idempotency_key)
        return idempotentAnswer(*active_);
    if (active_) return busyRefusal(active_->d);
    auto now = nowMs();
    auto r = std::make_unique<Rollout>();
    auto& d = r->d;
    d.kind = "rollback";
    d.undoes = id.value_or("");
    d.idempotency_key = idempotency_key;
    d.state = DeploymentState::reverting;
    d.max_parallel = source->max_parallel;
    d.max_failures = source->max_failures;
    d.node_deadline_ms = source->node_deadline_ms;
    d.progress_deadline_ms = source->progress_deadline_ms;
    d.release_json = source->release_json;
    d.created_by = actor;
    d.created_ms = now;
    d.updated_ms = now;
    d.message =
        id ? "rollback of " + *id : "rollback to " + *to + " (as " + source->id + " left it)";
    std::map<std::string, int> back_to;
    std::int64_t agents = 0;
    for (const auto& row : rows) {
        Slot slot;
        slot.row.node = row.node;
        slot.row.role = row.role;
        slot.row.ord = row.ord;
        if (row.role == "agent") ++agents;
        // Back to what the node ran before `source` (a rollback of it), or to what `source`
        // left it on (a rollback to its release).
        std::int64_t generation = id ? row.from_generation : row.target_generation;
        std::string release = id ? row.from_release : source->version;
        auto node = nodes_.find(row.node);
        bool upgraded = row.state == NodeStep::done && generation > 0;
        bool present = node != nodes_.end() && !node->second.is(NodeStatus::removed);
        if (upgraded && present && node->second.generation != generation) {
            slot.row.state = NodeStep::revert_pending;
            slot.row.from_generation = generation;
            slot.row.from_release = release;
            slot.row.target_generation = node->second.generation;
            slot.pull = node->second.pull();
            back_to[release]++;
        } else {
            slot.row.state = NodeStep::skipped;
            slot.row.message = !upgraded  ? "not upgraded by " + source->id
                               : !present ? "no longer in the fleet"
                                          : detail::concat("already on generation ", generation);
        }
        r->slots.push_back(std::move(slot));
    }
    if (back_to.empty())
        return fail(Errc::Conflict, "nothing to do: every node ", source->id,
                    " upgraded already runs the generation ", id ? "it ran before" : "it left",
                    " (cluster nodes shows them)");
    int best = 0;
    for (const auto& [release, count] : back_to)
        if (count > best) best = count, d.version = release;
    HOIST_ASSIGN(auto number, state_.nextDeploymentNumber());
    d.id = "d-" + std::to_string(number);
    d.number = number;
    for (auto& slot : r->slots) slot.row.deployment = d.id;
    r->max_parallel = resolveMaxParallel(d.max_parallel, agents).value_or(1);
    r->stage_window = options_.stage_window;
    r->last_progress_ms = now;
    r->index();
    r->computeWaitingOn(false, "");
    StepWrite write;
    write.deployment = d;
    for (const auto& s : r->slots) write.nodes.push_back(s.row);
    write.events.push_back({0, now, actor, "deployment start", d.id, "",
                            detail::concat(d.message, ": ", r->count(NodeStep::revert_pending),
                                           " nodes back to ", d.version)});
    auto written = state_.commit(write, term_);
    if (!written) return std::unexpected(written.error());
    log::info("deploy-coordinator", "rollback started",
              {{"deployment", d.id}, {"undoes", d.undoes}, {"version", d.version}});
    std::vector<DeploymentNode> out_rows;
    for (const auto& s : r->slots) out_rows.push_back(s.row);
    auto summary = deploymentSummary(d, out_rows, false, 0);
    active_ = std::move(r);
    return summary;
}

}  // namespace hoist::deploy_coordinator
