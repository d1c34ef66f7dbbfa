#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <regex>
#include <thread>
#include <vector>

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
        server_->route(
            "PUT", "/upload",
            [](const ServerRequest& r) {
                size_t total = 0;
                r.read_body([&](std::string_view chunk) {
                    total += chunk.size();
                    return true;
                });
                return ServerReply::json(200, "{\"bytes\":" + std::to_string(total) + "}");
            },
            true);
        server_->route("GET", "/files/(.*)", [this](const ServerRequest& r) {
            auto path = files_.path() / r.matches.at(1);
            struct stat st {};
            if (::stat(path.c_str(), &st) != 0) return ServerReply::error(404, "no such file");
            ServerReply reply;
            reply.content_type = "application/octet-stream";
            reply.file = FileBody{
                path, static_cast<std::uint64_t>(st.st_size), true,
                static_cast<std::uint64_t>(st.st_ino),
                static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
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

// Routes are matched without std::regex per request; what each matches, and its groups, are
// what std::regex_match gives for the same pattern.
TEST(Server, RoutesMatchAsTheirRegexDoes) {
    const std::vector<std::string> patterns = {"/packages/(.*)",
                                               R"(/v1/nodes/([^/]+)/desired)",
                                               R"(/v1/halt/(.+))",
                                               R"(/v1/d/([^/]+)/(pause|resume|pa))",
                                               R"(/x/(a|ab)(b|bc)/z)",
                                               R"(/r/(.*?)\.json(\.sig)?)",
                                               R"(/e\.json/([^/]+)([^/]+))",
                                               "/v1/nodes"};
    ServerOptions options;
    options.access_log = false;
    auto created = Server::create(options);
    ASSERT_OK(created);
    auto& server = **created;
    for (size_t i = 0; i < patterns.size(); ++i)
        server.route("GET", patterns[i], [i](const ServerRequest& r) {
            std::string out = std::to_string(i);
            for (const auto& m : r.matches) out += "|" + m;
            return ServerReply::text(200, out);
        });
    auto bound = server.bind();
    ASSERT_OK(bound);
    const int port = *bound;
    std::thread thread([&] { server.run(); });
    Client client;
    const std::vector<std::string> paths = {"/packages/abc",
                                            "/packages/",
                                            "/packages/a/b",
                                            "/v1/nodes/n-1/desired",
                                            "/v1/nodes//desired",
                                            "/v1/nodes/a/b/desired",
                                            "/v1/halt/",
                                            "/v1/halt/a%2Fb",
                                            "/v1/d/x/pause",
                                            "/v1/d/x/pa",
                                            "/v1/d/x/paus",
                                            "/x/abbc/z",
                                            "/x/ab/z",
                                            "/x/abc/z",
                                            "/r/a.json",
                                            "/r/a.json.sig",
                                            "/r/.json",
                                            "/e.json/ab",
                                            "/e.json/a",
                                            "/ejson/ab",
                                            "/v1/nodes",
                                            "/v1/nodesx",
                                            "/v1/halt/a%0Ab"};
    for (const auto& path : paths) {
        std::string want = "404";
        std::string decoded = urlDecode(path, false);
        for (size_t i = 0; i < patterns.size() && want == "404"; ++i) {
            std::smatch m;
            if (!std::regex_match(decoded, m, std::regex(patterns[i]))) continue;
            want = std::to_string(i);
            for (const auto& g : m) want += "|" + g.str();
        }
        http::Request request;
        request.url = "http://127.0.0.1:" + std::to_string(port) + path;
        auto r = client.send(request);
        ASSERT_OK(r);
        EXPECT_EQ(r->status == 200 ? r->body : std::to_string(r->status), want) << path;
    }
    server.stop();
    thread.join();
}

TEST_F(ServerFixture, BearerTokenChecked) {
    Client client;
    auto no_token = client.send({.method = "POST", .url = base_ + "/v1/secret", .body = "{}"});
    ASSERT_OK(no_token);
    EXPECT_EQ(no_token->status, 401);
    auto wrong = client.send(
        {.method = "POST", .url = base_ + "/v1/secret", .headers = {bearer("nope")}, .body = "{}"});
    ASSERT_OK(wrong);
    EXPECT_EQ(wrong->status, 401);
    EXPECT_EQ(wrong->body.find("s3cret"), std::string::npos);
    auto right = client.send({.method = "POST",
                              .url = base_ + "/v1/secret",
                              .headers = {bearer("s3cret")},
                              .body = "{\"x\":1}"});
    ASSERT_OK(right);
    EXPECT_EQ(right->status, 200);
    EXPECT_EQ(right->body, "{\"x\":1}");
}

TEST_F(ServerFixture, RetriesTransientStatuses) {
    Client client;
    auto r = client.send({.url = base_ + "/flaky"},
                         RetryPolicy{.attempts = 5, .base = std::chrono::milliseconds(1)});
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
    EXPECT_NE(m->body.find(
                  "hoist_http_requests_total{route=\"/upload\",method=\"PUT\",status=\"200\"} 1"),
              std::string::npos)
        << m->body;
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
             "hoist_http_requests_total{route=\"/v1/echo/{id}\",method=\"HEAD\",status=\"200\"} "
             "1\n",
             "hoist_http_response_bytes_total{route=\"/flaky\"} ",
         })
        EXPECT_NE(m->body.find(line), std::string::npos) << line << "\n" << m->body;
    // Every route's counters exist from the start at 0 (increase() over a series that appears
    // at its first event undercounts), and its latency histogram counts each request.
    for (const char* line : {
             "hoist_http_errors_total{route=\"/upload\"} 0\n",
             "hoist_http_errors_total{route=\"/v1/echo/{id}\"} 0\n",
             "hoist_http_response_bytes_total{route=\"/upload\"} 0\n",
             "hoist_http_request_duration_seconds_count{route=\"/upload\",method=\"PUT\"} 0\n",
             "hoist_http_request_duration_seconds_count{route=\"/flaky\",method=\"GET\"} 3\n",
             "hoist_http_request_duration_seconds_bucket{route=\"/"
             "flaky\",method=\"GET\",le=\"+Inf\"} 3\n",
         })
        EXPECT_NE(m->body.find(line), std::string::npos) << line << "\n" << m->body;
    // No status that never happened is made up.
    EXPECT_EQ(m->body.find("hoist_http_requests_total{route=\"/upload\""), std::string::npos)
        << m->body;
}

TEST_F(ServerFixture, ServesBuildInfoAndProcessMetrics) {
    Client client;
    auto m = client.send({.url = base_ + "/metrics"});
    ASSERT_OK(m);
    EXPECT_NE(m->body.find("hoist_build_info{version=\"" HOIST_TEST_VERSION "\",revision=\""),
              std::string::npos)
        << m->body;
    for (const char* name :
         {"process_resident_memory_bytes ", "process_open_fds ", "process_start_time_seconds ",
          "process_cpu_seconds_total ", "process_max_fds "})
        EXPECT_NE(m->body.find(std::string("\n") + name), std::string::npos) << name << "\n"
                                                                             << m->body;
}

// A file body is counted in the response bytes, whole or by range.
TEST_F(ServerFixture, CountsTheBytesOfFileBodies) {
    Client client;
    testing::writeFile(files_ / "big", std::string(3 << 20, 'x'));
    auto whole = client.send({.url = base_ + "/files/big"});
    ASSERT_OK(whole);
    ASSERT_EQ(whole->body.size(), 3u << 20);
    auto part = client.send({.url = base_ + "/files/big", .headers = {{"Range", "bytes=0-99"}}});
    ASSERT_OK(part);
    ASSERT_EQ(part->status, 206);
    auto m = client.send({.url = base_ + "/metrics"});
    ASSERT_OK(m);
    std::string line = "hoist_http_response_bytes_total{route=\"/files/{path}\"} " +
                       std::to_string((3u << 20) + 100) + "\n";
    EXPECT_NE(m->body.find(line), std::string::npos) << line << m->body;
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
    std::filesystem::last_write_time(files_ / "pkg.new",
                                     std::filesystem::last_write_time(files_ / "pkg"));
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
    ASSERT_ERROR((*second)->bind(), Errc::Io,
                 "cannot listen on 127.0.0.1:" + std::to_string(*port));
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

// ---- Hostile peers: each of these starved or swelled the thread-per-connection engine.

using testing::RawConnection;

// Peak resident memory of this process, in bytes.
std::uint64_t peakRss() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.starts_with("VmHWM:")) return std::stoull(line.substr(6)) * 1024;
    return 0;
}

