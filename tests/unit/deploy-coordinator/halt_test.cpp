#include <thread>

#include <gtest/gtest.h>

#include "core/json.hpp"
#include "deploy_coordinator/state.hpp"
#include "engine.hpp"
#include "holds.hpp"
#include "testing.hpp"

namespace hoist::deploy_coordinator {
namespace {

using hoist::testing::TempFolder;

std::unique_ptr<Engine> engineOn(State& state) {
    EngineOptions options;
    options.repo_url = "http://127.0.0.1:1/repo";  // never reached: holds refuse first
    auto engine = Engine::create(state, options);
    EXPECT_TRUE(engine.has_value()) << engine.error().describe();
    return std::move(*engine);
}

TEST(Halt, AHoldIsWrittenBeforeTheReplyAndSurvivesARestart) {
    TempFolder dir;
    auto path = dir / "state.db";
    {
        auto state = State::open(path);
        ASSERT_OK(state);
        auto engine = engineOn(**state);
        ASSERT_OK(engine->requireNoHold("provisioning"));
        auto held = engine->halt("sla", "error rate 5%", "monitor");
        ASSERT_OK(held);
        EXPECT_NE(held->find("\"source\":\"sla\""), std::string::npos);
        // No stop(), no flush: as if killed right after the reply.
        auto holds = (*state)->holds();
        ASSERT_OK(holds);
        ASSERT_EQ(holds->size(), 1u);
    }
    auto state = State::open(path);
    ASSERT_OK(state);
    auto engine = engineOn(**state);
    auto doc = json::parseObject(engine->holdsJson(), "holds");
    ASSERT_OK(doc);
    EXPECT_TRUE((*doc)["halted"].GetBool());
    EXPECT_STREQ((*doc)["holds"][0]["reason"].GetString(), "error rate 5%");
    StartRequest request;
    request.version = "2.0.0";
    ASSERT_ERROR(engine->startDeployment(request), Errc::Halted,
                 "starting a deployment refused: halted by sla (error rate 5%)");
    ASSERT_ERROR(engine->requireNoHold("provisioning"), Errc::Halted, "provisioning refused");
}

TEST(Halt, SeveralSourcesHoldUntilEachIsClearedAndClearingIsRecorded) {
    TempFolder dir;
    auto state = State::open(dir / "state.db");
    ASSERT_OK(state);
    auto engine = engineOn(**state);
    ASSERT_OK(engine->halt("sla", "latency", "monitor"));
    ASSERT_OK(engine->halt("oncall", "deploy freeze", "admin"));
    ASSERT_OK(engine->halt("sla", "latency again", "monitor"));  // same source: one hold
    EXPECT_EQ((*state)->holds()->size(), 2u);
    ASSERT_ERROR(engine->clearHolds(std::string("nobody"), "admin"), Errc::NotFound,
                 "no hold from source 'nobody'");
    ASSERT_OK(engine->clearHolds(std::string("sla"), "admin"));
    ASSERT_ERROR(engine->requireNoHold("provisioning"), Errc::Halted, "oncall (deploy freeze)");
    ASSERT_OK(engine->clearHolds(std::nullopt, "admin"));
    ASSERT_OK(engine->requireNoHold("provisioning"));
    EXPECT_TRUE((*state)->holds()->empty());
    auto events = (*state)->events(std::nullopt, 20);
    ASSERT_OK(events);
    int halts = 0;
    int clears = 0;
    for (const auto& e : *events) {
        if (e.action == "halt") ++halts;
        if (e.action == "halt cleared") {
            ++clears;
            EXPECT_EQ(e.actor, "admin");
        }
    }
    EXPECT_EQ(halts, 3);
    EXPECT_EQ(clears, 2);
}

int countEvents(State& state, std::string_view action) {
    auto events = state.events(std::nullopt, 100);
    EXPECT_TRUE(events.has_value());
    int n = 0;
    for (const auto& e : *events) n += e.action == action ? 1 : 0;
    return n;
}

TEST(Halt, AMonitorRepeatingItselfWritesNothingNew) {
    TempFolder dir;
    auto state = State::open(dir / "state.db");
    ASSERT_OK(state);
    auto engine = engineOn(**state);
    HoldDetails details{R"([{"labels":{"alertname":"A"}}])", "alertmanager", ""};
    auto first = engine->halt("alertmanager/r/A", "error rate", "monitor", details);
    ASSERT_OK(first);
    EXPECT_NE(first->find("\"new\":true"), std::string::npos);
    for (int i = 0; i < 3; ++i) {
        auto again = engine->halt("alertmanager/r/A", "error rate", "monitor", details);
        ASSERT_OK(again);
        EXPECT_NE(again->find("\"new\":false"), std::string::npos);
    }
    EXPECT_EQ(countEvents(**state, "halt"), 1);
    // A changed notification (more alerts) renews the hold and is recorded, keeping `since`.
    details.alerts_json = R"([{"labels":{"alertname":"A"}},{"labels":{"alertname":"A"}}])";
    ASSERT_OK(engine->halt("alertmanager/r/A", "error rate", "monitor", details));
    EXPECT_EQ(countEvents(**state, "halt"), 2);
    auto holds = (*state)->holds();
    ASSERT_OK(holds);
    ASSERT_EQ(holds->size(), 1u);
    EXPECT_EQ(holds->front().alerts_json, details.alerts_json);
}

TEST(Halt, AResolvedNotificationNeverLiftsTheHoldAndIsShown) {
    TempFolder dir;
    auto path = dir / "state.db";
    {
        auto state = State::open(path);
        ASSERT_OK(state);
        auto engine = engineOn(**state);
        ASSERT_OK(engine->halt("alertmanager/r/A", "error rate", "monitor"));
        auto resolved = engine->resolveHold("alertmanager/r/A", "monitor", "alertmanager");
        ASSERT_OK(resolved);
        EXPECT_NE(resolved->find("the hold stands until an admin clears it"), std::string::npos);
        ASSERT_ERROR(engine->requireNoHold("provisioning"), Errc::Halted, "alertmanager/r/A");
        // A resolve for a hold that is not there changes nothing but the audit log.
        auto none = engine->resolveHold("alertmanager/r/B", "monitor", "");
        ASSERT_OK(none);
        EXPECT_NE(none->find("no hold of that source stands"), std::string::npos);
        EXPECT_EQ((*state)->holds()->size(), 1u);
        EXPECT_EQ(countEvents(**state, "halt resolved"), 2);
    }
    // Kept across a restart, and shown until an admin clears it.
    auto state = State::open(path);
    ASSERT_OK(state);
    auto engine = engineOn(**state);
    auto doc = json::parseObject(engine->holdsJson(), "holds");
    ASSERT_OK(doc);
    EXPECT_TRUE((*doc)["halted"].GetBool());
    EXPECT_NE(std::string((*doc)["holds"][0]["resolved"].GetString()), "");
    // Firing again reopens it: the monitor no longer says it is safe.
    ASSERT_OK(engine->halt("alertmanager/r/A", "error rate", "monitor"));
    doc = json::parseObject(engine->holdsJson(), "holds");
    ASSERT_OK(doc);
    EXPECT_STREQ((*doc)["holds"][0]["resolved"].GetString(), "");
}

TEST(ActionGate, ARaisedGateStopsSendsAndTheRaiseWaitsForSendsInFlight) {
    ActionGate gate;
    ASSERT_TRUE(gate.beginSend());
    std::atomic<bool> raised{false};
    std::thread halter([&] {
        gate.raise(std::chrono::seconds(5));
        raised = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_FALSE(raised.load());  // waits for the send past the gate
    EXPECT_FALSE(gate.beginSend());
    gate.endSend();
    halter.join();
    EXPECT_TRUE(raised.load());
    EXPECT_FALSE(gate.beginSend());
    gate.lower();
    EXPECT_TRUE(gate.beginSend());
    gate.endSend();
}

}  // namespace
}  // namespace hoist::deploy_coordinator
