#include "core/http_server.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <charconv>
#include <csignal>
#include <deque>
#include <future>
#include <limits>
#include <list>
#include <map>
#include <mutex>
#include <regex>
#include <shared_mutex>
#include <thread>
#include <type_traits>
#include <unordered_map>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "core/crypto.hpp"
#include "core/fd.hpp"
#include "core/files.hpp"
#include "core/http_client.hpp"
#include "core/json.hpp"
#include "core/log.hpp"

namespace hoist::http {

namespace {
bool equalsNoCase(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

std::string errorBody(std::string_view message) {
    json::Writer w;
    w.beginObject().field("error", message).endObject();
    return w.str();
}

// One byte range of a file, as RFC 9110 section 14 describes: "bytes=first-last",
// "bytes=first-" or "bytes=-suffix". Several ranges, other units and malformed values are
// ignored (the whole file is sent), which the RFC allows; a range starting past the end is
// unsatisfiable (416).
struct ByteRange {
    enum class Kind { Whole, Part, Unsatisfiable } kind = Kind::Whole;
    std::uint64_t first = 0;
    std::uint64_t length = 0;
};

bool parseDigits(std::string_view text, std::uint64_t& out) {
    if (text.empty() || text.size() > 19) return false;
    out = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return false;
        out = out * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return true;
}

ByteRange parseByteRange(std::string_view header, std::uint64_t size) {
    ByteRange whole;
    constexpr std::string_view kPrefix = "bytes=";
    if (!header.starts_with(kPrefix)) return whole;
    header.remove_prefix(kPrefix.size());
    while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
    while (!header.empty() && header.back() == ' ') header.remove_suffix(1);
    if (header.find(',') != std::string_view::npos) return whole;
    auto dash = header.find('-');
    if (dash == std::string_view::npos) return whole;
    auto first_text = header.substr(0, dash);
    auto last_text = header.substr(dash + 1);
    std::uint64_t first = 0;
    std::uint64_t last = 0;
    if (first_text.empty()) {
        std::uint64_t suffix = 0;
        if (!parseDigits(last_text, suffix)) return whole;
        if (suffix == 0 || size == 0) return {ByteRange::Kind::Unsatisfiable, 0, 0};
        suffix = std::min(suffix, size);
        return {ByteRange::Kind::Part, size - suffix, suffix};
    }
    if (!parseDigits(first_text, first)) return whole;
    if (last_text.empty()) {
        last = size == 0 ? 0 : size - 1;
    } else if (!parseDigits(last_text, last) || last < first) {
        return whole;
    }
    if (first >= size) return {ByteRange::Kind::Unsatisfiable, 0, 0};
    last = std::min(last, size - 1);
    return {ByteRange::Kind::Part, first, last - first + 1};
}

std::optional<std::string> replyHeader(const ServerReply& reply, std::string_view name) {
    for (const auto& h : reply.headers)
        if (equalsNoCase(h.name, name)) return h.value;
    return std::nullopt;
}

// Files up to this size are read into the reply body instead of streamed.
constexpr std::uint64_t kSmallFileBytes = 64 * 1024;

// An open file a reply reads from; closed when the last chunk is sent.
struct FileHandle {
    UniqueFd fd;
};

// A read-only mapping of a whole file, unmapped when the last reply using it is done.
struct FileMapping {
    void* data = nullptr;
    size_t size = 0;
    FileMapping(void* d, size_t s) : data(d), size(s) {}
    FileMapping(const FileMapping&) = delete;
    FileMapping& operator=(const FileMapping&) = delete;
    ~FileMapping() { ::munmap(data, size); }
};

// Reads `size` bytes at `offset` into `out`, looping over short reads; false when the file
// ends first or a read fails.
bool readAt(int fd, char* out, size_t size, std::uint64_t offset) {
    size_t got = 0;
    while (got < size) {
        auto n = ::pread(fd, out + got, size - got, static_cast<off_t>(offset + got));
        if (n <= 0) return false;
        got += static_cast<size_t>(n);
    }
    return true;
}

// Connections the kernel completes before accept(2) takes them (capped by somaxconn).
constexpr int kListenBacklog = 4096;

// Small immutable files kept in memory, up to this many bytes in all.
constexpr std::size_t kFileCacheBytes = 32u << 20;

struct CachedFile {
    std::uint64_t inode = 0;
    std::int64_t mtime_ns = 0;
    std::string bytes;
};

// The request counters of one route, bumped without a lock on every request and copied
// into the registry when /metrics is read: a registry update per request (a mutex and
// label strings) cost small-file serving about 8% of its rate.
struct RouteStats {
    static constexpr int kFirstStatus = 100;
    static constexpr int kLastStatus = 599;
    RouteStats(std::string route_name, std::string method_name)
        : route(std::move(route_name)), method(std::move(method_name)) {}
    std::string route;
    std::string method;
    // [0] counts the route's own method, [1] HEAD (GET routes answer HEAD too);
    // indexed by status - kFirstStatus.
    std::array<std::array<std::atomic<std::uint64_t>, kLastStatus - kFirstStatus + 1>, 2>
        requests{};
    std::atomic<std::uint64_t> bytes{0};
    std::atomic<bool> used{false};
    // Latency (header read to reply ready) in metrics::requestBuckets(), plus one above them.
    std::array<std::atomic<std::uint64_t>, 14> latency{};
    std::atomic<std::uint64_t> latency_ns{0};
};
}  // namespace

std::optional<std::string> ServerRequest::header(std::string_view name) const {
    for (const auto& h : headers)
        if (equalsNoCase(h.name, name)) return h.value;
    return std::nullopt;
}

std::optional<std::string> ServerRequest::queryParam(std::string_view name) const {
    for (const auto& [k, v] : query)
        if (k == name) return v;
    return std::nullopt;
}

ServerReply ServerReply::json(int status, std::string body) {
    ServerReply r;
    r.status = status;
    r.body = std::move(body);
    return r;
}

ServerReply ServerReply::text(int status, std::string body, std::string content_type) {
    ServerReply r;
    r.status = status;
    r.body = std::move(body);
    r.content_type = std::move(content_type);
    return r;
}

ServerReply ServerReply::error(const Error& error) {
    return json(httpStatus(error.code), errorBody(error.describe()));
}

ServerReply ServerReply::error(int status, std::string_view message) {
    return json(status, errorBody(message));
}

ServerReply ServerReply::eventStream(std::function<void(EventStream)> on_open) {
    ServerReply r;
    r.content_type = "text/event-stream";
    r.stream = std::move(on_open);
    return r;
}

// What a stream's producers and its connection share. `wake` posts a write to the connection;
// it is set once the connection writes the stream, and cleared (under the mutex) before the
// connection or the server goes, so calling it under the mutex is always safe.
struct EventStream::Core {
    explicit Core(std::size_t buffer_limit) : limit(buffer_limit) {}
    std::mutex mutex;
    std::string queued;
    bool closed = false;
    // Closed by the producer: the body ends properly once the queue is written.
    bool finish = false;
    std::size_t limit;
    std::function<void()> wake;

    bool push(std::string bytes) {
        std::lock_guard lock(mutex);
        if (closed) return false;
        if (queued.size() + bytes.size() > limit) {
            closed = true;
            if (wake) wake();
            return false;
        }
        bool was_empty = queued.empty();
        queued += bytes;
        if (was_empty && wake) wake();
        return true;
    }

