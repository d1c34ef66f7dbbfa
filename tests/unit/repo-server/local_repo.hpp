#pragma once

// A repo-server serving a temporary folder on a loopback port in this process, for tests of
// the clients that upload to it (pkgmgr's RepositoryUploader, `cluster module`).

#include <memory>
#include <string>
#include <thread>

#include "repo_server/repository.hpp"
#include "repo_server/server.hpp"
#include "testing.hpp"

namespace hoist::testing {

class LocalRepo {
public:
    static constexpr std::string_view kToken = "upload-token-123";

    /// Serves `root` (created) with uploads allowed for kToken.
    explicit LocalRepo(const fs::path& root) : root_(root) {
        writeFile(root.parent_path() / "repo.token", std::string(kToken) + "\n");
        auto repo = repo_server::Repository::open(root);
        if (!repo) {
            error_ = repo.error().describe();
            return;
        }
        repo_server::Options options;
        options.root = root;
        options.port = 0;
        options.token_file = root.parent_path() / "repo.token";
        options.threads = 4;
        options.access_log = false;
        auto server = repo_server::makeServer(
            options, std::make_shared<repo_server::Repository>(std::move(*repo)));
        if (!server) {
            error_ = server.error().describe();
            return;
        }
        server_ = std::move(*server);
        auto port = server_->bind();
        if (!port) {
            error_ = port.error().describe();
            return;
        }
        url_ = "http://127.0.0.1:" + std::to_string(*port);
        thread_ = std::thread([this] { server_->run(); });
    }
    ~LocalRepo() {
        if (server_) server_->stop();
        if (thread_.joinable()) thread_.join();
    }
    LocalRepo(const LocalRepo&) = delete;
    LocalRepo& operator=(const LocalRepo&) = delete;

    /// Empty when it serves; else why it does not.
    const std::string& error() const { return error_; }
    const std::string& url() const { return url_; }
    const fs::path& root() const { return root_; }

private:
    fs::path root_;
    std::string error_;
    std::string url_;
    std::unique_ptr<http::Server> server_;
    std::thread thread_;
};

}  // namespace hoist::testing
