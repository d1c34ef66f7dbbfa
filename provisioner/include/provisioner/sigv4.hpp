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
/// unreserved kept), pairs sorted by name then value.
std::string canonicalQuery(std::string_view query);

/// Signs `request` as it stands: every header in it is signed (names lowercased, values
/// trimmed, runs of spaces collapsed, repeats joined with ','). The request must already hold
/// Host and X-Amz-Date; use prepare() to add them. Invalid when the scope is incomplete or the
/// time is not `YYYYMMDDTHHMMSSZ`.
Result<Signature> sign(const Request& request, const Credentials& credentials, const Scope& scope);

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
