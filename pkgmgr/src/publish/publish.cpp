#include "pkgmgr/publish.hpp"

#include <algorithm>
#include <set>
#include <thread>

#include "core/crypto.hpp"
#include "core/files.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "pkgmgr/release.hpp"
#include "pkgmgr/repository.hpp"

namespace hoist::pkgmgr {

namespace {
namespace fs = std::filesystem;

constexpr std::size_t kMaxManifestBytes = 4u << 20;

std::string serverMessage(const std::string& body) {
    auto doc = json::parseObject(body, "reply");
    if (doc) {
        if (auto message = json::getString(*doc, "error", "reply")) return *message;
    }
    return body.substr(0, 200);
}

std::unexpected<Error> refused(std::string_view method, const std::string& url,
                               const http::Response& r) {
    return fail(errcFromHttpStatus(r.status), method, " ", url, ": HTTP ", r.status, ": ",
                serverMessage(r.body));
}

Result<fs::path> regularFile(const fs::path& file) {
    std::error_code ec;
    auto status = fs::status(file, ec);
    if (ec || !fs::exists(status))
        return fail(Errc::NotFound, "'", file.string(), "' does not exist");
    if (!fs::is_regular_file(status))
        return fail(Errc::Invalid, "'", file.string(), "' is not a regular file");
    return file;
}

bool endsWith(const fs::path& file, std::string_view suffix) {
    return file.filename().string().ends_with(suffix);
}

// The version a "<version>.json.sig" file names, from its file name.
std::string versionOfSignatureName(const fs::path& file) {
    std::string name = file.filename().string();
    return name.substr(0, name.size() - std::string_view(".json.sig").size());
}

class Uploader {
public:
    explicit Uploader(const PublishOptions& options) : options_(options) {}

    Result<void> upload(PublishItem& item) {
        std::string url = http::joinUrl(options_.repo_url, item.remote_path);
        if (item.kind == PublishItem::Kind::Package) {
            http::Request head{.method = "HEAD",
                               .url = url,
                               .headers = {},
                               .connect_timeout = options_.connect_timeout};
            HOIST_ASSIGN(auto probe, client_.send(head, options_.retry));
            if (probe.status == 200) {
                item.uploaded = false;
                return ok();
            }
            if (probe.status != 404) return refused("HEAD", url, probe);
        }
        std::vector<http::Header> headers{http::bearer(options_.token)};
        headers.push_back({"Content-Type", item.kind == PublishItem::Kind::Release
                                               ? "application/json"
                                               : "application/octet-stream"});
        for (int attempt = 0;; ++attempt) {
            auto sent = client_.sendFile("PUT", url, headers, item.file, options_.connect_timeout);
            if (!http::isTransient(sent) || attempt + 1 >= options_.retry.attempts) {
                if (!sent) return std::unexpected(std::move(sent.error()));
                if (!sent->ok()) return refused("PUT", url, *sent);
                item.uploaded = sent->status == 201;
                return ok();
            }
            std::this_thread::sleep_for(http::backoffDelay(options_.retry, attempt));
        }
    }

private:
    const PublishOptions& options_;
    http::Client client_;
};
}  // namespace

std::string_view kindName(PublishItem::Kind kind) {
    switch (kind) {
        case PublishItem::Kind::Package:
            return "package";
        case PublishItem::Kind::Release:
            return "release";
        case PublishItem::Kind::Signature:
            return "signature";
    }
    return "package";
}

Result<std::vector<PublishItem>> planPublish(const std::vector<fs::path>& files) {
    std::vector<PublishItem> packages, releases, signatures;
    std::set<fs::path> seen;
    auto addSignature = [&](const fs::path& file, const std::string& version) -> Result<void> {
        if (!seen.insert(fs::absolute(file).lexically_normal()).second) return ok();
        HOIST_ASSIGN(auto text, files::readFile(file, kMaxManifestBytes));
        PublishItem item{PublishItem::Kind::Signature,
                         file,
                         repo_layout::signature(version),
                         crypto::sha256Hex(text),
                         text.size(),
                         version,
                         false};
        signatures.push_back(std::move(item));
        return ok();
    };
    std::vector<fs::path> explicit_signatures;
    for (const auto& file : files) {
        HOIST_TRY(regularFile(file));
        if (endsWith(file, ".json.sig")) {
            explicit_signatures.push_back(file);
            continue;
        }
        if (!seen.insert(fs::absolute(file).lexically_normal()).second) continue;
        if (endsWith(file, ".json")) {
            HOIST_ASSIGN(auto text, files::readFile(file, kMaxManifestBytes));
            auto release = Release::parse(text);
            if (!release) return std::unexpected(withContext(release.error(), file.string()));
            PublishItem item{PublishItem::Kind::Release,
                             file,
                             repo_layout::release(release->version),
                             crypto::sha256Hex(text),
                             text.size(),
                             release->version,
                             false};
            releases.push_back(std::move(item));
            fs::path sig = file;
            sig += ".sig";
            if (std::error_code ec; fs::is_regular_file(sig, ec))
                HOIST_TRY(addSignature(sig, release->version));
            continue;
        }
        HOIST_ASSIGN(auto sha, crypto::sha256File(file));
        std::error_code ec;
        auto size = fs::file_size(file, ec);
        if (ec) return failErrno(Errc::Io, ec.value(), "cannot stat '", file.string(), "'");
        packages.push_back(
            {PublishItem::Kind::Package, file, repo_layout::package(sha), sha, size, "", false});
    }
    for (const auto& file : explicit_signatures) {
        // The signature of a manifest given too takes that manifest's version.
        fs::path manifest = file;
        manifest.replace_extension();
        std::string version = versionOfSignatureName(file);
        for (const auto& r : releases)
            if (fs::absolute(r.file).lexically_normal() ==
                fs::absolute(manifest).lexically_normal())
                version = r.version;
        HOIST_TRY(addSignature(file, version));
    }
    // Packages before the manifests that name them, manifests before their signatures.
    std::vector<PublishItem> plan = std::move(packages);
    plan.insert(plan.end(), releases.begin(), releases.end());
    plan.insert(plan.end(), signatures.begin(), signatures.end());
    return plan;
}

Result<std::vector<PublishItem>> publish(const std::vector<fs::path>& files,
                                         const PublishOptions& options) {
    if (options.repo_url.empty()) return fail(Errc::Invalid, "no repository URL given");
    if (options.token.empty()) return fail(Errc::Invalid, "no upload token given");
    HOIST_ASSIGN(auto plan, planPublish(files));
    Uploader uploader(options);
    for (auto& item : plan) {
        if (auto done = uploader.upload(item); !done)
            return std::unexpected(
                withContext(done.error(), "publishing '" + item.file.string() + "'"));
        log::debug("publish", item.uploaded ? "uploaded" : "already there",
                   {{"kind", kindName(item.kind)}, {"path", item.remote_path}});
        if (options.on_item) options.on_item(item);
    }
    return plan;
}

}  // namespace hoist::pkgmgr
