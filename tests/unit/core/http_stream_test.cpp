// Event streams (text/event-stream) from core's HTTP server: incremental writes, the cap, no
// worker held per stream, keep-alive comments, a client going away, a slow client, shutdown.

#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/http_client.hpp"
#include "core/http_server.hpp"
#include "testing.hpp"

namespace hoist::http {
namespace {

using namespace std::chrono_literals;

class StreamFixture : public ::testing::Test {
protected:
    void start(ServerOptions options) {
        options.component = "test";
        options.access_log = false;
        auto created = Server::create(options);
        ASSERT_OK(created);
        server_ = std::move(*created);
        server_->route("GET", "/events", [this](const ServerRequest&) {
            return ServerReply::eventStream([this](EventStream stream) {
                stream.send("hello", "open");
                std::lock_guard lock(mutex_);
                streams_.push_back(stream);
            });
        });
        server_->route("GET", "/v1/ping", [](const ServerRequest&) {
            return ServerReply::json(200, "{\"ok\":true}");
        });
        auto port = server_->bind();
        ASSERT_OK(port);
        port_ = *port;
        thread_ = std::thread([this] {
            server_->run();
            run_returned_ = true;
        });
    }

    void TearDown() override {
        if (server_) server_->stop();
        if (thread_.joinable()) thread_.join();
    }

