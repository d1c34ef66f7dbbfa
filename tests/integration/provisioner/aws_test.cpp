// The EC2 client and the provisioner's aws backend against fake-ec2, which checks every
// request's SigV4 signature with its own copy of the key.
#include <set>

#include "core/crypto.hpp"
#include "core/http_client.hpp"
#include "core/json.hpp"
#include "provisioner/ec2.hpp"
#include "provisioner/service_client.hpp"
#include "testing.hpp"

namespace hoist {
namespace {

using testing::ServerProcess;
using testing::TempFolder;
using testing::waitFor;
namespace ec2 = provisioner::ec2;

constexpr const char* kKeyId = "AKIDFAKEEC2";
constexpr const char* kSecret = "fake/secret+key";
constexpr const char* kRegion = "eu-central-1";

class FakeEc2 {
public:
    explicit FakeEc2(const TempFolder& tmp, int pending_polls = 1)
        : server_({HOIST_FAKE_EC2, "--port-file", (tmp / "ec2.port").string(), "--access-key",
                   kKeyId, "--secret-key", kSecret, "--region", kRegion, "--pending-polls",
                   std::to_string(pending_polls)},
                  tmp / "ec2.port", tmp / "ec2.log") {}
    std::string url() const { return server_.url(); }
    bool started() const { return server_.started(); }

