#include <thread>

#include <gtest/gtest.h>

#include "core/crypto.hpp"
#include "repo_server/repository.hpp"
#include "repo_server/server.hpp"
#include "testing.hpp"

namespace hoist::repo_server {
namespace {

using testing::TempFolder;

// A request body delivered in chunks of `chunk` bytes, as the HTTP server's reader does.
std::function<bool(const http::BodySink&)> bodyOf(std::string bytes, std::size_t chunk = 4096) {
    return [bytes = std::move(bytes), chunk](const http::BodySink& sink) {
        for (std::size_t at = 0; at < bytes.size(); at += chunk)
            if (!sink(std::string_view(bytes).substr(at, chunk))) return false;
        return true;
    };
}

std::size_t entries(const fs::path& dir) {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
    return n;
}

TEST(Repository, StoresPackagesUnderTheirHash) {
    TempFolder tmp;
    auto repo = Repository::open(tmp / "repo");
    ASSERT_OK(repo);
    std::string bytes(100000, 'x');
    std::string sha = crypto::sha256Hex(bytes);
    auto stored = repo->putPackage(sha, bodyOf(bytes), 1 << 20);
    ASSERT_OK(stored);
    EXPECT_TRUE(stored->created);
    EXPECT_EQ(stored->size, bytes.size());
    auto again = repo->putPackage(sha, bodyOf(bytes), 1 << 20);
    ASSERT_OK(again);
    EXPECT_FALSE(again->created);
    auto path = repo->packageFile(sha);
    ASSERT_OK(path);
    EXPECT_EQ(testing::readFile(*path), bytes);
    EXPECT_EQ(repo->packageCount(), 1u);
    ASSERT_ERROR(repo->packageFile(std::string(64, 'a')), Errc::NotFound,
                 "is not in the repository");
    ASSERT_ERROR(repo->packageFile("../x"), Errc::Invalid, "is not a package name");
}

TEST(Repository, RefusesWrongHashesAndOversizedBodiesKeepingNothing) {
    TempFolder tmp;
    auto repo = Repository::open(tmp / "repo");
    ASSERT_OK(repo);
    std::string bytes(50000, 'y');
    std::string other = crypto::sha256Hex("z");
    ASSERT_ERROR(repo->putPackage(other, bodyOf(bytes), 1 << 20), Errc::Corrupt,
                 "the body hashes to " + crypto::sha256Hex(bytes) + ", not to its name " + other);
    ASSERT_ERROR(repo->putPackage(crypto::sha256Hex(bytes), bodyOf(bytes), 1000), Errc::Invalid,
                 "exceeds the maximum upload size of 1000 bytes");
    auto interrupted = [](const http::BodySink& sink) {
        sink("partial");
        return false;
    };
    ASSERT_ERROR(repo->putPackage(crypto::sha256Hex(bytes), interrupted, 1 << 20), Errc::Invalid,
                 "ended before its body did");
    EXPECT_EQ(entries(tmp / "repo" / "packages"), 0u);
    EXPECT_EQ(entries(tmp / "repo" / ".tmp"), 0u);
}

TEST(Repository, ConcurrentUploadsOfOnePackageCreateItOnce) {
    TempFolder tmp;
    auto repo = Repository::open(tmp / "repo");
    ASSERT_OK(repo);
    std::string bytes(1 << 20, 'p');
    std::string sha = crypto::sha256Hex(bytes);
    std::vector<std::thread> threads;
    std::atomic<int> created{0}, failed{0};
    for (int i = 0; i < 8; ++i) {
        threads.emplace_back([&] {
            auto r = repo->putPackage(sha, bodyOf(bytes, 1000), 2 << 20);
            if (!r)
                ++failed;
            else if (r->created)
                ++created;
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(failed.load(), 0);
    EXPECT_EQ(created.load(), 1);
    EXPECT_EQ(testing::readFile(tmp / "repo" / "packages" / sha), bytes);
    EXPECT_EQ(entries(tmp / "repo" / ".tmp"), 0u);
}

TEST(Repository, IndexListsVersionsOldestFirst) {
    TempFolder tmp;
    auto repo = Repository::open(tmp / "repo");
    ASSERT_OK(repo);
    std::string bytes = "package";
    std::string sha = crypto::sha256Hex(bytes);
    ASSERT_OK(repo->putPackage(sha, bodyOf(bytes), 100));
    for (std::string v : {"2.0.0", "10.0.0", "2.0.0-rc.1", "1.9", "2.0.1"}) {
        std::string manifest =
            R"({"version": ")" + v +
            R"(", "roles": {"agent": {"packages": [{"id": "mesos--1.0", "sha256": ")" + sha +
            R"(", "size": 7}]}}})";
        ASSERT_OK(repo->putRelease(v, manifest));
    }
    auto versions = repo->versions();
    ASSERT_OK(versions);
    EXPECT_EQ(*versions,
              (std::vector<std::string>{"1.9", "2.0.0-rc.1", "2.0.0", "2.0.1", "10.0.0"}));
    EXPECT_EQ(testing::readFile(tmp / "repo" / "releases" / "index.json"),
              "{\"versions\":[\"1.9\",\"2.0.0-rc.1\",\"2.0.0\",\"2.0.1\",\"10.0.0\"]}\n");
    EXPECT_EQ(repo->releaseCount(), 5u);
    ASSERT_OK(repo->releaseFile("index.json"));
    ASSERT_OK(repo->releaseFile("2.0.0.json"));
    ASSERT_ERROR(repo->releaseFile("2.0.0.json.sig"), Errc::NotFound, "no release file");
    ASSERT_ERROR(repo->releaseFile("../packages/" + sha), Errc::NotFound, "no release file");
}

TEST(Repository, ReleaseVersionsAreSafeFileNames) {
    EXPECT_TRUE(isReleaseVersion("2.0.0"));
    EXPECT_TRUE(isReleaseVersion("2.0.0-rc.1+build~x"));
    EXPECT_FALSE(isReleaseVersion(""));
    EXPECT_FALSE(isReleaseVersion(".."));
    EXPECT_FALSE(isReleaseVersion(".hidden"));
    EXPECT_FALSE(isReleaseVersion("index"));
    EXPECT_FALSE(isReleaseVersion("a/b"));
    EXPECT_FALSE(isReleaseVersion("1--2"));
}

TEST(Repository, RemovesStaleTemporaryFilesOnOpen) {
    TempFolder tmp;
    testing::writeFile(tmp / "repo" / ".tmp" / "pkg-old", "half");
    testing::writeFile(tmp / "repo" / ".tmp" / "pkg-new", "live");
    fs::last_write_time(tmp / "repo" / ".tmp" / "pkg-old",
                        fs::file_time_type::clock::now() - std::chrono::hours(2));
    ASSERT_OK(Repository::open(tmp / "repo"));
    EXPECT_FALSE(fs::exists(tmp / "repo" / ".tmp" / "pkg-old"));
    EXPECT_TRUE(fs::exists(tmp / "repo" / ".tmp" / "pkg-new"));
}

TEST(Listen, ParsesHostAndPort) {
    auto v4 = http::parseHostPort("0.0.0.0:8070");
    ASSERT_OK(v4);
    EXPECT_EQ(v4->first, "0.0.0.0");
    EXPECT_EQ(v4->second, 8070);
    auto v6 = http::parseHostPort("[::1]:0");
    ASSERT_OK(v6);
    EXPECT_EQ(v6->first, "::1");
    auto bare = http::parseHostPort(":9000");
    ASSERT_OK(bare);
    EXPECT_EQ(bare->first, "127.0.0.1");
    ASSERT_ERROR(http::parseHostPort("127.0.0.1"), Errc::Invalid, "must be HOST:PORT");
    ASSERT_ERROR(http::parseHostPort("127.0.0.1:99999"), Errc::Invalid,
                 "the port must be a number from 0 to 65535");
}

}  // namespace
}  // namespace hoist::repo_server
