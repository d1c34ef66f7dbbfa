#include "provisioner/ec2.hpp"

#include <algorithm>
#include <array>
#include <set>
#include <thread>

#include <pugixml.hpp>

#include "core/crypto.hpp"
#include "core/log.hpp"
#include "provisioner/sigv4.hpp"

namespace hoist::provisioner::ec2 {

namespace {

constexpr std::string_view kComponent = "provisioner";

// EC2 answers in the namespace http://ec2.amazonaws.com/doc/2016-11-15/, and compatible
// servers sometimes with a prefix or none: match elements by their local name.
std::string_view localName(const pugi::xml_node& node) {
    std::string_view name = node.name();
    size_t colon = name.find(':');
    return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

pugi::xml_node child(const pugi::xml_node& node, std::string_view name) {
    for (auto c : node.children())
        if (c.type() == pugi::node_element && localName(c) == name) return c;
    return {};
}

std::vector<pugi::xml_node> items(const pugi::xml_node& set) {
    std::vector<pugi::xml_node> out;
    for (auto c : set.children())
        if (c.type() == pugi::node_element && localName(c) == "item") out.push_back(c);
    return out;
}

std::string text(const pugi::xml_node& node, std::string_view name) {
    return child(node, name).text().as_string();
}

struct ParsedXml {
    pugi::xml_document doc;
    pugi::xml_node root;
};

Result<std::unique_ptr<ParsedXml>> parseXml(std::string_view xml, std::string_view what,
                                            std::string_view root_name) {
    auto parsed = std::make_unique<ParsedXml>();
    auto result = parsed->doc.load_buffer(xml.data(), xml.size());
    if (!result)
        return fail(Errc::Corrupt, what, ": invalid XML at offset ", result.offset, ": ",
                    result.description());
    parsed->root = parsed->doc.document_element();
    if (localName(parsed->root) != root_name)
        return fail(Errc::Corrupt, what, ": expected <", root_name, ">, got <", parsed->root.name(),
                    ">");
    return parsed;
}

Instance parseInstance(const pugi::xml_node& node) {
    Instance out;
    out.instance_id = text(node, "instanceId");
    out.image_id = text(node, "imageId");
    out.instance_type = text(node, "instanceType");
    auto state = child(node, "instanceState");
    out.state = text(state, "name");
    out.state_code = child(state, "code").text().as_int();
    out.private_ip = text(node, "privateIpAddress");
    out.public_ip = text(node, "ipAddress");
    out.private_dns = text(node, "privateDnsName");
    out.launch_time = text(node, "launchTime");
    out.client_token = text(node, "clientToken");
    for (auto item : items(child(node, "tagSet")))
        out.tags.push_back({text(item, "key"), text(item, "value")});
    return out;
}

struct Endpoint {
    std::string host;  ///< host[:port] as the Host header carries it
    std::string path;  ///< "/" unless the endpoint has a path
};

Result<Endpoint> splitEndpoint(std::string_view url) {
    size_t scheme = url.find("://");
    if (scheme == std::string_view::npos)
        return fail(Errc::Invalid, "endpoint '", url, "' must be an http:// or https:// URL");
    std::string_view proto = url.substr(0, scheme);
    if (proto != "http" && proto != "https")
        return fail(Errc::Invalid, "endpoint '", url, "' must be an http:// or https:// URL");
    std::string_view rest = url.substr(scheme + 3);
    size_t slash = rest.find('/');
    Endpoint out;
    out.host = std::string(rest.substr(0, slash));
    out.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
    if (out.host.empty()) return fail(Errc::Invalid, "endpoint '", url, "' has no host");
    // curl leaves a default port out of the Host header, so the signature must too.
    std::string default_port = proto == "https" ? ":443" : ":80";
    if (out.host.ends_with(default_port)) out.host.resize(out.host.size() - default_port.size());
    return out;
}

}  // namespace

std::string Instance::tag(std::string_view key) const {
    for (const auto& t : tags)
        if (t.key == key) return t.value;
    return "";
}

std::string formEncode(const Params& params) {
    std::string out;
    for (const auto& [name, value] : params) {
        if (!out.empty()) out += '&';
        out += http::urlEncode(name);
        out += '=';
        out += http::urlEncode(value);
    }
    return out;
}

Params runInstancesParams(const RunInstancesRequest& r) {
    Params p;
    p.emplace_back("ImageId", r.image_id);
    p.emplace_back("InstanceType", r.instance_type);
    p.emplace_back("MinCount", std::to_string(r.min_count));
    p.emplace_back("MaxCount", std::to_string(r.max_count));
    if (!r.subnet_id.empty()) p.emplace_back("SubnetId", r.subnet_id);
    for (size_t i = 0; i < r.security_group_ids.size(); ++i)
        p.emplace_back("SecurityGroupId." + std::to_string(i + 1), r.security_group_ids[i]);
    if (!r.key_name.empty()) p.emplace_back("KeyName", r.key_name);
    if (!r.iam_instance_profile.empty()) {
        bool arn = r.iam_instance_profile.starts_with("arn:");
        p.emplace_back(arn ? "IamInstanceProfile.Arn" : "IamInstanceProfile.Name",
                       r.iam_instance_profile);
    }
    for (size_t i = 0; i < r.tag_specifications.size(); ++i) {
        std::string prefix = "TagSpecification." + std::to_string(i + 1) + ".";
        p.emplace_back(prefix + "ResourceType", r.tag_specifications[i].resource_type);
        const auto& tags = r.tag_specifications[i].tags;
        for (size_t j = 0; j < tags.size(); ++j) {
            std::string tag = prefix + "Tag." + std::to_string(j + 1) + ".";
            p.emplace_back(tag + "Key", tags[j].key);
            p.emplace_back(tag + "Value", tags[j].value);
        }
    }
    if (!r.user_data.empty()) p.emplace_back("UserData", crypto::base64Encode(r.user_data));
    if (!r.client_token.empty()) p.emplace_back("ClientToken", r.client_token);
    return p;
}

std::optional<AwsError> parseError(std::string_view xml, long http_status) {
    pugi::xml_document doc;
    if (!doc.load_buffer(xml.data(), xml.size())) return std::nullopt;
    auto root = doc.document_element();
    if (localName(root) != "Response" && localName(root) != "ErrorResponse") return std::nullopt;
    auto error = child(child(root, "Errors"), "Error");
    if (!error) error = child(root, "Error");
    if (!error) return std::nullopt;
    AwsError out;
    out.http_status = http_status;
    out.code = text(error, "Code");
    out.message = text(error, "Message");
    out.request_id = text(root, "RequestID");
    if (out.request_id.empty()) out.request_id = text(root, "RequestId");
    if (out.code.empty()) return std::nullopt;
    return out;
}

Result<Reservation> parseRunInstances(std::string_view xml) {
    HOIST_ASSIGN(auto parsed, parseXml(xml, "RunInstances response", "RunInstancesResponse"));
    Reservation out;
    out.reservation_id = text(parsed->root, "reservationId");
    out.owner_id = text(parsed->root, "ownerId");
    for (auto item : items(child(parsed->root, "instancesSet")))
        out.instances.push_back(parseInstance(item));
    if (out.instances.empty())
        return fail(Errc::Corrupt, "RunInstances response: no instances in instancesSet");
    return out;
}

Result<std::pair<std::vector<Instance>, std::string>> parseDescribeInstances(std::string_view xml) {
    HOIST_ASSIGN(auto parsed,
                 parseXml(xml, "DescribeInstances response", "DescribeInstancesResponse"));
    std::vector<Instance> instances;
    for (auto reservation : items(child(parsed->root, "reservationSet")))
        for (auto item : items(child(reservation, "instancesSet")))
            instances.push_back(parseInstance(item));
    return std::pair{std::move(instances), text(parsed->root, "nextToken")};
}

Result<std::vector<InstanceStateChange>> parseTerminateInstances(std::string_view xml) {
    HOIST_ASSIGN(auto parsed,
                 parseXml(xml, "TerminateInstances response", "TerminateInstancesResponse"));
    std::vector<InstanceStateChange> out;
    for (auto item : items(child(parsed->root, "instancesSet")))
        out.push_back({text(item, "instanceId"), text(child(item, "previousState"), "name"),
                       text(child(item, "currentState"), "name")});
    return out;
}

bool isThrottlingCode(std::string_view code) {
    static const std::set<std::string_view> kCodes = {"Throttling",
                                                      "ThrottlingException",
                                                      "ThrottledException",
                                                      "RequestThrottledException",
                                                      "TooManyRequestsException",
                                                      "ProvisionedThroughputExceededException",
                                                      "TransactionInProgressException",
                                                      "RequestLimitExceeded",
                                                      "BandwidthLimitExceeded",
                                                      "LimitExceededException",
                                                      "RequestThrottled",
                                                      "SlowDown",
                                                      "PriorRequestNotComplete",
                                                      "EC2ThrottledException"};
    return kCodes.contains(code);
}

bool isTransientCode(std::string_view code) {
    return code == "RequestTimeout" || code == "RequestTimeoutException" ||
           code == "InternalError" || code == "InternalFailure" || code == "ServiceUnavailable" ||
           code == "Unavailable";
}

bool isRetryable(const AwsError& error) {
    // Capacity is not a transient fault of the call: the same request keeps failing until the
    // caller picks another type or zone, so it goes back to the caller at once.
    if (error.code == "InsufficientInstanceCapacity" || error.code == "InstanceLimitExceeded")
        return false;
    if (isThrottlingCode(error.code) || isTransientCode(error.code)) return true;
    return error.http_status >= 500 && error.http_status <= 599;
}

Errc errcOf(const AwsError& error) {
    static const std::set<std::string_view> kAuth = {
        "AuthFailure",          "SignatureDoesNotMatch", "UnauthorizedOperation",
        "InvalidClientTokenId", "IncompleteSignature",   "MissingAuthenticationToken",
        "RequestExpired",       "OptInRequired",         "Blocked",
        "AccessDenied"};
    const std::string& c = error.code;
    if (kAuth.contains(c)) return Errc::Unauthorized;
    if (c == "IdempotentParameterMismatch") return Errc::Conflict;
    if (c == "InsufficientInstanceCapacity" || c == "InstanceLimitExceeded" || isThrottlingCode(c))
        return Errc::Busy;
    if (c.ends_with("NotFound") || c.ends_with(".NotFound")) return Errc::NotFound;
    if (c.starts_with("Invalid") || c.starts_with("Missing") || c == "UnknownParameter" ||
        c == "ValidationError")
        return Errc::Invalid;
    if (error.http_status >= 500) return Errc::Network;
    if (error.http_status >= 400) return Errc::Invalid;
    return Errc::Internal;
}

std::string resolveEndpoint(const std::string& flag, const std::string& region,
                            const EnvLookup& env) {
    if (!flag.empty()) return flag;
    if (auto v = env("AWS_ENDPOINT_URL_EC2")) return *v;
    if (auto v = env("AWS_ENDPOINT_URL")) return *v;
    return "https://ec2." + region + ".amazonaws.com";
}

Result<std::string> resolveRegion(const std::string& flag, const EnvLookup& env) {
    if (!flag.empty()) return flag;
    if (auto v = env("AWS_REGION")) return *v;
    if (auto v = env("AWS_DEFAULT_REGION")) return *v;
    return fail(Errc::Invalid, "no AWS region: pass --region or set AWS_REGION");
}

Client::Client(ClientOptions options, std::shared_ptr<CredentialProvider> credentials)
    : options_(std::move(options)),
      credentials_(std::move(credentials)),
      retry_tokens_(options_.retry.quota) {}

Client::~Client() = default;

int Client::lastAttempts() const {
    std::lock_guard lock(mutex_);
    return last_attempts_;
}

std::optional<AwsError> Client::lastAwsError() const {
    std::lock_guard lock(mutex_);
    return last_error_;
}

int Client::retryTokens() const {
    std::lock_guard lock(mutex_);
    return retry_tokens_;
}

// Ends the error of a failure that the retry quota keeps from being retried.
constexpr std::string_view kQuotaSpent = " (not retried: the retry quota is spent)";

Result<std::string> Client::call(std::string_view action, const Params& params) {
    std::lock_guard lock(mutex_);
    last_attempts_ = 0;
    last_error_.reset();
    HOIST_ASSIGN(auto endpoint, splitEndpoint(options_.endpoint));
    Params all{{"Action", std::string(action)}, {"Version", std::string(kApiVersion)}};
    all.insert(all.end(), params.begin(), params.end());
    const std::string body = formEncode(all);
    const int max_attempts = std::max(1, options_.retry.max_attempts);
    http::RetryPolicy backoff{max_attempts, options_.retry.base, options_.retry.cap};
    int last_retry_cost = 0;  // tokens the latest retry of this call took

    for (int attempt = 1;; ++attempt) {
        last_attempts_ = attempt;
        // Signed afresh each time: a retry carries a new X-Amz-Date, the same body (and so
        // the same ClientToken).
        HOIST_ASSIGN(auto creds, credentials_->get());
        sigv4::Scope scope{options_.region, "ec2", sigv4::amzTimeNow()};
        sigv4::Request signed_request{
            "POST",
            endpoint.path,
            {{"Host", endpoint.host},
             {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}},
            body};
        sigv4::prepare(signed_request, creds, scope);
        HOIST_ASSIGN(auto signature, sigv4::sign(signed_request, creds, scope));

        http::Request request;
        request.method = "POST";
        request.url = options_.endpoint;
        for (const auto& [name, value] : signed_request.headers)
            if (name != "Host") request.headers.push_back({name, value});
        request.headers.push_back({"Authorization", signature.authorization});
        request.body = body;
        request.timeout = options_.timeout;
        auto response = http_.send(request);

        std::string why;
        int retry_cost = options_.retry.retry_cost;
        if (!response) {
            why = response.error().message;
            if (response.error().code == Errc::Timeout)
                retry_cost = options_.retry.timeout_retry_cost;
            if (attempt >= max_attempts)
                return fail(response.error().code, "ec2 ", action, ": ", why, " (after ", attempt,
                            attempt == 1 ? " attempt)" : " attempts)");
            if (retry_tokens_ < retry_cost)
                return fail(response.error().code, "ec2 ", action, ": ", why, kQuotaSpent);
        } else if (response->ok()) {
            retry_tokens_ = std::min(options_.retry.quota,
                                     retry_tokens_ + (last_retry_cost > 0 ? last_retry_cost : 1));
            return std::move(response->body);
        } else {
            auto aws = parseError(response->body, response->status);
            if (!aws) {
                aws = AwsError{response->status, "HTTP" + std::to_string(response->status),
                               response->body.substr(0, 200), ""};
            }
            last_error_ = aws;
            bool last = !isRetryable(*aws) || attempt >= max_attempts;
            if (last || retry_tokens_ < retry_cost) {
                std::string request_id =
                    aws->request_id.empty() ? "" : " (request id " + aws->request_id + ")";
                std::string ending = !last ? std::string(kQuotaSpent)
                                     : attempt > 1
                                         ? " after " + std::to_string(attempt) + " attempts"
                                         : "";
                return fail(errcOf(*aws), "ec2 ", action, ": ", aws->code, ": ", aws->message,
                            request_id, ending);
            }
            why = aws->code;
        }
        retry_tokens_ -= retry_cost;
        last_retry_cost = retry_cost;
        auto delay = http::backoffDelay(backoff, attempt - 1);
        log::warn(kComponent, "ec2 call failed; retrying",
                  {{"action", action},
                   {"attempt", attempt},
                   {"error", why},
                   {"delay_ms", static_cast<std::int64_t>(delay.count())}});
        std::this_thread::sleep_for(delay);
    }
}

Result<Reservation> Client::runInstances(const RunInstancesRequest& request) {
    if (request.image_id.empty() || request.instance_type.empty())
        return fail(Errc::Invalid, "ec2 RunInstances: ImageId and InstanceType are required");
    if (request.min_count < 1 || request.max_count < request.min_count)
        return fail(Errc::Invalid, "ec2 RunInstances: need 1 <= MinCount <= MaxCount, got ",
                    request.min_count, " and ", request.max_count);
    if (request.client_token.size() > 64)
        return fail(Errc::Invalid, "ec2 RunInstances: ClientToken must be at most 64 characters");
    HOIST_ASSIGN(auto xml, call("RunInstances", runInstancesParams(request)));
    return parseRunInstances(xml);
}

Result<std::vector<InstanceStateChange>> Client::terminateInstances(
    const std::vector<std::string>& ids) {
    if (ids.empty()) return std::vector<InstanceStateChange>{};
    Params params;
    for (size_t i = 0; i < ids.size(); ++i)
        params.emplace_back("InstanceId." + std::to_string(i + 1), ids[i]);
    HOIST_ASSIGN(auto xml, call("TerminateInstances", params));
    return parseTerminateInstances(xml);
}

Result<std::vector<Instance>> Client::describeInstances(const DescribeInstancesRequest& request) {
    Params base;
    for (size_t i = 0; i < request.instance_ids.size(); ++i)
        base.emplace_back("InstanceId." + std::to_string(i + 1), request.instance_ids[i]);
    for (size_t i = 0; i < request.filters.size(); ++i) {
        std::string prefix = "Filter." + std::to_string(i + 1) + ".";
        base.emplace_back(prefix + "Name", request.filters[i].name);
        for (size_t j = 0; j < request.filters[i].values.size(); ++j)
            base.emplace_back(prefix + "Value." + std::to_string(j + 1),
                              request.filters[i].values[j]);
    }
    if (request.max_results > 0 && request.instance_ids.empty())
        base.emplace_back("MaxResults", std::to_string(request.max_results));

    std::vector<Instance> out;
    std::string token;
    std::set<std::string> seen;
    for (;;) {
        Params params = base;
        if (!token.empty()) params.emplace_back("NextToken", token);
        HOIST_ASSIGN(auto xml, call("DescribeInstances", params));
        HOIST_ASSIGN(auto page, parseDescribeInstances(xml));
        out.insert(out.end(), page.first.begin(), page.first.end());
        token = std::move(page.second);
        if (token.empty()) break;
        if (!seen.insert(token).second)
            return fail(Errc::Corrupt, "ec2 DescribeInstances: nextToken '", token,
                        "' came back twice; stopping to avoid a loop");
    }
    return out;
}

}  // namespace hoist::provisioner::ec2