    void inject(const std::string& action, const std::string& code, int status, int times) {
        http::Client client;
        auto reply = client.send({.method = "POST",
                                  .url = url() + "/_fake/fail",
                                  .body = "{\"action\":\"" + action + "\",\"code\":\"" + code +
                                          "\",\"status\":" + std::to_string(status) +
                                          ",\"times\":" + std::to_string(times) + "}"});
        ASSERT_TRUE(reply && reply->ok());
    }
    // (action, client token, outcome) of every signed call so far.
    std::vector<std::tuple<std::string, std::string, std::string>> requests() {
        http::Client client;
        auto reply = client.send({.url = url() + "/_fake/requests"});
        std::vector<std::tuple<std::string, std::string, std::string>> out;
        if (!reply) return out;
        auto doc = json::parseObject(reply->body, "requests");
        for (const auto& r : (*doc)["requests"].GetArray())
            out.emplace_back(r["action"].GetString(), r["client_token"].GetString(),
                             r["outcome"].GetString());
        return out;
    }
    std::string instancesJson() {
        http::Client client;
        auto reply = client.send({.url = url() + "/_fake/instances"});
        return reply ? reply->body : "";
    }

private:
    ServerProcess server_;
};

std::shared_ptr<ec2::Client> makeClient(const std::string& endpoint, std::string secret = kSecret,
                                        std::string key = kKeyId, int attempts = 3) {
    provisioner::CredentialProvider::Options creds;
    creds.explicit_credentials = provisioner::sigv4::Credentials{key, secret, ""};
    ec2::ClientOptions options;
    options.endpoint = endpoint;
    options.region = kRegion;
    options.retry = {attempts, std::chrono::milliseconds(5), std::chrono::milliseconds(50)};
    return std::make_shared<ec2::Client>(
        options, std::make_shared<provisioner::CredentialProvider>(std::move(creds)));
}

ec2::RunInstancesRequest agentRequest(int count, const std::string& token) {
    ec2::RunInstancesRequest r;
    r.image_id = "ami-hoist";
    r.instance_type = "t3.micro";
    r.min_count = count;
    r.max_count = count;
    r.security_group_ids = {"sg-1"};
    r.tag_specifications = {{"instance", {{"hoist:cluster", "test"}, {"hoist:role", "agent"}}}};
    r.user_data = "#!/bin/sh\necho boot\n";
    r.client_token = token;
    return r;
}

class Ec2ClientTest : public ::testing::Test {
protected:
    TempFolder tmp_;
    FakeEc2 fake_{tmp_};
};

TEST_F(Ec2ClientTest, RunDescribeTerminateRoundTrip) {
    ASSERT_TRUE(fake_.started());
    auto client = makeClient(fake_.url());
    auto reservation = client->runInstances(agentRequest(2, "tok-rt"));
    ASSERT_OK(reservation);
    ASSERT_EQ(reservation->instances.size(), 2u);
    EXPECT_EQ(reservation->instances[0].state, "pending");
    EXPECT_EQ(reservation->instances[0].tag("hoist:role"), "agent");
    EXPECT_NE(fake_.instancesJson().find("echo boot"), std::string::npos)
        << "user data arrives base64-encoded and decodes to the script";

    ec2::DescribeInstancesRequest describe;
    describe.filters = {{"tag:hoist:cluster", {"test"}}};
    auto seen = client->describeInstances(describe);  // the first poll: still pending
    ASSERT_OK(seen);
    seen = client->describeInstances(describe);
    ASSERT_OK(seen);
    ASSERT_EQ(seen->size(), 2u);
    EXPECT_EQ((*seen)[0].state, "running");
    EXPECT_FALSE((*seen)[0].private_ip.empty());

    std::string id = reservation->instances[0].instance_id;
    auto changes = client->terminateInstances({id});
    ASSERT_OK(changes);
    ASSERT_EQ(changes->size(), 1u);
    EXPECT_EQ((*changes)[0].previous_state, "running");
    EXPECT_EQ((*changes)[0].current_state, "shutting-down");
    ASSERT_OK(client->describeInstances({.instance_ids = {id}}));
    auto gone = client->describeInstances({.instance_ids = {id}});
    ASSERT_OK(gone);
    EXPECT_EQ(gone->at(0).state, "terminated");
    ASSERT_ERROR(client->terminateInstances({"i-00000000000000bad"}), Errc::NotFound,
                 "ec2 TerminateInstances: InvalidInstanceID.NotFound: The instance ID "
                 "'i-00000000000000bad' does not exist");
}

TEST_F(Ec2ClientTest, DescribeFollowsNextTokenThroughEveryPage) {
    auto client = makeClient(fake_.url());
    ASSERT_OK(client->runInstances(agentRequest(12, "tok-pages")));
    ec2::DescribeInstancesRequest describe;
    describe.filters = {{"tag:hoist:role", {"agent"}}};
    describe.max_results = 5;
    auto all = client->describeInstances(describe);
    ASSERT_OK(all);
    EXPECT_EQ(all->size(), 12u);
    std::set<std::string> ids;
    for (const auto& i : *all) ids.insert(i.instance_id);
    EXPECT_EQ(ids.size(), 12u);
    int describes = 0;
    for (const auto& [action, token, outcome] : fake_.requests())
        if (action == "DescribeInstances") ++describes;
    EXPECT_EQ(describes, 3);
}

TEST_F(Ec2ClientTest, ThrottlingIsRetriedWithTheSameClientToken) {
    auto client = makeClient(fake_.url());
    fake_.inject("RunInstances", "RequestLimitExceeded", 503, 2);
    auto reservation = client->runInstances(agentRequest(1, "tok-throttle"));
    ASSERT_OK(reservation);
    EXPECT_EQ(client->lastAttempts(), 3);
    auto log = fake_.requests();
    ASSERT_EQ(log.size(), 3u);
    for (const auto& [action, token, outcome] : log) {
        EXPECT_EQ(action, "RunInstances");
        EXPECT_EQ(token, "tok-throttle");
    }
    EXPECT_EQ(std::get<2>(log[0]), "503 RequestLimitExceeded");
    EXPECT_EQ(std::get<2>(log[2]), "200");
}

TEST_F(Ec2ClientTest, ThrottlingGivesUpAfterTheAttemptBudget) {
    auto client = makeClient(fake_.url());
    fake_.inject("*", "RequestLimitExceeded", 503, 10);
    ASSERT_ERROR(client->runInstances(agentRequest(1, "tok-budget")), Errc::Busy,
                 "ec2 RunInstances: RequestLimitExceeded: injected by the test (request id fake-");
    auto err = client->runInstances(agentRequest(1, "tok-budget"));
    ASSERT_FALSE(err.has_value());
    EXPECT_NE(err.error().message.find("after 3 attempts"), std::string::npos)
        << err.error().message;
    EXPECT_EQ(fake_.requests().size(), 6u);
}

// Standard mode's retry quota: retries stop once the bucket is spent, and successes refill it.
TEST_F(Ec2ClientTest, RetryQuotaStopsRetriesUntilCallsSucceedAgain) {
    provisioner::CredentialProvider::Options creds;
    creds.explicit_credentials = provisioner::sigv4::Credentials{kKeyId, kSecret, ""};
    ec2::ClientOptions options;
    options.endpoint = fake_.url();
    options.region = kRegion;
    options.retry = {3, std::chrono::milliseconds(1), std::chrono::milliseconds(5), 12, 5, 10};
    ec2::Client client(options,
                       std::make_shared<provisioner::CredentialProvider>(std::move(creds)));

    fake_.inject("*", "RequestLimitExceeded", 503, 5);
    auto spent = client.describeInstances({});
    ASSERT_FALSE(spent.has_value());
    EXPECT_NE(spent.error().message.find("after 3 attempts"), std::string::npos)
        << spent.error().message;
    EXPECT_EQ(client.retryTokens(), 2);  // 12 - 2 retries x 5

    ASSERT_ERROR(client.describeInstances({}), Errc::Busy,
                 "RequestLimitExceeded: injected by the test (request id fake-");
    EXPECT_EQ(client.lastAttempts(), 1);
    EXPECT_NE(client.lastAwsError()->message.find("injected"), std::string::npos);
    auto refused = client.describeInstances({});  // the 4th injected failure, not retried either
    ASSERT_FALSE(refused.has_value());
    EXPECT_NE(refused.error().message.find("(not retried: the retry quota is spent)"),
              std::string::npos)
        << refused.error().message;
    EXPECT_EQ(fake_.requests().size(), 5u);

    for (int i = 0; i < 3; ++i) ASSERT_OK(client.describeInstances({}));  // +1 token each
    EXPECT_EQ(client.retryTokens(), 5);
    fake_.inject("*", "RequestLimitExceeded", 503, 1);
    ASSERT_OK(client.describeInstances({}));  // one retry: takes 5, gives them back on success
    EXPECT_EQ(client.lastAttempts(), 2);
    EXPECT_EQ(client.retryTokens(), 5);
}

TEST_F(Ec2ClientTest, ServerErrorsAreRetried) {
    auto client = makeClient(fake_.url());
    fake_.inject("DescribeInstances", "InternalError", 500, 1);
    ASSERT_OK(client->describeInstances({}));
    EXPECT_EQ(client->lastAttempts(), 2);
}

TEST_F(Ec2ClientTest, InsufficientCapacityIsSurfacedAtOnce) {
    auto client = makeClient(fake_.url());
    fake_.inject("RunInstances", "InsufficientInstanceCapacity", 500, 1);
    ASSERT_ERROR(client->runInstances(agentRequest(1, "tok-cap")), Errc::Busy,
                 "ec2 RunInstances: InsufficientInstanceCapacity: injected by the test");
    EXPECT_EQ(client->lastAttempts(), 1);
    ASSERT_TRUE(client->lastAwsError().has_value());
    EXPECT_EQ(client->lastAwsError()->code, "InsufficientInstanceCapacity");
    EXPECT_EQ(fake_.requests().size(), 1u);
}

TEST_F(Ec2ClientTest, ClientTokenMakesRunInstancesIdempotent) {
    auto client = makeClient(fake_.url());
    auto first = client->runInstances(agentRequest(2, "tok-idem"));
    ASSERT_OK(first);
    auto again = client->runInstances(agentRequest(2, "tok-idem"));
    ASSERT_OK(again);
    EXPECT_EQ(again->reservation_id, first->reservation_id);
    EXPECT_EQ(again->instances[1].instance_id, first->instances[1].instance_id);
    EXPECT_EQ(client->describeInstances({})->size(), 2u);
    ASSERT_ERROR(client->runInstances(agentRequest(3, "tok-idem")), Errc::Conflict,
                 "ec2 RunInstances: IdempotentParameterMismatch: The client token you have "
                 "provided is associated with a resource that is already deleted or has "
                 "different parameters");
    EXPECT_EQ(client->lastAttempts(), 1);
}

TEST_F(Ec2ClientTest, BadSignaturesAreRejectedAndNotRetried) {
    auto wrong_secret = makeClient(fake_.url(), "not-the-secret");
    ASSERT_ERROR(wrong_secret->describeInstances({}), Errc::Unauthorized,
                 "ec2 DescribeInstances: SignatureDoesNotMatch: The request signature we "
                 "calculated does not match the signature you provided");
    EXPECT_EQ(wrong_secret->lastAttempts(), 1);
    auto wrong_key = makeClient(fake_.url(), kSecret, "AKIDOTHER");
    ASSERT_ERROR(wrong_key->describeInstances({}), Errc::Unauthorized,
                 "ec2 DescribeInstances: AuthFailure: AWS was not able to validate the provided "
                 "access credentials");
    EXPECT_TRUE(fake_.instancesJson().find("i-") == std::string::npos);
}

TEST_F(Ec2ClientTest, UnreachableEndpointIsANetworkError) {
    auto client = makeClient("http://127.0.0.1:1", kSecret, kKeyId, 2);
    auto result = client->describeInstances({});
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().code, Errc::Network);
    EXPECT_NE(result.error().message.find("ec2 DescribeInstances: "), std::string::npos);
    EXPECT_NE(result.error().message.find("(after 2 attempts)"), std::string::npos)
        << result.error().message;
}

// The provisioner service with the aws backend, end to end: HTTP in, signed EC2 calls out.
class ProvisionerAwsTest : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(fake_.started());
        testing::writeFile(tmp_ / "token", "prov-token\n");
        start();
    }
    void start() {
        server_.reset();
        server_ =
            std::make_unique<ServerProcess>(std::vector<std::string>{HOIST_PROVISIONER,
                                                                     "serve",
                                                                     "--listen",
                                                                     "127.0.0.1:0",
                                                                     "--port-file",
                                                                     (tmp_ / "prov.port").string(),
                                                                     "--token-file",
                                                                     (tmp_ / "token").string(),
                                                                     "--state",
                                                                     (tmp_ / "prov.db").string(),
                                                                     "--backend",
                                                                     "aws",
                                                                     "--repo-url",
                                                                     "http://repo.example",
                                                                     "--coordinator-url",
                                                                     "http://coord.example",
                                                                     "--release",
                                                                     "1.0.0",
                                                                     "--image-id",
                                                                     "ami-hoist",
                                                                     "--subnet-id",
                                                                     "subnet-9",
                                                                     "--security-group-id",
                                                                     "sg-a",
                                                                     "--security-group-id",
                                                                     "sg-b",
                                                                     "--cluster",
                                                                     "itest",
                                                                     "--retry-base-ms",
                                                                     "5",
                                                                     "--allow-unsigned",
                                                                     "--describe-page-size",
                                                                     "5"},
                                            tmp_ / "prov.port", tmp_ / "prov.log",
                                            std::vector<std::pair<std::string, std::string>>{
                                                {"AWS_ACCESS_KEY_ID", kKeyId},
                                                {"AWS_SECRET_ACCESS_KEY", kSecret},
                                                {"AWS_REGION", kRegion},
                                                {"AWS_ENDPOINT_URL_EC2", fake_.url()},
                                                {"AWS_EC2_METADATA_DISABLED", "true"}});
        ASSERT_TRUE(server_->started()) << testing::readFile(tmp_ / "prov.log");
    }
    Result<http::Response> call(const std::string& method, const std::string& path,
                                const std::string& body = "", bool auth = true) {
        http::Request r;
        r.method = method;
        r.url = server_->url() + path;
        r.body = body;
        if (auth) r.headers.push_back(http::bearer("prov-token"));
        return client_.send(r);
    }
    json::Document parse(const Result<http::Response>& reply) {
        EXPECT_TRUE(reply.has_value());
        auto doc = json::parseObject(reply ? reply->body : "{}", "reply");
        EXPECT_TRUE(doc.has_value()) << (reply ? reply->body : "");
        return doc ? std::move(*doc) : json::Document();
    }
    std::string nodeState(const std::string& id) {
        auto doc = parse(call("GET", "/v1/nodes/" + id));
        return doc.HasMember("state") ? doc["state"].GetString() : "";
    }

    TempFolder tmp_;
    FakeEc2 fake_{tmp_};
    std::unique_ptr<ServerProcess> server_;
    http::Client client_;
};

