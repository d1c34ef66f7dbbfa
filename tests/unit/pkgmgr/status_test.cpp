#include "pkgmgr/status.hpp"

#include <gtest/gtest.h>

#include "testing.hpp"

namespace hoist::pkgmgr {
namespace {

TEST(StatusPing, RoundTrip) {
    StatusPing ping{.node = "agent-3", .deployment = "d-42", .seq = 7, .state = "checking",
                    .from_generation = 4, .to_generation = 5, .release = "2.0.0",
                    .message = "", .time = "2026-11-22T10:00:00.000Z"};
    auto parsed = StatusPing::parse(ping.toJson());
    ASSERT_OK(parsed);
    EXPECT_EQ(parsed->toJson(), ping.toJson());
    EXPECT_EQ(parsed->seq, 7);
    EXPECT_FALSE(isTerminalState("checking"));
    EXPECT_TRUE(isTerminalState("rolled_back"));
}

TEST(StatusPing, Refusals) {
    ASSERT_ERROR(StatusPing::parse(R"({"node": "a", "seq": 1, "state": "dancing"})"), Errc::Invalid,
                 "status ping: field 'state' has the unknown value 'dancing'");
    ASSERT_ERROR(StatusPing::parse(R"({"node": "a", "state": "healthy"})"), Errc::Invalid,
                 "status ping: field 'seq' is required");
    ASSERT_ERROR(StatusPing::parse(R"({"node": "a", "seq": -1, "state": "healthy"})"), Errc::Invalid,
                 "field 'seq' must not be negative");
    ASSERT_ERROR(StatusPing::parse(R"({"node": "a", "seq": 1, "state": "healthy", "x": 1})"),
                 Errc::Invalid, "unknown field 'x'");
}

}  // namespace
}  // namespace hoist::pkgmgr
