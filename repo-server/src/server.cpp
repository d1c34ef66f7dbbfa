#include "repo_server/server.hpp"

#include <sys/stat.h>
#include <charconv>

#include "core/crypto.hpp"
#include "core/files.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"
#include "pkgmgr/repository.hpp"

namespace hoist::repo_server {

namespace {
constexpr std::string_view kComponent = "repo-server";
constexpr std::string_view kImmutable = "public, max-age=31536000, immutable";
constexpr std::string_view kRevalidate = "no-cache";

using http::ServerReply;
using http::ServerRequest;

// If-None-Match holds a list of entity tags (maybe weak, maybe "*"); GET compares them
// weakly (RFC 9110 section 13.1.2). Unquoted tags are accepted too, as some clients send them.
bool noneMatchHits(std::string_view header, std::string_view etag) {
    std::string_view bare = etag.substr(1, etag.size() - 2);
    for (const auto& part : strings::split(header, ',')) {
        std::string_view tag = strings::trim(part);
        if (tag == "*") return true;
        if (tag.starts_with("W/")) tag.remove_prefix(2);
        if (tag == etag || tag == bare) return true;
    }
    return false;
}

ServerReply serveFile(const ServerRequest& request, const fs::path& path, const std::string& etag,
                      std::string content_type, std::string_view cache_control,
                      std::string_view missing) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
        return ServerReply::error(404, missing);
    ServerReply reply;
    reply.headers.push_back({"ETag", etag});
    reply.headers.push_back({"Cache-Control", std::string(cache_control)});
    if (auto tags = request.header("If-None-Match"); tags && noneMatchHits(*tags, etag)) {
        reply.status = 304;
        return reply;
    }
    reply.status = 200;
    reply.content_type = std::move(content_type);
    // Packages and release files are only ever replaced by rename(2), never rewritten.
    reply.file = http::FileBody{
        path, static_cast<std::uint64_t>(st.st_size), true, static_cast<std::uint64_t>(st.st_ino),
        static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
    return reply;
}

std::optional<std::uint64_t> declaredLength(const ServerRequest& request) {
    auto header = request.header("Content-Length");
    if (!header) return std::nullopt;
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(header->data(), header->data() + header->size(), value);
    if (ec != std::errc() || end != header->data() + header->size()) return std::nullopt;
    return value;
}

// A refused upload still reads (and drops) the body, so the client sees our answer instead
// of a reset connection. Callers drain declared bodies up to kDrainLimit only; the server's
// payload limit bounds a chunked one.
void drain(const ServerRequest& request) {
    request.read_body([](std::string_view) { return true; });
}

// Bodies up to this size are read and dropped when refused; larger ones are left unread and
// the connection closed.
constexpr std::uint64_t kDrainLimit = 16u << 20;

ServerReply tooLarge(const ServerRequest& request, std::uint64_t declared, std::uint64_t limit) {
    auto reply =
        ServerReply::error(413, detail::concat("the body of ", declared,
                                               " bytes exceeds the maximum of ", limit, " bytes"));
    if (declared <= kDrainLimit) {
        drain(request);
    } else {
        // The body is not read: the connection cannot carry another request.
        reply.headers.push_back({"Connection", "close"});
    }
    return reply;
}

ServerReply storedReply(const std::string& path, const Stored& stored) {
    json::Writer w;
    w.beginObject()
        .field("path", path)
        .field("sha256", stored.sha256)
        .field("size", stored.size)
        .field("created", stored.created)
        .endObject();
    return ServerReply::json(stored.created ? 201 : 200, w.str());
}

class Routes {
public:
    Routes(std::shared_ptr<Repository> repo, daemon::Secret token, std::uint64_t max_upload,
           http::Server& server)
        : repo_(std::move(repo)),
          token_(std::move(token)),
          max_upload_(max_upload),
          server_(server) {
        auto& m = server_.metrics();
        m.describe("hoist_repo_uploads_total", "counter", "uploads by kind and outcome");
        m.describe("hoist_repo_upload_bytes_total", "counter", "bytes of stored uploads");
        m.describe("hoist_repo_packages", "gauge", "packages stored");
        m.describe("hoist_repo_releases", "gauge", "release manifests stored");
    }

