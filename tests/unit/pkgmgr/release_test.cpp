#include "pkgmgr/release.hpp"

#include <gtest/gtest.h>

#include "core/crypto.hpp"
#include "testing.hpp"

namespace hoist::pkgmgr {
namespace {

std::string sha(char c) {
    return std::string(64, c);
}

std::string manifest(const std::string& version = "2.0.0") {
    return R"({"version": ")" + version + R"(", "upgrade_from": ["1.*"],
      "roles": {"master": {"packages": [{"id": "mesos--2.0.0", "sha256": ")" +
           sha('a') + R"(", "size": 10}, {"id": "mesos-config-master--2.0.0", "sha256": ")" +
           sha('b') +
           R"(", "size": 20}]},
                "agent": {"packages": [{"id": "mesos--2.0.0", "sha256": ")" +
           sha('a') + R"(", "size": 10}]}}})";
}

TEST(Release, ParsesAndRoundTrips) {
    auto release = Release::parse(manifest());
    ASSERT_OK(release);
    EXPECT_EQ(release->version, "2.0.0");
    ASSERT_EQ(release->roles.size(), 2u);
    auto master = release->packagesFor("master");
    ASSERT_OK(master);
    EXPECT_EQ(master->at(1).id, "mesos-config-master--2.0.0");
    EXPECT_EQ(master->at(1).size, 20u);
    auto again = Release::parse(release->toJson());
    ASSERT_OK(again);
    EXPECT_EQ(again->toJson(), release->toJson());
    ASSERT_ERROR(release->packagesFor("gateway"), Errc::NotFound, "no packages for role 'gateway'");
}

TEST(Release, UpgradeFromGlobs) {
    auto release = Release::parse(manifest());
    ASSERT_OK(release);
    EXPECT_TRUE(release->allowsUpgradeFrom("1.0.0"));
    EXPECT_TRUE(release->allowsUpgradeFrom("1.9.3"));
    EXPECT_FALSE(release->allowsUpgradeFrom("0.9.0"));
    EXPECT_FALSE(release->allowsUpgradeFrom("2.0.0"));
    EXPECT_TRUE(globMatch("*", ""));
    EXPECT_TRUE(globMatch("1.*.3", "1.22.3"));
    EXPECT_FALSE(globMatch("1.*.3", "1.22.4"));
}

TEST(Release, UpgradeFromRangesBesideGlobs) {
    // Globs keep their meaning: "1.*" takes every 1.-something, pre-releases included.
    std::vector<std::string> glob = {"1.*"};
    EXPECT_TRUE(upgradeAllowed(glob, "1.5.0-rc1"));
    EXPECT_FALSE(upgradeAllowed(glob, "10.0.0"));
    // Ranges that used to parse and then match nothing now match as semver says.
    for (const std::string range : {">=1.0 <2", "^1.0", "1.x", "~1", "1.0.0 - 1.9"}) {
        std::vector<std::string> patterns = {range};
        EXPECT_OK(validateUpgradePattern(range));
        EXPECT_TRUE(upgradeAllowed(patterns, "1.4.2")) << range;
        EXPECT_FALSE(upgradeAllowed(patterns, "2.0.0")) << range;
        EXPECT_FALSE(upgradeAllowed(patterns, "0.9.0")) << range;
        EXPECT_FALSE(upgradeAllowed(patterns, "1.5.0-rc1")) << range;
    }
    // A literal that is not semver is still matched exactly, as a glob.
    EXPECT_TRUE(upgradeAllowed({"2024-05"}, "2024-05"));
    EXPECT_FALSE(upgradeAllowed({">=1.0"}, "2024-05"));
    // Checked when the release is read, naming both rules.
    ASSERT_ERROR(validateUpgradePattern(">=r4"), Errc::Invalid,
                 "upgrade_from pattern '>=r4' is neither a glob (version characters and '*') nor "
                 "a version range: version range '>=r4': '>=r4' is not a comparator");
    ASSERT_ERROR(validateUpgradePattern("~>1.11"), Errc::Invalid, "'~>'");
    ASSERT_ERROR(validateUpgradePattern(""), Errc::Invalid, "an upgrade_from pattern is empty");
    std::string text = manifest();
    text.replace(text.find(R"("1.*")"), 5, R"("^1.0 || >=3")");
    auto release = Release::parse(text);
    ASSERT_OK(release);
    EXPECT_TRUE(release->allowsUpgradeFrom("1.2.0"));
    EXPECT_TRUE(release->allowsUpgradeFrom("3.1.0"));
    EXPECT_FALSE(release->allowsUpgradeFrom("2.1.0"));
    text.replace(text.find(R"("^1.0 || >=3")"), 13, R"("~>1")");
    ASSERT_ERROR(Release::parse(text), Errc::Invalid, "release 2.0.0: upgrade_from pattern '~>1'");
}

