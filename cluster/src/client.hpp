#pragma once

#include <chrono>
#include <functional>
#include <ostream>
#include <string>

#include "core/error.hpp"
#include "core/http_client.hpp"

namespace hoist::cluster {

/// Where the coordinator is and how to reach it: flags, else the environment.
struct ClientOptions {
    std::string url;
    /// The bearer token itself ($CLUSTER_TOKEN).
    std::string token;
    /// A file holding the token (--token-file, else $CLUSTER_TOKEN_FILE); wins over `token`.
    std::string token_file;
    /// PEM bundle of the CAs the coordinator's certificate chains to (--ca-file, else
    /// $CURL_CA_BUNDLE); empty: the system's.
    std::string ca_file;
    /// How long a transient failure (connection refused, timeout, 5xx) is retried, with
    /// backoff, before it is reported (--retry-for).
    std::chrono::milliseconds retry_for{std::chrono::seconds(60)};
};

/// What may be sent again when no answer came.
enum class Retry {
    /// Reads, and writes that mean the same when repeated (a halt, a POST with an
    /// Idempotency-Key): every transient failure is retried.
    Safe,
    /// A write that must not happen twice: retried only when the connection was never made
    /// (nothing was sent).
    UnsentOnly,
};

/// Talks to the coordinator's API. 2xx answers are the body; 4xx/5xx become errors carrying
/// the server's message and code (hoist::errcFromHttpStatus). Transient failures are retried
/// with exponential backoff (200 ms doubling to 5 s) for up to retry_for; each outage is told
/// once on `log`. Not thread-safe.
class Client {
public:
    Client(ClientOptions options, std::ostream& log) : o_(std::move(options)), log_(log) {}

    Result<std::string> get(const std::string& path) { return call("GET", path, "", Retry::Safe); }
    /// A POST; with a non-empty `idempotency_key` it is sent as the Idempotency-Key header and
    /// the POST counts as Safe.
    Result<std::string> post(const std::string& path, const std::string& body,
                             Retry retry = Retry::UnsentOnly,
                             const std::string& idempotency_key = "");
    Result<std::string> del(const std::string& path, Retry retry = Retry::UnsentOnly) {
        return call("DELETE", path, "", retry);
    }
    Result<std::string> call(const std::string& method, const std::string& path,
                             const std::string& body, Retry retry,
                             const std::string& idempotency_key = "");

    const ClientOptions& options() const { return o_; }
    /// Replaces the sleep between retries (tests).
    void setSleep(std::function<void(std::chrono::milliseconds)> sleep) {
        sleep_ = std::move(sleep);
    }

private:
    Result<void> ready();

    ClientOptions o_;
    std::ostream& log_;
    std::string token_;
    http::Client http_;
    std::function<void(std::chrono::milliseconds)> sleep_;
};

/// A fresh random Idempotency-Key ("cluster-" and 32 hex digits).
std::string newIdempotencyKey();

}  // namespace hoist::cluster
