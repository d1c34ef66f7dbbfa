// pkgmgr's RepositoryUploader (the one upload path of `pkgmgr publish` and `cluster module`)
// against a real repo-server on a loopback port, and against a stand-in server for what
// repo-server never does (fail transiently, store other bytes).

#include <atomic>

#include <gtest/gtest.h>

#include "core/crypto.hpp"
#include "core/http_server.hpp"
#include "local_repo.hpp"
#include "pkgmgr/release.hpp"
#include "pkgmgr/repository.hpp"

namespace hoist::testing {
namespace {

class Upload : public ::testing::Test {
protected:
    void SetUp() override {
        repo_ = std::make_unique<LocalRepo>(tmp_ / "repo");
        ASSERT_EQ(repo_->error(), "");
    }

    pkgmgr::RepositoryUploader uploader(std::string token = std::string(LocalRepo::kToken)) {
        pkgmgr::UploadOptions options;
        options.token = std::move(token);
        options.retry.base = std::chrono::milliseconds(1);
        options.progress = [this](const std::string& path, std::uint64_t sent,
                                  std::uint64_t total) {
            progress_path_ = path;
            last_sent_ = sent;
            total_ = total;
        };
        return pkgmgr::RepositoryUploader(repo_->url(), std::move(options));
    }

    std::string releaseOf(const std::string& version, const std::string& sha, std::size_t size,
                          std::vector<std::string> upgrade_from = {}) {
        pkgmgr::Release release;
        release.version = version;
        release.upgrade_from = std::move(upgrade_from);
        release.roles["master"] = {{"mesos--" + version, sha, size}};
        return release.toJson();
    }

    TempFolder tmp_;
    std::unique_ptr<LocalRepo> repo_;
    std::string progress_path_;
    std::uint64_t last_sent_ = 0;
    std::uint64_t total_ = 0;
};

TEST_F(Upload, PackageIsSentOnceWithProgressAndThenFoundByHead) {
    std::string bytes(300000, 'p');
    std::string sha = crypto::sha256Hex(bytes);
    writeFile(tmp_ / "p.tar", bytes);
    auto repo = uploader();
    auto first = repo.putPackage(tmp_ / "p.tar", sha);
    ASSERT_OK(first);
    EXPECT_TRUE(first->created);
    EXPECT_EQ(first->path, "packages/" + sha);
    EXPECT_EQ(first->size, bytes.size());
    EXPECT_EQ(readFile(repo_->root() / "packages" / sha), bytes);
    EXPECT_EQ(progress_path_, "packages/" + sha);
    EXPECT_EQ(last_sent_, bytes.size());
    EXPECT_EQ(total_, bytes.size());

    progress_path_.clear();
    auto again = repo.putPackage(tmp_ / "p.tar", sha);
    ASSERT_OK(again);
    EXPECT_FALSE(again->created);
    EXPECT_EQ(progress_path_, "") << "a package the repository has is not sent again";
}

TEST_F(Upload, ReleaseAndSignatureAreStoredAsSentAndImmutable) {
    std::string bytes(1000, 'q');
    std::string sha = crypto::sha256Hex(bytes);
    writeFile(tmp_ / "p.tar", bytes);
    auto repo = uploader();
    ASSERT_OK(repo.putPackage(tmp_ / "p.tar", sha));
    std::string manifest = releaseOf("3.0.0", sha, bytes.size());
    auto release = repo.putRelease("3.0.0", manifest);
    ASSERT_OK(release);
    EXPECT_TRUE(release->created);
    EXPECT_EQ(release->sha256, crypto::sha256Hex(manifest));
    EXPECT_EQ(readFile(repo_->root() / "releases/3.0.0.json"), manifest);
    std::string signature = crypto::base64Encode(std::string(64, 's'));
    ASSERT_OK(repo.putSignature("3.0.0", signature));
    EXPECT_EQ(readFile(repo_->root() / "releases/3.0.0.json.sig"), signature);

    auto same = repo.putRelease("3.0.0", manifest);
    ASSERT_OK(same);
    EXPECT_FALSE(same->created);
    ASSERT_ERROR(repo.putRelease("3.0.0", releaseOf("3.0.0", sha, bytes.size(), {"2.*"})),
                 Errc::Conflict, "PUT " + repo_->url() + "/releases/3.0.0.json: HTTP 409: ");
    ASSERT_ERROR(repo.putRelease("../x", manifest), Errc::Invalid, "");
}

TEST_F(Upload, RefusalsKeepTheirCodeAndTheServersWords) {
    std::string bytes(1000, 'r');
    std::string sha = crypto::sha256Hex(bytes);
    writeFile(tmp_ / "p.tar", bytes);
    ASSERT_ERROR(uploader("wrong").putPackage(tmp_ / "p.tar", sha), Errc::Unauthorized,
                 "PUT " + repo_->url() + "/packages/" + sha + ": HTTP 401: wrong bearer token");
    std::string other = crypto::sha256Hex("other");
    ASSERT_ERROR(uploader().putPackage(tmp_ / "p.tar", other), Errc::Corrupt,
                 "PUT " + repo_->url() + "/packages/" + other + ": HTTP 422: ");
    ASSERT_ERROR(uploader().putRelease("4.0.0", releaseOf("4.0.0", other, 5)), Errc::Invalid,
                 "PUT " + repo_->url() + "/releases/4.0.0.json: HTTP 4");
    ASSERT_ERROR(uploader().putPackage(tmp_ / "missing.tar", sha), Errc::NotFound, "missing.tar");
    EXPECT_FALSE(fs::exists(repo_->root() / "packages" / sha));
    EXPECT_FALSE(fs::exists(repo_->root() / "packages" / other));
}

// A stand-in for what repo-server does not do: answer 503 twice before storing, and claim to
// have stored other bytes.
class StandIn {
public:
    explicit StandIn(std::string stored_sha) : stored_sha_(std::move(stored_sha)) {
        auto server = http::Server::create({});
        EXPECT_TRUE(server.has_value());
        server_ = std::move(*server);
        // HEAD is answered by the GET route.
        server_->route("GET", "/packages/(.*)",
                       [](const http::ServerRequest&) { return http::ServerReply::text(404, ""); });
        server_->route("PUT", "/(.*)", [this](const http::ServerRequest& request) {
            if (puts_.fetch_add(1) < 2) return http::ServerReply::error(503, "busy");
            std::string sha = stored_sha_.empty() ? crypto::sha256Hex(request.body) : stored_sha_;
            return http::ServerReply::json(201, R"({"path": ")" + request.matches.at(1) +
                                                    R"(", "sha256": ")" + sha +
                                                    R"(", "size": 1, "created": true})");
        });
        auto port = server_->bind();
        EXPECT_TRUE(port.has_value());
        url_ = "http://127.0.0.1:" + std::to_string(*port);
        thread_ = std::thread([this] { server_->run(); });
    }
    ~StandIn() {
        server_->stop();
        thread_.join();
    }
    StandIn(const StandIn&) = delete;
    StandIn& operator=(const StandIn&) = delete;