    // Marks the stream closed and lets the connection notice (server stopping, client gone).
    void shut() {
        std::lock_guard lock(mutex);
        closed = true;
        if (wake) wake();
    }
};

namespace {
std::string oneLine(std::string_view text) {
    std::string out(text);
    for (auto& c : out)
        if (c == '\n' || c == '\r') c = ' ';
    return out;
}
}  // namespace

bool EventStream::send(std::string_view event, std::string_view data, std::string_view id) {
    std::string message;
    message.reserve(data.size() + event.size() + id.size() + 32);
    if (!id.empty()) message.append("id: ").append(oneLine(id)).append("\n");
    if (!event.empty()) message.append("event: ").append(oneLine(event)).append("\n");
    // Every line of the data is its own "data:" field; the client joins them with newlines.
    std::size_t start = 0;
    for (;;) {
        auto end = data.find_first_of("\r\n", start);
        message.append("data: ").append(
            data.substr(start, end == std::string_view::npos ? end : end - start));
        message.push_back('\n');
        if (end == std::string_view::npos) break;
        start = end + 1;
        if (data[end] == '\r' && start < data.size() && data[start] == '\n') ++start;
    }
    message.push_back('\n');
    return core_->push(std::move(message));
}

bool EventStream::comment(std::string_view text) {
    return core_->push(": " + oneLine(text) + "\n\n");
}

void EventStream::close() {
    std::lock_guard lock(core_->mutex);
    if (core_->closed) return;
    core_->closed = true;
    core_->finish = true;
    if (core_->wake) core_->wake();
}

bool EventStream::closed() const {
    std::lock_guard lock(core_->mutex);
    return core_->closed;
}

// The engine: Boost.Beast on Boost.Asio. A few I/O threads run every connection's reads and
// writes as asynchronous operations with deadlines; handlers run on a bounded worker pool, so
// a slow handler or a slow peer never holds what another request needs. A connection waiting
// for a request costs a socket and a small buffer, no thread.
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

namespace {

// Bytes of a response body, borrowed from memory some owner keeps alive (a string, a cached
// file, a mapping) or read from an open file in chunks.
struct Outgoing {
    bhttp::response_header<> header;
    std::shared_ptr<const void> owner;
    const char* data = nullptr;
    std::uint64_t length = 0;
    std::shared_ptr<FileHandle> file;
    std::uint64_t file_offset = 0;
    // An admitted event stream, and what opens it (on the worker, before the header goes).
    std::shared_ptr<EventStream::Core> stream;
    std::function<void(EventStream)> open_stream;
};

std::shared_ptr<Outgoing> outgoing(int status, std::string body, std::string_view content_type) {
    auto out = std::make_shared<Outgoing>();
    out->header.result(static_cast<unsigned>(status));
    out->header.set(bhttp::field::content_type,
                    beast::string_view(content_type.data(), content_type.size()));
    auto owned = std::make_shared<std::string>(std::move(body));
    out->data = owned->data();
    out->length = owned->size();
    out->owner = std::move(owned);
    return out;
}

std::shared_ptr<Outgoing> errorOutgoing(int status, std::string_view message) {
    return outgoing(status, errorBody(message), "application/json");
}

void splitTarget(std::string_view target, ServerRequest& request) {
    auto question = target.find('?');
    request.path = http::urlDecode(target.substr(0, question), false);
    if (question == std::string_view::npos) return;
    auto query = target.substr(question + 1);
    while (!query.empty()) {
        auto amp = query.find('&');
        auto pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (pair.empty()) continue;
        auto eq = pair.find('=');
        request.query.emplace_back(http::urlDecode(pair.substr(0, eq), true),
                                   eq == std::string_view::npos
                                       ? std::string{}
                                       : http::urlDecode(pair.substr(eq + 1), true));
    }
}

// A route pattern compiled once into literal text and groups, matched without std::regex on
// every request (a regex_match per route per request cost small-file serving several percent
// of its rate). The forms the routes use are compiled: literal text (with \-escapes), and the
// groups ([^/]+), (.*), (.+) and (a|b|c) of plain words. Any other pattern keeps std::regex.
// Matching follows the regex's own rules (the whole path, greedy groups, alternatives in
// order), so each route matches exactly what its regex would.
class RoutePattern {
public:
    explicit RoutePattern(const std::string& pattern) {
        if (!compile(pattern)) {
            tokens_.clear();
            regex_.emplace(pattern);
        }
    }

    bool match(const std::string& path, std::vector<std::string>& matches) const {
        if (regex_) {
            std::smatch found;
            if (!std::regex_match(path, found, *regex_)) return false;
            matches.clear();
            for (const auto& m : found) matches.emplace_back(m.str());
            return true;
        }
        std::vector<std::string_view> groups(groups_);
        if (!matchFrom(0, path, 0, groups)) return false;
        matches.clear();
        matches.emplace_back(path);
        for (auto g : groups) matches.emplace_back(g);
        return true;
    }

private:
    enum class Kind { Literal, Segment, Any, AnyPlus, Alternatives };
    struct Token {
        Kind kind = Kind::Literal;
        std::string text;                // Literal
        std::vector<std::string> words;  // Alternatives
        std::size_t group = 0;
    };

    static bool isMeta(char c) {
        return std::string_view(".[]{}()*+?^$|\\").find(c) != std::string_view::npos;
    }
    static bool isWordChar(char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_';
    }

    bool compile(std::string_view pattern) {
        std::string literal;
        auto flush = [&] {
            if (!literal.empty()) tokens_.push_back({Kind::Literal, std::move(literal), {}, 0});
            literal.clear();
        };
        for (std::size_t i = 0; i < pattern.size(); ++i) {
            char c = pattern[i];
            if (c == '\\') {
                // Only escaped punctuation is a literal; \d, \w and the like are classes.
                if (i + 1 >= pattern.size() ||
                    std::isalnum(static_cast<unsigned char>(pattern[i + 1])))
                    return false;
                literal += pattern[++i];
                continue;
            }
            if (c != '(') {
                if (isMeta(c)) return false;
                literal += c;
                continue;
            }
            auto close = pattern.find(')', i);
            if (close == std::string_view::npos) return false;
            auto inner = pattern.substr(i + 1, close - i - 1);
            if (close + 1 < pattern.size() &&
                std::string_view("?*+{").find(pattern[close + 1]) != std::string_view::npos)
                return false;
            flush();
            Token token;
            token.group = groups_++;
            if (inner == "[^/]+") {
                token.kind = Kind::Segment;
            } else if (inner == ".*") {
                token.kind = Kind::Any;
            } else if (inner == ".+") {
                token.kind = Kind::AnyPlus;
            } else {
                token.kind = Kind::Alternatives;
                std::string word;
                for (char w : inner) {
                    if (w == '|') {
                        token.words.push_back(std::move(word));
                        word.clear();
                    } else if (isWordChar(w)) {
                        word += w;
                    } else {
                        return false;
                    }
                }
                token.words.push_back(std::move(word));
            }
            tokens_.push_back(std::move(token));
            i = close;
        }
        flush();
        return true;
    }

    bool matchFrom(std::size_t t, std::string_view path, std::size_t pos,
                   std::vector<std::string_view>& groups) const {
        if (t == tokens_.size()) return pos == path.size();
        const Token& token = tokens_[t];
        auto rest = path.substr(pos);
        switch (token.kind) {
            case Kind::Literal:
                return rest.starts_with(token.text) &&
                       matchFrom(t + 1, path, pos + token.text.size(), groups);
            case Kind::Alternatives:
                for (const auto& word : token.words) {
                    if (!rest.starts_with(word)) continue;
                    groups[token.group] = rest.substr(0, word.size());
                    if (matchFrom(t + 1, path, pos + word.size(), groups)) return true;
                }
                return false;
            case Kind::Segment:
            case Kind::Any:
            case Kind::AnyPlus: {
                // Greedy, as the regex: the longest run first, then shorter ones. '.' stops at
                // line terminators, [^/] at a slash.
                std::string_view stops = token.kind == Kind::Segment ? "/" : "\n\r";
                auto longest = std::min(rest.find_first_of(stops), rest.size());
                std::size_t shortest = token.kind == Kind::Any ? 0 : 1;
                for (std::size_t n = longest + 1; n-- > shortest;) {
                    groups[token.group] = rest.substr(0, n);
                    if (matchFrom(t + 1, path, pos + n, groups)) return true;
                }
                return false;
            }
        }
        return false;
    }

    std::vector<Token> tokens_;
    std::size_t groups_ = 0;
    std::optional<std::regex> regex_;
};

struct Route {
    std::string method;
    RoutePattern pattern;
    std::string name;
    Handler handler;
    bool streaming = false;
    bool runs_inline = false;
    RouteStats* stats = nullptr;
};

// One chunk of a streamed request body, handed from the I/O side to a worker.
struct BodyChunk {
    bool ok = false;
    bool done = false;
    std::string data;
};

class SessionBase;

// Every open connection, oldest first, to cap them in total and per peer. When a cap is
// reached, the oldest connection of the peer (or of all) that is waiting for a request is
// closed to make room; when none waits, the new connection is closed.
class ConnectionTable {
public:
    using Entry = std::list<SessionBase*>::iterator;

    bool admit(SessionBase* session, const std::string& peer, std::size_t max_total,
               std::size_t max_per_peer, Entry& entry);
    void remove(Entry entry, SessionBase& session);
    void closeAll();
    std::size_t open() {
        std::lock_guard lock(mutex_);
        return total_;
    }

    std::atomic<std::uint64_t> evicted{0};
    std::atomic<std::uint64_t> refused{0};

private:
    bool evictOldestIdle(const std::string* peer);