TEST_F(ProvisionerAwsTest, AddAndRemoveEndToEnd) {
    auto refused =
        call("POST", "/v1/nodes", R"({"role":"agent","count":2,"idempotency_key":"k1"})", false);
    ASSERT_TRUE(refused.has_value());
    EXPECT_EQ(refused->status, 401);
    EXPECT_TRUE(fake_.requests().empty()) << "nothing reaches EC2 without the token";

    auto added = call("POST", "/v1/nodes", R"({"role":"agent","count":2,"idempotency_key":"k1"})");
    ASSERT_TRUE(added.has_value());
    ASSERT_EQ(added->status, 201) << added->body;
    auto doc = parse(added);
    ASSERT_EQ(doc["nodes"].Size(), 2u);
    std::string id = doc["nodes"][0]["id"].GetString();
    EXPECT_TRUE(id.starts_with("i-"));
    EXPECT_STREQ(doc["nodes"][0]["state"].GetString(), "pending");
    EXPECT_STREQ(doc["nodes"][0]["release"].GetString(), "1.0.0");

    // The instance carries the bootstrap script and the tags the backend filters on.
    std::string instances = fake_.instancesJson();
    EXPECT_NE(instances.find("restart-helper --root '/opt/hoist' bootstrap --repo "
                             "'http://repo.example' --release '1.0.0'"),
              std::string::npos)
        << instances;
    EXPECT_NE(instances.find(R"("hoist:cluster":"itest")"), std::string::npos);

    ASSERT_TRUE(waitFor([&] { return nodeState(id) == "running"; }, std::chrono::seconds(10)));
    auto listed = parse(call("GET", "/v1/nodes"));
    EXPECT_EQ(listed["nodes"].Size(), 2u);
    EXPECT_STRNE(listed["nodes"][0]["address"].GetString(), "");

    // The same key again: the same nodes, no second RunInstances.
    auto replay = call("POST", "/v1/nodes", R"({"role":"agent","count":2,"idempotency_key":"k1"})");
    ASSERT_EQ(replay->status, 200) << replay->body;
    EXPECT_EQ(std::string(parse(replay)["nodes"][0]["id"].GetString()), id);
    int runs = 0;
    for (const auto& [action, token, outcome] : fake_.requests())
        if (action == "RunInstances") ++runs;
    EXPECT_EQ(runs, 1);
    auto conflict =
        call("POST", "/v1/nodes", R"({"role":"master","count":2,"idempotency_key":"k1"})");
    EXPECT_EQ(conflict->status, 409);

    auto removed = call("DELETE", "/v1/nodes/" + id);
    ASSERT_EQ(removed->status, 202) << removed->body;
    EXPECT_STREQ(parse(removed)["state"].GetString(), "terminating");
    ASSERT_TRUE(waitFor([&] { return nodeState(id) == "terminated"; }, std::chrono::seconds(10)));
    EXPECT_EQ(parse(call("GET", "/v1/nodes"))["nodes"].Size(), 1u);
    EXPECT_EQ(parse(call("GET", "/v1/nodes?all=1"))["nodes"].Size(), 2u);
    EXPECT_EQ(call("DELETE", "/v1/nodes/" + id)->status, 200);
    EXPECT_EQ(call("DELETE", "/v1/nodes/i-nope")->status, 404);
    EXPECT_EQ(call("DELETE", "/v1/nodes/" + id, "", false)->status, 401);

    // State survives a restart of the provisioner.
    start();
    EXPECT_EQ(parse(call("GET", "/v1/nodes?all=1"))["nodes"].Size(), 2u);
}

