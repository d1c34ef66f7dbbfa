#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace hoist::provisioner::sigv4 {

/// AWS credentials. The secret and the session token are never logged.
struct Credentials {
    std::string access_key_id;
    std::string secret_access_key;
    std::string session_token;  ///< empty for long-term keys
};

/// Where and when a request is signed: the credential scope is
/// `<date>/<region>/<service>/aws4_request`.
struct Scope {
    std::string region;
    std::string service;
    std::string time;  ///< ISO 8601 basic UTC: 20150830T123600Z
};

/// An HTTP request as it will be sent: method, target (path plus optional ?query, as written
/// on the request line), headers in order (repeats allowed) and body.
struct Request {
    std::string method;
    std::string target;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
};

/// Every intermediate value of a signature, for debugging a mismatch.
struct Signature {
    std::string canonical_request;
    std::string string_to_sign;
    std::string signed_headers;  ///< "host;x-amz-date"
    std::string signature;       ///< 64 hex digits
    std::string authorization;   ///< the Authorization header value
};

/// Parses a raw HTTP/1.1 request (request line, `Name:value` headers with folded
/// continuation lines, blank line, body). Invalid when the request line is malformed.
Result<Request> parseRawRequest(std::string_view text);

/// The canonical URI of a path: `.` and `..` segments removed, repeated `/` merged, a trailing
/// `/` kept, each segment URI-encoded once (the rules for every service but S3).
std::string canonicalUri(std::string_view path);
/// The canonical query string: each name and value percent-decoded then encoded (RFC 3986
/// unreserved kept), pairs sorted by name then value. '+' is a literal plus, as AWS reads it;
/// with `plus_is_space` it is a space, as form-encoding clients (botocore) mean it.
std::string canonicalQuery(std::string_view query, bool plus_is_space = false);

/// Which characters fold as whitespace in a canonical header value.
enum class Whitespace {
    /// AWS's own signers (the Java SDK's StringUtils, aws-c-auth): space, \t, \n, \v, \f, \r.
    /// The SigV4 documentation says only "sequential spaces"; its SDKs, which AWS's services
    /// agree with, fold these six, and nothing outside ASCII.
    Aws,
    /// botocore (Python's str.split()): the six above, \x1c-\x1f, and the Unicode spaces U+0085,
    /// U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000 (read as UTF-8).
    Botocore,
};

/// A header value as it is signed: trimmed, each run of whitespace folded to one space.
std::string canonicalHeaderValue(std::string_view value, Whitespace rule = Whitespace::Aws);

/// How a request is signed, beyond the request itself.
struct SignOptions {
    /// Lowercase names of the headers to sign ("host;x-amz-date" split); empty signs every
    /// header of the request. Each must be in the request, and host must be among them.
    std::vector<std::string> signed_headers;
    Whitespace whitespace = Whitespace::Aws;
    /// Read '+' in the query as a space (see canonicalQuery).
    bool query_plus_is_space = false;
};

/// Splits "a;b;c" (as in SignedHeaders=) into lowercase names; Invalid for an empty name.
Result<std::vector<std::string>> parseSignedHeaders(std::string_view list);

/// Signs `request` as it stands: every header in it, or those `options.signed_headers` names
/// (names lowercased, values folded by canonicalHeaderValue, repeats joined with ','). The
/// request must already hold Host and X-Amz-Date; use prepare() to add them. Invalid when the
/// scope is incomplete, the time is not `YYYYMMDDTHHMMSSZ`, or a named header is missing.
Result<Signature> sign(const Request& request, const Credentials& credentials, const Scope& scope,
                       const SignOptions& options = {});

/// Adds what a signed AWS request needs before sign(): X-Amz-Date (scope.time) and, with a
/// session token, X-Amz-Security-Token, unless the request already holds them.
void prepare(Request& request, const Credentials& credentials, const Scope& scope);

/// The signing key: HMAC chain over date, region, service and "aws4_request".
std::string signingKey(std::string_view secret, std::string_view date, std::string_view region,
                       std::string_view service);

/// Parsed `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
struct AuthorizationHeader {
    std::string access_key_id;
    std::string date;
    std::string region;
    std::string service;
    std::vector<std::string> signed_headers;
    std::string signature;
};
/// Invalid when the header is not a well-formed SigV4 Authorization value.
Result<AuthorizationHeader> parseAuthorization(std::string_view value);

/// The current UTC time as `YYYYMMDDTHHMMSSZ`.
std::string amzTimeNow();

}  // namespace hoist::provisioner::sigv4