    ServerReply getPackage(const ServerRequest& request) const {
        const std::string& name = request.matches.at(1);
        // Not Repository::packageFile: serveFile's stat(2) is the existence check, once.
        if (!crypto::isSha256Hex(name))
            return ServerReply::error(404, repo_->packageFile(name).error().message);
        return serveFile(request, repo_->root() / pkgmgr::repo_layout::package(name),
                         "\"" + name + "\"", "application/octet-stream", kImmutable,
                         "package " + name + " is not in the repository");
    }

    ServerReply getRelease(const ServerRequest& request) const {
        const std::string& name = request.matches.at(1);
        auto path = repo_->releaseFile(name);
        if (!path) return ServerReply::error(path.error());
        // Release files are small; their content hash is the entity tag.
        auto hash = crypto::sha256File(*path);
        if (!hash) return ServerReply::error(404, "no release file '" + name + "'");
        std::string type =
            name.ends_with(".sig") ? "text/plain; charset=utf-8" : "application/json";
        return serveFile(request, *path, "\"" + *hash + "\"", type, kRevalidate,
                         "no release file '" + name + "'");
    }

    ServerReply putPackage(const ServerRequest& request) {
        const std::string& name = request.matches.at(1);
        if (auto allowed = authorize(request); !allowed)
            return refuse(request, "package", allowed.error());
        if (!crypto::isSha256Hex(name))
            return refuse(
                request, "package",
                Error{Errc::Invalid,
                      "'" + name +
                          "' is not a package name: upload to /packages/<sha256 of the bytes>",
                      0});
        if (auto length = declaredLength(request); length && *length > max_upload_) {
            count("package", "refused");
            return tooLarge(request, *length, max_upload_);
        }
        auto stored = repo_->putPackage(name, request.read_body, max_upload_);
        if (!stored) {
            // The body was read (a hash mismatch) or reading it stopped half-way (a write
            // error, the size limit): then the connection cannot carry another request.
            auto reply = refuse(request, "package", stored.error(), false);
            if (stored.error().code != Errc::Corrupt)
                reply.headers.push_back({"Connection", "close"});
            return reply;
        }
        return accepted("package", pkgmgr::repo_layout::package(name), *stored);
    }

    ServerReply putRelease(const ServerRequest& request) {
        const std::string& version = request.matches.at(1);
        const bool signature = !request.matches.at(2).empty();
        const char* kind = signature ? "signature" : "release";
        if (auto allowed = authorize(request); !allowed)
            return refuse(request, kind, allowed.error());
        if (auto length = declaredLength(request); length && *length > kMaxReleaseBytes) {
            count(kind, "refused");
            return tooLarge(request, *length, kMaxReleaseBytes);
        }
        std::string body;
        bool too_large = false;
        bool complete = request.read_body([&](std::string_view chunk) {
            if (body.size() + chunk.size() > kMaxReleaseBytes) {
                too_large = true;
                return false;
            }
            body.append(chunk);
            return true;
        });
        if (too_large) {
            // A chunked body that grew past the limit: the rest of it is not read.
            count(kind, "refused");
            auto reply = ServerReply::error(413, detail::concat("the body exceeds the maximum of ",
                                                                kMaxReleaseBytes, " bytes"));
            reply.headers.push_back({"Connection", "close"});
            return reply;
        }
        if (!complete)
            return refuse(request, kind,
                          Error{Errc::Invalid, "the upload ended before its body did", 0});
        auto stored =
            signature ? repo_->putSignature(version, body) : repo_->putRelease(version, body);
        if (!stored) return refuse(request, kind, stored.error(), false);
        std::string path = signature ? pkgmgr::repo_layout::signature(version)
                                     : pkgmgr::repo_layout::release(version);
        return accepted(kind, path, *stored);
    }

    /// Uploads need the token before their body is read (Server::beforeBody).
    Result<void> authorizeUpload(const ServerRequest& request) {
        auto allowed = authorize(request);
        if (!allowed) {
            const char* kind =
                request.path.ends_with(".sig") ? "signature"
                : request.path.starts_with("/" + std::string(pkgmgr::repo_layout::kReleases))
                    ? "release"
                    : "package";
            count(kind, "refused");
            log::warn(
                kComponent, "upload refused",
                {{"kind", kind}, {"path", request.path}, {"error", allowed.error().describe()}});
        }
        return allowed;
    }