    const std::string& url() const { return url_; }
    int puts() const { return puts_.load(); }

private:
    std::string stored_sha_;
    std::unique_ptr<http::Server> server_;
    std::string url_;
    std::thread thread_;
    std::atomic<int> puts_{0};
};

pkgmgr::UploadOptions quickRetries(int attempts) {
    pkgmgr::UploadOptions options;
    options.token = "t";
    options.retry = {.attempts = attempts,
                     .base = std::chrono::milliseconds(1),
                     .cap = std::chrono::milliseconds(5)};
    return options;
}

TEST(UploadRetries, TransientRefusalsAreRetriedAsThePolicySays) {
    StandIn server("");
    pkgmgr::RepositoryUploader patient(server.url(), quickRetries(3));
    auto done = patient.putRelease("1.0.0", "{}");
    ASSERT_OK(done);
    EXPECT_EQ(server.puts(), 3);

    StandIn again("");
    pkgmgr::RepositoryUploader hasty(again.url(), quickRetries(2));
    ASSERT_ERROR(hasty.putSignature("1.0.0", "sig"), Errc::Unhealthy,
                 "PUT " + again.url() + "/releases/1.0.0.json.sig: HTTP 503: busy");
    EXPECT_EQ(again.puts(), 2);
}

TEST(UploadRetries, AReplyNamingOtherBytesIsCorrupt) {
    StandIn server(crypto::sha256Hex("something else"));
    TempFolder tmp;
    writeFile(tmp / "p.tar", "package bytes");
    std::string sha = crypto::sha256Hex("package bytes");
    pkgmgr::RepositoryUploader repo(server.url(), quickRetries(3));
    ASSERT_ERROR(repo.putPackage(tmp / "p.tar", sha), Errc::Corrupt,
                 "the repository stored bytes whose sha256 is " +
                     crypto::sha256Hex("something else") + ", not " + sha + " as sent");
}

}  // namespace
}  // namespace hoist::testing
