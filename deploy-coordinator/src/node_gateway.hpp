#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "core/daemon.hpp"
#include "rollout.hpp"

namespace hoist::deploy_coordinator {

/// How the engine reaches a push node. Each call is one request (with its retries) and
/// returns what the rollout model needs to hear; none changes the engine's state. Called
/// from the engine's worker threads: implementations are thread-safe.
///
/// Commands carry `epoch`, the leadership term the action was committed under
/// (StateStore::term); a node that has seen a higher one refuses the command (409), so a
/// coordinator that lost its leadership cannot act on a node. 0: no epoch is sent.
class NodeGateway {
public:
    virtual ~NodeGateway() = default;
    /// POST /v1/stage {"release","epoch"}.
    virtual StageOutcome stage(const std::string& address, const std::string& release,
                               std::int64_t epoch) = 0;
    /// POST /v1/restart {"generation","deployment","report_to","epoch"}.
    virtual RestartOutcome restart(const std::string& address, std::int64_t generation,
                                   const std::string& deployment, const std::string& report_to,
                                   std::int64_t epoch) = 0;
    /// GET /v1/transaction then GET /v1/node.
    virtual PollOutcome poll(const std::string& address) = 0;
    /// GET /v1/node (with a few quick retries); nullopt when the node did not answer.
    virtual std::optional<NodeView> probe(const std::string& address) = 0;
    /// GET /v1/node once, with short timeouts: does the node answer at all?
    virtual bool answers(const std::string& address) = 0;
};

/// The gateway over HTTP (one keep-alive client per calling thread), presenting `token` as a
/// bearer token when it is not empty (read at each request: a reloaded token is used at once).
std::unique_ptr<NodeGateway> makeHttpGateway(daemon::Secret token,
                                             std::chrono::milliseconds stage_timeout);

}  // namespace hoist::deploy_coordinator