    void collect(metrics::Registry& m) const {
        m.set("hoist_repo_packages", {}, static_cast<double>(repo_->packageCount()));
        m.set("hoist_repo_releases", {}, static_cast<double>(repo_->releaseCount()));
    }

private:
    Result<void> authorize(const ServerRequest& request) const {
        if (token_.empty())
            return fail(Errc::Unauthorized,
                        "uploads are disabled: repo-server was started without --token-file");
        return http::requireBearer(request, token_.value());
    }

    ServerReply refuse(const ServerRequest& request, std::string_view kind, const Error& error,
                       bool drain_body = true) {
        bool close = false;
        if (drain_body) {
            auto length = declaredLength(request);
            close = length && *length > kDrainLimit;
            if (!close) drain(request);
        }
        count(kind, "refused");
        log::warn(kComponent, "upload refused",
                  {{"kind", kind}, {"path", request.path}, {"error", error.describe()}});
        auto reply = ServerReply::error(error);
        if (close) reply.headers.push_back({"Connection", "close"});
        return reply;
    }

    ServerReply accepted(std::string_view kind, const std::string& path, const Stored& stored) {
        count(kind, stored.created ? "created" : "existed");
        if (stored.created)
            server_.metrics().add("hoist_repo_upload_bytes_total",
                                  "kind=\"" + std::string(kind) + "\"",
                                  static_cast<double>(stored.size));
        return storedReply(path, stored);
    }

    void count(std::string_view kind, std::string_view outcome) {
        server_.metrics().add(
            "hoist_repo_uploads_total",
            "kind=\"" + std::string(kind) + "\",outcome=\"" + std::string(outcome) + "\"");
    }

    std::shared_ptr<Repository> repo_;
    daemon::Secret token_;
    std::uint64_t max_upload_;
    http::Server& server_;
};
}  // namespace

Result<std::unique_ptr<http::Server>> makeServer(const Options& options,
                                                 std::shared_ptr<Repository> repository,
                                                 daemon::Secret* token_out) {
    daemon::Secret token;
    if (!options.token_file.empty()) {
        HOIST_TRY(files::readSecretFile(options.token_file, "token file"));
        HOIST_ASSIGN(token, daemon::Secret::fromFile(options.token_file, "upload token"));
    }
    if (token_out != nullptr) *token_out = token;
    http::ServerOptions server_options;
    server_options.component = std::string(kComponent);
    server_options.host = options.host;
    server_options.port = options.port;
    server_options.tls_cert = options.tls_cert;
    server_options.tls_key = options.tls_key;
    server_options.tls_client_ca = options.tls_client_ca;
    server_options.tls_require_client_cert = !options.tls_client_ca.empty();
    server_options.threads = options.threads;
    server_options.access_log = options.access_log;
    server_options.payload_limit = 64 * 1024;
    server_options.streaming_payload_limit = static_cast<std::size_t>(
        std::max<std::uint64_t>(options.max_upload_bytes, kMaxReleaseBytes));
    // A slow uploader on a long package gets this long between two packets, not in total.
    server_options.read_timeout = std::chrono::seconds(60);
    server_options.write_timeout = std::chrono::seconds(60);
    HOIST_ASSIGN(auto server, http::Server::create(server_options));
    auto routes = std::make_shared<Routes>(std::move(repository), std::move(token),
                                           options.max_upload_bytes, *server);
    // The hot path (a stat, then a cached or mapped file) runs on the I/O thread.
    const std::string packages = "/" + std::string(pkgmgr::repo_layout::kPackages) + "(.*)";
    const std::string releases = "/" + std::string(pkgmgr::repo_layout::kReleases) + "(.*)";
    server->inlineRoute("GET", packages,
                        [routes](const ServerRequest& r) { return routes->getPackage(r); });
    server->route("GET", releases,
                  [routes](const ServerRequest& r) { return routes->getRelease(r); });
    server->route(
        "PUT", packages, [routes](const ServerRequest& r) { return routes->putPackage(r); }, true);
    server->route(
        "PUT", "/" + std::string(pkgmgr::repo_layout::kReleases) + R"((.*?)\.json(\.sig)?)",
        [routes](const ServerRequest& r) { return routes->putRelease(r); }, true);
    server->beforeBody([routes](const ServerRequest& r) { return routes->authorizeUpload(r); });
    server->onMetrics([routes](metrics::Registry& m) { routes->collect(m); });
    return server;
}

}  // namespace hoist::repo_server
