// The dead man's switch on a fake clock: holds only while a deployment acts, only past the
// allowance, with the same words each time; monitors survive a restart with a fresh allowance.
#include "monitor_watch.hpp"

#include <gtest/gtest.h>

#include "testing.hpp"

namespace hoist::deploy_coordinator {
namespace {

using hoist::testing::TempFolder;

struct Harness {
    std::int64_t now = 1'000'000;
    bool acting = false;
    std::vector<std::pair<std::string, std::string>> holds;

    MonitorWatch::Hooks hooks() {
        return {
            [this] { return acting; },
            [this](const std::string& source, const std::string& reason) -> Result<std::string> {
                holds.emplace_back(source, reason);
                return std::string("{}");
            },
            [this] { return now; }};
    }
};

TEST(MonitorWatch, HoldsOnlyWhileActingAndOnlyPastTheAllowance) {
    TempFolder dir;
    auto state = State::open(dir / "state.db");
    ASSERT_OK(state);
    Harness h;
    auto watch = MonitorWatch::create(**state, h.hooks());
    ASSERT_OK(watch);
    ASSERT_OK((*watch)->beat("alertmanager", "30s", "monitor"));
    h.now += 31'000;
    (*watch)->check();
    EXPECT_TRUE(h.holds.empty()) << "no deployment acts: nothing to stop";
    h.acting = true;
    h.now -= 2'000;  // 29 s since the beat
    (*watch)->check();
    EXPECT_TRUE(h.holds.empty());
    h.now += 2'000;
    (*watch)->check();
    ASSERT_EQ(h.holds.size(), 1u);
    EXPECT_EQ(h.holds[0].first, "heartbeat/alertmanager");
    EXPECT_NE(h.holds[0].second.find("monitor alertmanager silent since"), std::string::npos);
    EXPECT_NE(h.holds[0].second.find("(allowance 30 s)"), std::string::npos);
    (*watch)->check();
    ASSERT_EQ(h.holds.size(), 2u);
    EXPECT_EQ(h.holds[1], h.holds[0]) << "the same words, so the engine writes nothing new";
    // A beat makes it heard again; no new hold after that.
    ASSERT_OK((*watch)->beat("alertmanager", std::nullopt, "monitor"));
    (*watch)->check();
    EXPECT_EQ(h.holds.size(), 2u);
}

TEST(MonitorWatch, RefusesBadNamesAllowancesAndAFirstBeatWithoutOne) {
    TempFolder dir;
    auto state = State::open(dir / "state.db");
    ASSERT_OK(state);
    Harness h;
    auto watch = MonitorWatch::create(**state, h.hooks());
    ASSERT_OK(watch);
    ASSERT_ERROR((*watch)->beat("am", std::nullopt, "monitor"), Errc::Invalid,
                 "its first beat needs ?allowance=");
    ASSERT_ERROR((*watch)->beat("a b", "5m", "monitor"), Errc::Invalid,
                 "monitor name 'a b' must be");
    ASSERT_ERROR((*watch)->beat("am", "5 minutes", "monitor"), Errc::Invalid,
                 "must be a whole number with an optional unit");
    ASSERT_ERROR((*watch)->beat("am", "500ms", "monitor"), Errc::Invalid, "between 1s and 24h");
    ASSERT_ERROR((*watch)->beat("am", "25h", "monitor"), Errc::Invalid, "between 1s and 24h");
    ASSERT_ERROR((*watch)->beat("am", "99999999999999999h", "monitor"), Errc::Invalid,
                 "between 1s and 24h");
    EXPECT_TRUE((*state)->monitors()->empty()) << "refusals change nothing";
    ASSERT_ERROR((*watch)->forget("nobody", "admin"), Errc::NotFound, "is not watched");
    for (int i = 0; i < static_cast<int>(MonitorWatch::kMaxMonitors); ++i)
        ASSERT_OK((*watch)->beat("m" + std::to_string(i), "1m", "monitor"));
    // The refusal names the CLI verb, not the HTTP route.
    ASSERT_ERROR((*watch)->beat("one-more", "1m", "monitor"), Errc::Busy,
                 "forget one first (cluster monitors remove NAME)");
}

TEST(MonitorWatch, SurvivesARestartWithOneFreshAllowanceAndForgetIsKept) {
    TempFolder dir;
    auto path = dir / "state.db";
    Harness h;
    h.acting = true;
    {
        auto state = State::open(path);
        ASSERT_OK(state);
        auto watch = MonitorWatch::create(**state, h.hooks());
        ASSERT_OK(watch);
        ASSERT_OK((*watch)->beat("am", "10s", "monitor"));
        ASSERT_OK((*watch)->beat("grafana", "10s", "monitor"));
        ASSERT_OK((*watch)->forget("grafana", "admin"));
    }
    h.now += 60'000;  // the coordinator was down for a minute
    auto state = State::open(path);
    ASSERT_OK(state);
    auto watch = MonitorWatch::create(**state, h.hooks());
    ASSERT_OK(watch);
    EXPECT_NE((*watch)->json().find("\"name\":\"am\""), std::string::npos);
    EXPECT_EQ((*watch)->json().find("grafana"), std::string::npos);
    (*watch)->check();
    EXPECT_TRUE(h.holds.empty()) << "beats sent while the coordinator was down were lost";
    h.now += 10'001;
    (*watch)->check();
    ASSERT_EQ(h.holds.size(), 1u);
    EXPECT_EQ(h.holds[0].first, "heartbeat/am");
}

}  // namespace
}  // namespace hoist::deploy_coordinator
