#include "core/http_server.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <deque>
#include <cctype>
#include <csignal>
#include <fcntl.h>
#include <fstream>
#include <mutex>
#include <pthread.h>
#include <map>
#include <regex>
#include <shared_mutex>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <unordered_map>

#include <httplib.h>

#include "core/crypto.hpp"
#include "core/files.hpp"
#include "core/json.hpp"
#include "core/log.hpp"

namespace hoist::http {

namespace {
bool equalsNoCase(std::string_view a, std::string_view b) {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

std::string errorBody(std::string_view message) {
    json::Writer w;
    w.beginObject().field("error", message).endObject();
    return w.str();
}

ServerRequest toRequest(const httplib::Request& req) {
    ServerRequest out;
    out.method = req.method;
    out.path = req.path;
    for (const auto& m : req.matches) out.matches.emplace_back(m.str());
    out.headers.reserve(req.headers.size());
    for (const auto& [name, value] : req.headers) out.headers.push_back({name, value});
    for (const auto& [name, value] : req.params) out.query.emplace_back(name, value);
    out.remote_addr = req.remote_addr;
    return out;
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

// An open file shared by the content provider's calls; closed when httplib drops it.
struct FileHandle {
    int fd = -1;
    ~FileHandle() {
        if (fd >= 0) ::close(fd);
    }
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
    // [0] counts the route's own method, [1] HEAD (httplib answers HEAD with GET routes);
    // indexed by status - kFirstStatus.
    std::array<std::array<std::atomic<std::uint64_t>, kLastStatus - kFirstStatus + 1>, 2> requests{};
    std::atomic<std::uint64_t> bytes{0};
    std::atomic<bool> used{false};
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

struct Server::Impl {
    ServerOptions options;
    std::unique_ptr<httplib::Server> server;
    metrics::Registry registry;
    std::vector<std::function<void(metrics::Registry&)>> collectors;
    std::mutex collectors_mutex;
    int port = 0;
    int listen_fd = -1;
    /// (method, pattern) of routes registered with streaming_body.
    std::vector<std::pair<std::string, std::regex>> streaming_routes;

    std::mutex route_stats_mutex;
    std::deque<RouteStats> route_stats;

    RouteStats& addRouteStats(const std::string& route, const std::string& method) {
        std::lock_guard lock(route_stats_mutex);
        return route_stats.emplace_back(route, method);
    }

    static std::string routeLabel(const std::string& route) {
        return "route=\"" + metrics::labelValue(route) + "\"";
    }

    void record(RouteStats& stats, const std::string& method, int status, std::uint64_t bytes) {
        stats.used.store(true, std::memory_order_relaxed);
        stats.bytes.fetch_add(bytes, std::memory_order_relaxed);
        int slot = method == stats.method ? 0 : method == "HEAD" ? 1 : -1;
        if (slot >= 0 && status >= RouteStats::kFirstStatus && status <= RouteStats::kLastStatus) {
            stats.requests[static_cast<size_t>(slot)][static_cast<size_t>(status - RouteStats::kFirstStatus)]
                .fetch_add(1, std::memory_order_relaxed);
            return;
        }
        // Anything else (a status no standard names) goes through the registry directly.
        registry.add("hoist_http_requests_total", routeLabel(stats.route) + ",method=\"" + method +
                                                      "\",status=\"" + std::to_string(status) + "\"");
        if (status >= 500) registry.add("hoist_http_errors_total", routeLabel(stats.route));
    }

    // Copies the route counters into the registry (before a /metrics render).
    void publishRouteStats() {
        std::lock_guard lock(route_stats_mutex);
        for (const auto& stats : route_stats) {
            if (!stats.used.load(std::memory_order_relaxed)) continue;
            auto route = routeLabel(stats.route);
            std::uint64_t errors = 0;
            for (size_t slot = 0; slot < stats.requests.size(); ++slot) {
                const std::string& method = slot == 0 ? stats.method : "HEAD";
                for (size_t i = 0; i < stats.requests[slot].size(); ++i) {
                    auto n = stats.requests[slot][i].load(std::memory_order_relaxed);
                    if (n == 0) continue;
                    int status = RouteStats::kFirstStatus + static_cast<int>(i);
                    if (status >= 500) errors += n;
                    registry.set("hoist_http_requests_total",
                                 route + ",method=\"" + method + "\",status=\"" +
                                     std::to_string(status) + "\"",
                                 static_cast<double>(n));
                }
            }
            registry.set("hoist_http_response_bytes_total", route,
                         static_cast<double>(stats.bytes.load(std::memory_order_relaxed)));
            if (errors > 0) registry.set("hoist_http_errors_total", route, static_cast<double>(errors));
        }
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
        if (entry.inode != file.inode || entry.mtime_ns != file.mtime_ns || entry.bytes.size() != file.size)
            return nullptr;
        return it->second;
    }

    // Reads a small file whole, and keeps it when the open file is the one the caller saw.
    std::shared_ptr<const CachedFile> loadFile(const FileBody& file) {
        FileHandle handle;
        handle.fd = ::open(file.path.c_str(), O_RDONLY | O_CLOEXEC);
        struct stat st {};
        if (handle.fd < 0 || ::fstat(handle.fd, &st) != 0) return nullptr;
        auto entry = std::make_shared<CachedFile>();
        entry->inode = static_cast<std::uint64_t>(st.st_ino);
        entry->mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
        entry->bytes.resize(static_cast<size_t>(file.size));
        if (static_cast<std::uint64_t>(st.st_size) != file.size ||
            !readAt(handle.fd, entry->bytes.data(), entry->bytes.size(), 0))
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
        for (auto other = file_cache.begin(); file_cache_bytes > kFileCacheBytes && other != file_cache.end();) {
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
    // fewer than pread into a buffer (httplib offers no sendfile). Concurrent downloads of
    // one file (a fleet fetching the same package) share the mapping, so its pages are
    // faulted in and unmapped once.
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

    // Returns the body bytes the reply sends (for metrics).
    std::uint64_t apply(const ServerReply& reply, const httplib::Request& req,
                        httplib::Response& res) {
        // Byte ranges are ours to apply (httplib's own handling answers unsatisfiable
        // ranges with a wrong length and would slice JSON bodies): forget the ranges it
        // parsed. `req` is a non-const object inside httplib, handed to us as const.
        const_cast<httplib::Request&>(req).ranges.clear();
        res.status = reply.status;
        for (const auto& h : reply.headers) res.set_header(h.name, h.value);
        if (reply.file) return applyFile(reply, req, res);
        if (!reply.body.empty() || (reply.status != 204 && reply.status != 304))
            res.set_content(reply.body, reply.content_type);
        return reply.body.size();
    }

    std::uint64_t applyFile(const ServerReply& reply, const httplib::Request& req,
                            httplib::Response& res) {
        const std::uint64_t size = reply.file->size;
        std::uint64_t first = 0;
        std::uint64_t length = size;
        if (!res.has_header("Accept-Ranges")) res.set_header("Accept-Ranges", "bytes");
        auto range_header = req.get_header_value("Range");
        bool use_range = reply.status == 200 && !range_header.empty();
        if (use_range && req.has_header("If-Range")) {
            // Only an entity tag is compared; a date (or no ETag of ours) sends it whole.
            auto etag = replyHeader(reply, "ETag");
            use_range = etag && *etag == req.get_header_value("If-Range");
        }
        if (use_range) {
            auto range = parseByteRange(range_header, size);
            if (range.kind == ByteRange::Kind::Unsatisfiable) {
                res.status = 416;
                res.set_header("Content-Range", "bytes */" + std::to_string(size));
                auto body = errorBody("range not satisfiable: '" + range_header + "' for " +
                                      std::to_string(size) + " bytes");
                res.set_content(body, "application/json");
                return body.size();
            }
            if (range.kind == ByteRange::Kind::Part) {
                first = range.first;
                length = range.length;
                res.status = 206;
                res.set_header("Content-Range", "bytes " + std::to_string(first) + "-" +
                                                    std::to_string(first + length - 1) + "/" +
                                                    std::to_string(size));
            }
        }
        if (cacheable(*reply.file)) {
            auto cached = cachedFile(*reply.file);
            if (!cached) cached = loadFile(*reply.file);
            if (!cached) {
                log::error(options.component, "cannot read a file to send",
                           {{"path", reply.file->path.string()}, {"errno", errno}});
                res.status = 500;
                res.set_content(errorBody("internal error"), "application/json");
                return 0;
            }
            res.set_content(cached->bytes.data() + first, static_cast<size_t>(length), reply.content_type);
            return req.method == "HEAD" ? 0 : length;
        }
        auto handle = std::make_shared<FileHandle>();
        handle->fd = ::open(reply.file->path.c_str(), O_RDONLY | O_CLOEXEC);
        if (handle->fd < 0) {
            log::error(options.component, "cannot open a file to send",
                       {{"path", reply.file->path.string()}, {"errno", errno}});
            res.status = 500;
            res.set_content(errorBody("internal error"), "application/json");
            return 0;
        }
        if (length <= kSmallFileBytes) {
            // Small files go out as a body: fewer system calls than the content provider
            // (which also refuses a length of zero).
            std::string body(static_cast<size_t>(length), '\0');
            if (!readAt(handle->fd, body.data(), body.size(), first)) {
                res.status = 500;
                res.set_content(errorBody("internal error"), "application/json");
                return 0;
            }
            res.set_content(body, reply.content_type);
            return req.method == "HEAD" ? 0 : length;
        }
        if (reply.file->immutable && req.method != "HEAD") {
            if (auto mapping = mapFile(handle->fd, size)) {
                res.set_content_provider(
                    static_cast<size_t>(length), reply.content_type,
                    [mapping, first](size_t offset, size_t want, httplib::DataSink& sink) {
                        size_t chunk = std::min<size_t>(want, 4u << 20);
                        return sink.write(static_cast<const char*>(mapping->data) + first + offset,
                                          chunk);
                    });
                return length;
            }
        }
        res.set_content_provider(
            static_cast<size_t>(length), reply.content_type,
            [handle, first](size_t offset, size_t want, httplib::DataSink& sink) {
                thread_local std::vector<char> buffer(1u << 20);
                size_t chunk = std::min(want, buffer.size());
                auto got = ::pread(handle->fd, buffer.data(), chunk,
                                   static_cast<off_t>(first + offset));
                if (got <= 0) return false;
                return sink.write(buffer.data(), static_cast<size_t>(got));
            });
        return req.method == "HEAD" ? 0 : length;
    }
};

Server::Server() : impl_(std::make_unique<Impl>()) {}
Server::~Server() = default;

Result<std::unique_ptr<Server>> Server::create(ServerOptions options) {
    std::unique_ptr<Server> self(new Server());
    auto& impl = *self->impl_;
    if (!options.tls_cert.empty() || !options.tls_key.empty()) {
        if (options.tls_cert.empty() || options.tls_key.empty())
            return fail(Errc::Invalid, "TLS needs both a certificate and a key");
        auto tls = std::make_unique<httplib::SSLServer>(options.tls_cert.c_str(), options.tls_key.c_str());
        if (!tls->is_valid())
            return fail(Errc::Invalid, "cannot load the TLS certificate '", options.tls_cert,
                        "' or key '", options.tls_key, "'");
        impl.server = std::move(tls);
    } else {
        impl.server = std::make_unique<httplib::Server>();
    }
    impl.options = std::move(options);
    auto& srv = *impl.server;
    srv.new_task_queue = [threads = impl.options.threads] { return new httplib::ThreadPool(threads); };
    srv.set_payload_max_length(std::max(impl.options.payload_limit, impl.options.streaming_payload_limit));
    if (impl.options.streaming_payload_limit > impl.options.payload_limit) {
        // httplib has one limit; bodies above payload_limit may only go to streaming routes.
        srv.set_pre_routing_handler([raw_impl = &impl](const httplib::Request& req,
                                                       httplib::Response& res) {
            auto declared = req.get_header_value("Content-Length");
            std::uint64_t length = 0;
            if (declared.empty() || !parseDigits(declared, length) ||
                length <= raw_impl->options.payload_limit)
                return httplib::Server::HandlerResponse::Unhandled;
            for (const auto& [method, pattern] : raw_impl->streaming_routes)
                if (method == req.method && std::regex_match(req.path, pattern))
                    return httplib::Server::HandlerResponse::Unhandled;
            res.status = 413;
            res.set_header("Connection", "close");
            res.set_content(errorBody("request body of " + declared + " bytes exceeds the limit of " +
                                      std::to_string(raw_impl->options.payload_limit) + " bytes"),
                            "application/json");
            return httplib::Server::HandlerResponse::Handled;
        });
    }
    // httplib's own options add SO_REUSEPORT, which lets a second server bind a port already
    // served and take half its connections; plain SO_REUSEADDR only allows a quick restart.
    srv.set_socket_options([raw_impl = &impl](int sock) {
        int yes = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
        raw_impl->listen_fd = sock;
    });
    srv.set_read_timeout(impl.options.read_timeout);
    srv.set_write_timeout(impl.options.write_timeout);
    srv.set_keep_alive_max_count(1000);
    // httplib writes headers and body separately; with Nagle on, the body waits for the
    // peer's delayed ACK (40 ms per keep-alive request).
    srv.set_tcp_nodelay(true);
    srv.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        res.status = 500;
        res.set_content(errorBody("internal error"), "application/json");
    });
    srv.set_error_handler([](const httplib::Request&, httplib::Response& res) {
        if (res.body.empty()) {
            res.set_content(errorBody(res.status == 404 ? std::string("no such route")
                                                         : "HTTP " + std::to_string(res.status)),
                            "application/json");
        }
    });
    if (impl.options.access_log) {
        srv.set_logger([component = impl.options.component](const httplib::Request& req,
                                                             const httplib::Response& res) {
            log::info(component, "request",
                      {{"method", req.method}, {"path", req.path}, {"status", res.status},
                       {"bytes", static_cast<std::int64_t>(req.method == "HEAD" ? 0
                                                           : res.body.empty() ? res.content_length_
                                                                              : res.body.size())},
                       {"remote", req.remote_addr}});
        });
    }
    impl.registry.describe("hoist_http_requests_total", "counter", "HTTP requests by route, method and status");
    impl.registry.describe("hoist_http_response_bytes_total", "counter", "HTTP response body bytes by route");
    impl.registry.describe("hoist_http_errors_total", "counter", "HTTP 5xx responses by route");
    auto* raw = self.get();
    self->route("GET", "/healthz", [](const ServerRequest&) {
        return ServerReply::json(200, "{\"status\":\"ok\"}");
    });
    self->route("GET", "/metrics", [raw](const ServerRequest&) {
        {
            std::lock_guard lock(raw->impl_->collectors_mutex);
            for (auto& c : raw->impl_->collectors) c(raw->impl_->registry);
        }
        raw->impl_->publishRouteStats();
        return ServerReply::text(200, raw->impl_->registry.render(), "text/plain; version=0.0.4");
    });
    return self;
}

void Server::route(std::string_view method, const std::string& pattern, Handler handler,
                   bool streaming_body) {
    auto* impl = impl_.get();
    auto shared = std::make_shared<Handler>(std::move(handler));
    std::string route_name = pattern;
    std::string method_name(method);
    RouteStats* stats = &impl->addRouteStats(route_name, method_name);
    auto call = [impl, shared, route_name, stats](const httplib::Request& req, httplib::Response& res,
                                           const httplib::ContentReader* reader) {
        ServerRequest request = toRequest(req);
        if (reader != nullptr) {
            request.read_body = [reader](const BodySink& sink) {
                return (*reader)([&sink](const char* data, size_t len) {
                    return sink(std::string_view(data, len));
                });
            };
        } else {
            request.body = req.body;
            request.read_body = [&req](const BodySink& sink) {
                return sink(std::string_view(req.body));
            };
        }
        ServerReply reply;
        try {
            reply = (*shared)(request);
        } catch (const std::exception& e) {
            log::error(impl->options.component, "handler threw", {{"route", route_name}, {"what", e.what()}});
            reply = ServerReply::error(500, "internal error");
        }
        auto bytes = impl->apply(reply, req, res);
        impl->record(*stats, req.method, res.status, bytes);
    };
    auto& srv = *impl_->server;
    if (streaming_body && (method == "PUT" || method == "POST")) {
        impl_->streaming_routes.emplace_back(method_name, std::regex(pattern));
        auto h = [call](const httplib::Request& req, httplib::Response& res,
                        const httplib::ContentReader& reader) { call(req, res, &reader); };
        if (method == "PUT") srv.Put(pattern, h);
        else srv.Post(pattern, h);
        return;
    }
    auto h = [call](const httplib::Request& req, httplib::Response& res) { call(req, res, nullptr); };
    if (method == "GET") srv.Get(pattern, h);
    else if (method == "POST") srv.Post(pattern, h);
    else if (method == "PUT") srv.Put(pattern, h);
    else if (method == "DELETE") srv.Delete(pattern, h);
    else if (method == "PATCH") srv.Patch(pattern, h);
    else if (method == "OPTIONS") srv.Options(pattern, h);
}

void Server::onMetrics(std::function<void(metrics::Registry&)> collector) {
    std::lock_guard lock(impl_->collectors_mutex);
    impl_->collectors.push_back(std::move(collector));
}

metrics::Registry& Server::metrics() { return impl_->registry; }

Result<int> Server::bind() {
    auto& srv = *impl_->server;
    int port = impl_->options.port;
    if (port == 0) {
        port = srv.bind_to_any_port(impl_->options.host);
        if (port < 0) return fail(Errc::Io, "cannot listen on ", impl_->options.host, " (any port)");
    } else if (!srv.bind_to_port(impl_->options.host, port)) {
        return fail(Errc::Io, "cannot listen on ", impl_->options.host, ":", port,
                    " (in use, or not an address of this machine)");
    }
    // httplib listens with a backlog of 5: a burst of new connections (a fleet's pings, a
    // coordinator's workers) overflows it, and each dropped SYN costs its client a one-second
    // retransmission. Listening again on the bound socket raises the backlog.
    if (impl_->listen_fd >= 0 && ::listen(impl_->listen_fd, kListenBacklog) != 0)
        log::warn(impl_->options.component, "cannot raise the listen backlog", {{"errno", errno}});
    impl_->port = port;
    return port;
}

int Server::port() const { return impl_->port; }

Result<void> Server::writePortFile(const std::filesystem::path& path) const {
    return files::writeFileAtomic(path, std::to_string(impl_->port) + "\n");
}

void Server::run() { impl_->server->listen_after_bind(); }

void Server::stop() { impl_->server->stop(); }

Result<void> requireBearer(const ServerRequest& request, std::string_view token) {
    auto header = request.header("Authorization");
    if (!header) return fail(Errc::Unauthorized, "missing bearer token");
    std::string_view value = *header;
    constexpr std::string_view kPrefix = "Bearer ";
    if (!value.starts_with(kPrefix)) return fail(Errc::Unauthorized, "the Authorization header is not a bearer token");
    value.remove_prefix(kPrefix.size());
    if (token.empty() || !crypto::constantTimeEquals(value, token))
        return fail(Errc::Unauthorized, "wrong bearer token");
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
