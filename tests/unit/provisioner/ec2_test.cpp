#include "provisioner/ec2.hpp"

#include "core/crypto.hpp"
#include "provisioner/user_data.hpp"
#include "testing.hpp"

namespace hoist::provisioner::ec2 {
namespace {

std::string param(const Params& params, const std::string& name) {
    for (const auto& [k, v] : params)
        if (k == name) return v;
    return "<absent>";
}

TEST(Ec2Params, RunInstancesCarriesEveryField) {
    RunInstancesRequest r;
    r.image_id = "ami-123";
    r.instance_type = "t3.micro";
    r.min_count = 2;
    r.max_count = 2;
    r.subnet_id = "subnet-1";
    r.security_group_ids = {"sg-1", "sg-2"};
    r.key_name = "admin";
    r.iam_instance_profile = "arn:aws:iam::1:instance-profile/node";
    r.tag_specifications = {{"instance", {{"Name", "hoist-agent"}, {"hoist:role", "agent"}}}};
    r.user_data = "#!/bin/sh\necho hi\n";
    r.client_token = "tok-1";
    Params p = runInstancesParams(r);
    EXPECT_EQ(param(p, "ImageId"), "ami-123");
    EXPECT_EQ(param(p, "MinCount"), "2");
    EXPECT_EQ(param(p, "MaxCount"), "2");
    EXPECT_EQ(param(p, "SubnetId"), "subnet-1");
    EXPECT_EQ(param(p, "SecurityGroupId.1"), "sg-1");
    EXPECT_EQ(param(p, "SecurityGroupId.2"), "sg-2");
    EXPECT_EQ(param(p, "KeyName"), "admin");
    EXPECT_EQ(param(p, "IamInstanceProfile.Arn"), "arn:aws:iam::1:instance-profile/node");
    EXPECT_EQ(param(p, "IamInstanceProfile.Name"), "<absent>");
    EXPECT_EQ(param(p, "TagSpecification.1.ResourceType"), "instance");
    EXPECT_EQ(param(p, "TagSpecification.1.Tag.2.Key"), "hoist:role");
    EXPECT_EQ(param(p, "TagSpecification.1.Tag.2.Value"), "agent");
    EXPECT_EQ(param(p, "UserData"), crypto::base64Encode("#!/bin/sh\necho hi\n"));
    EXPECT_EQ(param(p, "ClientToken"), "tok-1");
    r.iam_instance_profile = "node";
    EXPECT_EQ(param(runInstancesParams(r), "IamInstanceProfile.Name"), "node");
}

TEST(Ec2Params, FormEncodingUsesRfc3986) {
    EXPECT_EQ(formEncode({{"Action", "RunInstances"}, {"Tag.1.Value", "a b/c+d~"}}),
              "Action=RunInstances&Tag.1.Value=a%20b%2Fc%2Bd~");
}

TEST(Ec2Xml, ParsesDescribeWithNamespacePrefixAndNextToken) {
    const char* xml = R"(<?xml version="1.0" encoding="UTF-8"?>
<ec2:DescribeInstancesResponse xmlns:ec2="http://ec2.amazonaws.com/doc/2016-11-15/">
  <ec2:requestId>r1</ec2:requestId>
  <ec2:reservationSet>
    <ec2:item><ec2:reservationId>r-1</ec2:reservationId>
      <ec2:instancesSet>
        <ec2:item><ec2:instanceId>i-1</ec2:instanceId><ec2:instanceState><ec2:code>16</ec2:code><ec2:name>running</ec2:name></ec2:instanceState>
          <ec2:privateIpAddress>10.0.0.5</ec2:privateIpAddress>
          <ec2:tagSet><ec2:item><ec2:key>hoist:role</ec2:key><ec2:value>agent</ec2:value></ec2:item></ec2:tagSet></ec2:item>
        <ec2:item><ec2:instanceId>i-2</ec2:instanceId><ec2:instanceState><ec2:code>0</ec2:code><ec2:name>pending</ec2:name></ec2:instanceState></ec2:item>
      </ec2:instancesSet></ec2:item>
  </ec2:reservationSet>
  <ec2:nextToken>tok==</ec2:nextToken>
</ec2:DescribeInstancesResponse>)";
    auto page = parseDescribeInstances(xml);
    ASSERT_OK(page);
    ASSERT_EQ(page->first.size(), 2u);
    EXPECT_EQ(page->first[0].instance_id, "i-1");
    EXPECT_EQ(page->first[0].state, "running");
    EXPECT_EQ(page->first[0].state_code, 16);
    EXPECT_EQ(page->first[0].private_ip, "10.0.0.5");
    EXPECT_EQ(page->first[0].tag("hoist:role"), "agent");
    EXPECT_EQ(page->first[1].state, "pending");
    EXPECT_EQ(page->second, "tok==");
}

TEST(Ec2Xml, ParsesRunAndTerminateResponses) {
    auto run = parseRunInstances(
        R"(<RunInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>x</requestId>
<reservationId>r-9</reservationId><ownerId>1</ownerId><instancesSet><item><instanceId>i-9</instanceId>
<instanceState><code>0</code><name>pending</name></instanceState><clientToken>t</clientToken></item></instancesSet>
</RunInstancesResponse>)");
    ASSERT_OK(run);
    EXPECT_EQ(run->reservation_id, "r-9");
    ASSERT_EQ(run->instances.size(), 1u);
    EXPECT_EQ(run->instances[0].client_token, "t");
    auto term = parseTerminateInstances(
        R"(<TerminateInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><instancesSet><item>
<instanceId>i-9</instanceId><currentState><code>32</code><name>shutting-down</name></currentState>
<previousState><code>16</code><name>running</name></previousState></item></instancesSet></TerminateInstancesResponse>)");
    ASSERT_OK(term);
    ASSERT_EQ(term->size(), 1u);
    EXPECT_EQ((*term)[0].previous_state, "running");
    EXPECT_EQ((*term)[0].current_state, "shutting-down");
    ASSERT_ERROR(parseRunInstances("<Other/>"), Errc::Corrupt,
                 "RunInstances response: expected <RunInstancesResponse>, got <Other>");
    ASSERT_ERROR(parseRunInstances("<RunInstancesResponse"), Errc::Corrupt, "invalid XML");
}

TEST(Ec2Xml, ParsesTheErrorEnvelope) {
    auto e = parseError(
        "<Response><Errors><Error><Code>InsufficientInstanceCapacity</Code><Message>no capacity"
        "</Message></Error></Errors><RequestID>req-1</RequestID></Response>",
        500);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->code, "InsufficientInstanceCapacity");
    EXPECT_EQ(e->message, "no capacity");
    EXPECT_EQ(e->request_id, "req-1");
    EXPECT_FALSE(parseError("<html>busy</html>", 503).has_value());
}