    std::mutex mutex_;
    // Raw pointers: a session removes itself (under the lock) first thing in its destructor,
    // so one found here under the lock is alive (its destructor may be waiting for the lock;
    // closeSoon then posts a close that finds nothing to close).
    std::list<SessionBase*> sessions_;
    std::unordered_map<std::string, std::size_t> per_peer_;
    std::size_t total_ = 0;
};

class SessionBase {
public:
    virtual ~SessionBase() = default;
    /// Closes the connection from any thread.
    virtual void closeSoon() = 0;
    std::string peer;
    std::atomic<bool> busy{false};
    // Set under the table's lock once the connection no longer counts against a cap.
    bool released = false;
};

bool ConnectionTable::evictOldestIdle(const std::string* peer) {
    for (auto* session : sessions_) {
        if (session->released || session->busy.load()) continue;
        if (peer != nullptr && session->peer != *peer) continue;
        session->released = true;
        --total_;
        --per_peer_[session->peer];
        session->closeSoon();
        evicted.fetch_add(1, std::memory_order_relaxed);
        return true;
    }
    return false;
}

bool ConnectionTable::admit(SessionBase* session, const std::string& peer, std::size_t max_total,
                            std::size_t max_per_peer, Entry& entry) {
    std::lock_guard lock(mutex_);
    if (per_peer_[peer] >= max_per_peer && !evictOldestIdle(&peer)) {
        refused.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    if (total_ >= max_total && !evictOldestIdle(nullptr)) {
        refused.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    ++total_;
    ++per_peer_[peer];
    entry = sessions_.insert(sessions_.end(), session);
    return true;
}

void ConnectionTable::remove(Entry entry, SessionBase& session) {
    std::lock_guard lock(mutex_);
    sessions_.erase(entry);
    if (session.released) return;
    --total_;
    if (--per_peer_[session.peer] == 0) per_peer_.erase(session.peer);
}

void ConnectionTable::closeAll() {
    std::lock_guard lock(mutex_);
    for (auto* session : sessions_) session->closeSoon();
}

}  // namespace

struct Server::Impl {
    ServerOptions options;
    metrics::Registry registry;
    std::vector<std::function<void(metrics::Registry&)>> collectors;
    std::mutex collectors_mutex;
    int port = 0;
    std::vector<Route> routes;
    // The TLS context new connections get; reloadTls() swaps in a new one. Replaced contexts
    // stay alive (a reload is rare) so that connections made with them never outlive theirs.
    std::shared_ptr<ssl::context> tls;
    std::vector<std::shared_ptr<ssl::context>> retired_tls;
    std::mutex tls_mutex;
    std::shared_ptr<ssl::context> currentTls() {
        std::lock_guard lock(tls_mutex);
        return tls;
    }
    std::function<Result<void>(const ServerRequest&)> before_body;
    std::function<std::optional<ServerReply>(const ServerRequest&)> intercept;
    std::atomic<bool> stopping{false};
    ConnectionTable connections;
    // Bytes of request bodies reserved by connections now (options.body_memory_limit).
    std::atomic<std::uint64_t> body_bytes{0};

    std::uint64_t bodyBudget() const {
        return std::max<std::uint64_t>(options.body_memory_limit, options.payload_limit);
    }
    // Reserves `bytes` of the body budget; false (nothing reserved) when they do not fit.
    bool reserveBody(std::uint64_t bytes) {
        auto held = body_bytes.load(std::memory_order_relaxed);
        do {
            if (bytes > bodyBudget() || held > bodyBudget() - bytes) return false;
        } while (!body_bytes.compare_exchange_weak(held, held + bytes, std::memory_order_relaxed));
        return true;
    }

    std::mutex route_stats_mutex;
    std::deque<RouteStats> route_stats;

    RouteStats& addRouteStats(const std::string& route, const std::string& method) {
        std::lock_guard lock(route_stats_mutex);
        return route_stats.emplace_back(route, method);
    }

    static std::string routeLabel(const std::string& route) {
        return "route=\"" + metrics::labelValue(route) + "\"";
    }

    void record(RouteStats& stats, const std::string& method, int status, std::uint64_t bytes,
                std::chrono::steady_clock::time_point received) {
        stats.used.store(true, std::memory_order_relaxed);
        if (received != std::chrono::steady_clock::time_point{}) {
            auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                std::chrono::steady_clock::now() - received);
            auto seconds = static_cast<double>(ns.count()) / 1e9;
            stats.latency[metrics::bucketIndex(metrics::requestBuckets(), seconds)].fetch_add(
                1, std::memory_order_relaxed);
            stats.latency_ns.fetch_add(static_cast<std::uint64_t>(ns.count()),
                                       std::memory_order_relaxed);
        }
        stats.bytes.fetch_add(bytes, std::memory_order_relaxed);
        int slot = method == stats.method ? 0 : method == "HEAD" ? 1 : -1;
        if (slot >= 0 && status >= RouteStats::kFirstStatus && status <= RouteStats::kLastStatus) {
            stats
                .requests[static_cast<size_t>(slot)]
                         [static_cast<size_t>(status - RouteStats::kFirstStatus)]
                .fetch_add(1, std::memory_order_relaxed);
            return;
        }
        // Anything else (a status no standard names) goes through the registry directly.
        registry.add("hoist_http_requests_total", routeLabel(stats.route) + ",method=\"" + method +
                                                      "\",status=\"" + std::to_string(status) +
                                                      "\"");
        if (status >= 500) registry.add("hoist_http_errors_total", routeLabel(stats.route));
    }

    // Copies the route counters into the registry (before a /metrics render).
    void publishRouteStats() {
        std::lock_guard lock(route_stats_mutex);
        // Routes of one template (GET and PUT /packages/{path}) share a route label: summed.
        std::map<std::string, std::uint64_t> bytes_by_route;
        std::map<std::string, std::uint64_t> errors_by_route;
        std::map<std::string, std::uint64_t> requests;
        for (const auto& stats : route_stats) {
            auto route = routeLabel(stats.route);
            // Every route's latency series exists from the start, used or not.
            metrics::HistogramCounts latency;
            for (const auto& bucket : stats.latency) {
                latency.counts.push_back(bucket.load(std::memory_order_relaxed));
                latency.count += latency.counts.back();
            }
            latency.sum =
                static_cast<double>(stats.latency_ns.load(std::memory_order_relaxed)) / 1e9;
            registry.setHistogram("hoist_http_request_duration_seconds",
                                  route + ",method=\"" + stats.method + "\"", latency);
            bytes_by_route[route] += stats.bytes.load(std::memory_order_relaxed);
            errors_by_route[route] += 0;
            if (!stats.used.load(std::memory_order_relaxed)) continue;
            for (size_t slot = 0; slot < stats.requests.size(); ++slot) {
                const std::string& method = slot == 0 ? stats.method : "HEAD";
                for (size_t i = 0; i < stats.requests[slot].size(); ++i) {
                    auto n = stats.requests[slot][i].load(std::memory_order_relaxed);
                    if (n == 0) continue;
                    int status = RouteStats::kFirstStatus + static_cast<int>(i);
                    if (status >= 500) errors_by_route[route] += n;
                    requests[route + ",method=\"" + method + "\",status=\"" +
                             std::to_string(status) + "\""] += n;
                }
            }
        }
        for (const auto& [labels, n] : requests)
            registry.set("hoist_http_requests_total", labels, static_cast<double>(n));
        for (const auto& [route, n] : bytes_by_route)
            registry.set("hoist_http_response_bytes_total", route, static_cast<double>(n));
        for (const auto& [route, n] : errors_by_route) {
            if (n > 0)
                registry.set("hoist_http_errors_total", route, static_cast<double>(n));
            else
                registry.declare("hoist_http_errors_total", route);
        }
        registry.set("hoist_http_connections", "", static_cast<double>(connections.open()));
        registry.set("hoist_http_streams", "", static_cast<double>(openStreams()));
        registry.set("hoist_http_streams_refused_total", "",
                     static_cast<double>(streams_refused.load(std::memory_order_relaxed)));
        registry.set("hoist_http_connections_evicted_total", "",
                     static_cast<double>(connections.evicted.load(std::memory_order_relaxed)));
        registry.set("hoist_http_connections_refused_total", "",
                     static_cast<double>(connections.refused.load(std::memory_order_relaxed)));
    }

    // Small immutable files, by path; an entry counts only while the inode, modification
    // time and size the caller saw still match it.
    std::shared_mutex file_cache_mutex;
    std::unordered_map<std::string, std::shared_ptr<const CachedFile>> file_cache;
    std::size_t file_cache_bytes = 0;

    static bool cacheable(const FileBody& file) {
        return file.immutable && file.inode != 0 && file.size <= kSmallFileBytes;
    }

    std::shared_ptr<const CachedFile> cachedFile(const FileBody& file) {
        std::shared_lock lock(file_cache_mutex);
        auto it = file_cache.find(file.path.native());
        if (it == file_cache.end()) return nullptr;
        const auto& entry = *it->second;
        if (entry.inode != file.inode || entry.mtime_ns != file.mtime_ns ||
            entry.bytes.size() != file.size)
            return nullptr;
        return it->second;
    }

    // Reads a small file whole, and keeps it when the open file is the one the caller saw.
    std::shared_ptr<const CachedFile> loadFile(const FileBody& file) {
        FileHandle handle;
        handle.fd.reset(::open(file.path.c_str(), O_RDONLY | O_CLOEXEC));
        struct stat st {};
        if (!handle.fd || ::fstat(handle.fd.get(), &st) != 0) return nullptr;
        auto entry = std::make_shared<CachedFile>();
        entry->inode = static_cast<std::uint64_t>(st.st_ino);
        entry->mtime_ns =
            static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
        entry->bytes.resize(static_cast<size_t>(file.size));
        if (static_cast<std::uint64_t>(st.st_size) != file.size ||
            !readAt(handle.fd.get(), entry->bytes.data(), entry->bytes.size(), 0))
            return nullptr;
        if (entry->inode != file.inode || entry->mtime_ns != file.mtime_ns) return entry;
        std::unique_lock lock(file_cache_mutex);
        auto [it, inserted] = file_cache.try_emplace(file.path.native(), entry);
        if (!inserted) {
            file_cache_bytes -= it->second->bytes.size();
            it->second = entry;
        }
        file_cache_bytes += entry->bytes.size();
        // Over the budget: drop other entries (a later request reads them again).
        for (auto other = file_cache.begin();
             file_cache_bytes > kFileCacheBytes && other != file_cache.end();) {
            if (other->second == entry) {
                ++other;
                continue;
            }
            file_cache_bytes -= other->second->bytes.size();
            other = file_cache.erase(other);
        }
        return entry;
    }

    // Immutable files are sent straight from the page cache through a mapping: one copy
    // fewer than pread into a buffer. Concurrent downloads of one file (a fleet fetching the
    // same package) share the mapping, so its pages are faulted in and unmapped once.
    std::mutex mappings_mutex;
    std::map<std::pair<dev_t, ino_t>, std::weak_ptr<FileMapping>> mappings;

    std::shared_ptr<FileMapping> mapFile(int fd, std::uint64_t size) {
        struct stat st {};
        if (::fstat(fd, &st) != 0 || static_cast<std::uint64_t>(st.st_size) != size || size == 0)
            return nullptr;
        std::lock_guard lock(mappings_mutex);
        auto key = std::make_pair(st.st_dev, st.st_ino);
        if (auto it = mappings.find(key); it != mappings.end()) {
            if (auto shared = it->second.lock()) return shared;
        }
        void* data = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_SHARED, fd, 0);
        if (data == MAP_FAILED) return nullptr;
        ::madvise(data, static_cast<size_t>(size), MADV_SEQUENTIAL);
        auto mapping = std::make_shared<FileMapping>(data, static_cast<size_t>(size));
        std::erase_if(mappings, [](const auto& entry) { return entry.second.expired(); });
        mappings[key] = mapping;
        return mapping;
    }

