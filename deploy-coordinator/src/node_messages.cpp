#include "node_messages.hpp"

#include "core/json.hpp"
#include "pkgmgr/sets.hpp"
#include "pkgmgr/wire.hpp"

namespace hoist::deploy_coordinator {

Result<NodeRecord> parseRegistration(std::string_view body) {
    HOIST_ASSIGN(auto registration, pkgmgr::Registration::fromJson(body));
    // A role no release can hold packages for would block every deployment: only roles the
    // layouts know (embedded, or $HOIST_LAYOUTS as on the nodes) may register.
    if (auto rules = pkgmgr::RoleRules::load(registration.role); !rules)
        return fail(Errc::Invalid, "registration: role '", registration.role,
                    "' is not a role the coordinator's layouts know (", rules.error().message, ")");
    NodeRecord n;
    n.id = std::move(registration.id);
    n.role = std::move(registration.role);
    n.address = std::move(registration.address);
    n.release = std::move(registration.release);
    n.generation = registration.generation;
    n.mode = std::move(registration.mode);
    return n;
}

Result<NodeView> parseNodeView(std::string_view body) {
    HOIST_ASSIGN(auto view, pkgmgr::NodeView::fromJson(body));
    NodeView out;
    out.generation = view.generation;
    out.release = std::move(view.release);
    out.healthy = view.healthy;
    return out;
}

TransactionView parseTransaction(const http::Response& response) {
    if (response.status != 200) return {};
    auto view = pkgmgr::TransactionView::fromJson(response.body);
    if (!view || !view->active) return {};
    return {view->underWay(), pkgmgr::parseHelperStep(view->step())};
}

std::string stageRequest(std::string_view release, std::int64_t epoch) {
    return pkgmgr::StageRequest{std::string(release), std::nullopt, epoch}.toJson();
}

std::int64_t parseStageReply(std::string_view body) {
    auto reply = pkgmgr::StageReply::fromJson(body);
    return reply ? reply->generation : 0;
}

std::string restartRequest(std::int64_t generation, std::string_view deployment,
                           std::string_view report_to, std::int64_t epoch) {
    return pkgmgr::RestartRequest{generation, std::string(deployment), std::string(report_to),
                                  epoch}
        .toJson();
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
