#include <atomic>
#include <arpa/inet.h>
#include <cstdio>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <thread>

#include <gtest/gtest.h>

#include "core/http_client.hpp"
#include "core/http_server.hpp"
#include "testing.hpp"

namespace hoist::http {
namespace {

class ServerFixture : public ::testing::Test {
protected:
    void SetUp() override {
        ServerOptions options;
        options.component = "test";
        options.access_log = false;
        auto created = Server::create(options);
        ASSERT_OK(created);
        server_ = std::move(*created);
        server_->route("GET", "/v1/echo/([a-z]+)", [](const ServerRequest& r) {
            return ServerReply::json(200, "{\"name\":\"" + r.matches.at(1) + "\"}");
        });
        server_->route("POST", "/v1/secret", [](const ServerRequest& r) {
            if (auto ok = requireBearer(r, "s3cret"); !ok) return ServerReply::error(ok.error());
            return ServerReply::json(200, r.body);
        });
        server_->route("GET", "/flaky", [this](const ServerRequest&) {
            return ++flaky_calls_ < 3 ? ServerReply::error(503, "try later")
                                      : ServerReply::json(200, "{}");
        });
        server_->route("PUT", "/upload", [](const ServerRequest& r) {
            size_t total = 0;
            r.read_body([&](std::string_view chunk) {
                total += chunk.size();
                return true;
            });
            return ServerReply::json(200, "{\"bytes\":" + std::to_string(total) + "}");
        }, true);
        server_->route("GET", "/files/(.*)", [this](const ServerRequest& r) {
            auto path = files_.path() / r.matches.at(1);
            struct stat st {};
            if (::stat(path.c_str(), &st) != 0) return ServerReply::error(404, "no such file");
            ServerReply reply;
            reply.content_type = "application/octet-stream";
            reply.file = FileBody{path, static_cast<std::uint64_t>(st.st_size), true,
                                  static_cast<std::uint64_t>(st.st_ino),
                                  static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 +
                                      st.st_mtim.tv_nsec};
            return reply;
        });
        auto port = server_->bind();
        ASSERT_OK(port);
        base_ = "http://127.0.0.1:" + std::to_string(*port);
        thread_ = std::thread([this] { server_->run(); });
    }
    void TearDown() override {
        server_->stop();
        if (thread_.joinable()) thread_.join();
    }

