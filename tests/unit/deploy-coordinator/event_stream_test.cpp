// GET /v1/events/stream and the page's routes: what a commit pushes, resuming with
// Last-Event-ID, a gap past the backlog, who may read, the page's headers.

#include <poll.h>
#include <sys/socket.h>

#include <thread>

#include <gtest/gtest.h>

#include "core/http_client.hpp"
#include "event_stream.hpp"
#include "testing.hpp"
#include "ui_server.hpp"

namespace hoist::deploy_coordinator {
namespace {

using namespace std::chrono_literals;

class EventStreamTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto state = State::open(dir_ / "state.db");
        ASSERT_OK(state);
        state_ = std::move(*state);
        hub_ = std::make_unique<EventHub>(*state_, 200ms);
        observed_ = std::make_unique<ObservedStore>(*state_, *hub_);
        auto ui = serveUi(*hub_);
        ASSERT_OK(ui);
        server_ = std::move(ui->server);
        port_ = ui->port;
        hub_->start();
        thread_ = std::thread([this] { server_->run(); });
    }

    void TearDown() override {
        server_->stop();
        thread_.join();
        hub_->stop();
    }

    Result<void> commit(const StepWrite& write) { return observed_->commit(write, 0); }

    static Event event(std::string action, std::string detail = "") {
        return {0, nowMs(), "admin", std::move(action), "", "", std::move(detail)};
    }

    /// Opens the stream and reads up to its hello.
    std::unique_ptr<testing::RawConnection> open(const std::string& extra_headers = "",
                                                 std::string* got = nullptr) {
        auto conn = std::make_unique<testing::RawConnection>(port_);
        conn->send("GET /v1/events/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer halt-t\r\n" +
                   extra_headers + "\r\n");
        std::string text;
        EXPECT_TRUE(conn->readUntil(text, "event: hello\n", 5s)) << text;
        EXPECT_TRUE(testing::waitFor([&] { return hub_->subscribers() > 0; }, 5s));
        if (got) *got = text;
        return conn;
    }

    http::Response get(const std::string& path, const std::string& token = "") {
        http::Client client;
        http::Request request;
        request.url = "http://127.0.0.1:" + std::to_string(port_) + path;
        request.timeout = 5s;
        if (!token.empty()) request.headers.push_back(http::bearer(token));
        auto response = client.send(request);
        EXPECT_TRUE(response.has_value()) << response.error().describe();
        return response ? *response : http::Response{};
    }

    std::int64_t newestId() {
        auto list = state_->events(std::nullopt, 1);
        return list && !list->empty() ? list->back().id : 0;
    }

    testing::TempFolder dir_;
    std::unique_ptr<State> state_;
    std::unique_ptr<EventHub> hub_;
    std::unique_ptr<ObservedStore> observed_;
    std::unique_ptr<http::Server> server_;
    std::thread thread_;
    int port_ = 0;
};

TEST_F(EventStreamTest, ACommitIsPushedWithinASecond) {
    auto conn = open();
    StepWrite write;
    write.put_holds.push_back({"sla", "p99 <too high>", "monitor", nowMs(), "[]", 0});
    write.events.push_back(event("halt", "sla: p99 <too high>"));
    ASSERT_OK(commit(write));
    auto committed = std::chrono::steady_clock::now();
    std::string got;
    auto id = std::to_string(newestId());
    ASSERT_TRUE(conn->readUntil(got, "\"holds\":true", 1s)) << got;
    ASSERT_TRUE(conn->readUntil(got, "id: " + id + "\nevent: audit\n", 1s)) << got;
    EXPECT_LT(std::chrono::steady_clock::now() - committed, 1s);
    // JSON escapes nothing HTML-ish: the page shows it as text.
    EXPECT_NE(got.find("\"detail\":\"sla: p99 <too high>\""), std::string::npos) << got;
}

TEST_F(EventStreamTest, NodeRowsAndFleetChangesAreNoticed) {
    auto conn = open();
    Deployment d;
    d.id = "d-1";
    d.number = 1;
    d.version = "2.0.0";
    d.state = DeploymentState::rolling;
    d.waiting_on = "health of agent-1";
    DeploymentNode n;
    n.deployment = "d-1";
    n.node = "agent-1";
    n.role = "agent";
    n.state = NodeStep::restarted;
    n.node_state = "checking";
    NodeRecord r;
    r.id = "agent-1";
    r.role = "agent";
    r.address = "http://127.0.0.1:1";
    r.release = "1.0.0";
    r.generation = 1;
    StepWrite write;
    write.deployment = d;
    write.nodes.push_back(n);
    write.registry.push_back(r);
    ASSERT_OK(commit(write));
    std::string got;
    ASSERT_TRUE(conn->readUntil(got, "\"fleet\":true", 2s)) << got;
    EXPECT_NE(got.find("\"node\":\"agent-1\",\"role\":\"agent\",\"state\":\"restarted\","
                       "\"node_state\":\"checking\""),
              std::string::npos)
        << got;
    EXPECT_NE(got.find("\"waiting_on\":\"health of agent-1\""), std::string::npos) << got;
    // A ping's last_seen is no news for the fleet; a new release is.
    r.last_seen_ms = nowMs();
    StepWrite seen;
    seen.registry.push_back(r);
    ASSERT_OK(commit(seen));
    r.release = "2.0.0";
    StepWrite upgraded;
    upgraded.registry.push_back(r);
    upgraded.events.push_back(event("marker"));
    ASSERT_OK(commit(upgraded));
    got.clear();
    ASSERT_TRUE(conn->readUntil(got, "\"action\":\"marker\"", 2s)) << got;
    ASSERT_TRUE(conn->readUntil(got, "\"fleet\":true", 2s)) << got;
    EXPECT_EQ(got.find("\"fleet\":false"), std::string::npos) << got;
}