TEST_F(ProvisionerAwsTest, ThrottledLaunchRetriesWithOneClientToken) {
    fake_.inject("RunInstances", "RequestLimitExceeded", 503, 2);
    auto added =
        call("POST", "/v1/nodes", R"({"role":"master","count":1,"idempotency_key":"k-t"})");
    ASSERT_TRUE(added.has_value());
    ASSERT_EQ(added->status, 201) << added->body;
    std::set<std::string> tokens;
    int runs = 0;
    for (const auto& [action, token, outcome] : fake_.requests()) {
        if (action != "RunInstances") continue;
        ++runs;
        tokens.insert(token);
    }
    EXPECT_EQ(runs, 3);
    ASSERT_EQ(tokens.size(), 1u);
    EXPECT_TRUE(tokens.begin()->starts_with("hoist-"));
}

TEST_F(ProvisionerAwsTest, CapacityFailureIsReportedAndTheSameKeyTriesAgain) {
    fake_.inject("RunInstances", "InsufficientInstanceCapacity", 500, 1);
    auto failed =
        call("POST", "/v1/nodes", R"({"role":"agent","count":1,"idempotency_key":"k-c"})");
    ASSERT_TRUE(failed.has_value());
    EXPECT_EQ(failed->status, httpStatus(Errc::Busy));
    EXPECT_NE(failed->body.find("ec2 RunInstances: InsufficientInstanceCapacity"),
              std::string::npos)
        << failed->body;
    EXPECT_EQ(parse(call("GET", "/v1/nodes"))["nodes"].Size(), 0u);
    auto retried =
        call("POST", "/v1/nodes", R"({"role":"agent","count":1,"idempotency_key":"k-c"})");
    ASSERT_EQ(retried->status, 201) << retried->body;
    auto log = fake_.requests();
    ASSERT_GE(log.size(), 2u);
    EXPECT_EQ(std::get<1>(log[0]), std::get<1>(log[1]));
}

