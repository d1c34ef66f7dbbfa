#pragma once

// The node agent's private parts: NodeServer::Impl, shared by the files that implement it.
// node_server.cpp: the public NodeServer (create, run, reload, stop); node_routes.cpp: the HTTP
// routes (parse, call, serialize); node_operations.cpp: stage, restart and the helper launch;
// node_registration.cpp: registration with the coordinator and the helper reaper;
// pull_agent.cpp: the pull agent.

#include "pkgmgr/node_server.hpp"

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <set>
#include <thread>

#include "core/crypto.hpp"
#include "core/daemon.hpp"
#include "core/files.hpp"
#include "core/http_server.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/process.hpp"
#include "core/strings.hpp"
#include "pkgmgr/epoch.hpp"
#include "pkgmgr/fetch.hpp"
#include "pkgmgr/generations.hpp"
#include "pkgmgr/journal.hpp"
#include "pkgmgr/node_config.hpp"
#include "pkgmgr/outbox.hpp"
#include "pkgmgr/repository.hpp"
#include "pkgmgr/service.hpp"
#include "pkgmgr/sets.hpp"
#include "pkgmgr/store.hpp"
#include "pkgmgr/wire.hpp"

namespace hoist::pkgmgr {

namespace node_detail {

inline constexpr std::string_view kComponent = "pkgmgr-serve";
inline constexpr std::string_view kSha = "([0-9a-f]{64})";

using http::ServerReply;
using http::ServerRequest;

inline ServerReply errorReply(const Error& error) {
    return ServerReply::error(error);
}

inline std::string damageAdvice(const Error& damage) {
    return "the transaction journal is damaged (" + damage.describe() +
           "); no restart until 'restart-helper recover' sets it aside and brings the current "
           "generation up";
}

inline void writeRef(json::Writer& w, const PackageRef& ref) {
    ref.write(w);
}

}  // namespace node_detail

// A private header of the node agent: its files share these names.
using namespace node_detail;  // NOLINT(google-build-using-namespace)

struct NodeServer::Impl {
    NodeServerOptions options;
    NodeLayout layout;
    NodeConfig config;
    daemon::Secret token;
    std::optional<RoleRules> rules;
    std::unique_ptr<http::Server> server;
    std::string host;
    int port = 0;
    fs::path helper;

    // Stage, delete and restart change the node one at a time.
    std::mutex change_mutex;
    // The helpers we launched; reaped so they do not linger as zombies.
    std::mutex helpers_mutex;
    std::vector<process::Child> helpers;
    std::mutex service_mutex;
    std::unique_ptr<ServiceManager> manager;

    std::unique_ptr<PingCourier> courier;
    std::thread background;
    std::mutex bg_mutex;
    std::condition_variable bg_wake;
    bool stopping = false;
    // Registration has been answered (or is not wanted): pings and pull asks may go out.
    bool registration_done = false;

    Result<Store> store() const { return Store::open(layout); }
    /// The store for a caller that holds the node lock: staging folders (store/.tmp-*) an
    /// earlier, killed operation left are removed first, as the CLI's add and fetch do.
    Result<Store> storeForChange() const {
        HOIST_ASSIGN(auto s, store());
        HOIST_ASSIGN(int removed, s.recover());
        if (removed > 0)
            log::info(kComponent, "removed leftovers of interrupted store operations",
                      {{"count", removed}});
        return s;
    }
    Result<Generations> generations() const {
        HOIST_ASSIGN(auto g, Generations::open(layout));
        g.setLockWait(options.lock_wait);
        return g;
    }
    Result<void> authorize(const ServerRequest& request) const {
        return http::requireBearer(request, token.value());
    }

    void routes();
    ServerReply getNode(const ServerRequest& request);
    ServerReply getPackages(const ServerRequest& request);
    ServerReply putPackage(const ServerRequest& request);
    ServerReply deletePackage(const ServerRequest& request);
    ServerReply getActive(const ServerRequest& request);
    ServerReply postStage(const ServerRequest& request);
    ServerReply postRestart(const ServerRequest& request);
    ServerReply postRollback(const ServerRequest& request);
    ServerReply getTransaction(const ServerRequest& request);

    Result<Generation> stageSet(const std::optional<std::string>& version,
                                std::vector<PackageRef> refs);
    Result<std::string> restartTo(long generation, const std::string& deployment,
                                  const std::string& report_to, std::int64_t epoch);

    Result<std::string> launchHelper(long generation, const std::string& deployment,
                                     const std::string& report_to, std::int64_t epoch);
    bool helperRunning();
    void collectMetrics(metrics::Registry& registry);
    void backgroundLoop();
    std::string address() const;

    // Pull mode.
    std::thread puller;
    std::string last_report;  // what the last report said, so that asking again is quiet
    std::chrono::steady_clock::time_point last_report_at;
    std::string last_pull_error;
    void pullLoop();
    void pullOnce(http::Client& client);
    void pullStage(const std::string& deployment, const std::string& release);
    void pullRestart(const std::string& deployment, long generation, std::int64_t epoch);
    void report(StatusPing ping);
};

}  // namespace hoist::pkgmgr