    // Turns a handler's reply into what the connection writes.
    std::shared_ptr<Outgoing> prepare(ServerReply& reply, const ServerRequest& request) {
        if (reply.file) return prepareFile(reply, request);
        auto out = std::make_shared<Outgoing>();
        out->header.result(static_cast<unsigned>(reply.status));
        for (const auto& h : reply.headers) out->header.set(h.name, h.value);
        if (!reply.body.empty() || (reply.status != 204 && reply.status != 304)) {
            out->header.set(bhttp::field::content_type, reply.content_type);
            auto owned = std::make_shared<std::string>(std::move(reply.body));
            out->data = owned->data();
            out->length = owned->size();
            out->owner = std::move(owned);
        }
        return out;
    }

    std::shared_ptr<Outgoing> internalError(const FileBody& file, std::string_view what) {
        log::error(options.component, what, {{"path", file.path.string()}, {"errno", errno}});
        return errorOutgoing(500, "internal error");
    }

    std::shared_ptr<Outgoing> prepareFile(const ServerReply& reply, const ServerRequest& request) {
        const FileBody& file = *reply.file;
        const std::uint64_t size = file.size;
        std::uint64_t first = 0;
        std::uint64_t length = size;
        auto out = std::make_shared<Outgoing>();
        out->header.result(static_cast<unsigned>(reply.status));
        for (const auto& h : reply.headers) out->header.set(h.name, h.value);
        if (!replyHeader(reply, "Accept-Ranges"))
            out->header.set(bhttp::field::accept_ranges, "bytes");
        auto range_header = request.header("Range").value_or("");
        bool use_range = reply.status == 200 && !range_header.empty();
        if (use_range) {
            if (auto if_range = request.header("If-Range")) {
                // Only an entity tag is compared; a date (or no ETag of ours) sends it whole.
                auto etag = replyHeader(reply, "ETag");
                use_range = etag && *etag == *if_range;
            }
        }
        if (use_range) {
            auto range = parseByteRange(range_header, size);
            if (range.kind == ByteRange::Kind::Unsatisfiable) {
                auto refused = errorOutgoing(416, "range not satisfiable: '" + range_header +
                                                      "' for " + std::to_string(size) + " bytes");
                refused->header.set(bhttp::field::content_range, "bytes */" + std::to_string(size));
                return refused;
            }
            if (range.kind == ByteRange::Kind::Part) {
                first = range.first;
                length = range.length;
                out->header.result(bhttp::status::partial_content);
                out->header.set(bhttp::field::content_range,
                                "bytes " + std::to_string(first) + "-" +
                                    std::to_string(first + length - 1) + "/" +
                                    std::to_string(size));
            }
        }
        out->header.set(bhttp::field::content_type, reply.content_type);
        out->length = length;
        if (request.method == "HEAD") return out;
        if (cacheable(file)) {
            auto cached = cachedFile(file);
            if (!cached) cached = loadFile(file);
            if (!cached) return internalError(file, "cannot read a file to send");
            out->data = cached->bytes.data() + first;
            out->owner = std::move(cached);
            return out;
        }
        auto handle = std::make_shared<FileHandle>();
        handle->fd.reset(::open(file.path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!handle->fd) return internalError(file, "cannot open a file to send");
        if (length <= kSmallFileBytes) {
            auto body = std::make_shared<std::string>(static_cast<size_t>(length), '\0');
            if (!readAt(handle->fd.get(), body->data(), body->size(), first))
                return internalError(file, "cannot read a file to send");
            out->data = body->data();
            out->owner = std::move(body);
            return out;
        }
        if (file.immutable) {
            if (auto mapping = mapFile(handle->fd.get(), size)) {
                out->data = static_cast<const char*>(mapping->data) + first;
                out->owner = std::move(mapping);
                return out;
            }
        }
        out->file = std::move(handle);
        out->file_offset = first;
        return out;
    }

    // The route for a method and path; sets `allowed` when the path has routes, none for
    // this method (a 405).
    const Route* findRoute(const std::string& method, const std::string& path,
                           std::vector<std::string>& matches, std::string& allowed) const {
        const std::string_view want =
            method == "HEAD" ? std::string_view("GET") : std::string_view(method);
        for (const auto& route : routes) {
            if (route.method == want && route.pattern.match(path, matches)) return &route;
        }
        std::vector<std::string> ignored;
        for (const auto& route : routes) {
            if (!route.pattern.match(path, ignored)) continue;
            if (allowed.find(route.method) != std::string::npos) continue;
            if (!allowed.empty()) allowed += ", ";
            allowed += route.method;
            if (route.method == "GET") allowed += ", HEAD";
        }
        return nullptr;
    }

    std::uint64_t bodyLimit(const Route* route) const {
        if (route != nullptr && route->streaming)
            return std::max(options.payload_limit, options.streaming_payload_limit);
        return options.payload_limit;
    }

    // Open event streams, to cap them and to close them first when the server stops.
    std::mutex streams_mutex;
    std::unordered_map<EventStream::Core*, std::shared_ptr<EventStream::Core>> streams;
    std::atomic<std::uint64_t> streams_refused{0};

    std::size_t openStreams() {
        std::lock_guard lock(streams_mutex);
        return streams.size();
    }

    // Admits a stream under the cap, or answers 503.
    std::shared_ptr<Outgoing> admitStream(ServerReply& reply, const ServerRequest& request) {
        if (request.method == "HEAD") {
            reply.stream = nullptr;
            return prepare(reply, request);
        }
        auto core = std::make_shared<EventStream::Core>(
            std::max<std::size_t>(1, options.stream_buffer_limit));
        {
            std::lock_guard lock(streams_mutex);
            if (stopping || streams.size() >= options.max_streams) {
                streams_refused.fetch_add(1, std::memory_order_relaxed);
                auto refused = errorOutgoing(
                    503, stopping ? std::string("the server is stopping")
                                  : "too many open event streams (limit " +
                                        std::to_string(options.max_streams) + "); retry later");
                refused->header.set(bhttp::field::retry_after, "5");
                return refused;
            }
            streams.emplace(core.get(), core);
        }
        auto out = std::make_shared<Outgoing>();
        out->header.result(static_cast<unsigned>(reply.status));
        for (const auto& h : reply.headers) out->header.set(h.name, h.value);
        out->header.set(bhttp::field::content_type, reply.content_type);
        out->header.set(bhttp::field::cache_control, "no-cache");
        // Proxies that buffer replies (nginx) would hold the events back.
        out->header.set("X-Accel-Buffering", "no");
        out->stream = std::move(core);
        out->open_stream = std::move(reply.stream);
        return out;
    }

    void forgetStream(EventStream::Core* core) {
        std::lock_guard lock(streams_mutex);
        streams.erase(core);
    }

    // Runs the handler (on a worker) and returns what to write.
    std::shared_ptr<Outgoing> call(const Route& route, const ServerRequest& request) {
        ServerReply reply;
        try {
            std::optional<ServerReply> taken;
            if (intercept) taken = intercept(request);
            reply = taken ? std::move(*taken) : route.handler(request);
        } catch (const std::exception& e) {
            log::error(options.component, "handler threw",
                       {{"route", route.name}, {"what", e.what()}});
            reply = ServerReply::error(500, "internal error");
        }
        auto out = reply.stream ? admitStream(reply, request) : prepare(reply, request);
        record(*route.stats, request.method, static_cast<int>(out->header.result_int()),
               request.method == "HEAD" ? 0 : out->length, request.received);
        return out;
    }

    void accessLog(const ServerRequest& request, unsigned status, std::uint64_t bytes) const {
        if (!options.access_log) return;
        log::info(options.component, "request",
                  {{"method", request.method},
                   {"path", request.path},
                   {"status", static_cast<int>(status)},
                   {"bytes", static_cast<std::int64_t>(bytes)},
                   {"remote", request.remote_addr}});
    }

    std::size_t maxConnections() const { return std::max<std::size_t>(1, options.max_connections); }

    // Declared last: destroyed first, with the connections it still holds, while everything
    // they use is still alive.
    std::optional<asio::thread_pool> workers;
    // One event loop per I/O thread, each run by that thread alone (as nginx runs one per
    // worker): a connection lives on one loop, so its completions never hop between threads
    // and no thread wakes another. Two threads sharing one io_context cost small-file serving
    // a futex wake-up and context switches per request. `io` holds the acceptor and the
    // first share of connections; `more_io` the others.
    // `more_io` is declared before `io` so that it is destroyed after it: an accept still
    // queued on `io` holds a socket that belongs to one of these loops.
    std::vector<std::unique_ptr<asio::io_context>> more_io;
    asio::io_context io{1};
    std::atomic<std::size_t> next_io{0};
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> keep_more_running;

    // The loop a new connection goes to, round-robin.
    asio::io_context& connectionLoop() {
        auto n = next_io.fetch_add(1, std::memory_order_relaxed) % (more_io.size() + 1);
        return n == 0 ? io : *more_io[n - 1];
    }
    std::optional<tcp::acceptor> acceptor;
    std::optional<asio::steady_timer> accept_retry;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> keep_running;
};

namespace {

template <class Stream>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
public:
    template <class... Args>
    Session(Server::Impl& impl, Args&&... args)
        : impl_(impl), stream_(std::forward<Args>(args)...) {}