TEST_F(ProvisionerAwsTest, ListingPagesThroughManyInstances) {
    auto added =
        call("POST", "/v1/nodes", R"({"role":"agent","count":12,"idempotency_key":"k-p"})");
    ASSERT_EQ(added->status, 201) << added->body;
    ASSERT_TRUE(waitFor(
        [&] {
            auto doc = parse(call("GET", "/v1/nodes"));
            for (const auto& n : doc["nodes"].GetArray())
                if (std::string(n["state"].GetString()) != "running") return false;
            return doc["nodes"].Size() == 12u;
        },
        std::chrono::seconds(10)));
}

TEST_F(ProvisionerAwsTest, ServiceClientAddsListsAndRemoves) {
    provisioner::ServiceClient client(server_->url(), "prov-token");
    auto added = client.add({"master", 1, "k-client", ""});
    ASSERT_OK(added);
    EXPECT_TRUE(added->created);
    ASSERT_EQ(added->nodes.size(), 1u);
    EXPECT_EQ(added->nodes[0].role, "master");
    EXPECT_EQ(added->nodes[0].backend, "aws");
    auto again = client.add({"master", 1, "k-client", ""});
    ASSERT_OK(again);
    EXPECT_FALSE(again->created);
    ASSERT_ERROR(client.add({"master", 2, "k-client", ""}), Errc::Conflict,
                 "provisioner: POST /v1/nodes: idempotency key 'k-client' was used for role "
                 "master, count 1");
    auto listed = client.list();
    ASSERT_OK(listed);
    ASSERT_EQ(listed->size(), 1u);
    auto removed = client.remove(added->nodes[0].id);
    ASSERT_OK(removed);
    EXPECT_EQ(removed->state, "terminating");
    ASSERT_ERROR(client.remove("i-missing"), Errc::NotFound, "no node 'i-missing'");
    provisioner::ServiceClient wrong(server_->url(), "wrong-token");
    ASSERT_ERROR(wrong.add({"agent", 1, "k-x", ""}), Errc::Unauthorized, "provisioner: POST");
}

TEST_F(ProvisionerAwsTest, RefusesBadRequestsWithoutCallingEc2) {
    auto bad_role = call("POST", "/v1/nodes", R"({"role":"agnet","count":1})");
    EXPECT_EQ(bad_role->status, 400);
    EXPECT_EQ(bad_role->body,
              R"({"error":"unknown role 'agnet' (roles: master, agent); did you mean 'agent'?"})");
    auto bad_field = call("POST", "/v1/nodes", R"({"role":"agent","cuont":1})");
    EXPECT_EQ(bad_field->status, 400);
    EXPECT_NE(bad_field->body.find("unknown field 'cuont'"), std::string::npos);
    EXPECT_TRUE(fake_.requests().empty());
}

}  // namespace
}  // namespace hoist
