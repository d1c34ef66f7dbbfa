#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/http_client.hpp"
#include "core/metrics.hpp"

namespace hoist::http {

/// Receives one chunk of a streamed request body; false stops reading.
using BodySink = std::function<bool(std::string_view chunk)>;

struct ServerRequest {
    std::string method;
    std::string path;
    /// Regex groups of the route pattern; [0] is the whole path.
    std::vector<std::string> matches;
    std::vector<Header> headers;
    std::vector<std::pair<std::string, std::string>> query;
    /// The whole body, for routes that do not stream it.
    std::string body;
    std::string remote_addr;
    /// The client presented a TLS certificate that chains to ServerOptions::tls_client_ca.
    bool client_certificate = false;
    /// Reads the body in chunks, for routes registered with streaming_body; returns false
    /// when the client went away or a sink said stop.
    std::function<bool(const BodySink&)> read_body;
    /// When the request's header was read (the start of its latency in metrics).
    std::chrono::steady_clock::time_point received{};

    std::optional<std::string> header(std::string_view name) const;
    std::optional<std::string> queryParam(std::string_view name) const;
};

/// A file sent from disk in chunks; Range, HEAD and Content-Length are handled. For a 200
/// reply, one byte range gives 206 with Content-Range, a range past the end 416, several
/// ranges (or a malformed one) the whole file; If-Range is compared with the reply's ETag.
struct FileBody {
    std::filesystem::path path;
    std::uint64_t size = 0;
    /// The file is never truncated or rewritten in place while it is served (content-
    /// addressed files replaced only by rename): it may then be sent from a memory mapping,
    /// saving a copy. Leave false otherwise (a truncated mapping would crash the server).
    bool immutable = false;
    /// For immutable files: the inode and modification time (nanoseconds) the caller's
    /// stat(2) saw. With them, small files are kept in memory and sent without opening
    /// them again while path, inode, time and size all still match. Zero: not cached.
    std::uint64_t inode = 0;
    std::int64_t mtime_ns = 0;
};

/// The writing end of an open text/event-stream reply (Server-Sent Events, see
/// ServerReply::eventStream). The server writes what is queued as the connection allows; the
/// caller never waits for the client. Copies share one stream. Thread-safe.
class EventStream {
public:
    /// Queues one message: "id:" (when not empty), "event:" (when not empty), then one "data:"
    /// line per line of `data`. Newlines in `event` and `id` become spaces. False, and
    /// nothing queued, once the stream has closed: the client went away, the server is
    /// stopping, or the client fell more than ServerOptions::stream_buffer_limit bytes behind
    /// (which closes the stream; a client that reconnects resumes from its Last-Event-ID).
    bool send(std::string_view event, std::string_view data, std::string_view id = {});
    /// Queues a comment line (": text"), which clients ignore. False once closed.
    bool comment(std::string_view text);
    /// Ends the stream once what is queued is written; the connection then closes.
    void close();
    bool closed() const;

    /// Shared with the connection that writes it (opaque outside http_server.cpp).
    struct Core;
    explicit EventStream(std::shared_ptr<Core> core) : core_(std::move(core)) {}

private:
    std::shared_ptr<Core> core_;
};

struct ServerReply {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<Header> headers;
    std::optional<FileBody> file;
    /// Set by eventStream(): the reply is a text/event-stream.
    std::function<void(EventStream)> stream;

