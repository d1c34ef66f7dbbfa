#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "client.hpp"
#include "cluster/api_types.hpp"
#include "module_release.hpp"

namespace hoist::cluster {

// One function per verb. Each returns the exit code (hoist::exitCode): results on out, errors
// and progress notes on err. With json, out carries exactly one JSON object.

struct Context {
    Client& client;
    std::ostream& out;
    std::ostream& err;
    bool json = false;
    /// stdout is a terminal: progress redraws in place.
    bool tty = false;
    /// Terminal width for the live view.
    int width = 80;
    /// Poll interval while following.
    std::chrono::milliseconds poll{500};
};

/// The settings of a new deployment, as POST /v1/deployments takes them. Durations are
/// written "30s", "5m" on the command line.
struct UpgradeOptions {
    std::string version;
    std::string max_parallel = "1";
    std::int64_t max_failures = 0;
    std::string min_healthy = "0s";
    std::string node_deadline = "10m";
    std::string progress_deadline = "30m";
    bool auto_revert = false;
    bool dry_run = false;
    bool detach = false;
    /// With detach: follow it all the same once started (re-attach later with `follow`).
    bool watch = false;
    bool rehearse = false;
    std::string inject;
    /// Metric gates checked after each wave settles ('NAME: QUERY OP NUMBER [for D]'), and the
    /// Prometheus they query (default: the coordinator's --prometheus).
    std::vector<std::string> gates;
    std::string prometheus;
    /// Sent as Idempotency-Key (default: a fresh one per invocation, kept across retries).
    std::string idempotency_key;
};

int upgrade(Context& c, const UpgradeOptions& o);
/// Follows a deployment (default: the acting one, else the newest) until it ends, is held
/// by its failure budget or by a hold. Exit 0 only when it ends done.
int follow(Context& c, std::string id);
/// `status [ID] [--watch]`.
int status(Context& c, std::string id, bool watch);
int plan(Context& c, const std::string& version, const std::string& max_parallel);
int halt(Context& c, const std::string& reason, const std::string& source);
/// Clears one hold (source) or every hold, with the admin's reason.
int unhalt(Context& c, const std::string& source, const std::string& reason);
/// Resumes a paused or held deployment; holds are not touched (that is unhalt).
int resume(Context& c, std::optional<std::int64_t> max_failures, bool watch);
/// rollback, pause or abort of `id` (default: the acting deployment, else the newest; for
/// rollback the newest that changed nodes and was not undone).
int command(Context& c, const std::string& verb, std::string id, bool watch);
int rollbackTo(Context& c, const std::string& version, bool watch);
int nodes(Context& c);
int history(Context& c, int limit, bool events);
int nodeAdd(Context& c, const std::string& role, std::int64_t count);
int nodeRemove(Context& c, const std::string& node);
int nodeForget(Context& c, const std::string& node, const std::string& reason);
int monitors(Context& c);
int monitorRemove(Context& c, const std::string& name);
int module(Context& c, ModuleOptions mo, const std::string& max_parallel, std::int64_t max_failures,
           bool detach);

/// Prints an error the cluster way ("cluster: ...") and returns its exit code.
int failWith(Context& c, const Error& e);

}  // namespace hoist::cluster
