// `provisioner sigv4` prints what a signature is made of, for debugging a mismatch.
#include <filesystem>

#include "core/json.hpp"
#include "testing.hpp"

namespace hoist {
namespace {

namespace fs = std::filesystem;
using testing::readFile;

process::Outcome sigv4Cli(const std::string& raw, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {
        HOIST_PROVISIONER, "sigv4",        "--access-key",
        "AKIDEXAMPLE",     "--secret-key", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "--region",        "us-east-1",    "--service",
        "service",         "--time",       "20150830T123600Z"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process::Options options;
    options.stdin_data = raw;
    options.timeout = std::chrono::seconds(30);
    auto outcome = process::run(argv, options);
    EXPECT_TRUE(outcome.has_value());
    return outcome ? *outcome : process::Outcome{};
}

TEST(ProvisionerSigV4Cli, PrintsCanonicalRequestStringToSignAndAuthorization) {
    HOIST_REQUIRE_SIGV4_SUITE(suite);
    fs::path dir = suite / "post-x-www-form-urlencoded";
    auto outcome = sigv4Cli(readFile(dir / "post-x-www-form-urlencoded.req"));
    ASSERT_EQ(outcome.exit_code, 0) << outcome.err;
    EXPECT_EQ(outcome.out,
              "# canonical request\n" + readFile(dir / "post-x-www-form-urlencoded.creq") +
                  "\n\n# string to sign\n" + readFile(dir / "post-x-www-form-urlencoded.sts") +
                  "\n\n# authorization\nAuthorization: " +
                  readFile(dir / "post-x-www-form-urlencoded.authz") + "\n");
}

TEST(ProvisionerSigV4Cli, SessionTokenAndJson) {
    HOIST_REQUIRE_SIGV4_SUITE(suite);
    fs::path dir = suite / "get-vanilla-with-session-token";
    auto outcome =
        sigv4Cli(readFile(dir / "get-vanilla-with-session-token.req"),
                 {"--session-token",
                  "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267", "--json"});
    ASSERT_EQ(outcome.exit_code, 0) << outcome.err;
    auto doc = json::parseObject(outcome.out, "output");
    ASSERT_OK(doc);
    EXPECT_EQ(*json::getString(*doc, "authorization", "output"),
              readFile(dir / "get-vanilla-with-session-token.authz"));
    EXPECT_EQ(*json::getString(*doc, "canonical_request", "output"),
              readFile(dir / "get-vanilla-with-session-token.creq"));
}

TEST(ProvisionerSigV4Cli, SignedHeadersReSignsARequestAsSent) {
    HOIST_REQUIRE_SIGV4_SUITE(suite);
    // A request as sent holds headers that were not signed (Authorization, User-Agent).
    fs::path dir = suite / "get-vanilla";
    std::string sent = readFile(dir / "get-vanilla.sreq") + "\nUser-Agent: Boto3/1.34\n";
    auto all = sigv4Cli(sent, {"--json"});
    ASSERT_EQ(all.exit_code, 0) << all.err;
    auto all_doc = json::parseObject(all.out, "output");
    ASSERT_OK(all_doc);
    // Signing everything signs the Authorization header too: not the suite's signature.
    EXPECT_NE(*json::getString(*all_doc, "authorization", "output"),
              readFile(dir / "get-vanilla.authz"));
    EXPECT_EQ(*json::getString(*all_doc, "signed_headers", "output"),
              "authorization;host;user-agent;x-amz-date");
    auto named = sigv4Cli(sent, {"--signed-headers", "host;x-amz-date", "--json"});
    ASSERT_EQ(named.exit_code, 0) << named.err;
    auto doc = json::parseObject(named.out, "output");
    ASSERT_OK(doc);
    EXPECT_EQ(*json::getString(*doc, "authorization", "output"),
              readFile(dir / "get-vanilla.authz"));
    auto missing = sigv4Cli(sent, {"--signed-headers", "host;content-type"});
    EXPECT_EQ(missing.exit_code, exitCode(Errc::Invalid));
    EXPECT_NE(missing.err.find("signed header 'content-type' is not in the request"),
              std::string::npos)
        << missing.err;
}

TEST(ProvisionerSigV4Cli, WhitespaceRuleAndQueryPlus) {
    std::string request =
        "GET /?Name=a+b HTTP/1.1\nHost:example.amazonaws.com\nMy-Header:x\xc2\xa0y\n"
        "X-Amz-Date:20150830T123600Z\n\n";
    auto aws = sigv4Cli(request, {"--json"});
    auto boto =
        sigv4Cli(request, {"--json", "--header-whitespace", "botocore", "--query-plus-is-space"});
    ASSERT_EQ(aws.exit_code, 0) << aws.err;
    ASSERT_EQ(boto.exit_code, 0) << boto.err;
    auto aws_doc = json::parseObject(aws.out, "output");
    auto boto_doc = json::parseObject(boto.out, "output");
    ASSERT_OK(aws_doc);
    ASSERT_OK(boto_doc);
    auto aws_creq = *json::getString(*aws_doc, "canonical_request", "output");
    auto boto_creq = *json::getString(*boto_doc, "canonical_request", "output");
    EXPECT_NE(aws_creq.find("Name=a%2Bb\n"), std::string::npos) << aws_creq;
    EXPECT_NE(aws_creq.find("my-header:x\xc2\xa0y\n"), std::string::npos) << aws_creq;
    EXPECT_NE(boto_creq.find("Name=a%20b\n"), std::string::npos) << boto_creq;
    EXPECT_NE(boto_creq.find("my-header:x y\n"), std::string::npos) << boto_creq;
    auto bad = sigv4Cli(request, {"--header-whitespace", "python"});
    EXPECT_NE(bad.exit_code, 0);
    EXPECT_EQ(bad.out, "");
}

TEST(ProvisionerSigV4Cli, RefusesAMalformedRequest) {
    auto outcome = sigv4Cli("not a request");
    EXPECT_EQ(outcome.exit_code, exitCode(Errc::Invalid));
    EXPECT_EQ(outcome.out, "");
    EXPECT_EQ(outcome.err,
              "provisioner: raw request: the first line must be 'METHOD TARGET HTTP/1.1', got "
              "'not a request'\n");
}

TEST(ProvisionerSigV4Cli, HelpWorks) {
    auto outcome = testing::run({HOIST_PROVISIONER, "--help"});
    EXPECT_EQ(outcome.exit_code, 0);
    EXPECT_NE(outcome.out.find("sigv4"), std::string::npos);
    EXPECT_NE(outcome.out.find("serve"), std::string::npos);
}

}  // namespace
}  // namespace hoist