class HostileFixture : public ::testing::Test {
protected:
    void start(ServerOptions options) {
        options.component = "test";
        options.access_log = false;
        auto created = Server::create(options);
        ASSERT_OK(created);
        server_ = std::move(*created);
        server_->route("POST", "/v1/halt", [](const ServerRequest& r) {
            return ServerReply::json(201, "{\"bytes\":" + std::to_string(r.body.size()) + "}");
        });
        server_->route("DELETE", "/v1/halt",
                       [](const ServerRequest&) { return ServerReply::json(200, "{}"); });
        server_->route(
            "PUT", "/upload",
            [](const ServerRequest& r) {
                size_t total = 0;
                bool complete = r.read_body([&](std::string_view chunk) {
                    total += chunk.size();
                    return true;
                });
                if (!complete) return ServerReply::error(400, "incomplete");
                return ServerReply::json(200, "{\"bytes\":" + std::to_string(total) + "}");
            },
            true);
        if (before_body_) server_->beforeBody(before_body_);
        auto port = server_->bind();
        ASSERT_OK(port);
        port_ = *port;
        base_ = "http://127.0.0.1:" + std::to_string(*port);
        thread_ = std::thread([this] { server_->run(); });
    }
    void TearDown() override {
        if (server_) server_->stop();
        if (thread_.joinable()) thread_.join();
    }
    // GET /healthz on a new connection; the status, or 0 when no answer came in time.
    int healthz(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
        Client client;
        auto r = client.send({.url = base_ + "/healthz", .timeout = timeout});
        return r ? static_cast<int>(r->status) : 0;
    }

