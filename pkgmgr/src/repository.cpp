#include "pkgmgr/repository.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <thread>

#include "core/crypto.hpp"
#include "core/files.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"

namespace hoist::pkgmgr {

namespace {

std::string serverMessage(const std::string& body);

// A GET that tells "absent" (404, or a missing file:// file) from other failures.
Result<std::optional<std::string>> getOptional(http::Client& client, const std::string& url) {
    http::Request request;
    request.url = url;
    auto response = client.send(request, http::RetryPolicy{.attempts = 3});
    if (!response) {
        if (url.starts_with("file://")) return std::optional<std::string>();
        return std::unexpected(response.error());
    }
    if (response->status == 404) return std::optional<std::string>();
    // file:// transfers report status 0.
    if (response->status != 0 && !response->ok())
        return fail(errcFromHttpStatus(response->status), "GET ", url, ": HTTP ", response->status,
                    ": ", serverMessage(response->body));
    return std::optional<std::string>(std::move(response->body));
}

// The server's own words from an error reply ({"error": "..."}), else the start of its body.
std::string serverMessage(const std::string& body) {
    if (auto doc = json::parseObject(body, "reply")) {
        if (auto message = json::getString(*doc, "error", "reply")) return *message;
    }
    return body.substr(0, 200);
}

std::unexpected<Error> refused(std::string_view method, const std::string& url,
                               const http::Response& response) {
    return fail(errcFromHttpStatus(response.status), method, " ", url, ": HTTP ", response.status,
                ": ", serverMessage(response.body));
}

// A 2xx reply of repo-server names what it stored ({"path", "sha256", "size", "created"}); a
// server answering without a sha256 (another implementation of the routes) is taken at its
// status.
Result<void> checkStored(const std::string& url, const http::Response& response,
                         const std::string& sha256) {
    auto doc = json::parseObject(response.body, "reply");
    if (!doc) return ok();
    auto stored = json::getString(*doc, "sha256", "reply");
    if (!stored) return ok();
    if (*stored != sha256)
        return fail(Errc::Corrupt, "PUT ", url, ": the repository stored bytes whose sha256 is ",
                    *stored, ", not ", sha256, " as sent");
    return ok();
}

}  // namespace

Result<void> downloadPackage(http::Client& client, const std::string& repo_url,
                             const std::string& sha256, const std::filesystem::path& file) {
    if (!crypto::isSha256Hex(sha256))
        return fail(Errc::Invalid, "'", sha256, "' is not a sha256 (64 lowercase hex digits)");
    auto url = http::joinUrl(repo_url, repo_layout::package(sha256));
    auto temp = files::tempSibling(file);
    UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd.valid()) return failErrno(Errc::Io, errno, "cannot create '", temp.string(), "'");
    struct RemoveUnlessKept {
        const std::filesystem::path& path;
        bool keep = false;
        ~RemoveUnlessKept() {
            if (!keep) ::unlink(path.c_str());
        }
    } cleanup{temp};
    crypto::Sha256 hash;
    http::StreamRequest request{.url = url, .on_data = [&](std::string_view data) -> Result<void> {
                                    hash.update(data);
                                    return files::writeAll(fd.get(), data, temp);
                                }};
    HOIST_ASSIGN(auto result, client.stream(request));
    if (result.status == 404)
        return fail(Errc::NotFound, "package ", sha256, " is not in the repository ", repo_url);
    if (result.status < 200 || result.status >= 300)
        return fail(errcFromHttpStatus(result.status), "GET ", url, ": HTTP ", result.status, ": ",
                    serverMessage(result.error_body));
    auto got = hash.finishHex();
    if (got != sha256)
        return fail(Errc::Corrupt, "package ", sha256,
                    ": the repository sent bytes whose sha256 is ", got);
    if (fd.close() != 0) return failErrno(Errc::Io, errno, "cannot write '", temp.string(), "'");
    std::error_code ec;
    std::filesystem::rename(temp, file, ec);
    if (ec)
        return failErrno(Errc::Io, ec.value(), "cannot rename '", temp.string(), "' to '",
                         file.string(), "'");
    cleanup.keep = true;
    return ok();
}

RepositoryUploader::RepositoryUploader(std::string repo_url, UploadOptions options)
    : repo_url_(std::move(repo_url)), options_(std::move(options)) {}

