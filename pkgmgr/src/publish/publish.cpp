#include "pkgmgr/publish.hpp"

#include <algorithm>
#include <set>

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

// The upload of one planned item (packages streamed from disk; manifests and signatures are
// small and sent as the bytes read here).
Result<bool> upload(RepositoryUploader& repo, const PublishItem& item) {
    if (item.kind == PublishItem::Kind::Package) {
        HOIST_ASSIGN(auto done, repo.putPackage(item.file, item.sha256));
        return done.created;
    }
    HOIST_ASSIGN(auto text, files::readFile(item.file, kMaxManifestBytes));
    if (crypto::sha256Hex(text) != item.sha256)
        return fail(Errc::Conflict, "'", item.file.string(), "' changed while it was published");
    auto done = item.kind == PublishItem::Kind::Release ? repo.putRelease(item.version, text)
                                                        : repo.putSignature(item.version, text);
    if (!done) return std::unexpected(std::move(done.error()));
    return done->created;
}
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
    RepositoryUploader repo(options.repo_url, {.token = options.token,
                                               .retry = options.retry,
                                               .connect_timeout = options.connect_timeout,
                                               .progress = options.progress});
    for (auto& item : plan) {
        auto done = upload(repo, item);
        if (!done)
            return std::unexpected(
                withContext(done.error(), "publishing '" + item.file.string() + "'"));
        item.uploaded = *done;
        log::debug("publish", item.uploaded ? "uploaded" : "already there",
                   {{"kind", kindName(item.kind)}, {"path", item.remote_path}});
        if (options.on_item) options.on_item(item);
    }
    return plan;
}

}  // namespace hoist::pkgmgr
