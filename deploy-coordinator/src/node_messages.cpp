#include "node_messages.hpp"

#include "core/json.hpp"

namespace hoist::deploy_coordinator {

Result<NodeRecord> parseRegistration(std::string_view body) {
    constexpr std::string_view ctx = "registration";
    HOIST_ASSIGN(auto doc, json::parseObject(body, ctx));
    HOIST_TRY(json::rejectUnknown(
        doc, {"node", "id", "role", "address", "release", "generation", "mode"}, ctx));
    NodeRecord n;
    // pkgmgr serve names the node "id"; "node" is accepted as well.
    HOIST_ASSIGN(auto id, json::optString(doc, "id", ctx));
    if (id) {
        n.id = *id;
    } else {
        HOIST_ASSIGN(n.id, json::getString(doc, "node", ctx));
    }
    HOIST_ASSIGN(n.role, json::getString(doc, "role", ctx));
    HOIST_ASSIGN(n.address, json::getString(doc, "address", ctx));
    HOIST_ASSIGN(auto release, json::optString(doc, "release", ctx));
    HOIST_ASSIGN(auto generation, json::optInt(doc, "generation", ctx));
    n.release = release.value_or("");
    n.generation = generation.value_or(0);
    HOIST_ASSIGN(auto mode, json::optString(doc, "mode", ctx));
    n.mode = mode.value_or("push");
    if (n.mode != "push" && n.mode != "pull")
        return fail(Errc::Invalid, ctx, ": field 'mode' must be 'push' or 'pull', not '", n.mode,
                    "'");
    return n;
}

Result<NodeView> parseNodeView(std::string_view body) {
    HOIST_ASSIGN(auto doc, json::parseObject(body, "GET /v1/node"));
    NodeView view;
    for (const char* key : {"generation", "current_generation"}) {
        auto member = doc.FindMember(key);
        if (member != doc.MemberEnd() && member->value.IsInt64()) {
            view.generation = member->value.GetInt64();
            break;
        }
    }
    auto release = doc.FindMember("release");
    if (release != doc.MemberEnd() && release->value.IsString())
        view.release = release->value.GetString();
    auto healthy = doc.FindMember("healthy");
    if (healthy != doc.MemberEnd() && healthy->value.IsBool())
        view.healthy = healthy->value.GetBool();
    return view;
}

TransactionView parseTransaction(const http::Response& response) {
    if (response.status != 200) return {};
    auto doc = json::parse(response.body, "GET /v1/transaction");
    if (!doc || !doc->IsObject()) return {};
    // pkgmgr serve says {"active": bool, "transaction": <journal or null>}; the journal of
    // the last, finished swap comes with active false.
    auto active = doc->FindMember("active");
    if (active != doc->MemberEnd() && active->value.IsBool() && !active->value.GetBool()) return {};
    const json::Value* journal = &*doc;
    auto inner = doc->FindMember("transaction");
    if (inner != doc->MemberEnd()) journal = &inner->value;
    if (!journal->IsObject() || journal->MemberCount() == 0) {
        bool starting =
            active != doc->MemberEnd() && active->value.IsBool() && active->value.GetBool();
        return {starting, starting ? "starting" : ""};
    }
    std::string step;
    for (const char* key : {"state", "step"}) {
        auto m = journal->FindMember(key);
        if (m != journal->MemberEnd() && m->value.IsString()) {
            step = m->value.GetString();
            break;
        }
    }
    if (step == "healthy" || step == "rolled_back" || step == "failed") return {false, step};
    return {true, step};
}

std::string stageRequest(std::string_view release) {
    json::Writer body;
    body.beginObject().field("release", release).endObject();
    return body.str();
}

std::int64_t parseStageReply(std::string_view body) {
    auto doc = json::parseObject(body, "stage reply");
    if (!doc) return 0;
    auto m = doc->FindMember("generation");
    return m != doc->MemberEnd() && m->value.IsInt64() ? m->value.GetInt64() : 0;
}

std::string restartRequest(std::int64_t generation, std::string_view deployment,
                           std::string_view report_to) {
    json::Writer body;
    body.beginObject()
        .field("generation", generation)
        .field("deployment", deployment)
        .field("report_to", report_to)
        .endObject();
    return body.str();
}

std::string errorText(const Result<http::Response>& r) {
    if (!r) return r.error().describe();
    std::string body = r->body.substr(0, 200);
    auto doc = json::parseObject(r->body, "reply");
    if (doc) {
        auto m = doc->FindMember("error");
        if (m != doc->MemberEnd() && m->value.IsString()) body = m->value.GetString();
    }
    return detail::concat("HTTP ", r->status, ": ", body);
}

}  // namespace hoist::deploy_coordinator
