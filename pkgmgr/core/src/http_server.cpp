#include "core/http_server.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <csignal>
#include <fstream>
#include <mutex>
#include <pthread.h>
#include <thread>

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
    for (const auto& [name, value] : req.headers) out.headers.push_back({name, value});
    for (const auto& [name, value] : req.params) out.query.emplace_back(name, value);
    out.remote_addr = req.remote_addr;
    return out;
}
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

    void record(const std::string& route, const std::string& method, int status, std::uint64_t bytes) {
        std::string labels = "route=\"" + metrics::labelValue(route) + "\",method=\"" + method +
                             "\",status=\"" + std::to_string(status) + "\"";
        registry.add("hoist_http_requests_total", labels);
        registry.add("hoist_http_response_bytes_total", "route=\"" + metrics::labelValue(route) + "\"",
                     static_cast<double>(bytes));
        if (status >= 500) registry.add("hoist_http_errors_total", "route=\"" + metrics::labelValue(route) + "\"");
    }

    void apply(const ServerReply& reply, httplib::Response& res) {
        res.status = reply.status;
        for (const auto& h : reply.headers) res.set_header(h.name, h.value);
        if (reply.file) {
            auto path = reply.file->path;
            auto size = reply.file->size;
            auto stream = std::make_shared<std::ifstream>(path, std::ios::binary);
            res.set_content_provider(
                static_cast<size_t>(size), reply.content_type,
                [stream](size_t offset, size_t length, httplib::DataSink& sink) {
                    thread_local std::vector<char> buffer(1u << 20);
                    stream->seekg(static_cast<std::streamoff>(offset));
                    size_t chunk = std::min(length, buffer.size());
                    stream->read(buffer.data(), static_cast<std::streamsize>(chunk));
                    auto got = stream->gcount();
                    if (got <= 0) return false;
                    return sink.write(buffer.data(), static_cast<size_t>(got));
                });
        } else if (!reply.body.empty() || reply.status != 204) {
            res.set_content(reply.body, reply.content_type);
        }
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
    srv.set_payload_max_length(impl.options.payload_limit);
    srv.set_read_timeout(impl.options.read_timeout);
    srv.set_write_timeout(impl.options.write_timeout);
    srv.set_keep_alive_max_count(1000);
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
                       {"bytes", static_cast<std::int64_t>(res.body.size())},
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
    auto call = [impl, shared, route_name, method_name](const httplib::Request& req,
                                                        httplib::Response& res,
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
        impl->apply(reply, res);
        impl->record(route_name, method_name,
                     reply.status, reply.file ? reply.file->size : reply.body.size());
    };
    auto& srv = *impl_->server;
    if (streaming_body && (method == "PUT" || method == "POST")) {
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