    std::unique_ptr<Server> server_;
    std::function<Result<void>(const ServerRequest&)> before_body_;
    std::thread thread_;
    std::string base_;
    int port_ = 0;
};

TEST_F(HostileFixture, AChunkedGigabyteIsAnswered413QuicklyInBoundedMemory) {
    start({});
    RawConnection c(port_);
    ASSERT_TRUE(c.connected());
    auto before = peakRss();
    ASSERT_TRUE(c.send("POST /v1/halt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"));
    std::atomic<std::uint64_t> sent{0};
    std::thread sender([&] {
        std::string chunk = "10000\r\n" + std::string(0x10000, '[') + "\r\n";
        while (sent < (1ull << 30) && c.send(chunk)) sent += 0x10000;
    });
    auto started = std::chrono::steady_clock::now();
    auto reply = c.readAll(std::chrono::seconds(20));
    auto took = std::chrono::steady_clock::now() - started;
    ::shutdown(c.fd(), SHUT_RDWR);
    sender.join();
    EXPECT_TRUE(reply.starts_with("HTTP/1.1 413")) << reply.substr(0, 200);
    EXPECT_NE(reply.find("request body exceeds the limit of 1048576 bytes"), std::string::npos)
        << reply;
    EXPECT_LT(sent.load(), 256ull << 20) << "the server kept reading the body";
    EXPECT_LT(took, std::chrono::seconds(5));
    EXPECT_LT(peakRss() - before, 64ull << 20);
    EXPECT_EQ(healthz(), 200);
}

TEST_F(HostileFixture, ADeclaredOversizedBodyIsRefusedBeforeItIsSent) {
    start({});
    RawConnection c(port_);
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.send("POST /v1/halt HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n"));
    auto reply = c.readAll(std::chrono::seconds(5));
    EXPECT_TRUE(reply.starts_with("HTTP/1.1 413")) << reply;
    EXPECT_NE(reply.find("request body of 1073741824 bytes exceeds the limit of 1048576 bytes"),
              std::string::npos)
        << reply;
    // A streaming route's own limit applies to its chunked bodies too.
    RawConnection s(port_);
    ASSERT_TRUE(s.send("PUT /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"));
    std::string chunk = "100000\r\n" + std::string(0x100000, 'x') + "\r\n";
    for (int i = 0; i < 3; ++i) s.send(chunk);
    reply = s.readAll(std::chrono::seconds(5));
    EXPECT_TRUE(reply.starts_with("HTTP/1.1 413")) << reply.substr(0, 200);
}

TEST_F(HostileFixture, ACallerWithoutATokenCannotMakeTheServerReadABody) {
    before_body_ = [](const ServerRequest& r) { return requireBearer(r, "s3cret"); };
    start({});
    RawConnection c(port_);
    ASSERT_TRUE(c.send("POST /v1/halt HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"));
    auto reply = c.readAll(std::chrono::seconds(5));
    EXPECT_TRUE(reply.starts_with("HTTP/1.1 401")) << reply;
    EXPECT_NE(reply.find("missing bearer token"), std::string::npos) << reply;
    Client client;
    auto right = client.send({.method = "POST",
                              .url = base_ + "/v1/halt",
                              .headers = {bearer("s3cret")},
                              .body = std::string(1000, 'x')});
    ASSERT_OK(right);
    EXPECT_EQ(right->status, 201);
    EXPECT_EQ(right->body, "{\"bytes\":1000}");
}