TEST_F(EventStreamTest, LastEventIdResumesAfterIt) {
    StepWrite write;
    for (int i = 0; i < 3; ++i) write.events.push_back(event("step", "n" + std::to_string(i)));
    ASSERT_OK(commit(write));
    auto newest = newestId();
    std::string got;
    auto conn = open("Last-Event-ID: " + std::to_string(newest - 2) + "\r\n", &got);
    ASSERT_TRUE(conn->readUntil(got, "id: " + std::to_string(newest) + "\n", 2s)) << got;
    EXPECT_NE(got.find("\"resumed\":true"), std::string::npos) << got;
    EXPECT_EQ(got.find("\"detail\":\"n0\""), std::string::npos) << got;
    EXPECT_NE(got.find("\"detail\":\"n1\""), std::string::npos) << got;
    EXPECT_NE(got.find("\"detail\":\"n2\""), std::string::npos) << got;
    EXPECT_EQ(got.find("event: gap"), std::string::npos) << got;
    // Then live, with no event twice.
    StepWrite more;
    more.events.push_back(event("step", "n3"));
    ASSERT_OK(commit(more));
    ASSERT_TRUE(conn->readUntil(got, "\"detail\":\"n3\"", 2s)) << got;
    EXPECT_EQ(got.find("\"detail\":\"n2\""), got.rfind("\"detail\":\"n2\""));
}

TEST_F(EventStreamTest, ResumingPastTheBacklogSaysGap) {
    StepWrite write;
    for (int i = 0; i < EventHub::kMaxBacklog + 5; ++i) write.events.push_back(event("bulk"));
    ASSERT_OK(commit(write));
    std::string got;
    auto conn = open("Last-Event-ID: 1\r\n", &got);
    ASSERT_TRUE(conn->readUntil(got, "event: gap\n", 2s)) << got;
    ASSERT_TRUE(conn->readUntil(got, "id: " + std::to_string(newestId()) + "\n", 5s));
}

TEST_F(EventStreamTest, OnlyTheAdminAndMonitorsMayRead) {
    EXPECT_EQ(get("/v1/events/stream").status, 401);
    EXPECT_EQ(get("/v1/events/stream", "node-t").status, 401);
    EXPECT_EQ(get("/v1/events/stream", "wrong").status, 401);
    testing::RawConnection conn(port_);
    conn.send(
        "GET /v1/events/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer admin-t\r\n"
        "Last-Event-ID: x1\r\nConnection: close\r\n\r\n");
    auto answer = conn.readAll(5s);
    EXPECT_NE(answer.find("400 Bad Request"), std::string::npos) << answer;
    EXPECT_NE(answer.find("Last-Event-ID 'x1' is not an audit event id"), std::string::npos);
}

TEST_F(EventStreamTest, ThePageIsServedWithItsSecurityHeaders) {
    auto page = get("/ui");
    ASSERT_EQ(page.status, 200);
    EXPECT_NE(page.body.find("<script src=\"/ui/app.js\""), std::string::npos);
    std::string csp;
    for (const auto& h : page.headers)
        if (h.name == "Content-Security-Policy") csp = h.value;
    EXPECT_EQ(csp, kUiContentSecurityPolicy);
    EXPECT_NE(csp.find("script-src 'self'"), std::string::npos);
    EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos);
    auto js = get("/ui/app.js");
    EXPECT_EQ(js.status, 200);
    // The page never turns data into markup.
    EXPECT_EQ(js.body.find("innerHTML"), std::string::npos);
    EXPECT_EQ(js.body.find("localStorage"), std::string::npos);
    EXPECT_EQ(js.body.find("document.cookie"), std::string::npos);
    EXPECT_EQ(get("/ui/app.css").status, 200);
    EXPECT_EQ(get("/ui/missing.js").status, 404);
}

}  // namespace
}  // namespace hoist::deploy_coordinator