    ~Session() override {
        endStream();
        releaseBody();
        if (registered_) impl_.connections.remove(entry_, *this);
    }

    void setEntry(ConnectionTable::Entry entry) {
        entry_ = entry;
        registered_ = true;
    }
    /// A connection over a cap: closed as it goes, never counted.
    void dropUnregistered() { registered_ = false; }

    void start() {
        lowest().expires_after(impl_.options.header_timeout);
        if constexpr (kTls) {
            stream_.async_handshake(
                ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
                    if (ec) return self->shutdown();
                    // Verified in the handshake against tls_client_ca: a certificate here passed.
                    self->client_certificate_ =
                        SSL_get0_peer_certificate(self->stream_.native_handle()) != nullptr;
                    self->readHeader();
                });
        } else {
            readHeader();
        }
    }

    void closeSoon() override {
        // Only a weak reference: the table calls this under its lock, where the last
        // reference must never be dropped (the destructor takes that lock).
        asio::post(stream_.get_executor(), [weak = this->weak_from_this()] {
            if (auto self = weak.lock()) self->shutdown();
        });
    }

private:
    static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

    beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

    // A keep-alive connection between requests: the first byte within the idle timeout,
    // then the whole header within the header deadline.
    void waitForRequest() {
        busy = false;
        if (impl_.stopping) return shutdown();
        if (buffer_.size() > 0) {
            lowest().expires_after(impl_.options.header_timeout);
            return readHeader();
        }
        lowest().expires_after(impl_.options.idle_timeout);
        stream_.async_read_some(buffer_.prepare(4096), [self = this->shared_from_this()](
                                                           beast::error_code ec, std::size_t n) {
            if (ec) return self->shutdown();
            self->buffer_.commit(n);
            self->lowest().expires_after(self->impl_.options.header_timeout);
            self->readHeader();
        });
    }

    void readHeader() {
        header_parser_.emplace();
        header_parser_->header_limit(static_cast<std::uint32_t>(impl_.options.max_header_bytes));
        header_parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
        bhttp::async_read_header(stream_, buffer_, *header_parser_,
                                 [self = this->shared_from_this()](
                                     beast::error_code ec, std::size_t) { self->onHeader(ec); });
    }

    void onHeader(beast::error_code ec) {
        busy = true;
        body_unread_ = true;  // unknown until the header says otherwise
        if (ec == bhttp::error::header_limit)
            return refuse(431, "request header exceeds the limit of " +
                                   std::to_string(impl_.options.max_header_bytes) + " bytes");
        if (ec == beast::error::timeout || ec == bhttp::error::end_of_stream ||
            ec == asio::error::eof || ec == asio::error::operation_aborted ||
            ec == asio::error::connection_reset)
            return shutdown();
        if (ec) return refuse(400, std::string("malformed request: ") + ec.message());
        const auto& message = header_parser_->get();
        request_ = std::make_shared<ServerRequest>();
        auto& request = *request_;
        request.received = std::chrono::steady_clock::now();
        request.method = std::string(message.method_string());
        splitTarget(std::string_view(message.target().data(), message.target().size()), request);
        request.remote_addr = peer;
        request.client_certificate = client_certificate_;
        std::size_t count = 0;
        for (const auto& field : message) {
            if (++count > impl_.options.max_headers)
                return refuse(431, "request has more than " +
                                       std::to_string(impl_.options.max_headers) +
                                       " header fields");
            request.headers.push_back(
                {std::string(field.name_string()), std::string(field.value())});
        }
        keep_alive_ = message.keep_alive();
        std::string allowed;
        route_ = impl_.findRoute(request.method, request.path, request.matches, allowed);
        bool has_body =
            header_parser_->chunked() || header_parser_->content_length().value_or(0) > 0;
        body_unread_ = has_body;
        // The size limit first: an oversized body is refused by size on any path.
        const std::uint64_t limit = impl_.bodyLimit(route_);
        if (auto declared = header_parser_->content_length(); declared && *declared > limit)
            return refuse(413, "request body of " + std::to_string(*declared) +
                                   " bytes exceeds the limit of " + std::to_string(limit) +
                                   " bytes");
        if (route_ == nullptr) {
            // Answered without reading a body it may have: the connection closes after.
            if (has_body) keep_alive_ = false;
            if (!allowed.empty()) {
                auto out = errorOutgoing(405, "method " + request.method + " is not allowed on " +
                                                  request.path + " (allowed: " + allowed + ")");
                out->header.set(bhttp::field::allow, allowed);
                return write(out);
            }
            return write(errorOutgoing(404, "no such route"));
        }
        if (!has_body) return dispatch();
        if (impl_.before_body) {
            if (auto allowed_body = impl_.before_body(request); !allowed_body)
                return refuse(httpStatus(allowed_body.error().code),
                              allowed_body.error().describe());
        }
        if (!route_->streaming) {
            // Reserved before a byte is read: many connections each sending a body up to
            // the limit cannot together take more memory than the budget.
            std::uint64_t want = header_parser_->content_length().value_or(limit);
            if (!impl_.reserveBody(want)) {
                keep_alive_ = false;
                auto out = errorOutgoing(
                    503, "the server is buffering as many request bodies as its limit of " +
                             std::to_string(impl_.bodyBudget()) + " bytes allows: retry later");
                out->header.set(bhttp::field::retry_after, "1");
                return write(out);
            }
            body_reserved_ = want;
        }
        continueIfExpected([self = this->shared_from_this(), limit] {
            if (self->route_->streaming) {
                self->body_parser_.emplace(std::move(*self->header_parser_));
                self->body_parser_->body_limit(limit);
                return self->dispatch();
            }
            self->string_parser_.emplace(std::move(*self->header_parser_));
            self->string_parser_->body_limit(limit);
            self->lowest().expires_after(self->impl_.options.read_timeout);
            bhttp::async_read(
                self->stream_, self->buffer_, *self->string_parser_,
                [self, limit](beast::error_code read_ec, std::size_t) {
                    if (read_ec == bhttp::error::body_limit)
                        return self->refuse(413, "request body exceeds the limit of " +
                                                     std::to_string(limit) + " bytes");
                    if (read_ec) return self->shutdown();
                    self->body_unread_ = false;
                    self->request_->body = std::move(self->string_parser_->get().body());
                    self->string_parser_.reset();
                    self->dispatch();
                });
        });
    }

    // "Expect: 100-continue": the client waits for a go-ahead before sending the body.
    template <class Next>
    void continueIfExpected(Next next) {
        auto expect = header_parser_->get()[bhttp::field::expect];
        if (!beast::iequals(expect, "100-continue")) return next();
        static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        lowest().expires_after(impl_.options.write_timeout);
        asio::async_write(
            stream_, asio::buffer(kContinue),
            [self = this->shared_from_this(), next](beast::error_code ec, std::size_t) {
                if (ec) return self->shutdown();
                next();
            });
    }