    /// Opens a stream and reads up to its first message.
    std::unique_ptr<testing::RawConnection> open(std::string* head = nullptr) {
        auto conn = std::make_unique<testing::RawConnection>(port_);
        EXPECT_TRUE(conn->connected());
        conn->send("GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
        std::string got;
        EXPECT_TRUE(conn->readUntil(got, "data: open\n\n", 5s)) << got;
        if (head) *head = got;
        return conn;
    }

    std::size_t streamCount() {
        std::lock_guard lock(mutex_);
        return streams_.size();
    }

    EventStream stream(size_t i) {
        std::lock_guard lock(mutex_);
        return streams_.at(i);
    }

    Response get(const std::string& path) {
        Client client;
        Request request;
        request.url = "http://127.0.0.1:" + std::to_string(port_) + path;
        request.timeout = 5s;
        auto response = client.send(request);
        EXPECT_TRUE(response.has_value()) << response.error().describe();
        return response ? *response : Response{};
    }

    std::unique_ptr<Server> server_;
    std::thread thread_;
    std::atomic<bool> run_returned_{false};
    int port_ = 0;
    std::mutex mutex_;
    std::vector<EventStream> streams_;
};

TEST_F(StreamFixture, MessagesArriveAsTheyAreSentInTheEventStreamFormat) {
    start({});
    std::string head;
    auto conn = open(&head);
    EXPECT_NE(head.find("HTTP/1.1 200"), std::string::npos) << head;
    EXPECT_NE(head.find("Content-Type: text/event-stream"), std::string::npos) << head;
    EXPECT_NE(head.find("Transfer-Encoding: chunked"), std::string::npos) << head;
    EXPECT_NE(head.find("Cache-Control: no-cache"), std::string::npos) << head;
    ASSERT_TRUE(testing::waitFor([&] { return streamCount() == 1; }, 5s));

    // One message, then (after it arrived) another: written as they come, not at the end.
    std::string got;
    ASSERT_TRUE(stream(0).send("audit", "{\"a\":1}", "41"));
    ASSERT_TRUE(conn->readUntil(got, "id: 41\nevent: audit\ndata: {\"a\":1}\n\n", 5s)) << got;
    ASSERT_TRUE(stream(0).send("note", "two\nlines", "4\n2"));
    ASSERT_TRUE(conn->readUntil(got, "id: 4 2\nevent: note\ndata: two\ndata: lines\n\n", 5s))
        << got;
}

TEST_F(StreamFixture, AClosedStreamEndsItsBodyAndTheConnection) {
    start({});
    auto conn = open();
    ASSERT_TRUE(testing::waitFor([&] { return streamCount() == 1; }, 5s));
    ASSERT_TRUE(stream(0).send("last", "bye"));
    stream(0).close();
    EXPECT_FALSE(stream(0).send("late", "x"));
    auto rest = conn->readAll(5s);
    EXPECT_NE(rest.find("data: bye"), std::string::npos) << rest;
    // The last chunk of a chunked body, then the server closes.
    EXPECT_TRUE(rest.ends_with("0\r\n\r\n")) << rest;
}

TEST_F(StreamFixture, OpenStreamsHoldNoWorkerThread) {
    ServerOptions options;
    options.threads = 1;
    start(options);
    std::vector<std::unique_ptr<testing::RawConnection>> conns;
    for (int i = 0; i < 6; ++i) conns.push_back(open());
    // Six open streams on one worker; the API still answers.
    auto r = get("/v1/ping");
    EXPECT_EQ(r.status, 200) << r.body;
}

TEST_F(StreamFixture, StreamsPastTheCapAre503AndTheApiStillAnswers) {
    ServerOptions options;
    options.max_streams = 2;
    start(options);
    auto a = open();
    auto b = open();
    auto refused = get("/events");
    EXPECT_EQ(refused.status, 503) << refused.body;
    EXPECT_NE(refused.body.find("too many open event streams (limit 2)"), std::string::npos)
        << refused.body;
    bool retry_after = false;
    for (const auto& h : refused.headers) retry_after |= h.name == "Retry-After" && h.value == "5";
    EXPECT_TRUE(retry_after);
    EXPECT_EQ(get("/v1/ping").status, 200);
    // A client going away frees its place at once (not at the next keep-alive).
    a.reset();
    EXPECT_TRUE(testing::waitFor([&] { return stream(0).closed(); }, 5s));
    auto c = open();
    auto metrics = get("/metrics");
    EXPECT_NE(metrics.body.find("hoist_http_streams 2"), std::string::npos) << metrics.body;
    EXPECT_NE(metrics.body.find("hoist_http_streams_refused_total 1"), std::string::npos);
}

TEST_F(StreamFixture, ASilentStreamGetsKeepAliveComments) {
    ServerOptions options;
    options.stream_keepalive = 100ms;
    start(options);
    auto conn = open();
    std::string got;
    EXPECT_TRUE(conn->readUntil(got, ": keep-alive\n\n", 3s)) << got;
}

TEST_F(StreamFixture, AClientThatFallsBehindIsClosedInBoundedMemory) {
    ServerOptions options;
    options.stream_buffer_limit = 256 * 1024;
    start(options);
    auto conn = open();  // and never read again
    ASSERT_TRUE(testing::waitFor([&] { return streamCount() == 1; }, 5s));
    std::string chunk(16 * 1024, 'x');
    bool refused = false;
    auto deadline = std::chrono::steady_clock::now() + 20s;
    // Socket buffers take a few megabytes first; then the queue fills and the stream closes.
    while (!refused && std::chrono::steady_clock::now() < deadline) {
        refused = !stream(0).send("bulk", chunk);
        if (!refused) std::this_thread::sleep_for(1ms);
    }
    EXPECT_TRUE(refused);
    EXPECT_TRUE(stream(0).closed());
    // What the kernel already holds still arrives, then the end.
    conn->readAll(10s);
    EXPECT_TRUE(conn->closedByServer(100ms));
}

TEST_F(StreamFixture, StopClosesOpenStreamsFirstAndReturnsPromptly) {
    ServerOptions options;
    options.stream_keepalive = 60s;
    start(options);
    std::vector<std::unique_ptr<testing::RawConnection>> conns;
    for (int i = 0; i < 3; ++i) conns.push_back(open());
    ASSERT_TRUE(testing::waitFor([&] { return streamCount() == 3; }, 5s));
    auto began = std::chrono::steady_clock::now();
    server_->stop();
    // Producers see the streams closed as soon as stop() returns.
    for (size_t i = 0; i < 3; ++i) EXPECT_FALSE(stream(i).send("late", "x"));
    EXPECT_TRUE(testing::waitFor([&] { return run_returned_.load(); }, 3s));
    for (auto& conn : conns) EXPECT_TRUE(conn->closedByServer(3s));
    EXPECT_LT(std::chrono::steady_clock::now() - began, 3s);
}

}  // namespace
}  // namespace hoist::http
