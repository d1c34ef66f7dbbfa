#pragma once

#include <chrono>
#include <ostream>
#include <string>

#include "core/error.hpp"
#include "core/files.hpp"
#include "core/http_client.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"

namespace hoist::deploy_coordinator::cli_api {

// How the `cluster` CLI talks to the coordinator, and follows a deployment.

struct ClusterOptions {
    std::string url;
    std::string token;
    std::string token_file;
    bool json = false;
};

/// Talks to the coordinator's API; 4xx/5xx become errors carrying the server's message.
class Api {
public:
    explicit Api(const ClusterOptions& o) : o_(o) {}

    Result<std::string> call(const std::string& method, const std::string& path,
                             const std::string& body = "") {
        HOIST_TRY(ready());
        http::Request request;
        request.method = method;
        request.url = http::joinUrl(o_.url, path);
        request.headers.push_back(http::bearer(token_));
        if (!body.empty()) request.headers.push_back({"Content-Type", "application/json"});
        request.body = body;
        request.timeout = std::chrono::seconds(120);
        // Reads ride out a failover of the coordinator's replicas (503 while none leads, a
        // lease ttl of a few seconds).
        http::RetryPolicy policy{method == "GET" ? 10 : 3, std::chrono::milliseconds(200),
                                 std::chrono::seconds(2)};
        auto response = client_.send(request, policy);
        if (!response)
            return std::unexpected(withContext(response.error(), "coordinator " + o_.url));
        if (response->ok()) return response->body;
        std::string message = "HTTP " + std::to_string(response->status);
        if (auto doc = json::parseObject(response->body, "reply")) {
            auto m = doc->FindMember("error");
            if (m != doc->MemberEnd() && m->value.IsString()) message = m->value.GetString();
        }
        return std::unexpected(Error{errcFromHttpStatus(response->status), message, 0});
    }

private:
    Result<void> ready() {
        if (!token_.empty()) return ok();
        if (o_.url.empty())
            return fail(Errc::Invalid, "no coordinator URL: set CLUSTER_URL or pass --url");
        if (!o_.token_file.empty()) {
            HOIST_ASSIGN(auto text, files::readFile(o_.token_file, 4096));
            token_ = std::string(strings::trim(text));
        } else {
            token_ = o_.token;
        }
        if (token_.empty())
            return fail(Errc::Unauthorized, "no token: set CLUSTER_TOKEN or pass --token-file");
        return ok();
    }

    const ClusterOptions& o_;
    std::string token_;
    http::Client client_;
};

/// Following stops here: the deployment ended, or waits for an admin (held). An unknown state
/// (a newer coordinator) ends it too.
bool finished(const std::string& state);
/// 0 for a deployment that ended done, else the Unhealthy exit code.
int finishCode(const std::string& state);
/// Follows a deployment until it finishes or a hold stops it; returns the exit code.
int follow(Api& api, const std::string& id, bool json_out, std::ostream& out, std::ostream& err);
/// The deployment acting on nodes, else the newest. With `changed`, the newest that changed
/// nodes and was not undone (what `rollback` undoes) unless one is acting.
std::string latestDeployment(Api& api, Error& error, bool changed = false);

}  // namespace hoist::deploy_coordinator::cli_api