    // Runs the handler on a worker; the reply comes back to this connection's strand.
    void dispatch() {
        lowest().expires_never();
        auto& request = *request_;
        if (route_->streaming) {
            std::weak_ptr<Session> weak = this->shared_from_this();
            request.read_body = [weak, &impl = impl_](const BodySink& sink) {
                for (;;) {
                    auto self = weak.lock();
                    if (!self) return false;
                    auto chunk = self->pullChunk();
                    if (!chunk.ok) return false;
                    if (!chunk.data.empty() && !sink(chunk.data)) return false;
                    if (chunk.done) return true;
                    if (impl.stopping) return false;
                }
            };
        } else {
            request.read_body = [request_ptr = request_.get()](const BodySink& sink) {
                return sink(std::string_view(request_ptr->body));
            };
        }
        if (route_->runs_inline) return write(impl_.call(*route_, *request_));
        asio::post(*impl_.workers, [self = this->shared_from_this()] {
            auto out = self->impl_.call(*self->route_, *self->request_);
            if (out->open_stream) {
                try {
                    out->open_stream(EventStream(out->stream));
                } catch (const std::exception& e) {
                    log::error(self->impl_.options.component, "stream handler threw",
                               {{"route", self->route_->name}, {"what", e.what()}});
                    out->stream->shut();
                }
                out->open_stream = nullptr;
            }
            asio::post(self->stream_.get_executor(), [self, out] { self->write(out); });
        });
    }

    // Called on a worker: reads the next piece of a streamed body on the I/O side and waits.
    BodyChunk pullChunk() {
        auto promise = std::make_shared<std::promise<BodyChunk>>();
        auto future = promise->get_future();
        asio::post(stream_.get_executor(),
                   [self = this->shared_from_this(), promise] { self->readChunk(promise); });
        while (future.wait_for(std::chrono::milliseconds(200)) != std::future_status::ready) {
            if (impl_.stopping) return {};
        }
        return future.get();
    }

    void readChunk(const std::shared_ptr<std::promise<BodyChunk>>& promise) {
        if (body_parser_->is_done()) {
            body_unread_ = false;
            return promise->set_value({true, true, {}});
        }
        chunk_buffer_.resize(256 * 1024);
        body_parser_->get().body().data = chunk_buffer_.data();
        body_parser_->get().body().size = chunk_buffer_.size();
        lowest().expires_after(impl_.options.read_timeout);
        bhttp::async_read_some(
            stream_, buffer_, *body_parser_,
            [self = this->shared_from_this(), promise](beast::error_code ec, std::size_t) {
                if (ec == bhttp::error::need_buffer) ec = {};
                if (ec == bhttp::error::body_limit) self->body_too_large_ = true;
                if (ec) {
                    self->keep_alive_ = false;
                    return promise->set_value({});
                }
                auto got = self->chunk_buffer_.size() - self->body_parser_->get().body().size;
                if (self->body_parser_->is_done()) self->body_unread_ = false;
                promise->set_value({true, self->body_parser_->is_done(),
                                    std::string(self->chunk_buffer_.data(), got)});
            });
    }

    // Answers without reading the body, then closes.
    void refuse(int status, const std::string& message) {
        keep_alive_ = false;
        if (!request_) {
            request_ = std::make_shared<ServerRequest>();
            request_->remote_addr = peer;
        }
        auto out = errorOutgoing(status, message);
        write(out);
    }

    void write(std::shared_ptr<Outgoing> out) {
        if (out->stream) return startStream(std::move(out));
        if (body_too_large_) {
            out = errorOutgoing(413, "request body exceeds the limit of " +
                                         std::to_string(impl_.bodyLimit(route_)) + " bytes");
        }
        // A body the handler left unread cannot be skipped safely: close after the reply.
        if (body_parser_ && !body_parser_->is_done()) keep_alive_ = false;
        if (impl_.stopping) keep_alive_ = false;
        out_ = std::move(out);
        response_.emplace();
        response_->base() = out_->header;
        response_->keep_alive(keep_alive_);
        if (!keep_alive_) response_->set(bhttp::field::connection, "close");
        auto status = out_->header.result_int();
        if (status >= 200 && status != 204 && status != 304)
            response_->content_length(out_->length);
        response_->body().data = nullptr;
        response_->body().size = 0;
        response_->body().more = false;
        remaining_ = request_->method == "HEAD" ? 0 : out_->length;
        if (remaining_ > 0 && out_->data != nullptr) {
            response_->body().data = const_cast<char*>(out_->data);
            response_->body().size = static_cast<std::size_t>(remaining_);
            remaining_ = 0;
        }
        serializer_.emplace(*response_);
        if (remaining_ == 0 && !(out_->file && out_->length > 0 && request_->method != "HEAD"))
            return writeSome();
        writeFileChunk();
    }

    void writeFileChunk() {
        if (remaining_ == 0) {
            response_->body().data = nullptr;
            response_->body().size = 0;
            response_->body().more = false;
            return writeSome();
        }
        chunk_buffer_.resize(1u << 20);
        auto want =
            static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, chunk_buffer_.size()));
        auto got = ::pread(out_->file->fd.get(), chunk_buffer_.data(), want,
                           static_cast<off_t>(out_->file_offset + (out_->length - remaining_)));
        if (got <= 0) return shutdown();
        remaining_ -= static_cast<std::uint64_t>(got);
        response_->body().data = chunk_buffer_.data();
        response_->body().size = static_cast<std::size_t>(got);
        response_->body().more = remaining_ > 0;
        writeSome();
    }

    void writeSome() {
        lowest().expires_after(impl_.options.write_timeout);
        bhttp::async_write(stream_, *serializer_,
                           [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                               if (ec == bhttp::error::need_buffer) return self->writeFileChunk();
                               if (ec) return self->shutdown();
                               if (!self->serializer_->is_done()) return self->writeFileChunk();
                               self->finish();
                           });
    }

    void releaseBody() {
        if (body_reserved_ == 0) return;
        impl_.body_bytes.fetch_sub(body_reserved_, std::memory_order_relaxed);
        body_reserved_ = 0;
    }

    void finish() {
        releaseBody();
        auto status = out_->header.result_int();
        impl_.accessLog(*request_, status, request_->method == "HEAD" ? 0 : out_->length);
        serializer_.reset();
        response_.reset();
        out_.reset();
        body_parser_.reset();
        string_parser_.reset();
        header_parser_.reset();
        request_.reset();
        route_ = nullptr;
        body_too_large_ = false;
        if (!keep_alive_ && body_unread_) return linger();
        if (!keep_alive_) return shutdown();
        waitForRequest();
    }

    // Closing with unread input would reset the connection, and the peer (still sending)
    // could lose the answer: stop sending, discard a bounded amount of what still comes,
    // then close.
    void linger() {
        beast::error_code ec;
        lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
        lowest().expires_after(std::chrono::seconds(1));
        chunk_buffer_.resize(64 * 1024);
        drain();
    }

    void drain() {
        lowest().async_read_some(
            asio::buffer(chunk_buffer_),
            [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
                self->lingered_ += n;
                if (ec || self->lingered_ > (8u << 20)) return self->shutdown();
                self->drain();
            });
    }

    // An event stream: the header, then whatever its producers queue, as chunks. Nothing
    // waits on a worker; a read stays posted only to notice the client closing.
    void startStream(std::shared_ptr<Outgoing> out) {
        out_ = std::move(out);
        stream_core_ = out_->stream;
        keep_alive_ = false;
        {
            std::lock_guard lock(stream_core_->mutex);
            if (stream_core_->closed && !stream_core_->finish) stream_core_->queued.clear();
            std::weak_ptr<Session> weak = this->shared_from_this();
            auto executor = stream_.get_executor();
            stream_core_->wake = [weak, executor] {
                asio::post(executor, [weak] {
                    if (auto self = weak.lock()) self->pump();
                });
            };
        }
        if (impl_.stopping) return shutdown();
        impl_.accessLog(*request_, out_->header.result_int(), 0);
        response_.emplace();
        response_->base() = out_->header;
        response_->keep_alive(false);
        response_->chunked(true);
        response_->body().data = nullptr;
        response_->body().size = 0;
        response_->body().more = true;
        serializer_.emplace(*response_);
        writing_ = true;
        write_started_ = std::chrono::steady_clock::now();
        bhttp::async_write(stream_, *serializer_,
                           [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                               self->writing_ = false;
                               if (ec && ec != bhttp::error::need_buffer) return self->shutdown();
                               self->last_write_ = std::chrono::steady_clock::now();
                               self->watchClient();
                               self->tickStream();
                               self->pump();
                           });
    }

    // Writes what the producers queued since the last write.
    void pump() {
        if (closed_ || !stream_core_) return;
        bool closed = false;
        bool finish = false;
        {
            std::lock_guard lock(stream_core_->mutex);
            closed = stream_core_->closed;
            finish = stream_core_->finish;
            if (!writing_) {
                stream_batch_.clear();
                stream_batch_.swap(stream_core_->queued);
            }
        }
        // Closed by the server, the client or an overflow: what is queued is dropped, even
        // while a write waits on a client that does not read.
        if (closed && !finish) return shutdown();
        if (writing_) return;
        if (stream_batch_.empty() && !closed) return;
        bool last = stream_batch_.empty();
        response_->body().data = last ? nullptr : stream_batch_.data();
        response_->body().size = stream_batch_.size();
        response_->body().more = !last;
        writing_ = true;
        write_started_ = std::chrono::steady_clock::now();
        bhttp::async_write(
            stream_, *serializer_,
            [self = this->shared_from_this(), last](beast::error_code ec, std::size_t) {
                self->writing_ = false;
                if (ec && ec != bhttp::error::need_buffer) return self->shutdown();
                if (last) return self->shutdown();
                self->last_write_ = std::chrono::steady_clock::now();
                self->pump();
            });
    }

