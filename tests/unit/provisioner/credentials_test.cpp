#include "provisioner/credentials.hpp"

#include <atomic>
#include <map>
#include <thread>

#include "core/http_server.hpp"
#include "testing.hpp"

namespace hoist::provisioner {
namespace {

using hoist::testing::TempFolder;
using hoist::testing::writeFile;

struct FakeEnv {
    std::map<std::string, std::string> vars;
    EnvLookup lookup() {
        return [this](const std::string& n) -> std::optional<std::string> {
            auto it = vars.find(n);
            if (it == vars.end()) return std::nullopt;
            return it->second;
        };
    }
};

TEST(Credentials, FromEnvironment) {
    FakeEnv env;
    ASSERT_ERROR(credentialsFromEnvironment(env.lookup()), Errc::NotFound,
                 "AWS_ACCESS_KEY_ID is not set");
    env.vars["AWS_ACCESS_KEY_ID"] = "AKID";
    ASSERT_ERROR(credentialsFromEnvironment(env.lookup()), Errc::Invalid,
                 "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together");
    env.vars["AWS_SECRET_ACCESS_KEY"] = "secret";
    env.vars["AWS_SESSION_TOKEN"] = "tok";
    auto creds = credentialsFromEnvironment(env.lookup());
    ASSERT_OK(creds);
    EXPECT_EQ(creds->access_key_id, "AKID");
    EXPECT_EQ(creds->secret_access_key, "secret");
    EXPECT_EQ(creds->session_token, "tok");
}

TEST(Credentials, FromSharedFileAndProfile) {
    TempFolder tmp;
    writeFile(tmp / "credentials",
              "# comment\n[default]\naws_access_key_id = AKDEF\naws_secret_access_key=sdef\n\n"
              "[ci]\n aws_access_key_id=AKCI\naws_secret_access_key = sci\naws_session_token=tci\n"
              "[broken]\naws_access_key_id=x\n");
    auto def = credentialsFromFile(tmp / "credentials", "default");
    ASSERT_OK(def);
    EXPECT_EQ(def->access_key_id, "AKDEF");
    EXPECT_EQ(def->secret_access_key, "sdef");
    EXPECT_EQ(def->session_token, "");
    auto ci = credentialsFromFile(tmp / "credentials", "ci");
    ASSERT_OK(ci);
    EXPECT_EQ(ci->access_key_id, "AKCI");
    EXPECT_EQ(ci->session_token, "tci");
    ASSERT_ERROR(credentialsFromFile(tmp / "credentials", "nope"), Errc::NotFound,
                 "no profile 'nope'");
    ASSERT_ERROR(credentialsFromFile(tmp / "credentials", "broken"), Errc::Invalid,
                 "profile 'broken' must set aws_access_key_id and aws_secret_access_key");
    ASSERT_ERROR(credentialsFromFile(tmp / "missing", "default"), Errc::NotFound, "does not exist");
}

TEST(Credentials, ChainPrefersEnvironmentThenFileByProfile) {
    TempFolder tmp;
    writeFile(tmp / "credentials",
              "[default]\naws_access_key_id=AKDEF\naws_secret_access_key=s\n"
              "[other]\naws_access_key_id=AKOTHER\naws_secret_access_key=s\n");
    FakeEnv env;
    env.vars["AWS_SHARED_CREDENTIALS_FILE"] = (tmp / "credentials").string();
    env.vars["AWS_EC2_METADATA_DISABLED"] = "true";
    CredentialProvider file_default({.env = env.lookup()});
    ASSERT_OK(file_default.get());
    EXPECT_EQ(file_default.get()->access_key_id, "AKDEF");
    EXPECT_EQ(file_default.source(), "shared-file:default");

    env.vars["AWS_PROFILE"] = "other";
    CredentialProvider file_profile({.env = env.lookup()});
    EXPECT_EQ(file_profile.get()->access_key_id, "AKOTHER");

    env.vars["AWS_ACCESS_KEY_ID"] = "AKENV";
    env.vars["AWS_SECRET_ACCESS_KEY"] = "s";
    CredentialProvider from_env({.env = env.lookup()});
    EXPECT_EQ(from_env.get()->access_key_id, "AKENV");
    EXPECT_EQ(from_env.source(), "environment");

    FakeEnv empty;
    empty.vars["AWS_EC2_METADATA_DISABLED"] = "true";
    empty.vars["AWS_SHARED_CREDENTIALS_FILE"] = (tmp / "none").string();
    CredentialProvider none({.env = empty.lookup()});
    ASSERT_ERROR(none.get(), Errc::NotFound,
                 "instance metadata is disabled (AWS_EC2_METADATA_DISABLED)");
}

// A stand-in for the instance metadata service: IMDSv2 only (GETs need the session token).
class FakeImds {
public:
    FakeImds() {
        auto server = http::Server::create({.component = "fake-imds", .access_log = false});
        server_ = std::move(*server);
        server_->route("PUT", "/latest/api/token", [this](const http::ServerRequest& req) {
            ++token_requests;
            if (!req.header("X-aws-ec2-metadata-token-ttl-seconds"))
                return http::ServerReply::text(400, "missing ttl");
            return http::ServerReply::text(200, "imds-token");
        });
        server_->route("GET", "/latest/meta-data/iam/security-credentials/(.*)",
                       [](const http::ServerRequest& req) {
                           if (req.header("X-aws-ec2-metadata-token").value_or("") != "imds-token")
                               return http::ServerReply::text(401, "");
                           if (req.matches.at(1).empty())
                               return http::ServerReply::text(200, "node-role\n");
                           if (req.matches.at(1) != "node-role")
                               return http::ServerReply::text(404, "");
                           return http::ServerReply::json(
                               200, R"({"Code":"Success","AccessKeyId":"ASIAIMDS",)"
                                    R"("SecretAccessKey":"imds-secret","Token":"imds-session",)"
                                    R"("Expiration":"2099-01-01T00:00:00Z"})");
                       });
        port_ = *server_->bind();
        thread_ = std::thread([this] { server_->run(); });
    }
    ~FakeImds() {
        server_->stop();
        thread_.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    std::atomic<int> token_requests{0};

private:
    std::unique_ptr<http::Server> server_;
    std::thread thread_;
    int port_ = 0;
};

TEST(Credentials, FromImdsV2WithTokenAndCache) {
    FakeImds imds;
    FakeEnv env;
    env.vars["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent/credentials";
    env.vars["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = imds.url();
    CredentialProvider provider({.env = env.lookup()});
    auto creds = provider.get();
    ASSERT_OK(creds);
    EXPECT_EQ(creds->access_key_id, "ASIAIMDS");
    EXPECT_EQ(creds->secret_access_key, "imds-secret");
    EXPECT_EQ(creds->session_token, "imds-session");
    EXPECT_EQ(provider.source(), "imds");
    ASSERT_OK(provider.get());
    EXPECT_EQ(imds.token_requests.load(), 1) << "unexpired credentials are cached";
}

TEST(Credentials, ImdsUnreachableIsNamed) {
    FakeEnv env;
    env.vars["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent/credentials";
    env.vars["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = "http://127.0.0.1:1";
    CredentialProvider provider(
        {.env = env.lookup(), .imds_timeout = std::chrono::milliseconds(300)});
    ASSERT_ERROR(provider.get(), Errc::NotFound, "instance metadata at http://127.0.0.1:1");
}

}  // namespace
}  // namespace hoist::provisioner
