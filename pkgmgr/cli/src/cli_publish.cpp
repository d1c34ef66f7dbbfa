#include "cli_internal.hpp"

#include <unistd.h>

#include <chrono>
#include <memory>

#include "core/files.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"
#include "pkgmgr/publish.hpp"

namespace hoist::pkgmgr {

namespace {
struct PublishArgs {
    std::string repo;
    std::string token_file;
    std::vector<std::string> files;
};

std::string describe(const PublishItem& item) {
    std::string what = std::string(kindName(item.kind)) + " ";
    what += item.kind == PublishItem::Kind::Package ? item.sha256 : item.version;
    what += " (" + item.file.string() + ", " + strings::humanBytes(static_cast<double>(item.size)) +
            ")";
    return what;
}

int runPublish(const Cli& cli, const PublishArgs& args) {
    auto token = files::readSecretFile(args.token_file, "--token-file");
    if (!token) return cli.fail(token.error());
    PublishOptions options;
    options.repo_url = args.repo;
    options.token = std::move(*token);
    if (!cli.json) {
        options.on_item = [&cli](const PublishItem& item) {
            cli.out << (item.uploaded ? "uploaded " : "present  ") << describe(item) << "\n";
        };
    }
    if (!cli.json && ::isatty(STDERR_FILENO) == 1) {
        // A package's bytes as they go, on one line redrawn at most 5 times a second and
        // cleared when it is done; stdout keeps one line per file.
        options.progress = [&cli, last = std::chrono::steady_clock::time_point{}](
                               const std::string& path, std::uint64_t sent,
                               std::uint64_t total) mutable {
            if (total == 0) return;
            auto now = std::chrono::steady_clock::now();
            if (sent < total && now - last < std::chrono::milliseconds(200)) return;
            last = now;
            cli.err << "\r\033[K";
            if (sent < total)
                cli.err << "uploading " << path.substr(0, 24) << "... "
                        << strings::humanBytes(static_cast<double>(sent)) << " of "
                        << strings::humanBytes(static_cast<double>(total));
            cli.err << std::flush;
        };
    }
    std::vector<std::filesystem::path> paths(args.files.begin(), args.files.end());
    auto published = publish(paths, options);
    if (!published) return cli.fail(published.error());
    if (cli.json) {
        json::Writer w;
        w.beginObject().field("repo", args.repo).key("items").beginArray();
        for (const auto& item : *published) {
            w.beginObject()
                .field("kind", kindName(item.kind))
                .field("file", item.file.string())
                .field("path", item.remote_path)
                .field("sha256", item.sha256)
                .field("size", item.size);
            if (!item.version.empty()) w.field("version", item.version);
            w.field("uploaded", item.uploaded).endObject();
        }
        w.endArray().endObject();
        cli.out << w.str() << "\n";
    }
    return 0;
}
}  // namespace

void addPublishCommands(Cli& cli) {
    auto args = std::make_shared<PublishArgs>();
    auto* cmd = cli.app.add_subcommand(
        "publish",
        "upload package tarballs (skipping those the repository has) and release manifests "
        "(*.json, with their .json.sig) to a repository");
    cmd->add_option("--repo", args->repo, "repository URL (http://host:port)")->required();
    cmd->add_option("--token-file", args->token_file, "file holding the repository's upload token")
        ->required();
    cmd->add_flag("--json", cli.json, "print what was uploaded as JSON");
    cmd->add_option("files", args->files, "package tarballs, release manifests and signatures")
        ->required();
    cmd->callback([&cli, args] { cli.action = [&cli, args] { return runPublish(cli, *args); }; });
}

}  // namespace hoist::pkgmgr