    // A client sends nothing on an event stream: a byte or the end of its side closes it, at
    // once rather than at the next keep-alive.
    void watchClient() {
        stream_.async_read_some(asio::buffer(stream_probe_),
                                [self = this->shared_from_this()](beast::error_code, std::size_t) {
                                    self->shutdown();
                                });
    }

    // Keep-alive comments on a silent stream, and the write deadline (the stream's own timer:
    // tcp_stream's would also end the posted read).
    void tickStream() {
        if (closed_) return;
        auto every = std::max(std::chrono::milliseconds(1), impl_.options.stream_keepalive);
        auto write_timeout =
            std::chrono::duration_cast<std::chrono::milliseconds>(impl_.options.write_timeout);
        every = std::min(every, std::max(std::chrono::milliseconds(1), write_timeout));
        stream_timer_.emplace(stream_.get_executor(), every);
        stream_timer_->async_wait([self = this->shared_from_this()](beast::error_code ec) {
            if (ec || self->closed_) return;
            auto now = std::chrono::steady_clock::now();
            if (self->writing_) {
                if (now - self->write_started_ >= self->impl_.options.write_timeout)
                    return self->shutdown();
            } else if (now - self->last_write_ >= self->impl_.options.stream_keepalive) {
                EventStream(self->stream_core_).comment("keep-alive");
            }
            self->tickStream();
        });
    }

    void endStream() {
        if (!stream_core_) return;
        {
            std::lock_guard lock(stream_core_->mutex);
            stream_core_->closed = true;
            stream_core_->wake = nullptr;
        }
        impl_.forgetStream(stream_core_.get());
        stream_core_.reset();
    }

    void shutdown() {
        if (stream_core_) {
            endStream();
            if (stream_timer_) stream_timer_->cancel();
        }
        if (closed_) return;
        closed_ = true;
        beast::error_code ec;
        lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
        lowest().close();
    }

    Server::Impl& impl_;
    Stream stream_;
    ConnectionTable::Entry entry_{};
    bool registered_ = false;
    beast::flat_buffer buffer_{16 * 1024};
    std::optional<bhttp::request_parser<bhttp::empty_body>> header_parser_;
    std::optional<bhttp::request_parser<bhttp::string_body>> string_parser_;
    std::optional<bhttp::request_parser<bhttp::buffer_body>> body_parser_;
    std::shared_ptr<ServerRequest> request_;
    const Route* route_ = nullptr;
    bool keep_alive_ = true;
    bool client_certificate_ = false;
    bool body_too_large_ = false;
    bool body_unread_ = false;
    bool closed_ = false;
    std::uint64_t lingered_ = 0;
    std::uint64_t body_reserved_ = 0;
    std::vector<char> chunk_buffer_;
    std::shared_ptr<Outgoing> out_;
    std::optional<bhttp::response<bhttp::buffer_body>> response_;
    std::optional<bhttp::response_serializer<bhttp::buffer_body>> serializer_;
    std::uint64_t remaining_ = 0;
    std::shared_ptr<EventStream::Core> stream_core_;
    std::string stream_batch_;
    bool writing_ = false;
    std::chrono::steady_clock::time_point write_started_{};
    std::chrono::steady_clock::time_point last_write_{};
    std::optional<asio::steady_timer> stream_timer_;
    std::array<char, 256> stream_probe_{};
};

}  // namespace

namespace {
// Raises the soft limit of open files to the hard one: each connection is a descriptor.
void raiseOpenFileLimit() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
}
}  // namespace

Server::Server() : impl_(std::make_unique<Impl>()) {}
Server::~Server() {
    stop();
    impl_->io.stop();
    for (auto& loop : impl_->more_io) loop->stop();
    if (impl_->workers) impl_->workers->join();
}

namespace {
// The server's TLS context from the files the options name; read again by reloadTls().
Result<std::shared_ptr<ssl::context>> makeTlsContext(const ServerOptions& options) {
    if (options.tls_cert.empty() || options.tls_key.empty())
        return fail(Errc::Invalid, "TLS needs both a certificate and a key");
    if (options.tls_require_client_cert && options.tls_client_ca.empty())
        return fail(Errc::Invalid, "requiring client certificates needs the CA that signs them");
    auto tls = std::make_shared<ssl::context>(ssl::context::tls_server);
    tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    beast::error_code ec;
    tls->use_certificate_chain_file(options.tls_cert, ec);
    if (!ec) tls->use_private_key_file(options.tls_key, ssl::context::pem, ec);
    if (ec)
        return fail(Errc::Invalid, "cannot load the TLS certificate '", options.tls_cert,
                    "' or key '", options.tls_key, "': ", ec.message());
    if (!options.tls_client_ca.empty()) {
        tls->load_verify_file(options.tls_client_ca, ec);
        if (ec)
            return fail(Errc::Invalid, "cannot load the client CA '", options.tls_client_ca,
                        "': ", ec.message());
        // A presented certificate must chain to the CA (or the handshake fails); without
        // tls_require_client_cert a client may present none, and routes decide.
        auto mode = ssl::verify_peer;
        if (options.tls_require_client_cert) mode |= ssl::verify_fail_if_no_peer_cert;
        tls->set_verify_mode(mode, ec);
        if (ec) return fail(Errc::Invalid, "cannot ask for client certificates: ", ec.message());
        // Session resumption would skip the check on a later connection's handshake.
        SSL_CTX_set_session_id_context(tls->native_handle(),
                                       reinterpret_cast<const unsigned char*>("hoist"), 5);
    }
    return tls;
}
}  // namespace

Result<void> Server::reloadTls() {
    auto& impl = *impl_;
    if (impl.options.tls_cert.empty()) return ok();
    HOIST_ASSIGN(auto fresh, makeTlsContext(impl.options));
    std::lock_guard lock(impl.tls_mutex);
    impl.retired_tls.push_back(std::move(impl.tls));
    impl.tls = std::move(fresh);
    return ok();
}

Result<std::unique_ptr<Server>> Server::create(ServerOptions options) {
    std::unique_ptr<Server> self(new Server());
    auto& impl = *self->impl_;
    if (!options.tls_cert.empty() || !options.tls_key.empty()) {
        HOIST_ASSIGN(impl.tls, makeTlsContext(options));
    } else if (!options.tls_client_ca.empty() || options.tls_require_client_cert) {
        return fail(Errc::Invalid, "client certificates need TLS: give a certificate and key too");
    }
    impl.options = std::move(options);
    impl.workers.emplace(std::max<std::size_t>(1, impl.options.threads));
    impl.registry.describe("hoist_http_requests_total", "counter",
                           "HTTP requests by route, method and status");
    impl.registry.describe("hoist_http_response_bytes_total", "counter",
                           "HTTP response body bytes by route");
    impl.registry.describe("hoist_http_errors_total", "counter", "HTTP 5xx responses by route");
    impl.registry.describeHistogram("hoist_http_request_duration_seconds",
                                    "HTTP request latency by route template and method, from the "
                                    "header read to the reply ready",
                                    metrics::requestBuckets());
    impl.registry.describe("hoist_http_connections", "gauge", "open HTTP connections");
    impl.registry.describe("hoist_http_connections_evicted_total", "counter",
                           "idle connections closed to admit a new one over a connection cap");
    impl.registry.describe("hoist_http_connections_refused_total", "counter",
                           "new connections closed over a connection cap");
    impl.registry.describe("hoist_http_streams", "gauge", "open event streams (text/event-stream)");
    impl.registry.describe("hoist_http_streams_refused_total", "counter",
                           "event streams refused over the stream cap (503)");
    auto* raw = self.get();
    self->inlineRoute("GET", "/healthz", [](const ServerRequest&) {
        return ServerReply::json(200, "{\"status\":\"ok\"}");
    });
    self->route("GET", "/metrics", [raw](const ServerRequest&) {
        {
            std::lock_guard lock(raw->impl_->collectors_mutex);
            for (auto& c : raw->impl_->collectors) c(raw->impl_->registry);
        }
        raw->impl_->publishRouteStats();
        metrics::collectProcess(raw->impl_->registry);
        return ServerReply::text(200, raw->impl_->registry.render(), "text/plain; version=0.0.4");
    });
    return self;
}

void Server::route(std::string_view method, const std::string& pattern, Handler handler,
                   bool streaming_body) {
    Route route{std::string(method), RoutePattern(pattern)};
    route.name = pattern;
    route.handler = std::move(handler);
    route.streaming = streaming_body && (method == "PUT" || method == "POST");
    route.stats = &impl_->addRouteStats(metrics::routeTemplate(pattern), route.method);
    impl_->routes.push_back(std::move(route));
}

