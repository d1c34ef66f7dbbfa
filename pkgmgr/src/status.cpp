#include "pkgmgr/status.hpp"

#include <algorithm>

#include "core/json.hpp"

namespace hoist::pkgmgr {

namespace {
constexpr std::string_view kStates[] = {"staging",  "staged",   "stopping",     "swapping",
                                        "starting", "checking", "healthy",      "rolling_back",
                                        "rolled_back", "failed", "bootstrapping"};
}

bool isTerminalState(std::string_view state) {
    return std::find(std::begin(kTerminalStates), std::end(kTerminalStates), state) !=
           std::end(kTerminalStates);
}

bool isKnownState(std::string_view state) {
    return std::find(std::begin(kStates), std::end(kStates), state) != std::end(kStates);
}

Result<StatusPing> StatusPing::parse(std::string_view text) {
    constexpr std::string_view ctx = "status ping";
    HOIST_ASSIGN(auto doc, json::parseObject(text, ctx));
    HOIST_TRY(json::rejectUnknown(doc, {"node", "deployment", "seq", "state", "from_generation",
                                        "to_generation", "release", "message", "time"},
                                  ctx));
    StatusPing ping;
    HOIST_ASSIGN(ping.node, json::getString(doc, "node", ctx));
    HOIST_ASSIGN(auto deployment, json::optString(doc, "deployment", ctx));
    ping.deployment = deployment.value_or("");
    HOIST_ASSIGN(ping.seq, json::getInt(doc, "seq", ctx));
    HOIST_ASSIGN(ping.state, json::getString(doc, "state", ctx));
    if (!isKnownState(ping.state))
        return fail(Errc::Invalid, ctx, ": field 'state' has the unknown value '", ping.state, "'");
    HOIST_ASSIGN(auto from, json::optInt(doc, "from_generation", ctx));
    HOIST_ASSIGN(auto to, json::optInt(doc, "to_generation", ctx));
    ping.from_generation = from.value_or(0);
    ping.to_generation = to.value_or(0);
    HOIST_ASSIGN(auto release, json::optString(doc, "release", ctx));
    HOIST_ASSIGN(auto message, json::optString(doc, "message", ctx));
    HOIST_ASSIGN(auto time, json::optString(doc, "time", ctx));
    ping.release = release.value_or("");
    ping.message = message.value_or("");
    ping.time = time.value_or("");
    if (ping.node.empty()) return fail(Errc::Invalid, ctx, ": field 'node' is empty");
    if (ping.seq < 0) return fail(Errc::Invalid, ctx, ": field 'seq' must not be negative");
    return ping;
}

std::string StatusPing::toJson() const {
    json::Writer w;
    w.beginObject()
        .field("node", node)
        .field("deployment", deployment)
        .field("seq", seq)
        .field("state", state)
        .field("from_generation", from_generation)
        .field("to_generation", to_generation)
        .field("release", release)
        .field("message", message)
        .field("time", time)
        .endObject();
    return w.str();
}

}  // namespace hoist::pkgmgr