// Resident memory of this process now, in bytes.
std::uint64_t currentRss() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.starts_with("VmRSS:")) return std::stoull(line.substr(6)) * 1024;
    return 0;
}

// One reply (header and a Content-Length body) from a connection that may stay open.
std::string readReply(int fd, std::chrono::milliseconds timeout) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto end = out.find("\r\n\r\n");
        if (end != std::string::npos) {
            auto at = out.find("Content-Length: ");
            if (at != std::string::npos && at < end &&
                out.size() >= end + 4 + std::stoull(out.substr(at + 16)))
                return out;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd p{fd, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return out;
        char buffer[4096];
        auto n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) return out;
        out.append(buffer, static_cast<size_t>(n));
    }
}

// Many connections each sending a body up to the limit take no more memory together than the
// server's body budget: the ones over it are answered 503 before any of their body is read.
TEST_F(HostileFixture, ParallelBodiesStayWithinTheBodyBudget) {
    ServerOptions options;
    options.body_memory_limit = 8u << 20;
    start(options);
    constexpr int kConnections = 64;
    const std::string body(1u << 20, 'x');  // the payload limit, each
    std::vector<std::unique_ptr<RawConnection>> conns;
    auto before = currentRss();
    for (int i = 0; i < kConnections; ++i) {
        conns.push_back(std::make_unique<RawConnection>(port_));
        ASSERT_TRUE(conns.back()->connected());
        ASSERT_TRUE(
            conns.back()->send("POST /v1/halt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                               "Content-Length: " +
                               std::to_string(body.size()) + "\r\n\r\n"));
    }
    // The connections over the budget are answered at once, their bodies unread.
    std::vector<bool> answered(kConnections, false);
    int refused = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (refused < kConnections - 8 && std::chrono::steady_clock::now() < deadline) {
        for (int i = 0; i < kConnections; ++i) {
            pollfd p{conns[static_cast<size_t>(i)]->fd(), POLLIN, 0};
            if (answered[static_cast<size_t>(i)] || ::poll(&p, 1, 0) <= 0) continue;
            answered[static_cast<size_t>(i)] = true;
            auto reply = readReply(conns[static_cast<size_t>(i)]->fd(), std::chrono::seconds(5));
            EXPECT_TRUE(reply.starts_with("HTTP/1.1 503")) << reply.substr(0, 200);
            EXPECT_NE(reply.find("Retry-After: 1"), std::string::npos) << reply;
            EXPECT_NE(reply.find("its limit of 8388608 bytes"), std::string::npos) << reply;
            ++refused;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    // The others send all but their last byte: what the server took stays buffered.
    for (int i = 0; i < kConnections; ++i)
        if (!answered[static_cast<size_t>(i)])
            (void)conns[static_cast<size_t>(i)]->send(std::string_view(body).substr(1));
    std::uint64_t peak = 0;
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (std::chrono::steady_clock::now() < until) {
        peak = std::max(peak, currentRss());
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    int accepted = 0;
    for (int i = 0; i < kConnections; ++i) {
        if (answered[static_cast<size_t>(i)]) continue;
        auto& c = conns[static_cast<size_t>(i)];
        (void)c->send("x");
        auto reply = c->readAll(std::chrono::seconds(10));
        EXPECT_TRUE(reply.starts_with("HTTP/1.1 201")) << reply.substr(0, 200);
        EXPECT_NE(reply.find("{\"bytes\":1048576}"), std::string::npos) << reply.substr(0, 200);
        ++accepted;
    }
    EXPECT_EQ(accepted, 8);
    EXPECT_EQ(refused, kConnections - 8);
    // 64 bodies of 1 MiB would be 64 MiB; the budget holds 8 of them. Under AddressSanitizer
    // its redzones and quarantine keep freed memory resident, so RSS says nothing about the
    // budget there; the counts above still do.
#if !defined(__SANITIZE_ADDRESS__)
    EXPECT_LT(peak - std::min(peak, before), 32ull << 20);
#else
    (void)peak;
    (void)before;
#endif
    // Released with the replies: a body fits again.
    Client client;
    auto again = client.send({.method = "POST", .url = base_ + "/v1/halt", .body = body});
    ASSERT_OK(again);
    EXPECT_EQ(again->status, 201);
}

// Handlers that block hold workers, never the I/O threads: an inline route (/healthz) still
// answers while every worker is stuck.
TEST(Server, InlineRoutesAnswerWhileEveryWorkerIsBlocked) {
    ServerOptions options;
    options.component = "test";
    options.access_log = false;
    options.threads = 1;
    auto server = Server::create(options);
    ASSERT_OK(server);
    std::atomic<bool> release{false};
    std::atomic<bool> entered{false};
    (*server)->route("GET", "/block", [&](const ServerRequest&) {
        entered = true;
        while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        return ServerReply::json(200, "{}");
    });
    auto port = (*server)->bind();
    ASSERT_OK(port);
    std::thread runner([&] { (*server)->run(); });
    std::string base = "http://127.0.0.1:" + std::to_string(*port);
    std::thread blocked([&] {
        Client client;
        (void)client.send({.url = base + "/block", .timeout = std::chrono::milliseconds(10000)});
    });
    EXPECT_TRUE(testing::waitFor([&] { return entered.load(); }, std::chrono::seconds(5)));
    Client client;
    auto health =
        client.send({.url = base + "/healthz", .timeout = std::chrono::milliseconds(2000)});
    release = true;
    blocked.join();
    (*server)->stop();
    runner.join();
    ASSERT_OK(health);
    EXPECT_EQ(health->status, 200);
}

TEST_F(HostileFixture, AWrongMethodGets405WithAllow) {
    start({});
    Client client;
    auto r = client.send({.method = "GET", .url = base_ + "/v1/halt"});
    ASSERT_OK(r);
    EXPECT_EQ(r->status, 405);
    EXPECT_NE(r->body.find("method GET is not allowed on /v1/halt (allowed: POST, DELETE)"),
              std::string::npos)
        << r->body;
    EXPECT_EQ(r->header("Allow").value_or(""), "POST, DELETE");
    auto missing = client.send({.url = base_ + "/nope"});
    ASSERT_OK(missing);
    EXPECT_EQ(missing->status, 404);
}

TEST_F(HostileFixture, OversizedHeadersAre431) {
    start({});
    RawConnection big(port_);
    ASSERT_TRUE(big.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') +
                         "\r\n\r\n"));
    EXPECT_TRUE(big.readAll(std::chrono::seconds(5)).starts_with("HTTP/1.1 431"));
    RawConnection many(port_);
    std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < 150; ++i) request += "X-" + std::to_string(i) + ": y\r\n";
    ASSERT_TRUE(many.send(request + "\r\n"));
    auto reply = many.readAll(std::chrono::seconds(5));
    EXPECT_TRUE(reply.starts_with("HTTP/1.1 431")) << reply;
    EXPECT_NE(reply.find("more than 100 header fields"), std::string::npos) << reply;
}

TEST_F(HostileFixture, IdleConnectionsDoNotStarveOthers) {
    ServerOptions options;
    options.threads = 2;
    options.max_connections_per_peer = 100000;
    start(options);
    // Far more than workers: a thread-per-connection engine answers nothing now.
    constexpr int kIdle = 4000;
    std::vector<std::unique_ptr<RawConnection>> idle;
    for (int i = 0; i < kIdle; ++i) {
        idle.push_back(std::make_unique<RawConnection>(port_));
        ASSERT_TRUE(idle.back()->connected()) << i;
    }
    // A request half sent on some of them, too.
    for (int i = 0; i < kIdle; i += 10)
        idle[static_cast<size_t>(i)]->send("GET /healthz HTTP/1.1\r\nHo");
    for (int i = 0; i < 20; ++i) EXPECT_EQ(healthz(std::chrono::milliseconds(2000)), 200);
    Client client;
    auto halt = client.send({.method = "POST",
                             .url = base_ + "/v1/halt",
                             .body = "{}",
                             .timeout = std::chrono::milliseconds(2000)});
    ASSERT_OK(halt);
    EXPECT_EQ(halt->status, 201);
    // They are held, not dropped.
    int closed = 0;
    for (int i = 1; i < kIdle; i += 10)
        closed += idle[static_cast<size_t>(i)]->closedByServer(std::chrono::milliseconds(0));
    EXPECT_EQ(closed, 0);
}

TEST_F(HostileFixture, SlowHeadersAreClosedAtTheDeadline) {
    ServerOptions options;
    options.threads = 2;
    options.header_timeout = std::chrono::milliseconds(800);
    start(options);
    constexpr int kSlow = 50;
    std::vector<std::unique_ptr<RawConnection>> slow;
    for (int i = 0; i < kSlow; ++i) {
        slow.push_back(std::make_unique<RawConnection>(port_));
        ASSERT_TRUE(slow.back()->send("GET /healthz HTTP/1.1\r\n"));
    }
    auto started = std::chrono::steady_clock::now();
    // Trickle a byte every 100 ms: each read is quick, the header never completes.
    int closed = 0;
    std::vector<bool> done(kSlow, false);
    while (closed < kSlow && std::chrono::steady_clock::now() - started < std::chrono::seconds(6)) {
        for (int i = 0; i < kSlow; ++i) {
            auto index = static_cast<size_t>(i);
            if (done[index]) continue;
            if (slow[index]->closedByServer(std::chrono::milliseconds(0)) ||
                !slow[index]->send("X")) {
                done[index] = true;
                ++closed;
            }
        }
        EXPECT_EQ(healthz(std::chrono::milliseconds(2000)), 200);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    auto took = std::chrono::steady_clock::now() - started;
    EXPECT_EQ(closed, kSlow);
    EXPECT_GE(took, std::chrono::milliseconds(700));
    EXPECT_LT(took, std::chrono::seconds(4));
}

TEST_F(HostileFixture, ConnectionsPerPeerAreCappedOldestIdleFirst) {
    ServerOptions options;
    options.max_connections_per_peer = 8;
    start(options);
    std::vector<std::unique_ptr<RawConnection>> held;
    for (int i = 0; i < 20; ++i) {
        held.push_back(std::make_unique<RawConnection>(port_));
        ASSERT_TRUE(held.back()->connected());
    }
    // The peer's newest request still gets through, at the cost of its oldest idle ones.
    EXPECT_EQ(healthz(), 200);
    int closed = 0;
    ASSERT_TRUE(testing::waitFor(
        [&] {
            closed = 0;
            for (auto& c : held) closed += c->closedByServer(std::chrono::milliseconds(0));
            return closed >= 13;
        },
        std::chrono::seconds(5)));
    EXPECT_EQ(closed, 13);
    // The oldest went first.
    for (int i = 0; i < 12; ++i)
        EXPECT_TRUE(held[static_cast<size_t>(i)]->closedByServer(std::chrono::milliseconds(0)))
            << i;
    for (int i = 13; i < 20; ++i)
        EXPECT_FALSE(held[static_cast<size_t>(i)]->closedByServer(std::chrono::milliseconds(0)))
            << i;
}

TEST_F(HostileFixture, KeepAliveConnectionsIdleTooLongAreClosed) {
    ServerOptions options;
    options.idle_timeout = std::chrono::milliseconds(500);
    start(options);
    RawConnection c(port_);
    ASSERT_TRUE(c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    auto started = std::chrono::steady_clock::now();
    auto reply = c.readAll(std::chrono::seconds(4));
    EXPECT_TRUE(reply.starts_with("HTTP/1.1 200")) << reply;
    auto took = std::chrono::steady_clock::now() - started;
    EXPECT_GE(took, std::chrono::milliseconds(400));
    EXPECT_LT(took, std::chrono::seconds(3));
}

TEST(Client, TransportErrorsAreErrors) {
    Client client;
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    auto r = client.send(
        {.url = "http://127.0.0.1:1/", .connect_timeout = std::chrono::milliseconds(500)});
    ASSERT_ERROR(r, Errc::Network, "127.0.0.1:1");
    EXPECT_TRUE(isTransient(r));
    ASSERT_ERROR(client.send({.url = "gopher://127.0.0.1/"}), Errc::Invalid, "gopher");
}

TEST(Client, BackoffIsBoundedByCap) {
    RetryPolicy p{.attempts = 10,
                  .base = std::chrono::milliseconds(100),
                  .cap = std::chrono::milliseconds(400)};
    for (int attempt = 0; attempt < 10; ++attempt) {
        auto d = backoffDelay(p, attempt);
        EXPECT_GE(d.count(), 0);
        EXPECT_LE(d.count(), std::min<long long>(400, 100LL << attempt));
    }
}

}  // namespace
}  // namespace hoist::http