TEST(Release, RefusalsNameTheRule) {
    ASSERT_ERROR(Release::parse(R"({"version": "2--0", "roles": {}})"), Errc::Invalid, "release");
    ASSERT_ERROR(Release::parse(R"({"version": "2.0", "roles": {}})"), Errc::Invalid,
                 "release 2.0: field 'roles' names no role");
    ASSERT_ERROR(Release::parse(R"({"version": "2.0", "rolez": {}})"), Errc::Invalid,
                 "unknown field 'rolez' (did you mean 'roles'?)");
    ASSERT_ERROR(Release::parse(R"({"version": "2.0", "roles": {"Master": {"packages": []}}})"),
                 Errc::Invalid, "role 'Master' is not a valid name");
    ASSERT_ERROR(Release::parse(R"({"version": "2.0", "roles": {"agent": {"packages": []}}})"),
                 Errc::Invalid, "release 2.0, role 'agent': field 'packages' is empty");
    std::string dup = R"({"version": "2.0", "roles": {"agent": {"packages": [
        {"id": "mesos--1", "sha256": ")" +
                      sha('a') + R"(", "size": 1},
        {"id": "mesos--2", "sha256": ")" +
                      sha('b') + R"(", "size": 1}]}}})";
    ASSERT_ERROR(Release::parse(dup), Errc::Invalid, "package name 'mesos' appears twice");
    std::string bad_sha = R"({"version": "2.0", "roles": {"agent": {"packages": [
        {"id": "mesos--1", "sha256": "ABC", "size": 1}]}}})";
    auto refused = Release::parse(bad_sha);
    ASSERT_FALSE(refused.has_value());
    EXPECT_NE(refused.error().message.find("sha256"), std::string::npos) << refused.error().message;
}

TEST(Release, SignaturesVerifyOnlyTheExactBytes) {
    auto keys = crypto::ed25519Generate();
    ASSERT_OK(keys);
    auto text = manifest();
    auto sig = signRelease(text, keys->private_pem);
    ASSERT_OK(sig);
    EXPECT_OK(verifyReleaseSignature(text, *sig, {keys->public_pem}));
    ASSERT_ERROR(verifyReleaseSignature(text + " ", *sig, {keys->public_pem}), Errc::Corrupt,
                 "does not verify with any trusted key");
    auto other = crypto::ed25519Generate();
    ASSERT_OK(other);
    // Any one of several trusted keys may sign.
    EXPECT_OK(verifyReleaseSignature(text, *sig, {other->public_pem, keys->public_pem}));
    ASSERT_ERROR(verifyReleaseSignature(text, "!!notbase64", {keys->public_pem}), Errc::Invalid,
                 "release signature");
}

TEST(Release, UnsignedRefusedUnlessAllowed) {
    auto keys = crypto::ed25519Generate();
    ASSERT_OK(keys);
    auto text = manifest();
    ASSERT_ERROR(
        loadVerifiedRelease(text, std::nullopt, {keys->public_pem}, false, "release 2.0.0"),
        Errc::Unauthorized, "release 2.0.0 is not signed (use --allow-unsigned to accept it)");
    EXPECT_OK(loadVerifiedRelease(text, std::nullopt, {keys->public_pem}, true));
    auto other = crypto::ed25519Generate();
    ASSERT_OK(other);
    auto wrong = signRelease(text, other->private_pem);
    ASSERT_OK(wrong);
    // A bad signature is refused even with allow_unsigned: it is not unsigned, it is forged.
    ASSERT_ERROR(loadVerifiedRelease(text, *wrong, {keys->public_pem}, true, "release 2.0.0"),
                 Errc::Corrupt, "release 2.0.0: the release signature does not verify");
}

}  // namespace
}  // namespace hoist::pkgmgr
