// Versions and ranges against node-semver's documented answers. The cases are the ones in
// node-semver's test fixtures (range-include, range-exclude, range-parse, comparisons) that use
// no options, restated here; hoist's own refusals follow.
#include <gtest/gtest.h>

#include "pkgmgr/semver.hpp"
#include "testing.hpp"

namespace hoist::pkgmgr {
namespace {

struct Case {
    const char* range;
    const char* version;
};

TEST(SemVer, ParsesStrictly) {
    auto v = SemVer::parse("v1.2.3-beta.4+build.7");
    ASSERT_OK(v);
    EXPECT_EQ(v->major, 1u);
    EXPECT_EQ(v->minor, 2u);
    EXPECT_EQ(v->patch, 3u);
    EXPECT_EQ(v->str(), "1.2.3-beta.4");
    ASSERT_OK(SemVer::parse("9007199254740991.0.0"));

    ASSERT_ERROR(SemVer::parse("latest"), Errc::Invalid,
                 "version 'latest' is not MAJOR.MINOR.PATCH[-pre][+build]");
    ASSERT_ERROR(SemVer::parse("1.11"), Errc::Invalid, "is not MAJOR.MINOR.PATCH");
    ASSERT_ERROR(SemVer::parse("1.2.3.4"), Errc::Invalid, "is not MAJOR.MINOR.PATCH");
    ASSERT_ERROR(SemVer::parse("1.02.3"), Errc::Invalid, "'02' has a leading zero");
    ASSERT_ERROR(SemVer::parse("1.2.3-01"), Errc::Invalid,
                 "pre-release identifier '01' has a leading zero");
    ASSERT_ERROR(SemVer::parse("1.2.3-a..b"), Errc::Invalid, "an empty pre-release identifier");
    ASSERT_ERROR(SemVer::parse("1.2.3+a_b"), Errc::Invalid,
                 "build identifier 'a_b' may hold only 0-9, A-Z, a-z and '-'");
    ASSERT_ERROR(SemVer::parse("90071992547409910.0.0"), Errc::Invalid,
                 "90071992547409910 is larger than 9007199254740991");
    ASSERT_ERROR(SemVer::parse("0.0.99999999999999999999999"), Errc::Invalid,
                 "is larger than 9007199254740991");
}

TEST(SemVer, Precedence) {
    // comparisons.js: the first is greater than the second.
    std::vector<std::pair<const char*, const char*>> greater = {
        {"0.0.0", "0.0.0-foo"},
        {"0.0.1", "0.0.0"},
        {"1.0.0", "0.9.9"},
        {"0.10.0", "0.9.0"},
        {"0.99.0", "0.10.0"},
        {"2.0.0", "1.2.3"},
        {"1.2.3", "1.2.3-asdf"},
        {"1.2.3", "1.2.3-4"},
        {"1.2.3", "1.2.3-4-foo"},
        {"1.2.3-5-foo", "1.2.3-5"},
        {"1.2.3-5", "1.2.3-4"},
        {"1.2.3-5-foo", "1.2.3-5-Foo"},
        {"3.0.0", "2.7.2+asdf"},
        {"1.2.3-a.10", "1.2.3-a.5"},
        {"1.2.3-a.b", "1.2.3-a.5"},
        {"1.2.3-a.b", "1.2.3-a"},
        {"1.2.3-a.b.c.10.d.5", "1.2.3-a.b.c.5.d.100"},
        {"1.2.3-r2", "1.2.3-r100"},
        {"1.2.3-r100", "1.2.3-R2"},
    };
    for (const auto& [a, b] : greater) {
        auto x = SemVer::parse(a);
        auto y = SemVer::parse(b);
        ASSERT_OK(x);
        ASSERT_OK(y);
        EXPECT_GT(compare(*x, *y), 0) << a << " > " << b;
        EXPECT_LT(compare(*y, *x), 0) << b << " < " << a;
    }
    auto a = SemVer::parse("1.2.3+build.1");
    auto b = SemVer::parse("1.2.3+build.2");
    EXPECT_EQ(compare(*a, *b), 0);
}

TEST(Ranges, IncludeFixtures) {
    std::vector<Case> cases = {
        {"1.0.0 - 2.0.0", "1.2.3"},
        {"^1.2.3+build", "1.2.3"},
        {"^1.2.3+build", "1.3.0"},
        {"1.2.3-pre+asdf - 2.4.3-pre+asdf", "1.2.3"},
        {"1.2.3-pre+asdf - 2.4.3-pre+asdf", "1.2.3-pre.2"},
        {"1.2.3-pre+asdf - 2.4.3-pre+asdf", "2.4.3-alpha"},
        {"1.2.3+asdf - 2.4.3+asdf", "1.2.3"},
        {"1.0.0", "1.0.0"},
        {">=*", "0.2.4"},
        {"*", "1.2.3"},
        {">=1.0.0", "1.0.0"},
        {">=1.0.0", "1.0.1"},
        {">=1.0.0", "1.1.0"},
        {">1.0.0", "1.0.1"},
        {">1.0.0", "1.1.0"},
        {"<=2.0.0", "2.0.0"},
        {"<=2.0.0", "1.9999.9999"},
        {"<=2.0.0", "0.2.9"},
        {"<2.0.0", "1.9999.9999"},
        {"<2.0.0", "0.2.9"},
        {">= 1.0.0", "1.0.0"},
        {">=  1.0.0", "1.0.1"},
        {"> 1.0.0", "1.0.1"},
        {"<=   2.0.0", "2.0.0"},
        {"<\t2.0.0", "0.2.9"},
        {">=0.1.97", "0.1.97"},
        {">=0.1.97", "v0.1.97"},
        {"0.1.20 || 1.2.4", "1.2.4"},
        {">=0.2.3 || <0.0.1", "0.0.0"},
        {">=0.2.3 || <0.0.1", "0.2.3"},
        {">=0.2.3 || <0.0.1", "0.2.4"},
        {"2.x.x", "2.1.3"},
        {"1.2.x", "1.2.3"},
        {"1.2.x || 2.x", "2.1.3"},
        {"1.2.x || 2.x", "1.2.3"},
        {"x", "1.2.3"},
        {"2.*.*", "2.1.3"},
        {"1.2.*", "1.2.3"},
        {"1.2.* || 2.*", "2.1.3"},
        {"2", "2.1.2"},
        {"2.3", "2.3.1"},
        {"~0.0.1", "0.0.1"},
        {"~0.0.1", "0.0.2"},
        {"~x", "0.0.9"},
        {"~2", "2.0.9"},
        {"~2.4", "2.4.0"},
        {"~2.4", "2.4.5"},
        {"~1", "1.2.3"},
        {"~1.0", "1.0.2"},
        {"~ 1.0", "1.0.2"},
        {"~ 1.0.3", "1.0.12"},
        {">=1", "1.0.0"},
        {">= 1", "1.0.0"},
        {"<1.2", "1.1.1"},
        {"< 1.2", "1.1.1"},
        {"~v0.5.4-pre", "0.5.5"},
        {"~v0.5.4-pre", "0.5.4"},
        {"=0.7.x", "0.7.2"},
        {"<=0.7.x", "0.7.2"},
        {">=0.7.x", "0.7.2"},
        {"<=0.7.x", "0.6.2"},
        {"~1.2.1 >=1.2.3", "1.2.3"},
        {"~1.2.1 =1.2.3", "1.2.3"},
        {"~1.2.1 1.2.3", "1.2.3"},
        {"~1.2.1 >=1.2.3 1.2.3", "1.2.3"},
        {">=1.2.1 1.2.3", "1.2.3"},
        {">=1.2", "1.2.8"},
        {"^1.2.3", "1.8.1"},
        {"^0.1.2", "0.1.2"},
        {"^0.1", "0.1.2"},
        {"^0.0.1", "0.0.1"},
        {"^1.2", "1.4.2"},
        {"^1.2 ^1", "1.4.2"},
        {"^1.2.3-alpha", "1.2.3-pre"},
        {"^1.2.0-alpha", "1.2.0-pre"},
        {"^0.0.1-alpha", "0.0.1-beta"},
        {"^0.0.1-alpha", "0.0.1"},
        {"^0.1.1-alpha", "0.1.1-beta"},
        {"^x", "1.2.3"},
        {"x - 1.0.0", "0.9.7"},
        {"x - 1.x", "0.9.7"},
        {"1.0.0 - x", "1.9.7"},
        {"1.x - x", "1.9.7"},
        {"<=7.x", "7.9.9"},
        // The partial versions of the mesos report: all of these hold 1.11.2.
        {"1.11", "1.11.2"},
        {"=1.11", "1.11.2"},
        {"<=1.11", "1.11.2"},
        {"1", "1.11.2"},
    };
    for (const auto& c : cases) {
        auto in = versionSatisfies(c.version, c.range);
        ASSERT_OK(in);
        EXPECT_TRUE(*in) << c.version << " should be in '" << c.range << "'";
    }
}

TEST(Ranges, ExcludeFixtures) {
    std::vector<Case> cases = {
        {"1.0.0 - 2.0.0", "2.2.3"},
        {"1.2.3+asdf - 2.4.3+asdf", "1.2.3-pre.2"},
        {"1.2.3+asdf - 2.4.3+asdf", "2.4.3-alpha"},
        {"^1.2.3+build", "2.0.0"},
        {"^1.2.3+build", "1.2.0"},
        {"^1.2.3", "1.2.3-pre"},
        {"^1.2", "1.2.0-pre"},
        {">1.2", "1.3.0-beta"},
        {"<=1.2.3", "1.2.3-beta"},
        {"^1.2.3", "1.2.3-beta"},
        {"=0.7.x", "0.7.0-asdf"},
        {">=0.7.x", "0.7.0-asdf"},
        {"<=0.7.x", "0.7.0-asdf"},
        {"1.0.0", "1.0.1"},
        {">=1.0.0", "0.0.0"},
        {">=1.0.0", "0.0.1"},
        {">=1.0.0", "0.1.0"},
        {">1.0.0", "0.0.1"},
        {">1.0.0", "0.1.0"},
        {"<=2.0.0", "3.0.0"},
        {"<=2.0.0", "2.9999.9999"},
        {"<=2.0.0", "2.2.9"},
        {"<2.0.0", "2.9999.9999"},
        {"<2.0.0", "2.2.9"},
        {">=0.1.97", "v0.1.93"},
        {">=0.1.97", "0.1.93"},
        {"0.1.20 || 1.2.4", "1.2.3"},
        {">=0.2.3 || <0.0.1", "0.0.3"},
        {">=0.2.3 || <0.0.1", "0.2.2"},
        {"2.x.x", "3.1.3"},
        {"1.2.x", "1.3.3"},
        {"1.2.x || 2.x", "3.1.3"},
        {"1.2.x || 2.x", "1.1.3"},
        {"2.*.*", "1.1.3"},
        {"2.*.*", "3.1.3"},
        {"1.2.*", "1.3.3"},
        {"1.2.* || 2.*", "3.1.3"},
        {"1.2.* || 2.*", "1.1.3"},
        {"2", "1.1.2"},
        {"2.3", "2.4.1"},
        {"~0.0.1", "0.1.0-alpha"},
        {"~0.0.1", "0.1.0"},
        {"~2.4", "2.5.0"},
        {"~2.4", "2.3.9"},
        {"~1", "0.2.3"},
        {"~1.0", "1.1.0"},
        {"<1", "1.0.0"},
        {">=1.2", "1.1.1"},
        {"~v0.5.4-beta", "0.5.4-alpha"},
        {"=0.7.x", "0.8.2"},
        {">=0.7.x", "0.6.2"},
        {"<0.7.x", "0.7.2"},
        {"<1.2.3", "1.2.3-beta"},
        {"=1.2.3", "1.2.3-beta"},
        {">1.2", "1.2.8"},
        {"^0.0.1", "0.0.2-alpha"},
        {"^0.0.1", "0.0.2"},
        {"^1.2.3", "2.0.0-alpha"},
        {"^1.2.3", "1.2.2"},
        {"^1.2", "1.1.9"},
        {"^1.0.0", "2.0.0-rc1"},
        {"1 - 2", "2.0.0-pre"},
        {"1 - 2", "1.0.0-pre"},
        {"1.0 - 2", "1.0.0-pre"},
        {"1.1.x", "1.0.0-a"},
        {"1.1.x", "1.1.0-a"},
        {"1.1.x", "1.2.0-a"},
        {"1.x", "1.0.0-a"},
        {"1.x", "1.1.0-a"},
        {"1.x", "1.2.0-a"},
        {">=1.0.0 <1.1.0", "1.1.0"},
        {">=1.0.0 <1.1.0", "1.1.0-pre"},
        {">=1.0.0 <1.1.0-pre", "1.1.0-pre"},
        {"*", "1.0.0-rc1"},
        // The partial version of the mesos report that does not hold 1.11.2.
        {">1.11", "1.11.2"},
        {">1.11", "1.12.0-rc1"},
    };
    for (const auto& c : cases) {
        auto in = versionSatisfies(c.version, c.range);
        ASSERT_OK(in);
        EXPECT_FALSE(*in) << c.version << " should not be in '" << c.range << "'";
    }
}

TEST(Ranges, ParseFixtures) {
    const std::string max = "9007199254740991";
    const std::string below_max = "9007199254740990";
    std::vector<std::pair<std::string, std::string>> cases = {
        {"1.0.0 - 2.0.0", ">=1.0.0 <=2.0.0"},
        {"1 - 2", ">=1.0.0 <3.0.0-0"},
        {"1.0 - 2.0", ">=1.0.0 <2.1.0-0"},
        {">=*", "*"},
        {"*", "*"},
        {">=1.0.0", ">=1.0.0"},
        {">1.0.0", ">1.0.0"},
        {"<=2.0.0", "<=2.0.0"},
        {"1", ">=1.0.0 <2.0.0-0"},
        {"<2.0.0", "<2.0.0"},
        {">=  1.0.0", ">=1.0.0"},
        {"<\t2.0.0", "<2.0.0"},
        {"0.1.20 || 1.2.4", "0.1.20||1.2.4"},
        {">=0.2.3 || <0.0.1", ">=0.2.3||<0.0.1"},
        {"2.x.x", ">=2.0.0 <3.0.0-0"},
        {"1.2.x || 2.x", ">=1.2.0 <1.3.0-0||>=2.0.0 <3.0.0-0"},
        {"x", "*"},
        {"1.2.* || 2.*", ">=1.2.0 <1.3.0-0||>=2.0.0 <3.0.0-0"},
        {"2.3", ">=2.3.0 <2.4.0-0"},
        {"~2.4", ">=2.4.0 <2.5.0-0"},
        {"~1", ">=1.0.0 <2.0.0-0"},
        {"~ 1.0", ">=1.0.0 <1.1.0-0"},
        {"^0", "<1.0.0-0"},
        {"^ 1", ">=1.0.0 <2.0.0-0"},
        {"^0.1", ">=0.1.0 <0.2.0-0"},
        {"^1.0", ">=1.0.0 <2.0.0-0"},
        {"^1.2", ">=1.2.0 <2.0.0-0"},
        {"^0.0.1", ">=0.0.1 <0.0.2-0"},
        {"^0.0.1-beta", ">=0.0.1-beta <0.0.2-0"},
        {"^0.1.2", ">=0.1.2 <0.2.0-0"},
        {"^1.2.3", ">=1.2.3 <2.0.0-0"},
        {"^1.2.3-beta.4", ">=1.2.3-beta.4 <2.0.0-0"},
        {"<1", "<1.0.0-0"},
        {"< 1", "<1.0.0-0"},
        {">=1", ">=1.0.0"},
        {"<1.2", "<1.2.0-0"},
        {"^ 1.2 ^ 1", ">=1.2.0 <2.0.0-0 >=1.0.0"},
        {"1.2 - 3.4.5", ">=1.2.0 <=3.4.5"},
        {"1.2.3 - 3.4", ">=1.2.3 <3.5.0-0"},
        {"1.2 - 3.4", ">=1.2.0 <3.5.0-0"},
        {">1", ">=2.0.0"},
        {">1.2", ">=1.3.0"},
        {"=" + max + ".0.0", max + ".0.0"},
        {"^" + below_max + ".0.0", ">=" + below_max + ".0.0 <" + max + ".0.0-0"},
        {"1.x.x+build >2.x+build", ">=1.0.0 <2.0.0-0 >=3.0.0"},
        {">1.x+build <=2.x.x+meta", ">=2.0.0 <3.0.0-0"},
        {"^1.2.x+build", ">=1.2.0 <2.0.0-0"},
        {"~1.2.x+build", ">=1.2.0 <1.3.0-0"},
        {" 1.x.x+build   >2.x.x+build  ", ">=1.0.0 <2.0.0-0 >=3.0.0"},
        // The mesos report's partial versions.
        {"1.11", ">=1.11.0 <1.12.0-0"},
        {"=1.11", ">=1.11.0 <1.12.0-0"},
        {"<=1.11", "<1.12.0-0"},
        {">1.11", ">=1.12.0"},
    };
    for (const auto& [range, canonical] : cases) {
        auto parsed = normalizeRange(range);
        ASSERT_OK(parsed);
        EXPECT_EQ(*parsed, canonical) << "range '" << range << "'";
    }
}

TEST(Ranges, InvalidFixtures) {
    // range-parse.js: not a valid range.
    for (const char* range : {"1.x.5", "1.*.5", "1.x.5 || 2.x", "x.1", "x.1.2", "x.x.1",
                              ">01.02.03", "~1.2.3beta", ">=09090", "^9007199254740991.0.0"}) {
        auto parsed = validateRange(range);
        EXPECT_FALSE(parsed.has_value()) << "range '" << range << "'";
    }
    ASSERT_ERROR(validateRange("1.x.5"), Errc::Invalid,
                 "version range '1.x.5': '1.x.5' has a number after a wildcard");
    ASSERT_ERROR(validateRange(">01.02.03"), Errc::Invalid, "'01' has a leading zero");
    ASSERT_ERROR(validateRange("~1.2.3beta"), Errc::Invalid, "'3beta' is not a number");
    ASSERT_ERROR(validateRange("^9007199254740991.0.0"), Errc::Invalid,
                 "has no upper bound: 9007199254740991 is the largest version number");
}

TEST(Ranges, HoistRefusalsNameTheRule) {
    ASSERT_ERROR(validateRange(""), Errc::Invalid, "is empty (write * for any version)");
    ASSERT_ERROR(validateRange("||"), Errc::Invalid, "an alternative is empty");
    ASSERT_ERROR(validateRange("1.0 ||"), Errc::Invalid, "an alternative is empty");
    ASSERT_ERROR(validateRange("~>1.11"), Errc::Invalid,
                 "'~>' means different things to npm and Ruby");
    ASSERT_ERROR(validateRange("~> 1.11"), Errc::Invalid, "'~>'");
    ASSERT_ERROR(validateRange("<*"), Errc::Invalid, "'<*' matches nothing");
    ASSERT_ERROR(validateRange(">x"), Errc::Invalid, "'>x' matches nothing");
    ASSERT_ERROR(validateRange("!=1.11"), Errc::Invalid, "!= needs a full version");
    ASSERT_ERROR(validateRange("1.0.0 - 2.0.0 - 3.0.0"), Errc::Invalid,
                 "a hyphen range is 'A - B' alone between '||'");
    ASSERT_ERROR(validateRange(">=1.0.0 1.0.0 - 2.0.0"), Errc::Invalid,
                 "a hyphen range is 'A - B' alone between '||'");
    ASSERT_ERROR(validateRange("1.2.3.4"), Errc::Invalid, "has more than MAJOR.MINOR.PATCH");
    ASSERT_ERROR(validateRange("1.2-beta"), Errc::Invalid,
                 "has a pre-release without a full MAJOR.MINOR.PATCH");
    ASSERT_ERROR(validateRange(">=18446744073709551616"), Errc::Invalid,
                 "18446744073709551616 is larger than 9007199254740991");
    ASSERT_ERROR(validateRange("^18446744073709551615.0.0"), Errc::Invalid,
                 "is larger than 9007199254740991");
    const std::string long_version = ">=1.0.0-" + std::string(60, 'a');
    ASSERT_ERROR(validateRange(long_version), Errc::Invalid,
                 "is longer than 64 characters, the limit for a version in a range");
    // "^x" and "~x" match every release, as "*" does.
    for (const char* range : {"^x", "~x", "^*", "~*"}) {
        auto any = normalizeRange(range);
        ASSERT_OK(any);
        EXPECT_EQ(*any, "*") << range;
    }
    // hoist's own operators: == is =, != excludes one version.
    EXPECT_EQ(*versionSatisfies("1.5.0", "==1.5.0"), true);
    EXPECT_EQ(*versionSatisfies("1.5.0", "!=1.5.0"), false);
    EXPECT_EQ(*versionSatisfies("1.5.1", ">=1.5.0 !=1.5.0"), true);
}

TEST(Ranges, NonSemverVersionsAreRefusedNotOrdered) {
    ASSERT_ERROR(versionSatisfies("latest", ">=1.10.0"), Errc::Invalid,
                 "version 'latest' is not MAJOR.MINOR.PATCH[-pre][+build], so range '>=1.10.0' "
                 "cannot be checked against it");
    ASSERT_ERROR(versionSatisfies("xyz", "*"), Errc::Invalid, "version 'xyz' is not");
    ASSERT_ERROR(versionSatisfies("4.33", ">=4"), Errc::Invalid, "version '4.33' is not");
    ASSERT_ERROR(versionSatisfies("2.0~rc1", "2"), Errc::Invalid, "version '2.0~rc1' is not");
    // The range is checked first: its error is the one reported.
    ASSERT_ERROR(versionSatisfies("latest", "~>1"), Errc::Invalid, "'~>'");
}

TEST(Versions, LooseOrderForListings) {
    // compareVersions orders anything a repository may hold, semver or not.
    EXPECT_LT(compareVersions("1.9", "1.10"), 0);
    EXPECT_LT(compareVersions("2.0~rc1", "2.0"), 0);
    EXPECT_LT(compareVersions("1.2.3.4", "1.2.3.5"), 0);
    EXPECT_EQ(compareVersions("1.02", "1.2"), 0);
}

}  // namespace
}  // namespace hoist::pkgmgr
