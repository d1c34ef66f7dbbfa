#include "provisioner/credentials.hpp"

#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "core/files.hpp"
#include "core/http_client.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"

namespace hoist::provisioner {

namespace {

constexpr std::string_view kComponent = "provisioner";

std::optional<std::chrono::system_clock::time_point> parseIsoTime(const std::string& text) {
    std::tm tm{};
    std::istringstream in(text);
    in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
    if (in.fail()) return std::nullopt;
    return std::chrono::system_clock::from_time_t(timegm(&tm));
}

}  // namespace

EnvLookup processEnv() {
    return [](const std::string& name) -> std::optional<std::string> {
        const char* value = std::getenv(name.c_str());
        if (value == nullptr || *value == '\0') return std::nullopt;
        return std::string(value);
    };
}

Result<sigv4::Credentials> credentialsFromEnvironment(const EnvLookup& env) {
    auto id = env("AWS_ACCESS_KEY_ID");
    auto secret = env("AWS_SECRET_ACCESS_KEY");
    if (!id && !secret) return fail(Errc::NotFound, "AWS_ACCESS_KEY_ID is not set");
    if (!id || !secret)
        return fail(Errc::Invalid,
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together");
    sigv4::Credentials creds{*id, *secret, env("AWS_SESSION_TOKEN").value_or("")};
    return creds;
}

Result<sigv4::Credentials> credentialsFromFile(const std::filesystem::path& file,
                                               const std::string& profile) {
    auto text = files::readFile(file, 1u << 20);
    if (!text) {
        if (text.error().code == Errc::NotFound)
            return fail(Errc::NotFound, "shared credentials file ", file.string(),
                        " does not exist");
        return std::unexpected(text.error());
    }
    bool found = false;
    bool in_profile = false;
    sigv4::Credentials creds;
    for (const auto& raw : strings::split(*text, '\n')) {
        std::string_view line = strings::trim(raw);
        if (line.empty() || line.front() == '#' || line.front() == ';') continue;
        if (line.front() == '[') {
            if (line.back() != ']')
                return fail(Errc::Invalid, file.string(), ": malformed section line '", line, "'");
            std::string_view name = strings::trim(line.substr(1, line.size() - 2));
            in_profile = name == profile;
            found = found || in_profile;
            continue;
        }
        if (!in_profile) continue;
        size_t eq = line.find('=');
        if (eq == std::string_view::npos) continue;
        std::string key = strings::toLower(strings::trim(line.substr(0, eq)));
        std::string value(strings::trim(line.substr(eq + 1)));
        if (key == "aws_access_key_id")
            creds.access_key_id = value;
        else if (key == "aws_secret_access_key")
            creds.secret_access_key = value;
        else if (key == "aws_session_token")
            creds.session_token = value;
    }
    if (!found) return fail(Errc::NotFound, file.string(), ": no profile '", profile, "'");
    if (creds.access_key_id.empty() || creds.secret_access_key.empty())
        return fail(Errc::Invalid, file.string(), ": profile '", profile,
                    "' must set aws_access_key_id and aws_secret_access_key");
    return creds;
}

Result<ImdsCredentials> credentialsFromImds(const std::string& endpoint,
                                            std::chrono::milliseconds timeout) {
    http::Client client;
    http::Request token_request;
    token_request.method = "PUT";
    token_request.url = http::joinUrl(endpoint, "/latest/api/token");
    token_request.headers = {{"X-aws-ec2-metadata-token-ttl-seconds", "21600"}};
    token_request.connect_timeout = timeout;
    token_request.timeout = timeout;
    HOIST_ASSIGN(auto token_reply, client.send(token_request));
    if (!token_reply.ok())
        return fail(Errc::Unauthorized, "instance metadata: token request answered ",
                    token_reply.status);

    auto get = [&](const std::string& path) -> Result<std::string> {
        http::Request request;
        request.url = http::joinUrl(endpoint, path);
        request.headers = {{"X-aws-ec2-metadata-token", token_reply.body}};
        request.connect_timeout = timeout;
        request.timeout = timeout;
        HOIST_ASSIGN(auto reply, client.send(request));
        if (reply.status == 404)
            return fail(Errc::NotFound, "instance metadata: ", path, " does not exist");
        if (!reply.ok())
            return fail(Errc::Network, "instance metadata: GET ", path, " answered ", reply.status);
        return reply.body;
    };
    HOIST_ASSIGN(auto roles, get("/latest/meta-data/iam/security-credentials/"));
    std::string role(strings::trim(strings::split(roles, '\n').front()));
    if (role.empty()) return fail(Errc::NotFound, "instance metadata: no IAM role is attached");
    HOIST_ASSIGN(auto body, get("/latest/meta-data/iam/security-credentials/" + role));
    HOIST_ASSIGN(auto doc, json::parseObject(body, "instance metadata credentials"));
    constexpr std::string_view ctx = "instance metadata credentials";
    HOIST_ASSIGN(auto code, json::optString(doc, "Code", ctx));
    if (code && *code != "Success")
        return fail(Errc::Unauthorized, "instance metadata: role '", role,
                    "' credentials: ", *code);
    ImdsCredentials out;
    HOIST_ASSIGN(out.credentials.access_key_id, json::getString(doc, "AccessKeyId", ctx));
    HOIST_ASSIGN(out.credentials.secret_access_key, json::getString(doc, "SecretAccessKey", ctx));
    HOIST_ASSIGN(out.credentials.session_token, json::getString(doc, "Token", ctx));
    HOIST_ASSIGN(auto expiration, json::optString(doc, "Expiration", ctx));
    if (expiration) out.expiration = parseIsoTime(*expiration);
    return out;
}

CredentialProvider::CredentialProvider(Options options) : options_(std::move(options)) {
    if (!options_.env) options_.env = processEnv();
}

Result<sigv4::Credentials> CredentialProvider::get() {
    std::lock_guard lock(mutex_);
    if (options_.explicit_credentials) {
        source_ = "explicit";
        return *options_.explicit_credentials;
    }
    const EnvLookup& env = options_.env;
    auto from_env = credentialsFromEnvironment(env);
    if (from_env) {
        source_ = "environment";
        return from_env;
    }
    if (from_env.error().code != Errc::NotFound) return from_env;

    std::string profile = options_.profile;
    if (profile.empty()) profile = env("AWS_PROFILE").value_or("default");
    std::filesystem::path file;
    if (auto f = env("AWS_SHARED_CREDENTIALS_FILE"))
        file = *f;
    else if (auto home = env("HOME"))
        file = std::filesystem::path(*home) / ".aws" / "credentials";
    std::string file_error = "no shared credentials file";
    if (!file.empty()) {
        auto from_file = credentialsFromFile(file, profile);
        if (from_file) {
            source_ = "shared-file:" + profile;
            return from_file;
        }
        if (from_file.error().code != Errc::NotFound) return from_file;
        file_error = from_file.error().message;
    }

    if (strings::toLower(env("AWS_EC2_METADATA_DISABLED").value_or("")) == "true")
        return fail(Errc::NotFound, "no AWS credentials: AWS_ACCESS_KEY_ID is not set; ",
                    file_error, "; instance metadata is disabled (AWS_EC2_METADATA_DISABLED)");
    auto now = std::chrono::system_clock::now();
    if (cached_ && (!cached_->expiration || *cached_->expiration - now > std::chrono::minutes(5))) {
        source_ = "imds";
        return cached_->credentials;
    }
    std::string endpoint =
        env("AWS_EC2_METADATA_SERVICE_ENDPOINT").value_or("http://169.254.169.254");
    auto from_imds = credentialsFromImds(endpoint, options_.imds_timeout);
    if (!from_imds) {
        // Expired-soon credentials still beat none while the service is briefly unreachable.
        if (cached_ && cached_->expiration && *cached_->expiration > now) {
            log::warn(kComponent, "instance metadata refresh failed; using cached credentials",
                      {{"error", from_imds.error().message}});
            return cached_->credentials;
        }
        return fail(Errc::NotFound, "no AWS credentials: AWS_ACCESS_KEY_ID is not set; ",
                    file_error, "; instance metadata at ", endpoint, ": ",
                    from_imds.error().message);
    }
    cached_ = *from_imds;
    source_ = "imds";
    return cached_->credentials;
}

std::string CredentialProvider::source() const {
    std::lock_guard lock(mutex_);
    return source_;
}

}  // namespace hoist::provisioner