    std::unique_ptr<Server> server_;
    std::thread thread_;
    std::string base_;
    std::atomic<int> flaky_calls_{0};
    testing::TempFolder files_;
};

TEST_F(ServerFixture, RoutesAndNotFound) {
    Client client;
    auto r = client.send({.url = base_ + "/v1/echo/abc"});
    ASSERT_OK(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, R"({"name":"abc"})");
    auto missing = client.send({.url = base_ + "/nope"});
    ASSERT_OK(missing);
    EXPECT_EQ(missing->status, 404);
    EXPECT_NE(missing->body.find("\"error\""), std::string::npos);
    auto health = client.send({.url = base_ + "/healthz"});
    ASSERT_OK(health);
    EXPECT_EQ(health->status, 200);
}

TEST_F(ServerFixture, BearerTokenChecked) {
    Client client;
    auto no_token = client.send({.method = "POST", .url = base_ + "/v1/secret", .body = "{}"});
    ASSERT_OK(no_token);
    EXPECT_EQ(no_token->status, 401);
    auto wrong = client.send({.method = "POST", .url = base_ + "/v1/secret",
                              .headers = {bearer("nope")}, .body = "{}"});
    ASSERT_OK(wrong);
    EXPECT_EQ(wrong->status, 401);
    EXPECT_EQ(wrong->body.find("s3cret"), std::string::npos);
    auto right = client.send({.method = "POST", .url = base_ + "/v1/secret",
                              .headers = {bearer("s3cret")}, .body = "{\"x\":1}"});
    ASSERT_OK(right);
    EXPECT_EQ(right->status, 200);
    EXPECT_EQ(right->body, "{\"x\":1}");
}

TEST_F(ServerFixture, RetriesTransientStatuses) {
    Client client;
    auto r = client.send({.url = base_ + "/flaky"}, RetryPolicy{.attempts = 5, .base = std::chrono::milliseconds(1)});
    ASSERT_OK(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(flaky_calls_.load(), 3);
}

TEST_F(ServerFixture, StreamsUploadsAndCountsMetrics) {
    testing::TempFolder tmp;
    testing::writeFile(tmp / "blob", std::string(300000, 'b'));
    Client client;
    auto r = client.sendFile("PUT", base_ + "/upload", {}, tmp / "blob");
    ASSERT_OK(r);
    EXPECT_EQ(r->body, "{\"bytes\":300000}");
    auto m = client.send({.url = base_ + "/metrics"});
    ASSERT_OK(m);
    EXPECT_NE(m->body.find("hoist_http_requests_total{route=\"/upload\",method=\"PUT\",status=\"200\"} 1"),
              std::string::npos) << m->body;
}

TEST_F(ServerFixture, CountsRequestsByMethodAndStatus) {
    Client client;
    for (int i = 0; i < 3; ++i) ASSERT_OK(client.send({.url = base_ + "/flaky"}));  // 503, 503, 200
    auto head = client.send({.method = "HEAD", .url = base_ + "/v1/echo/abc"});
    ASSERT_OK(head);
    EXPECT_EQ(head->status, 200);
    auto m = client.send({.url = base_ + "/metrics"});
    ASSERT_OK(m);
    for (const char* line : {
             "hoist_http_requests_total{route=\"/flaky\",method=\"GET\",status=\"503\"} 2\n",
             "hoist_http_requests_total{route=\"/flaky\",method=\"GET\",status=\"200\"} 1\n",
             "hoist_http_errors_total{route=\"/flaky\"} 2\n",
             "hoist_http_requests_total{route=\"/v1/echo/([a-z]+)\",method=\"HEAD\",status=\"200\"} 1\n",
             "hoist_http_response_bytes_total{route=\"/flaky\"} ",
         })
        EXPECT_NE(m->body.find(line), std::string::npos) << line << "\n" << m->body;
    // Routes nobody asked for are not listed; nor is an error count for a route without one.
    EXPECT_EQ(m->body.find("route=\"/upload\""), std::string::npos) << m->body;
    EXPECT_EQ(m->body.find("hoist_http_errors_total{route=\"/v1/echo"), std::string::npos) << m->body;
}

// Small immutable files are answered from memory; a file replaced by rename (a new inode)
// or rewritten (a new time and size) is read again, and ranges slice the kept bytes.
TEST_F(ServerFixture, SmallImmutableFilesFollowReplacement) {
    Client client;
    testing::writeFile(files_ / "pkg", "first version");
    auto a = client.send({.url = base_ + "/files/pkg"});
    ASSERT_OK(a);
    EXPECT_EQ(a->status, 200);
    EXPECT_EQ(a->body, "first version");
    auto again = client.send({.url = base_ + "/files/pkg"});
    ASSERT_OK(again);
    EXPECT_EQ(again->body, "first version");

    // The same size and modification time: only the inode tells the two apart.
    testing::writeFile(files_ / "pkg.new", "other version");
    std::filesystem::last_write_time(files_ / "pkg.new", std::filesystem::last_write_time(files_ / "pkg"));
    ASSERT_EQ(std::rename((files_ / "pkg.new").c_str(), (files_ / "pkg").c_str()), 0);
    auto b = client.send({.url = base_ + "/files/pkg"});
    ASSERT_OK(b);
    EXPECT_EQ(b->body, "other version");

    auto part = client.send({.url = base_ + "/files/pkg", .headers = {{"Range", "bytes=1-3"}}});
    ASSERT_OK(part);
    EXPECT_EQ(part->status, 206);
    EXPECT_EQ(part->body, "the");
    auto beyond = client.send({.url = base_ + "/files/pkg", .headers = {{"Range", "bytes=13-"}}});
    ASSERT_OK(beyond);
    EXPECT_EQ(beyond->status, 416);

    testing::writeFile(files_ / "pkg", "third, longer version");
    auto c = client.send({.url = base_ + "/files/pkg"});
    ASSERT_OK(c);
    EXPECT_EQ(c->body, "third, longer version");

    std::filesystem::remove(files_ / "pkg");
    auto gone = client.send({.url = base_ + "/files/pkg"});
    ASSERT_OK(gone);
    EXPECT_EQ(gone->status, 404);
}

TEST(Server, RefusesAPortAlreadyServed) {
    auto first = Server::create({.component = "test", .access_log = false});
    ASSERT_OK(first);
    auto port = (*first)->bind();
    ASSERT_OK(port);
    auto second = Server::create({.component = "test", .port = *port, .access_log = false});
    ASSERT_OK(second);
    ASSERT_ERROR((*second)->bind(), Errc::Io, "cannot listen on 127.0.0.1:" + std::to_string(*port));
}

// A burst of connections is queued by the kernel while every server thread is busy: none
// waits for a SYN retransmission (a second each).
TEST(Server, QueuesABurstOfConnections) {
    auto server = Server::create({.component = "test", .access_log = false});
    ASSERT_OK(server);
    auto port = (*server)->bind();
    ASSERT_OK(port);  // listening, but nothing accepts yet
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(*port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    constexpr int kConnections = 64;
    std::vector<pollfd> fds;
    for (int i = 0; i < kConnections; ++i) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        ASSERT_GE(fd, 0);
        int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
        ASSERT_TRUE(rc == 0 || errno == EINPROGRESS) << errno;
        fds.push_back({fd, POLLOUT, 0});
    }
    int connected = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
    while (connected < kConnections && std::chrono::steady_clock::now() < deadline) {
        ::poll(fds.data(), fds.size(), 50);
        connected = 0;
        for (auto& p : fds) {
            int error = 0;
            socklen_t length = sizeof error;
            if ((p.revents & POLLOUT) != 0 &&
                ::getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error == 0)
                ++connected;
        }
    }
    for (auto& p : fds) ::close(p.fd);
    EXPECT_EQ(connected, kConnections);
}

TEST(Client, TransportErrorsAreErrors) {
    Client client;
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    auto r = client.send({.url = "http://127.0.0.1:1/", .connect_timeout = std::chrono::milliseconds(500)});
    ASSERT_ERROR(r, Errc::Network, "127.0.0.1:1");
    EXPECT_TRUE(isTransient(r));
    ASSERT_ERROR(client.send({.url = "gopher://127.0.0.1/"}), Errc::Invalid, "gopher");
}

TEST(Client, BackoffIsBoundedByCap) {
    RetryPolicy p{.attempts = 10, .base = std::chrono::milliseconds(100), .cap = std::chrono::milliseconds(400)};
    for (int attempt = 0; attempt < 10; ++attempt) {
        auto d = backoffDelay(p, attempt);
        EXPECT_GE(d.count(), 0);
        EXPECT_LE(d.count(), std::min<long long>(400, 100LL << attempt));
    }
}

}  // namespace
}  // namespace hoist::http