    static ServerReply json(int status, std::string body);
    static ServerReply text(int status, std::string body,
                            std::string content_type = "text/plain; charset=utf-8");
    /// {"error": message} with the status of the error's code.
    static ServerReply error(const Error& error);
    static ServerReply error(int status, std::string_view message);
    /// A text/event-stream reply that stays open (HTTP/1.1 chunked, then the connection
    /// closes). Admitted only while fewer than ServerOptions::max_streams are open (else 503
    /// with Retry-After, and `on_open` is never called); `on_open` then runs once, on a
    /// worker, with the stream to push messages into (from any thread, for as long as it
    /// likes). An open stream holds its connection but no worker thread; a comment is sent
    /// after stream_keepalive of silence; the client's closing (or any byte it sends) closes
    /// the stream; Server::stop() closes every stream first.
    static ServerReply eventStream(std::function<void(EventStream)> on_open);
};

using Handler = std::function<ServerReply(const ServerRequest&)>;

struct ServerOptions {
    /// Names the server in logs and metrics ("repo-server").
    std::string component = "server";
    std::string host = "127.0.0.1";
    int port = 0;
    /// Both set: serve HTTPS with OpenSSL.
    std::string tls_cert;
    std::string tls_key;
    /// Mutual TLS: client certificates are checked against this CA (PEM). A client that
    /// presents one that does not chain to it fails the handshake; ServerRequest::
    /// client_certificate says whether a verified one was presented.
    std::string tls_client_ca;
    /// With tls_client_ca: a client without a certificate fails the handshake.
    bool tls_require_client_cert = false;
    std::size_t payload_limit = 1u << 20;
    /// When larger than payload_limit: the body limit of routes registered with
    /// streaming_body (other routes keep payload_limit; a larger declared body gets 413).
    std::size_t streaming_payload_limit = 0;
    std::size_t threads = 8;
    std::chrono::seconds read_timeout{30};
    std::chrono::seconds write_timeout{30};
    bool access_log = true;
    /// Threads that run the connections' reads and writes (0: one per core, at most 4).
    /// Handlers run on the `threads` workers, never on these.
    std::size_t io_threads = 0;
    /// The request line and header fields together, in bytes (431 above it).
    std::size_t max_header_bytes = 16 * 1024;
    /// Header fields in one request (431 above it).
    std::size_t max_headers = 100;
    /// A new connection sends its whole request header within this, and a keep-alive
    /// connection within this of its first byte; otherwise it is closed.
    std::chrono::milliseconds header_timeout{10'000};
    /// A keep-alive connection that sends nothing for this long is closed.
    std::chrono::milliseconds idle_timeout{60'000};
    /// Open connections, in all and from one peer address. Over a cap, the oldest
    /// connection waiting for a request (of that peer, or of all) is closed to make room;
    /// when every one is busy, the new connection is closed.
    std::size_t max_connections = 16384;
    std::size_t max_connections_per_peer = 4096;
    /// Event streams (ServerReply::eventStream) open at once; past it, 503. A stream holds a
    /// connection and its queued bytes, never a worker, so open pages cannot starve the API.
    std::size_t max_streams = 64;
    /// A stream silent this long gets a comment line, so proxies keep it open and a client
    /// that went away is noticed.
    std::chrono::milliseconds stream_keepalive{15'000};
    /// Bytes queued for one stream's client; a client that falls further behind is closed.
    std::size_t stream_buffer_limit = 4u << 20;
    /// Request bodies buffered in memory at once, over every connection (routes without
    /// streaming_body). A body reserves its declared length, or the route's body limit when
    /// chunked, before any of it is read, until its reply is sent; one that does not fit is
    /// answered 503 with Retry-After, naming this limit. Raised to payload_limit when lower.
    std::size_t body_memory_limit = 64u << 20;
};

/// An HTTP(S) server (Boost.Beast on Boost.Asio behind this type): routes by method and
/// regex (404 for no route, 405 with Allow for a wrong method), one error shape, an access log
/// line per request, request metrics, GET /healthz and GET /metrics built in, and exceptions
/// turned into 500s. Routes are registered before run().
///
/// Event-driven: a few I/O threads hold every connection (a waiting connection costs no
/// thread); handlers run on a pool of `threads` workers. Limits are enforced before the
/// work: header size, count and deadline, keep-alive idle time, connection caps, and body
/// limits on declared, chunked and streamed bodies alike (413 naming the limit, before a
/// byte of an oversized declared body is read).
class Server {
public:
    static Result<std::unique_ptr<Server>> create(ServerOptions options);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    /// Registers a route; `pattern` is a regex over the whole path. With streaming_body the
    /// handler reads the body itself through ServerRequest::read_body (payload_limit applies).
    /// Metrics label the route with metrics::routeTemplate(pattern) (`/v1/nodes/{id}/status`).
    void route(std::string_view method, const std::string& pattern, Handler handler,
               bool streaming_body = false);
    /// Registers a route whose handler is quick and never blocks (a stat, a page-cache read,
    /// no network, no lock held for long): it runs on the I/O thread, saving the hand-off to
    /// a worker and back. Anything slower belongs on route().
    void inlineRoute(std::string_view method, const std::string& pattern, Handler handler);
    /// A check on a request's method, path, matches and headers, run when the header is read
    /// and before its body is read (cheap and non-blocking: a token comparison). An error is
    /// answered at once with its status and the body is never read: callers that cannot
    /// present a credential cannot make the server read a megabyte. Handlers keep their own
    /// checks. Applies to requests that have a body.
    void beforeBody(std::function<Result<void>(const ServerRequest&)> check);
    /// A hook run on the worker before every routed handler: a reply it returns is sent
    /// instead of the handler's (a replica forwarding to its leader). Set before run().
    void intercept(std::function<std::optional<ServerReply>(const ServerRequest&)> hook);
    /// Called before each GET /metrics render, to refresh gauges.
    void onMetrics(std::function<void(metrics::Registry&)> collector);
    metrics::Registry& metrics();

    /// Reads the TLS certificate, key and client CA files again (SIGHUP): new connections get
    /// them, open ones keep theirs and the listening socket stays. On an error nothing
    /// changes. Thread-safe; nothing to do without TLS.
    Result<void> reloadTls();
    /// Binds host:port (port 0: any free port); returns the bound port.
    Result<int> bind();
    /// Writes the bound port, atomically, for tests and scripts that started us with port 0.
    Result<void> writePortFile(const std::filesystem::path& path) const;
    /// Serves until stop(); call after bind().
    void run();
    /// Thread-safe; run() returns soon after.
    void stop();

    /// The engine (opaque outside http_server.cpp).
    struct Impl;

private:
    Server();
    std::unique_ptr<Impl> impl_;
};

/// A listen address "HOST:PORT" as every server's --listen takes it: "[::1]:0" (brackets for
/// IPv6), ":9000" (host 127.0.0.1); port 0 picks a free one. Invalid naming `what` (the flag,
/// "--listen") and the rule.
Result<std::pair<std::string, int>> parseHostPort(std::string_view text,
                                                  std::string_view what = "--listen");

/// One role a bearer token may stand for ("admin" and its token).
struct BearerRole {
    std::string_view role;
    std::string_view token;
};
/// The role whose token the request's "Authorization: Bearer" carries. Every non-empty token
/// is compared in constant time, matched or not, so timing says nothing about which one did.
/// Unauthorized when missing or none matches; the message never holds a token.
Result<std::string> requireBearerRole(const ServerRequest& request,
                                      std::initializer_list<BearerRole> roles);

/// Checks "Authorization: Bearer <token>" in constant time. Unauthorized when missing or
/// wrong; the message never holds the token.
Result<void> requireBearer(const ServerRequest& request, std::string_view token);

/// Blocks SIGINT and SIGTERM in the calling thread (call first in main, before any thread
/// starts), then waits for them in a thread of its own and calls `on_signal` once.
class SignalWaiter {
public:
    explicit SignalWaiter(std::function<void()> on_signal);
    ~SignalWaiter();
    SignalWaiter(const SignalWaiter&) = delete;
    SignalWaiter& operator=(const SignalWaiter&) = delete;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace hoist::http
