// Fetching packages from a repository over real HTTP on loopback (and file://): resume after
// a dropped connection, restart when Range is ignored, wrong bytes refused, parallel fetches.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <random>
#include <thread>

#include "core/crypto.hpp"
#include "core/http_server.hpp"
#include "pkgmgr/fetch.hpp"
#include "raw_http_server.hpp"
#include "store_fixtures.hpp"

namespace hoist::pkgmgr {
namespace {

using testing::ArchiveBuilder;

/// A package with enough incompressible bytes that "half the body" is a real split.
std::string bigPackage(const std::string& version, std::size_t random_bytes = 256 * 1024) {
    std::mt19937 rng(static_cast<unsigned>(std::hash<std::string>{}(version)));
    std::string noise(random_bytes, '\0');
    for (auto& c : noise) c = static_cast<char>(rng() & 0xff);
    ArchiveBuilder b;
    b.pkginfo("big", version).dir("share").file("share/noise", noise);
    return b.finish();
}

/// A repository folder served by core http::Server: GET /packages/<sha> with Range support.
class Repo {
public:
    explicit Repo(fs::path dir) : dir_(std::move(dir)) {
        auto server = http::Server::create({.component = "test-repo", .access_log = false});
        server_ = std::move(*server);
        server_->route("GET", "/packages/([0-9a-f]{64})", [this](const http::ServerRequest& req) {
            ++requests_;
            {
                std::lock_guard lock(mutex_);
                ranges_.push_back(req.header("Range").value_or("-"));
            }
            auto path = dir_ / "packages" / req.matches[1];
            std::error_code ec;
            auto size = fs::file_size(path, ec);
            if (ec) return http::ServerReply::error(404, "no such package");
            http::ServerReply reply;
            reply.content_type = "application/octet-stream";
            reply.file = http::FileBody{path, size};
            return reply;
        });
        port_ = *server_->bind();
        thread_ = std::thread([this] { server_->run(); });
    }
    ~Repo() {
        server_->stop();
        thread_.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    /// Publishes bytes under a name (normally their own sha256).
    void put(const std::string& name, const std::string& bytes) {
        testing::writeFile(dir_ / "packages" / name, bytes);
    }
    int requests() const { return requests_.load(); }
    std::vector<std::string> ranges() {
        std::lock_guard lock(mutex_);
        return ranges_;
    }

private:
    fs::path dir_;
    std::unique_ptr<http::Server> server_;
    int port_ = 0;
    std::thread thread_;
    std::atomic<int> requests_{0};
    std::mutex mutex_;
    std::vector<std::string> ranges_;
};

class FetchTest : public ::testing::Test, public store_testing::StoreFixture {
protected:
    void SetUp() override { ASSERT_OK(layout.ensure()); }
    FetchOptions quick() const {
        FetchOptions o;
        o.retry = {.attempts = 4,
                   .base = std::chrono::milliseconds(1),
                   .cap = std::chrono::milliseconds(20)};
        o.retry_for = std::chrono::seconds(3);
        return o;
    }
    bool downloadsEmpty() const { return fs::is_empty(layout.downloads()); }
};

TEST_F(FetchTest, FetchesVerifiesAndAdds) {
    Repo repo(tmp / "repo");
    auto bytes = bigPackage("1.0");
    auto sha = crypto::sha256Hex(bytes);
    repo.put(sha, bytes);
    auto got = fetchPackage(store, repo.url(), sha, quick());
    ASSERT_OK(got);
    EXPECT_EQ(got->ref.sha256, sha);
    EXPECT_EQ(got->ref.id, "big--1.0");
    EXPECT_TRUE(store.has(sha));
    EXPECT_TRUE(downloadsEmpty());
    // Already there: no request at all.
    int before = repo.requests();
    ASSERT_OK(fetchPackage(store, repo.url(), sha, quick()));
    EXPECT_EQ(repo.requests(), before);
}

TEST_F(FetchTest, ResumesAfterTheConnectionDropsHalfway) {
    auto bytes = bigPackage("2.0");
    auto sha = crypto::sha256Hex(bytes);
    testing::RawHttpServer server({{"/packages/" + sha, bytes}},
                                  testing::RawHttpServer::Mode::DropFirstHalfway);
    auto got = fetchPackage(store, server.url(), sha, quick());
    ASSERT_OK(got);
    EXPECT_EQ(got->ref.sha256, sha);
    auto requests = server.requests();
    ASSERT_EQ(requests.size(), 2u);
    EXPECT_EQ(requests[0], "GET /packages/" + sha + " range=-");
    // The second request resumes where the first stopped, not at 0.
    EXPECT_TRUE(requests[1].starts_with("GET /packages/" + sha + " range=bytes=")) << requests[1];
    EXPECT_NE(requests[1], "GET /packages/" + sha + " range=bytes=0-");
    auto report = store.verify(sha);
    ASSERT_OK(report);
    EXPECT_TRUE(report->ok());
    EXPECT_TRUE(downloadsEmpty());
}

TEST_F(FetchTest, ResumesAPartialFileLeftByAnEarlierRun) {
    Repo repo(tmp / "repo");
    auto bytes = bigPackage("3.0");
    auto sha = crypto::sha256Hex(bytes);
    repo.put(sha, bytes);
    testing::writeFile(layout.downloads() / (sha + ".part"), bytes.substr(0, 100000));
    auto got = fetchPackage(store, repo.url(), sha, quick());
    ASSERT_OK(got);
    EXPECT_EQ(repo.ranges(), std::vector<std::string>{"bytes=100000-"});
    EXPECT_TRUE(downloadsEmpty());
}

TEST_F(FetchTest, StartsOverWhenTheServerIgnoresRange) {
    auto bytes = bigPackage("4.0");
    auto sha = crypto::sha256Hex(bytes);
    testing::RawHttpServer server({{"/packages/" + sha, bytes}},
                                  testing::RawHttpServer::Mode::IgnoreRange);
    testing::writeFile(layout.downloads() / (sha + ".part"), bytes.substr(0, 5000));
    auto got = fetchPackage(store, server.url(), sha, quick());
    ASSERT_OK(got);
    EXPECT_EQ(got->ref.sha256, sha);
    auto requests = server.requests();
    ASSERT_EQ(requests.size(), 2u);
    EXPECT_EQ(requests[0], "GET /packages/" + sha + " range=bytes=5000-");
    EXPECT_EQ(requests[1], "GET /packages/" + sha + " range=-");
}

TEST_F(FetchTest, WrongBytesAreRefusedAndNothingIsKept) {
    Repo repo(tmp / "repo");
    auto wanted = bigPackage("5.0");
    auto sha = crypto::sha256Hex(wanted);
    auto other = bigPackage("6.0");
    repo.put(sha, other);
    auto before = store_testing::snapshot(layout.root);
    auto got = fetchPackage(store, repo.url(), sha, quick());
    ASSERT_FALSE(got);
    EXPECT_EQ(got.error().code, Errc::Corrupt);
    EXPECT_EQ(got.error().message, "package " + sha +
                                       ": the repository sent bytes whose sha256 is " +
                                       crypto::sha256Hex(other));
    EXPECT_EQ(store_testing::snapshot(layout.root), before);
    EXPECT_TRUE(downloadsEmpty());
}

TEST_F(FetchTest, AVerifiedButHostilePackageIsNotKept) {
    Repo repo(tmp / "repo");
    ArchiveBuilder b;
    b.pkginfo().file("../escape", "x");
    auto bytes = b.finish();
    auto sha = crypto::sha256Hex(bytes);
    repo.put(sha, bytes);
    auto before = store_testing::snapshot(layout.root);
    auto got = fetchPackage(store, repo.url(), sha, quick());
    ASSERT_FALSE(got);
    EXPECT_EQ(got.error().code, Errc::Invalid);
    EXPECT_NE(got.error().message.find("entry '../escape': '..' is not allowed in a path"),
              std::string::npos)
        << got.error().message;
    EXPECT_EQ(store_testing::snapshot(layout.root), before);
}

TEST_F(FetchTest, MissingPackageIsNotFound) {
    Repo repo(tmp / "repo");
    std::string sha(64, 'c');
    auto got = fetchPackage(store, repo.url(), sha, quick());
    ASSERT_ERROR(got, Errc::NotFound, "package " + sha + " is not in the repository " + repo.url());
    EXPECT_TRUE(downloadsEmpty());  // a 404 leaves no .part
    ASSERT_ERROR(fetchPackage(store, repo.url(), "nope", quick()), Errc::Invalid,
                 "'nope' is not a sha256 (64 lowercase hex digits)");
}

TEST_F(FetchTest, FileRepositories) {
    auto bytes = bigPackage("7.0", 4096);
    auto sha = crypto::sha256Hex(bytes);
    testing::writeFile(tmp / "filerepo/packages" / sha, bytes);
    auto got = fetchPackage(store, "file://" + (tmp / "filerepo").string(), sha, quick());
    ASSERT_OK(got);
    EXPECT_EQ(got->ref.id, "big--7.0");
}

// What a killed fetch or stage leaves (part of the bytes, or all of them before the add) is
// resumed from a file repository too.
TEST_F(FetchTest, FileRepositoriesResumeAPartialOrCompletePart) {
    auto bytes = bigPackage("7.1", 64 * 1024);
    auto sha = crypto::sha256Hex(bytes);
    testing::writeFile(tmp / "filerepo/packages" / sha, bytes);
    auto repo = "file://" + (tmp / "filerepo").string();
    testing::writeFile(layout.downloads() / (sha + ".part"), bytes.substr(0, bytes.size() / 3));
    auto got = fetchPackage(store, repo, sha, quick());
    ASSERT_OK(got);
    ASSERT_OK(store.remove(sha));
    testing::writeFile(layout.downloads() / (sha + ".part"), bytes);
    got = fetchPackage(store, repo, sha, quick());
    ASSERT_OK(got);
    EXPECT_TRUE(downloadsEmpty());
}

TEST_F(FetchTest, ManyInParallel) {
    Repo repo(tmp / "repo");
    std::vector<std::string> shas;
    for (int i = 0; i < 12; ++i) {
        auto bytes = bigPackage("1." + std::to_string(i), 8192);
        shas.push_back(crypto::sha256Hex(bytes));
        repo.put(shas.back(), bytes);
    }
    shas.push_back(shas.front());  // a repeat is fetched once
    auto options = quick();
    options.parallel = 4;
    std::atomic<int> done{0};
    options.progress = [&](const FetchProgress& p) {
        if (p.done) ++done;
    };
    auto got = fetchPackages(store, repo.url(), shas, options);
    ASSERT_OK(got);
    ASSERT_EQ(got->size(), shas.size());
    for (std::size_t i = 0; i < shas.size(); ++i) EXPECT_EQ((*got)[i].ref.sha256, shas[i]);
    EXPECT_EQ(repo.requests(), 12);
    EXPECT_EQ(done.load(), 12);
    auto listed = store.list();
    ASSERT_OK(listed);
    EXPECT_EQ(listed->size(), 12u);
}

TEST_F(FetchTest, ParallelStopsAtTheFirstErrorAndKeepsWhatItFetched) {
    Repo repo(tmp / "repo");
    auto good = bigPackage("8.0", 4096);
    repo.put(crypto::sha256Hex(good), good);
    std::string missing(64, 'd');
    auto got = fetchPackages(store, repo.url(), {crypto::sha256Hex(good), missing}, quick());
    ASSERT_ERROR(got, Errc::NotFound, "package " + missing + " is not in the repository");
    // Index 0 is always taken before index 1 fails, so it always completes.
    EXPECT_TRUE(store.has(crypto::sha256Hex(good)));
}

}  // namespace
}  // namespace hoist::pkgmgr
