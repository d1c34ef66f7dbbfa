#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/http_client.hpp"
#include "provisioner/credentials.hpp"

namespace hoist::provisioner::ec2 {

inline constexpr std::string_view kApiVersion = "2016-11-15";

struct Tag {
    std::string key;
    std::string value;
};

struct TagSpecification {
    std::string resource_type = "instance";
    std::vector<Tag> tags;
};

struct RunInstancesRequest {
    std::string image_id;
    std::string instance_type;
    int min_count = 1;
    int max_count = 1;
    std::string subnet_id;
    std::vector<std::string> security_group_ids;
    std::string key_name;
    /// An instance profile name, or its ARN (starts with "arn:").
    std::string iam_instance_profile;
    std::vector<TagSpecification> tag_specifications;
    /// The user-data script as text; the client base64-encodes it.
    std::string user_data;
    /// At most 64 ASCII characters; the same token on every retry makes the launch happen once.
    std::string client_token;
};

struct Instance {
    std::string instance_id;
    std::string image_id;
    std::string instance_type;
    std::string state;  ///< pending, running, shutting-down, terminated, stopping, stopped
    int state_code = 0;
    std::string private_ip;
    std::string public_ip;
    std::string private_dns;
    std::string launch_time;
    std::string client_token;
    std::vector<Tag> tags;

    /// The value of a tag, or "" when absent.
    std::string tag(std::string_view key) const;
};

struct Reservation {
    std::string reservation_id;
    std::string owner_id;
    std::vector<Instance> instances;
};

struct Filter {
    std::string name;
    std::vector<std::string> values;
};

struct DescribeInstancesRequest {
    std::vector<std::string> instance_ids;
    std::vector<Filter> filters;
    /// Page size (5..1000); 0 leaves it to the service. Only without instance_ids.
    int max_results = 0;
};

struct InstanceStateChange {
    std::string instance_id;
    std::string previous_state;
    std::string current_state;
};

/// An error envelope: `<Response><Errors><Error><Code>..</Code><Message>..</Message>...`.
struct AwsError {
    long http_status = 0;
    std::string code;
    std::string message;
    std::string request_id;
};

/// Form parameters of a Query API call, in order.
using Params = std::vector<std::pair<std::string, std::string>>;

/// The x-www-form-urlencoded body: each name and value percent-encoded (RFC 3986).
std::string formEncode(const Params& params);
/// The parameters of a RunInstances call (Action and Version excluded), UserData base64-encoded.
Params runInstancesParams(const RunInstancesRequest& request);
/// Parses an error envelope; nullopt when the body is not one.
std::optional<AwsError> parseError(std::string_view xml, long http_status);
/// Parses a RunInstancesResponse.
Result<Reservation> parseRunInstances(std::string_view xml);
/// Parses one DescribeInstancesResponse page: its instances and the nextToken ("" at the end).
Result<std::pair<std::vector<Instance>, std::string>> parseDescribeInstances(std::string_view xml);
Result<std::vector<InstanceStateChange>> parseTerminateInstances(std::string_view xml);

/// Throttling codes the AWS SDKs' standard retry mode retries.
bool isThrottlingCode(std::string_view code);
/// Codes that name a transient fault (besides throttling) that standard mode retries.
bool isTransientCode(std::string_view code);
/// Whether a failed call is retried: throttling codes, transient codes, 5xx statuses and
/// transport failures; never InsufficientInstanceCapacity or another client fault.
bool isRetryable(const AwsError& error);
/// The hoist error code an AWS error maps to (AuthFailure -> Unauthorized, ...).
Errc errcOf(const AwsError& error);

/// Retries as the SDKs' standard mode: bounded attempts, delay uniform in
/// [0, min(cap, base * 2^(attempt-1))], and a retry quota (a token bucket shared by every call
/// of one client, so that a failing endpoint is not hit with retries from every caller): a
/// retry takes retry_cost tokens (timeout_retry_cost after a timeout) and is not made when
/// fewer are left; a call that succeeds gives back what its last retry took, or 1 token when
/// it took none, up to `quota`.
struct RetryOptions {
    int max_attempts = 3;
    std::chrono::milliseconds base{1000};
    std::chrono::milliseconds cap{20000};
    int quota = 500;
    int retry_cost = 5;
    int timeout_retry_cost = 10;
};

struct ClientOptions {
    /// https://ec2.<region>.amazonaws.com unless overridden (see resolveEndpoint).
    std::string endpoint;
    std::string region;
    RetryOptions retry;
    std::chrono::milliseconds timeout{30000};
};

/// The endpoint: `flag` (--endpoint-url), AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL, or the
/// regional default.
std::string resolveEndpoint(const std::string& flag, const std::string& region,
                            const EnvLookup& env);
/// The region: `flag`, AWS_REGION, AWS_DEFAULT_REGION; Invalid when none is set.
Result<std::string> resolveRegion(const std::string& flag, const EnvLookup& env);

/// An EC2 Query API client (version 2016-11-15, POST form bodies, SigV4). Errors name the
/// action, the AWS error code and message and the request id:
/// "ec2 RunInstances: InsufficientInstanceCapacity: We currently do not have ... (request id X)".
/// Thread-safe (calls are serialised).
class Client {
public:
    Client(ClientOptions options, std::shared_ptr<CredentialProvider> credentials);
    ~Client();

    /// One signed call with retries; the response body (XML) of a 2xx.
    Result<std::string> call(std::string_view action, const Params& params);
    Result<Reservation> runInstances(const RunInstancesRequest& request);
    Result<std::vector<InstanceStateChange>> terminateInstances(
        const std::vector<std::string>& ids);
    /// Follows NextToken through every page.
    Result<std::vector<Instance>> describeInstances(const DescribeInstancesRequest& request);

    /// Attempts the last call() made (1 when it did not retry), for tests and logs.
    int lastAttempts() const;
    /// The AWS error of the last failed call, if it was an error envelope.
    std::optional<AwsError> lastAwsError() const;
    /// Tokens left in the retry quota.
    int retryTokens() const;
    const ClientOptions& options() const { return options_; }

private:
    ClientOptions options_;
    std::shared_ptr<CredentialProvider> credentials_;
    mutable std::mutex mutex_;
    http::Client http_;
    int last_attempts_ = 0;
    std::optional<AwsError> last_error_;
    int retry_tokens_ = 0;
};

}  // namespace hoist::provisioner::ec2