TEST(Ec2Retry, RetriesThrottlingAnd5xxButNeverCapacityOrClientFaults) {
    EXPECT_TRUE(isRetryable({400, "RequestLimitExceeded", "", ""}));
    EXPECT_TRUE(isRetryable({503, "Unavailable", "", ""}));
    EXPECT_TRUE(isRetryable({500, "HTTP500", "", ""}));
    EXPECT_FALSE(isRetryable({500, "InsufficientInstanceCapacity", "", ""}));
    EXPECT_FALSE(isRetryable({400, "IdempotentParameterMismatch", "", ""}));
    EXPECT_FALSE(isRetryable({403, "SignatureDoesNotMatch", "", ""}));
    EXPECT_EQ(errcOf({403, "SignatureDoesNotMatch", "", ""}), Errc::Unauthorized);
    EXPECT_EQ(errcOf({401, "AuthFailure", "", ""}), Errc::Unauthorized);
    EXPECT_EQ(errcOf({400, "IdempotentParameterMismatch", "", ""}), Errc::Conflict);
    EXPECT_EQ(errcOf({400, "InvalidInstanceID.NotFound", "", ""}), Errc::NotFound);
    EXPECT_EQ(errcOf({400, "InvalidParameterValue", "", ""}), Errc::Invalid);
    EXPECT_EQ(errcOf({500, "InsufficientInstanceCapacity", "", ""}), Errc::Busy);
}

TEST(Ec2Config, EndpointAndRegionPrecedence) {
    std::map<std::string, std::string> vars;
    EnvLookup env = [&](const std::string& n) -> std::optional<std::string> {
        auto it = vars.find(n);
        if (it == vars.end()) return std::nullopt;
        return it->second;
    };
    EXPECT_EQ(resolveEndpoint("", "eu-west-1", env), "https://ec2.eu-west-1.amazonaws.com");
    vars["AWS_ENDPOINT_URL"] = "http://generic";
    EXPECT_EQ(resolveEndpoint("", "eu-west-1", env), "http://generic");
    vars["AWS_ENDPOINT_URL_EC2"] = "http://ec2-only";
    EXPECT_EQ(resolveEndpoint("", "eu-west-1", env), "http://ec2-only");
    EXPECT_EQ(resolveEndpoint("http://flag", "eu-west-1", env), "http://flag");
    ASSERT_ERROR(resolveRegion("", env), Errc::Invalid, "no AWS region");
    vars["AWS_DEFAULT_REGION"] = "us-west-2";
    EXPECT_EQ(*resolveRegion("", env), "us-west-2");
    vars["AWS_REGION"] = "us-east-2";
    EXPECT_EQ(*resolveRegion("", env), "us-east-2");
}

TEST(UserData, RendersQuotedValuesAndRefusesUnknownPlaceholders) {
    auto out =
        renderUserData("x {{repo}} {{role}}", {{"repo", "http://r/it's"}, {"role", "agent"}});
    ASSERT_OK(out);
    EXPECT_EQ(*out, "x 'http://r/it'\\''s' 'agent'");
    ASSERT_ERROR(renderUserData("{{rol}}", {{"role", "agent"}}), Errc::Invalid,
                 "user-data template: unknown placeholder '{{rol}}' (known: role)");
    ASSERT_ERROR(renderUserData("{{role", {{"role", "a"}}), Errc::Invalid, "is not closed");
}

TEST(UserData, DefaultTemplateRunsRestartHelperBootstrap) {
    auto out = renderUserData(defaultUserDataTemplate(), {{"repo", "http://repo"},
                                                          {"release", "2.0.0"},
                                                          {"role", "agent"},
                                                          {"coordinator", "http://coord"},
                                                          {"root", "/opt/hoist"},
                                                          {"trusted_key_pem", ""},
                                                          {"allow_unsigned", "true"}});
    ASSERT_OK(out);
    EXPECT_TRUE(out->starts_with("#!/bin/sh\n"));
    EXPECT_NE(out->find("restart-helper --root '/opt/hoist' bootstrap --repo 'http://repo' "
                        "--release '2.0.0' \\\n    --role 'agent' --coordinator 'http://coord' "
                        "--id \"$node_id\" $trust"),
              std::string::npos)
        << *out;
}

}  // namespace
}  // namespace hoist::provisioner::ec2
