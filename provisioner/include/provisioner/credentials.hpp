#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "core/error.hpp"
#include "provisioner/sigv4.hpp"

namespace hoist::provisioner {

/// Looks an environment variable up; tests pass their own.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
/// The process environment (getenv); empty values count as absent.
EnvLookup processEnv();

/// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN. NotFound when the key id
/// is not set; Invalid when only one of the id and the secret is.
Result<sigv4::Credentials> credentialsFromEnvironment(const EnvLookup& env);

/// One profile of an AWS shared credentials file (INI: `[name]`, aws_access_key_id,
/// aws_secret_access_key, aws_session_token). NotFound when the file or the profile is absent;
/// Invalid when the profile lacks a key.
Result<sigv4::Credentials> credentialsFromFile(const std::filesystem::path& file,
                                               const std::string& profile);

/// Role credentials from the EC2 instance metadata service, IMDSv2: PUT /latest/api/token,
/// then GET /latest/meta-data/iam/security-credentials/ and .../<role> with that token.
struct ImdsCredentials {
    sigv4::Credentials credentials;
    /// When they expire (absent: unknown).
    std::optional<std::chrono::system_clock::time_point> expiration;
};
/// Network or Timeout when the service cannot be reached, NotFound when no role is attached.
Result<ImdsCredentials> credentialsFromImds(const std::string& endpoint,
                                            std::chrono::milliseconds timeout);

/// The credential chain of the AWS SDKs, in order: explicit keys, the environment, the shared
/// credentials file (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, profile AWS_PROFILE or
/// "default"), then IMDSv2 (AWS_EC2_METADATA_SERVICE_ENDPOINT or http://169.254.169.254,
/// skipped when AWS_EC2_METADATA_DISABLED=true). Instance credentials are cached and fetched
/// again five minutes before they expire. Thread-safe.
class CredentialProvider {
public:
    struct Options {
        std::optional<sigv4::Credentials> explicit_credentials;
        std::string profile;  ///< overrides AWS_PROFILE
        EnvLookup env;        ///< default: processEnv()
        std::chrono::milliseconds imds_timeout{1000};
    };
    explicit CredentialProvider(Options options);

    /// The first source that has credentials; NotFound naming every source tried otherwise.
    Result<sigv4::Credentials> get();
    /// Which source the last get() used: "explicit", "environment", "shared-file:<profile>",
    /// "imds".
    std::string source() const;

private:
    Options options_;
    mutable std::mutex mutex_;
    std::optional<ImdsCredentials> cached_;
    std::string source_;
};

}  // namespace hoist::provisioner