void Server::inlineRoute(std::string_view method, const std::string& pattern, Handler handler) {
    route(method, pattern, std::move(handler));
    impl_->routes.back().runs_inline = true;
}

void Server::beforeBody(std::function<Result<void>(const ServerRequest&)> check) {
    impl_->before_body = std::move(check);
}

void Server::intercept(std::function<std::optional<ServerReply>(const ServerRequest&)> hook) {
    impl_->intercept = std::move(hook);
}

void Server::onMetrics(std::function<void(metrics::Registry&)> collector) {
    std::lock_guard lock(impl_->collectors_mutex);
    impl_->collectors.push_back(std::move(collector));
}

metrics::Registry& Server::metrics() {
    return impl_->registry;
}

Result<int> Server::bind() {
    auto& impl = *impl_;
    beast::error_code ec;
    auto address = asio::ip::make_address(impl.options.host, ec);
    if (ec)
        return fail(Errc::Invalid, "cannot listen on '", impl.options.host, "': not an IP address");
    tcp::endpoint endpoint(address, static_cast<std::uint16_t>(impl.options.port));
    impl.acceptor.emplace(impl.io);
    auto& acceptor = *impl.acceptor;
    auto refuse = [&]() -> Result<int> {
        impl.acceptor.reset();
        if (impl.options.port == 0)
            return fail(Errc::Io, "cannot listen on ", impl.options.host, " (any port)");
        return fail(Errc::Io, "cannot listen on ", impl.options.host, ":", impl.options.port,
                    " (in use, or not an address of this machine)");
    };
    if (acceptor.open(endpoint.protocol(), ec)) return refuse();
    // SO_REUSEADDR allows a quick restart; SO_REUSEPORT (not set) would let a second server
    // bind a port already served and take half its connections.
    acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (acceptor.bind(endpoint, ec)) return refuse();
    // A burst of new connections (a fleet's pings, a coordinator's workers) waits in the
    // kernel's queue instead of costing each dropped SYN a one-second retransmission.
    if (acceptor.listen(kListenBacklog, ec)) return refuse();
    raiseOpenFileLimit();
    impl.port = acceptor.local_endpoint().port();
    return impl.port;
}

Result<void> Server::writePortFile(const std::filesystem::path& path) const {
    return files::writeFileAtomic(path, std::to_string(impl_->port) + "\n");
}

namespace {
void acceptNext(Server::Impl& impl);

void startSession(Server::Impl& impl, tcp::socket socket) {
    beast::error_code ec;
    socket.set_option(tcp::no_delay(true), ec);
    auto remote = socket.remote_endpoint(ec);
    if (ec) return;
    std::string peer = remote.address().to_string();
    auto admit = [&](auto session) {
        session->peer = peer;
        ConnectionTable::Entry entry;
        if (!impl.connections.admit(session.get(), peer, impl.maxConnections(),
                                    std::max<std::size_t>(1, impl.options.max_connections_per_peer),
                                    entry)) {
            session->dropUnregistered();
            return;
        }
        session->setEntry(entry);
        session->start();
    };
    if (auto tls = impl.currentTls()) {
        admit(std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
            impl, std::move(socket), *tls));
    } else {
        admit(std::make_shared<Session<beast::tcp_stream>>(impl, std::move(socket)));
    }
}

void acceptNext(Server::Impl& impl) {
    impl.acceptor->async_accept(
        impl.connectionLoop(), [&impl](beast::error_code ec, tcp::socket socket) {
            if (ec == asio::error::operation_aborted || impl.stopping) return;
            if (ec) {
                // Out of descriptors (or another transient failure): pause instead of spinning.
                log::warn(impl.options.component, "cannot accept a connection",
                          {{"error", ec.message()}});
                impl.accept_retry.emplace(impl.io, std::chrono::milliseconds(50));
                impl.accept_retry->async_wait([&impl](beast::error_code) {
                    if (!impl.stopping) acceptNext(impl);
                });
                return;
            }
            startSession(impl, std::move(socket));
            acceptNext(impl);
        });
}
}  // namespace

void Server::run() {
    auto& impl = *impl_;
    if (!impl.acceptor || impl.stopping) return;
    impl.keep_running.emplace(impl.io.get_executor());
    std::size_t io_threads = impl.options.io_threads;
    if (io_threads == 0)
        io_threads = std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, 4);
    std::vector<std::thread> threads;
    for (std::size_t i = 1; i < io_threads; ++i) {
        auto& loop = *impl.more_io.emplace_back(std::make_unique<asio::io_context>(1));
        impl.keep_more_running.emplace_back(loop.get_executor());
        threads.emplace_back([&loop] { loop.run(); });
    }
    acceptNext(impl);
    impl.io.run();
    for (auto& t : threads) t.join();
}

namespace {
void waitForStreamsThenStop(Server::Impl& impl, std::chrono::steady_clock::time_point deadline) {
    if (impl.openStreams() == 0 || std::chrono::steady_clock::now() >= deadline) {
        for (auto& loop : impl.more_io) loop->stop();
        impl.io.stop();
        return;
    }
    auto timer = std::make_shared<asio::steady_timer>(impl.io, std::chrono::milliseconds(5));
    timer->async_wait(
        [&impl, deadline, timer](beast::error_code) { waitForStreamsThenStop(impl, deadline); });
}
}  // namespace

void Server::stop() {
    auto& impl = *impl_;
    if (impl.stopping.exchange(true)) return;
    // Open event streams first: their producers see them closed at once, and each connection
    // is woken to close before the I/O threads stop.
    {
        std::lock_guard lock(impl.streams_mutex);
        for (auto& [_, core] : impl.streams) core->shut();
    }
    asio::post(impl.io, [&impl] {
        beast::error_code ec;
        if (impl.acceptor) impl.acceptor->close(ec);
        if (impl.accept_retry) impl.accept_retry->cancel();
        impl.connections.closeAll();
        impl.keep_running.reset();
        impl.keep_more_running.clear();
        // In-flight replies are dropped: run() returns now, not when the last peer is done;
        // only the streams' closing is waited for (briefly), so their clients see the end.
        waitForStreamsThenStop(impl, std::chrono::steady_clock::now() + std::chrono::seconds(1));
    });
}

Result<std::pair<std::string, int>> parseHostPort(std::string_view text, std::string_view what) {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
        return fail(Errc::Invalid, what, " '", text,
                    "' must be HOST:PORT (for example 127.0.0.1:8070; port 0 picks a free one)");
    std::string host(text.substr(0, colon));
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    if (host.empty()) host = "127.0.0.1";
    auto port_text = text.substr(colon + 1);
    int port = -1;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port < 0 || port > 65535)
        return fail(Errc::Invalid, what, " '", text,
                    "': the port must be a number from 0 to 65535");
    return std::pair{host, port};
}

Result<std::string> requireBearerRole(const ServerRequest& request,
                                      std::initializer_list<BearerRole> roles) {
    auto header = request.header("Authorization");
    if (!header) return fail(Errc::Unauthorized, "missing bearer token");
    std::string_view value = *header;
    constexpr std::string_view kPrefix = "Bearer ";
    if (!value.starts_with(kPrefix))
        return fail(Errc::Unauthorized, "the Authorization header is not a bearer token");
    value.remove_prefix(kPrefix.size());
    // Every candidate is compared, matched or not, so timing says nothing about which one.
    std::string who;
    bool matched = false;
    for (const auto& role : roles) {
        bool equal = !role.token.empty() && crypto::constantTimeEquals(value, role.token);
        if (equal && !matched) {
            who = std::string(role.role);
            matched = true;
        }
    }
    if (!matched)
        return fail(Errc::Unauthorized,
                    roles.size() > 1 ? "wrong bearer token for this route" : "wrong bearer token");
    return who;
}

Result<void> requireBearer(const ServerRequest& request, std::string_view token) {
    HOIST_TRY(requireBearerRole(request, {{"", token}}));
    return ok();
}

struct SignalWaiter::Impl {
    std::thread thread;
    sigset_t set{};
    std::atomic<bool> done{false};
};

SignalWaiter::SignalWaiter(std::function<void()> on_signal) : impl_(std::make_unique<Impl>()) {
    sigemptyset(&impl_->set);
    sigaddset(&impl_->set, SIGINT);
    sigaddset(&impl_->set, SIGTERM);
    sigaddset(&impl_->set, SIGUSR2);  // our own wake-up, from the destructor
    pthread_sigmask(SIG_BLOCK, &impl_->set, nullptr);
    impl_->thread = std::thread([impl = impl_.get(), on_signal = std::move(on_signal)] {
        int sig = 0;
        sigwait(&impl->set, &sig);
        if (!impl->done.load() && sig != SIGUSR2) on_signal();
    });
}

SignalWaiter::~SignalWaiter() {
    impl_->done = true;
    pthread_kill(impl_->thread.native_handle(), SIGUSR2);
    impl_->thread.join();
}

}  // namespace hoist::http
