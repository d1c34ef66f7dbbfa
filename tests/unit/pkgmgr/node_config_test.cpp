#include "pkgmgr/node_config.hpp"

#include <gtest/gtest.h>

#include "testing.hpp"

namespace hoist::pkgmgr {
namespace {

TEST(NodeConfig, SaveLoadAndTokens) {
    testing::TempFolder tmp;
    auto layout = NodeLayout::at(tmp.path());
    NodeConfig config;
    config.id = "agent-3";
    config.role = "agent";
    config.repository = "http://127.0.0.1:1/repo";
    config.trusted_keys = {"keys/release.pub"};
    config.coordinator_token_file = "coordinator.token";
    ASSERT_OK(config.save(layout));
    auto loaded = NodeConfig::load(layout);
    ASSERT_OK(loaded);
    EXPECT_EQ(loaded->toJson(), config.toJson());
    // Absent token files mean "no token", not an error.
    auto none = loaded->nodeToken(layout);
    ASSERT_OK(none);
    EXPECT_EQ(*none, "");
    testing::writeFile(tmp / "node.token", "s3cret\n");
    auto token = loaded->nodeToken(layout);
    ASSERT_OK(token);
    EXPECT_EQ(*token, "s3cret");
    ASSERT_ERROR(loaded->trustedKeyPems(layout), Errc::NotFound, "release.pub");
}

TEST(NodeConfig, Refusals) {
    ASSERT_ERROR(NodeConfig::parse(R"({"id": "a", "rol": "agent"})"), Errc::Invalid,
                 "node.json: unknown field 'rol' (did you mean 'role'?)");
    ASSERT_ERROR(NodeConfig::parse(R"({"id": "A B", "role": "agent"})"), Errc::Invalid,
                 "node.json: field 'id' must be a name");
    ASSERT_ERROR(NodeConfig::parse(R"({"id": "a", "role": "agent", "service_manager": "runit"})"),
                 Errc::Invalid,
                 "field 'service_manager' must be 'process' or 'systemd' (got 'runit')");
}

}  // namespace
}  // namespace hoist::pkgmgr
