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
