#include "node_gateway.hpp"

#include "core/http_client.hpp"
#include "node_messages.hpp"

namespace hoist::deploy_coordinator {

namespace {

class HttpGateway final : public NodeGateway {
public:
    HttpGateway(daemon::Secret token, std::chrono::milliseconds stage_timeout)
        : token_(std::move(token)), stage_timeout_(stage_timeout) {}

    StageOutcome stage(const std::string& address, const std::string& release,
                       std::int64_t epoch) override {
        auto request = make("POST", address, "/v1/stage", stageRequest(release, epoch));
        request.timeout = stage_timeout_;
        auto reply =
            client().send(request, {3, std::chrono::milliseconds(200), std::chrono::seconds(2)});
        if (!reply || !reply->ok()) return {StageOutcome::Kind::failed, 0, errorText(reply)};
        return {StageOutcome::Kind::staged, parseStageReply(reply->body), ""};
    }

    RestartOutcome restart(const std::string& address, std::int64_t generation,
                           const std::string& deployment, const std::string& report_to,
                           std::int64_t epoch) override {
        auto request = make("POST", address, "/v1/restart",
                            restartRequest(generation, deployment, report_to, epoch));
        request.timeout = std::chrono::seconds(30);
        auto reply = client().send(request);
        if (!reply) return {RestartOutcome::Kind::lost, reply.error().describe()};
        if (reply->status == 202 || reply->ok()) return {RestartOutcome::Kind::accepted, ""};
        if (reply->status == 409) return {RestartOutcome::Kind::busy, errorText(reply)};
        return {RestartOutcome::Kind::refused, errorText(reply)};
    }

    PollOutcome poll(const std::string& address) override {
        auto get = make("GET", address, "/v1/transaction", "");
        get.timeout = std::chrono::seconds(5);
        auto txn = client().send(get);
        get.url = http::joinUrl(address, "/v1/node");
        auto view_reply = client().send(get);
        PollOutcome outcome;
        std::optional<NodeView> view;
        if (view_reply && view_reply->ok())
            if (auto v = parseNodeView(view_reply->body)) view = *v;
        outcome.reachable = txn.has_value() && view.has_value();
        if (view) outcome.view = *view;
        if (txn) {
            auto t = parseTransaction(*txn);
            outcome.under_way = t.under_way;
            outcome.step = t.step;
        }
        return outcome;
    }

    std::optional<NodeView> probe(const std::string& address) override {
        auto get = make("GET", address, "/v1/node", "");
        get.timeout = std::chrono::seconds(5);
        auto reply =
            client().send(get, {3, std::chrono::milliseconds(100), std::chrono::seconds(1)});
        if (reply && reply->ok())
            if (auto v = parseNodeView(reply->body)) return *v;
        return std::nullopt;
    }

    bool answers(const std::string& address) override {
        auto get = make("GET", address, "/v1/node", "");
        get.timeout = std::chrono::seconds(3);
        get.connect_timeout = std::chrono::seconds(2);
        auto reply = client().send(get);
        return reply && reply->ok();
    }

private:
    static http::Client& client() {
        thread_local http::Client c;
        return c;
    }

    http::Request make(std::string method, const std::string& address, std::string_view route,
                       std::string body) const {
        http::Request request;
        request.method = std::move(method);
        request.url = http::joinUrl(address, route);
        if (auto token = token_.value(); !token.empty())
            request.headers.push_back(http::bearer(token));
        if (!body.empty()) {
            request.headers.push_back({"Content-Type", "application/json"});
            request.body = std::move(body);
        }
        return request;
    }

    daemon::Secret token_;
    std::chrono::milliseconds stage_timeout_;
};

}  // namespace

std::unique_ptr<NodeGateway> makeHttpGateway(daemon::Secret token,
                                             std::chrono::milliseconds stage_timeout) {
    return std::make_unique<HttpGateway>(std::move(token), stage_timeout);
}

}  // namespace hoist::deploy_coordinator
