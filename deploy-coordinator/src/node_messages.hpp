#pragma once

#include <string>
#include <string_view>

#include "core/error.hpp"
#include "core/http_client.hpp"
#include "deploy_coordinator/state.hpp"
#include "pkgmgr/status.hpp"
#include "rollout.hpp"

namespace hoist::deploy_coordinator {

// Every message the coordinator reads from or writes to a node, in one place: registration,
// GET /v1/node, GET /v1/transaction, and the stage and restart requests and replies.

/// POST /v1/nodes/register (pkgmgr::Registration): Invalid naming the fields that are wrong,
/// or a role the layouts do not know (layouts/roles/<role>.json, embedded or $HOIST_LAYOUTS).
Result<NodeRecord> parseRegistration(std::string_view body);

/// GET /v1/node (pkgmgr::NodeView): generation, release, healthy.
Result<NodeView> parseNodeView(std::string_view body);

/// GET /v1/transaction: whether a swap is under way, and the helper's step when known.
struct TransactionView {
    bool under_way = false;
    std::optional<pkgmgr::HelperStep> step;
};
TransactionView parseTransaction(const http::Response& response);

/// The body of POST /v1/stage (epoch 0: none sent).
std::string stageRequest(std::string_view release, std::int64_t epoch = 0);
/// The generation a stage reply names (0 when none).
std::int64_t parseStageReply(std::string_view body);
/// The body of POST /v1/restart (epoch 0: none sent).
std::string restartRequest(std::int64_t generation, std::string_view deployment,
                           std::string_view report_to, std::int64_t epoch = 0);

/// A failed request as one line: the transport error, or "HTTP <status>: <error or body>".
std::string errorText(const Result<http::Response>& reply);

}  // namespace hoist::deploy_coordinator
