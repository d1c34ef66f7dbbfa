// Pull mode: the node asks the coordinator what to do and applies it itself.
#include "node_server_impl.hpp"
#include "pkgmgr/status.hpp"

namespace hoist::pkgmgr {

// ---- pull mode

// Asks the coordinator what to do every pull_interval and does it. Any number of asks give
// the same result as one: an action already done, or under way, is reported, not repeated.
void NodeServer::Impl::pullLoop() {
    http::Client client;
    {
        std::unique_lock lock(bg_mutex);
        bg_wake.wait(lock, [this] { return stopping || registration_done; });
        if (stopping) return;
    }
    while (true) {
        pullOnce(client);
        std::unique_lock lock(bg_mutex);
        if (bg_wake.wait_for(lock, options.pull_interval, [this] { return stopping; })) return;
    }
}

void NodeServer::Impl::pullOnce(http::Client& client) {
    std::optional<long> current;
    if (auto gens = generations()) {
        if (auto c = gens->current()) current = *c;
    }
    http::Request req;
    req.url = http::joinUrl(config.coordinator, desiredPath(config.id, current.value_or(0)));
    if (auto bearer = config.coordinatorToken(layout); bearer && !bearer->empty())
        req.headers.push_back(http::bearer(*bearer));
    if (auto secret = nodeSecret(layout, false); secret && !secret->empty())
        req.headers.push_back({std::string(kNodeSecretHeader), *secret});
    // One short connection per ask: a keep-alive connection would hold one of the
    // coordinator's HTTP threads for every pull node between its asks.
    req.headers.push_back({"Connection", "close"});
    req.connect_timeout = std::chrono::seconds(2);
    req.timeout = std::chrono::seconds(10);
    auto response = client.send(req);
    std::string problem;
    if (!response)
        problem = response.error().describe();
    else if (!response->ok())
        problem = "HTTP " + std::to_string(response->status) + ": " + response->body.substr(0, 200);
    if (!problem.empty()) {
        // Said once per change, not once per ask.
        if (problem != last_pull_error)
            log::warn(kComponent, "cannot ask the coordinator for the desired state",
                      {{"coordinator", config.coordinator}, {"error", problem}});
        last_pull_error = problem;
        return;
    }
    last_pull_error.clear();
    auto desired = DesiredState::fromJson(response->body);
    if (!desired) {
        log::warn(kComponent, "the coordinator's answer is not understood",
                  {{"error", desired.error().describe()}});
        return;
    }
    // An answer from a coordinator that has lost its leadership is not acted on.
    if (auto admitted = admitEpoch(layout, desired->epoch, "the coordinator's answer"); !admitted) {
        problem = admitted.error().describe();
        if (problem != last_pull_error)
            log::warn(kComponent, "pull: answer refused", {{"error", problem}});
        last_pull_error = problem;
        return;
    }
    if (desired->action == "stage" && !desired->release.empty())
        pullStage(desired->deployment, desired->release);
    else if (desired->action == "restart" && desired->generation > 0)
        pullRestart(desired->deployment, static_cast<long>(desired->generation), desired->epoch);
}

void NodeServer::Impl::report(StatusPing ping) {
    // The same answer again within a few seconds: already reported (the outbox delivers it).
    auto key = detail::concat(ping.deployment, "|", ping.state, "|", ping.to_generation);
    auto now = std::chrono::steady_clock::now();
    if (key == last_report && now - last_report_at < std::chrono::seconds(5)) return;
    ping.node = config.id;
    auto outbox = Outbox::open(layout);
    if (!outbox) {
        log::warn(kComponent, "cannot open the outbox", {{"error", outbox.error().describe()}});
        return;
    }
    auto queued = outbox->enqueue(ping, Outbox::statusUrl(config.coordinator, config.id));
    if (!queued) {
        log::warn(kComponent, "cannot queue a status ping", {{"error", queued.error().describe()}});
        return;
    }
    last_report = key;
    last_report_at = now;
    if (courier) courier->notify();
}

void NodeServer::Impl::pullStage(const std::string& deployment, const std::string& release) {
    // Staging the same release again gives the same generation; only the report is kept quiet.
    auto key = detail::concat(deployment, "|staged|");
    if (last_report.starts_with(key) &&
        std::chrono::steady_clock::now() - last_report_at < std::chrono::seconds(5))
        return;
    std::int64_t from = 0;
    if (auto gens = generations()) {
        if (auto c = gens->current(); c && *c) from = **c;
    }
    StatusPing ping;
    ping.deployment = deployment;
    ping.from_generation = from;
    ping.release = release;
    auto staged = stageSet(release, {});
    if (!staged) {
        auto code = staged.error().code;
        if (code == Errc::Network || code == Errc::Timeout || code == Errc::Busy) {
            // Transient: the next ask tries again.
            log::warn(kComponent, "pull: stage failed; trying again",
                      {{"release", release}, {"error", staged.error().describe()}});
            return;
        }
        ping.state = "failed";
        ping.message = staged.error().describe();
        log::warn(kComponent, "pull: stage refused",
                  {{"release", release}, {"error", ping.message}});
        report(std::move(ping));
        return;
    }
    ping.state = "staged";
    ping.to_generation = staged->number;
    log::info(kComponent, "pull: staged",
              {{"release", release},
               {"generation", static_cast<std::int64_t>(staged->number)},
               {"deployment", deployment}});
    report(std::move(ping));
}

void NodeServer::Impl::pullRestart(const std::string& deployment, long generation,
                                   std::int64_t epoch) {
    // A swap under way reports its own steps. A damaged journal goes on to restartTo, whose
    // refusal is reported, so the coordinator learns why this node does not move.
    auto txn = Journal::load(layout);
    if ((txn && *txn) || helperRunning()) return;
    long current = 0;
    if (auto gens = generations()) {
        if (auto c = gens->current(); c && *c) current = **c;
    }
    StatusPing ping;
    ping.deployment = deployment;
    ping.to_generation = generation;
    auto fresh = NodeConfig::load(layout);
    ping.release = fresh ? fresh->release : config.release;
    if (current == generation) {
        // Done before (the coordinator may have missed it, or restarted): say so.
        ping.state = "healthy";
        ping.message = "already on generation " + std::to_string(generation);
        report(std::move(ping));
        return;
    }
    // This very restart ran and ended on the old set: report that, do not try it again.
    if (auto last = Journal::loadLast(layout); last && *last) {
        const Journal& j = **last;
        auto step = parseHelperStep(j.state);
        if (j.deployment == deployment && j.to_generation == generation &&
            (step == HelperStep::rolled_back || step == HelperStep::failed)) {
            ping.state = j.state;
            ping.from_generation = j.from_generation;
            ping.message =
                "the restart to generation " + std::to_string(generation) + " ended " + j.state;
            report(std::move(ping));
            return;
        }
    }
    auto op = restartTo(generation, deployment, config.coordinator, epoch);
    if (!op) {
        if (op.error().code == Errc::Conflict || op.error().code == Errc::Busy) return;
        ping.state = "failed";
        ping.from_generation = current;
        ping.message = "restart refused: " + op.error().describe();
        log::warn(kComponent, "pull: restart refused",
                  {{"generation", static_cast<std::int64_t>(generation)}, {"error", ping.message}});
        report(std::move(ping));
        return;
    }
    log::info(kComponent, "pull: restart started",
              {{"generation", static_cast<std::int64_t>(generation)},
               {"operation", *op},
               {"deployment", deployment}});
}

}  // namespace hoist::pkgmgr