Result<Uploaded> RepositoryUploader::putPackage(const std::filesystem::path& file,
                                                const std::string& sha256) {
    if (!crypto::isSha256Hex(sha256))
        return fail(Errc::Invalid, "'", sha256, "' is not a sha256 (64 lowercase hex digits)");
    std::error_code ec;
    auto size = std::filesystem::file_size(file, ec);
    if (ec) return failErrno(Errc::NotFound, ec.value(), "cannot read '", file.string(), "'");
    std::string path = repo_layout::package(sha256);
    std::string url = http::joinUrl(repo_url_, path);
    http::Request head{
        .method = "HEAD", .url = url, .headers = {}, .connect_timeout = options_.connect_timeout};
    HOIST_ASSIGN(auto probe, client_.send(head, options_.retry));
    if (probe.status == 200) return Uploaded{path, sha256, size, false};
    if (probe.status != 404) return refused("HEAD", url, probe);
    return put(path, "application/octet-stream", {}, file, sha256, size);
}

Result<Uploaded> RepositoryUploader::putRelease(std::string_view version,
                                                std::string_view manifest) {
    HOIST_TRY(validateVersion(version));
    return put(repo_layout::release(version), "application/json", manifest, {},
               crypto::sha256Hex(manifest), manifest.size());
}

Result<Uploaded> RepositoryUploader::putSignature(std::string_view version,
                                                  std::string_view signature) {
    HOIST_TRY(validateVersion(version));
    return put(repo_layout::signature(version), "text/plain", signature, {},
               crypto::sha256Hex(signature), signature.size());
}

Result<Uploaded> RepositoryUploader::put(const std::string& path, std::string_view content_type,
                                         std::string_view body, const std::filesystem::path& file,
                                         const std::string& sha256, std::uint64_t size) {
    std::string url = http::joinUrl(repo_url_, path);
    std::vector<http::Header> headers;
    if (!options_.token.empty()) headers.push_back(http::bearer(options_.token));
    headers.push_back({"Content-Type", std::string(content_type)});
    http::Client::UploadProgress progress;
    if (options_.progress)
        progress = [this, &path](std::uint64_t sent, std::uint64_t total) {
            options_.progress(path, sent, total);
        };
    for (int attempt = 0;; ++attempt) {
        Result<http::Response> sent;
        if (file.empty()) {
            http::Request request{.method = "PUT",
                                  .url = url,
                                  .headers = headers,
                                  .body = std::string(body),
                                  .connect_timeout = options_.connect_timeout};
            sent = client_.send(request);
        } else {
            sent = client_.sendFile("PUT", url, headers, file, options_.connect_timeout,
                                    std::chrono::milliseconds(0), progress);
        }
        if (!http::isTransient(sent) || attempt + 1 >= options_.retry.attempts) {
            if (!sent) return std::unexpected(std::move(sent.error()));
            if (!sent->ok()) return refused("PUT", url, *sent);
            HOIST_TRY(checkStored(url, *sent, sha256));
            return Uploaded{path, sha256, size, sent->status == 201};
        }
        std::this_thread::sleep_for(http::backoffDelay(options_.retry, attempt));
    }
}

Result<FetchedRelease> fetchRelease(http::Client& client, const std::string& repo_url,
                                    const std::string& version,
                                    const std::vector<std::string>& trusted_public_pems,
                                    bool allow_unsigned) {
    HOIST_TRY(validateVersion(version));
    auto url = http::joinUrl(repo_url, repo_layout::release(version));
    HOIST_ASSIGN(auto manifest, getOptional(client, url));
    if (!manifest)
        return fail(Errc::NotFound, "release ", version, " is not in the repository (", url, ")");
    HOIST_ASSIGN(auto signature, getOptional(client, url + ".sig"));
    std::optional<std::string> sig_text;
    if (signature) sig_text = std::string(strings::trim(*signature));
    std::optional<std::string_view> sig_view;
    if (sig_text) sig_view = *sig_text;
    HOIST_ASSIGN(auto release, loadVerifiedRelease(*manifest, sig_view, trusted_public_pems,
                                                   allow_unsigned, "release " + version));
    if (release.version != version)
        return fail(Errc::Corrupt, "the repository's ", repo_layout::release(version),
                    " holds release ", release.version);
    return FetchedRelease{std::move(release), std::move(*manifest), std::move(sig_text)};
}

Result<void> saveRelease(const NodeLayout& layout, const FetchedRelease& fetched) {
    HOIST_TRY(files::makeDirs(layout.releases()));
    auto base = layout.releases() / (fetched.release.version + ".json");
    HOIST_TRY(files::writeFileAtomic(base, fetched.manifest));
    if (fetched.signature) {
        HOIST_TRY(files::writeFileAtomic(base.string() + ".sig", *fetched.signature + "\n"));
    }
    return ok();
}

}  // namespace hoist::pkgmgr
