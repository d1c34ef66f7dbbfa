#include "client.hpp"

#include <thread>

#include "core/crypto.hpp"
#include "core/files.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"

namespace hoist::cluster {

namespace {

/// True when the request never reached the server: nothing was sent, so it may be sent again
/// whatever it does.
bool unsent(const Error& e) {
    return e.code == Errc::Network && (e.message.find("Couldn't connect") != std::string::npos ||
                                       e.message.find("Connection refused") != std::string::npos ||
                                       e.message.find("Could not resolve") != std::string::npos ||
                                       e.message.find("Failed to connect") != std::string::npos);
}

bool transientStatus(long status) {
    return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
           status == 504;
}

}  // namespace

std::string newIdempotencyKey() {
    return "cluster-" + crypto::randomHex(16);
}

Result<void> Client::ready() {
    if (o_.url.empty())
        return fail(Errc::Invalid, "no coordinator URL: set CLUSTER_URL or pass --url");
    if (!token_.empty()) return ok();
    if (!o_.token_file.empty()) {
        auto read = files::readSecretFile(o_.token_file, "token file");
        if (!read && read.error().code == Errc::Invalid)
            return fail(Errc::Unauthorized, read.error().message);
        if (!read) return std::unexpected(read.error());
        token_ = std::move(*read);
    } else {
        token_ = o_.token;
    }
    if (token_.empty())
        return fail(Errc::Unauthorized,
                    "no token: set CLUSTER_TOKEN (the token) or CLUSTER_TOKEN_FILE, or pass "
                    "--token-file");
    return ok();
}

Result<std::string> Client::post(const std::string& path, const std::string& body, Retry retry,
                                 const std::string& idempotency_key) {
    return call("POST", path, body, idempotency_key.empty() ? retry : Retry::Safe, idempotency_key);
}

Result<std::string> Client::call(const std::string& method, const std::string& path,
                                 const std::string& body, Retry retry,
                                 const std::string& idempotency_key) {
    HOIST_TRY(ready());
    http::Request request;
    request.method = method;
    request.url = http::joinUrl(o_.url, path);
    request.headers.push_back(http::bearer(token_));
    if (!body.empty()) request.headers.push_back({"Content-Type", "application/json"});
    if (!idempotency_key.empty()) request.headers.push_back({"Idempotency-Key", idempotency_key});
    request.body = body;
    request.ca_file = o_.ca_file;
    request.connect_timeout = std::chrono::seconds(5);
    request.timeout = std::chrono::seconds(60);
    auto deadline = std::chrono::steady_clock::now() + o_.retry_for;
    std::chrono::milliseconds delay(200);
    bool told = false;
    while (true) {
        auto response = http_.send(request);
        bool may_retry = false;
        std::string what;
        if (!response) {
            may_retry = retry == Retry::Safe ? (response.error().code == Errc::Network ||
                                                response.error().code == Errc::Timeout)
                                             : unsent(response.error());
            what = response.error().describe();
        } else if (transientStatus(response->status) && retry == Retry::Safe) {
            may_retry = true;
            what = "HTTP " + std::to_string(response->status);
        }
        if (may_retry && std::chrono::steady_clock::now() + delay < deadline) {
            if (!told)
                log_ << "cluster: coordinator " << o_.url << " unreachable (" << what
                     << "); retrying for up to " << o_.retry_for.count() / 1000 << "s\n"
                     << std::flush;
            told = true;
            if (sleep_)
                sleep_(delay);
            else
                std::this_thread::sleep_for(delay);
            delay = std::min(delay * 2, std::chrono::milliseconds(5000));
            continue;
        }
        if (told && response) log_ << "cluster: coordinator " << o_.url << " answers again\n";
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
}

}  // namespace hoist::cluster
