#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace hoist::http {

struct Header {
    std::string name;
    std::string value;
};

/// "Authorization: Bearer <token>".
Header bearer(std::string_view token);

/// How a client proves and checks identities over https. Servers are always verified
/// (certificate chain and host name); an empty field falls back to defaultTls().
struct ClientTls {
    /// PEM bundle of the CAs trusted for servers (empty: the system's).
    std::string ca_file;
    /// Mutual TLS: this client's certificate and key (PEM), for servers that ask for one.
    std::string client_cert;
    std::string client_key;
};

/// The process's defaults for every request (a daemon's --ca-file, --client-cert,
/// --client-key). Also exported as $HOIST_CA_FILE, $HOIST_CLIENT_CERT and $HOIST_CLIENT_KEY,
/// which programs it starts (the restart helper) read as their defaults. Call at start,
/// before other threads run.
void setDefaultTls(const ClientTls& tls);
/// The defaults: what setDefaultTls set, else those environment variables.
ClientTls defaultTls();

struct Request {
    std::string method = "GET";
    std::string url;
    std::vector<Header> headers;
    std::string body;
    /// PEM CA bundle to verify the server with (empty: defaultTls(), else the system's).
    std::string ca_file;
    /// Client certificate and key for mutual TLS (empty: defaultTls()'s).
    std::string client_cert;
    std::string client_key;
    std::chrono::milliseconds connect_timeout{5000};
    /// The whole transfer; zero means no limit (the low-speed limit still applies).
    std::chrono::milliseconds timeout{30000};
};

struct Response {
    long status = 0;
    std::vector<Header> headers;
    std::string body;

    /// First header of that name, compared without case.
    std::optional<std::string> header(std::string_view name) const;
    bool ok() const { return status >= 200 && status < 300; }
};

/// Retries with exponential backoff and full jitter (delay uniform in
/// [0, min(cap, base * 2^attempt)]), on transient failures only.
struct RetryPolicy {
    int attempts = 1;
    std::chrono::milliseconds base{100};
    std::chrono::milliseconds cap{5000};
};

std::chrono::milliseconds backoffDelay(const RetryPolicy& policy, int attempt);
/// Transport failures (Network, Timeout) and statuses 408, 429, 500, 502, 503, 504.
bool isTransient(const Result<Response>& result);

/// A GET (or a POST with `body`) whose answer is handed to `on_data` as it arrives, resuming
/// at `offset` (an HTTP Range request, or a seek for file:// URLs).
struct StreamRequest {
    std::string url;
    std::vector<Header> headers;
    /// As in Request.
    std::string ca_file;
    std::string client_cert;
    std::string client_key;
    std::uint64_t offset = 0;
    /// When not empty, sent as a POST body (a streamed answer to a request, such as a watch).
    std::string body;
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::milliseconds timeout{0};
    /// Aborts when fewer than 1 byte/s arrive for this long.
    std::chrono::seconds low_speed_time{30};
    /// Called with each chunk of a 2xx body; an error aborts the transfer and is returned.
    std::function<Result<void>(std::string_view)> on_data;
};

struct StreamResult {
    long status = 0;
    /// Bytes the server announced for this response (after the offset), when it did.
    std::optional<std::uint64_t> content_length;
    /// The first bytes of a non-2xx body, for error messages.
    std::string error_body;
    /// A request with an offset was answered 200 without Content-Range: the server ignored
    /// the Range and would send the whole content from byte 0 (none of it was delivered).
    bool range_ignored = false;
};

/// A libcurl easy handle, reused across calls (keep-alive). Not thread-safe: one per thread.
/// Transport failures are errors (Network, Timeout); 4xx/5xx are responses. Only http, https
/// and file URLs are allowed, redirects are not followed.
class Client {
public:
    Client();
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    Result<Response> send(const Request& request);
    /// send() again after transient failures, as the policy says.
    Result<Response> send(const Request& request, const RetryPolicy& policy);
    Result<StreamResult> stream(const StreamRequest& request);
    /// Bytes of a request body sent so far, and the body's size.
    using UploadProgress = std::function<void(std::uint64_t sent, std::uint64_t total)>;
    /// Streams a file as the request body (PUT/POST), never holding it in memory; `progress`,
    /// when set, is called as the body goes out (an exception from it aborts the transfer).
    Result<Response> sendFile(const std::string& method, const std::string& url,
                              const std::vector<Header>& headers, const std::filesystem::path& file,
                              std::chrono::milliseconds connect_timeout = std::chrono::seconds(5),
                              std::chrono::milliseconds timeout = std::chrono::milliseconds(0),
                              const UploadProgress& progress = {});

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// Percent-encodes everything but unreserved characters (RFC 3986).
std::string urlEncode(std::string_view text);
/// Decodes %XX escapes, and '+' as a space when `plus_is_space` (HTML forms, most clients'
/// queries); a malformed escape stays as it is.
std::string urlDecode(std::string_view text, bool plus_is_space);
/// Joins a base URL and a path with exactly one slash between them.
std::string joinUrl(std::string_view base, std::string_view path);

}  // namespace hoist::http
