#include "provisioner/sigv4.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <map>

#include <rapidjson/encodings.h>

#include "core/crypto.hpp"
#include "core/http_client.hpp"
#include "core/strings.hpp"

namespace hoist::provisioner::sigv4 {

namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";

bool isSpace(char c) {
    return c == ' ' || c == '\t';
}

// A stream of bytes for RapidJSON's UTF-8 decoder, which reads one code point from it.
struct Bytes {
    using Ch = char;
    std::string_view text;
    size_t at = 0;
    char Peek() const { return at < text.size() ? text[at] : '\0'; }
    char Take() { return at < text.size() ? text[at++] : '\0'; }
    size_t Tell() const { return at; }
};

bool isAwsSpace(unsigned codepoint) {
    return codepoint == ' ' || (codepoint >= '\t' && codepoint <= '\r');
}

// Python's str.isspace(), which str.split() uses.
bool isPythonSpace(unsigned codepoint) {
    return isAwsSpace(codepoint) || (codepoint >= 0x1c && codepoint <= 0x1f) || codepoint == 0x85 ||
           codepoint == 0xa0 || codepoint == 0x1680 ||
           (codepoint >= 0x2000 && codepoint <= 0x200a) || codepoint == 0x2028 ||
           codepoint == 0x2029 || codepoint == 0x202f || codepoint == 0x205f || codepoint == 0x3000;
}

bool validTime(std::string_view t) {
    if (t.size() != 16 || t[8] != 'T' || t[15] != 'Z') return false;
    for (size_t i = 0; i < 15; ++i)
        if (i != 8 && !std::isdigit(static_cast<unsigned char>(t[i]))) return false;
    return true;
}

bool hasHeader(const Request& request, std::string_view name) {
    return std::any_of(request.headers.begin(), request.headers.end(),
                       [&](const auto& h) { return strings::toLower(h.first) == name; });
}

}  // namespace

std::string canonicalHeaderValue(std::string_view value, Whitespace rule) {
    std::string out;
    bool pending_space = false;
    for (size_t pos = 0; pos < value.size();) {
        unsigned codepoint = static_cast<unsigned char>(value[pos]);
        size_t length = 1;
        if (rule == Whitespace::Botocore && codepoint >= 0x80) {
            Bytes bytes{value.substr(pos)};
            // A byte that does not start UTF-8 stands for itself and is not whitespace.
            if (rapidjson::UTF8<char>::Decode(bytes, &codepoint) && bytes.at > 0)
                length = bytes.at;
            else
                codepoint = 0xfffd;
        }
        bool space = rule == Whitespace::Aws ? isAwsSpace(codepoint) : isPythonSpace(codepoint);
        if (space) {
            pending_space = !out.empty();
        } else {
            if (pending_space) out += ' ';
            pending_space = false;
            out.append(value.substr(pos, length));
        }
        pos += length;
    }
    return out;
}

Result<std::vector<std::string>> parseSignedHeaders(std::string_view list) {
    std::vector<std::string> names;
    for (const auto& name : strings::split(list, ';')) {
        std::string lower = strings::toLower(strings::trim(name));
        if (lower.empty())
            return fail(Errc::Invalid, "signed headers '", list,
                        "': a name is empty (write them as host;x-amz-date)");
        names.push_back(std::move(lower));
    }
    return names;
}

Result<Request> parseRawRequest(std::string_view text) {
    Request request;
    size_t line_end = text.find('\n');
    std::string_view line = text.substr(0, line_end);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t first_space = line.find(' ');
    size_t version = line.rfind(" HTTP/");
    if (first_space == std::string_view::npos || version == std::string_view::npos ||
        version <= first_space)
        return fail(Errc::Invalid,
                    "raw request: the first line must be 'METHOD TARGET HTTP/1.1', got '", line,
                    "'");
    request.method = std::string(line.substr(0, first_space));
    // The target is everything between the first space and the version: it may hold spaces.
    request.target = std::string(line.substr(first_space + 1, version - first_space - 1));
    if (request.target.empty() || request.method.empty())
        return fail(Errc::Invalid, "raw request: empty method or target in '", line, "'");

    size_t pos = line_end == std::string_view::npos ? text.size() : line_end + 1;
    while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        std::string_view header = text.substr(pos, end == std::string_view::npos ? end : end - pos);
        pos = end == std::string_view::npos ? text.size() : end + 1;
        if (!header.empty() && header.back() == '\r') header.remove_suffix(1);
        if (header.empty()) {
            request.body = std::string(text.substr(pos));
            break;
        }
        if (isSpace(header.front())) {
            // A folded continuation line belongs to the header above it.
            if (request.headers.empty())
                return fail(Errc::Invalid, "raw request: continuation line before any header");
            request.headers.back().second += " ";
            request.headers.back().second += std::string(strings::trim(header));
            continue;
        }
        size_t colon = header.find(':');
        if (colon == std::string_view::npos || colon == 0)
            return fail(Errc::Invalid, "raw request: header line '", header,
                        "' must be 'Name:value'");
        request.headers.emplace_back(std::string(header.substr(0, colon)),
                                     std::string(header.substr(colon + 1)));
    }
    return request;
}

std::string canonicalUri(std::string_view path) {
    std::vector<std::string_view> segments;
    size_t start = 0;
    while (start <= path.size()) {
        size_t slash = path.find('/', start);
        std::string_view segment = path.substr(
            start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
        if (segment == "..") {
            if (!segments.empty()) segments.pop_back();
        } else if (!segment.empty() && segment != ".") {
            segments.push_back(segment);
        }
        if (slash == std::string_view::npos) break;
        start = slash + 1;
    }
    std::string out = "/";
    for (size_t i = 0; i < segments.size(); ++i) {
        if (i > 0) out += '/';
        out += http::urlEncode(segments[i]);
    }
    if (!segments.empty() && !path.empty() && path.back() == '/') out += '/';
    return out;
}

std::string canonicalQuery(std::string_view query, bool plus_is_space) {
    std::vector<std::pair<std::string, std::string>> pairs;
    for (const auto& part : strings::split(query, '&')) {
        if (part.empty()) continue;
        size_t eq = part.find('=');
        std::string name = part.substr(0, eq);
        std::string value = eq == std::string::npos ? "" : part.substr(eq + 1);
        pairs.emplace_back(http::urlEncode(http::urlDecode(name, plus_is_space)),
                           http::urlEncode(http::urlDecode(value, plus_is_space)));
    }
    std::sort(pairs.begin(), pairs.end());
    std::string out;
    for (const auto& [name, value] : pairs) {
        if (!out.empty()) out += '&';
        out += name;
        out += '=';
        out += value;
    }
    return out;
}

std::string signingKey(std::string_view secret, std::string_view date, std::string_view region,
                       std::string_view service) {
    std::string key = crypto::hmacSha256(std::string("AWS4") + std::string(secret), date);
    key = crypto::hmacSha256(key, region);
    key = crypto::hmacSha256(key, service);
    return crypto::hmacSha256(key, "aws4_request");
}

void prepare(Request& request, const Credentials& credentials, const Scope& scope) {
    if (!hasHeader(request, "x-amz-date")) request.headers.emplace_back("X-Amz-Date", scope.time);
    if (!credentials.session_token.empty() && !hasHeader(request, "x-amz-security-token"))
        request.headers.emplace_back("X-Amz-Security-Token", credentials.session_token);
}

Result<Signature> sign(const Request& request, const Credentials& credentials, const Scope& scope,
                       const SignOptions& options) {
    if (!validTime(scope.time))
        return fail(Errc::Invalid, "sigv4: time '", scope.time,
                    "' must be ISO 8601 basic UTC like 20150830T123600Z");
    if (scope.region.empty() || scope.service.empty())
        return fail(Errc::Invalid, "sigv4: region and service must not be empty");
    if (credentials.access_key_id.empty() || credentials.secret_access_key.empty())
        return fail(Errc::Invalid, "sigv4: access key id and secret key must not be empty");
    if (!hasHeader(request, "host"))
        return fail(Errc::Invalid, "sigv4: the request has no Host header");

    const auto& only = options.signed_headers;
    if (!only.empty() && std::find(only.begin(), only.end(), "host") == only.end())
        return fail(Errc::Invalid, "sigv4: the signed headers must include host (SigV4 signs it)");
    std::map<std::string, std::string> headers;
    std::string payload_hash;
    for (const auto& [name, value] : request.headers) {
        std::string lower = strings::toLower(strings::trim(name));
        std::string canonical = canonicalHeaderValue(value, options.whitespace);
        if (lower == "x-amz-content-sha256") payload_hash = canonical;
        if (!only.empty() && std::find(only.begin(), only.end(), lower) == only.end()) continue;
        auto [it, inserted] = headers.emplace(lower, canonical);
        if (!inserted) it->second += "," + canonical;
    }
    for (const auto& name : only) {
        if (headers.contains(name)) continue;
        std::vector<std::string> held;
        for (const auto& header : request.headers)
            held.push_back(strings::toLower(strings::trim(header.first)));
        return fail(Errc::Invalid, "sigv4: signed header '", name,
                    "' is not in the request (it holds ", strings::join(held, ", "), ")");
    }
    if (payload_hash.empty()) payload_hash = crypto::sha256Hex(request.body);

    std::string_view target = request.target;
    size_t question = target.find('?');
    std::string_view path = target.substr(0, question);
    std::string_view query = question == std::string_view::npos ? "" : target.substr(question + 1);

    Signature sig;
    std::string canonical_headers;
    for (const auto& [name, value] : headers) {
        canonical_headers += name + ":" + value + "\n";
        if (!sig.signed_headers.empty()) sig.signed_headers += ';';
        sig.signed_headers += name;
    }
    sig.canonical_request = request.method + "\n" + canonicalUri(path) + "\n" +
                            canonicalQuery(query, options.query_plus_is_space) + "\n" +
                            canonical_headers + "\n" + sig.signed_headers + "\n" + payload_hash;

    std::string date = scope.time.substr(0, 8);
    std::string credential_scope =
        date + "/" + scope.region + "/" + scope.service + "/aws4_request";
    sig.string_to_sign = std::string(kAlgorithm) + "\n" + scope.time + "\n" + credential_scope +
                         "\n" + crypto::sha256Hex(sig.canonical_request);
    std::string key = signingKey(credentials.secret_access_key, date, scope.region, scope.service);
    sig.signature = crypto::toHex(crypto::hmacSha256(key, sig.string_to_sign));
    sig.authorization = std::string(kAlgorithm) + " Credential=" + credentials.access_key_id + "/" +
                        credential_scope + ", SignedHeaders=" + sig.signed_headers +
                        ", Signature=" + sig.signature;
    return sig;
}

Result<AuthorizationHeader> parseAuthorization(std::string_view value) {
    auto bad = [&](std::string_view why) {
        return fail(Errc::Invalid, "authorization header: ", why);
    };
    value = strings::trim(value);
    if (!value.starts_with(kAlgorithm) || value.size() <= kAlgorithm.size() ||
        value[kAlgorithm.size()] != ' ')
        return bad("the algorithm must be AWS4-HMAC-SHA256");
    AuthorizationHeader out;
    std::string credential;
    std::string signed_headers;
    for (const auto& raw : strings::split(value.substr(kAlgorithm.size() + 1), ',')) {
        std::string_view part = strings::trim(raw);
        size_t eq = part.find('=');
        if (eq == std::string_view::npos) return bad("each part must be Name=value");
        std::string_view name = part.substr(0, eq);
        std::string_view v = part.substr(eq + 1);
        if (name == "Credential")
            credential = v;
        else if (name == "SignedHeaders")
            signed_headers = v;
        else if (name == "Signature")
            out.signature = v;
        else
            return bad("unknown part '" + std::string(name) + "'");
    }
    auto scope = strings::split(credential, '/');
    if (scope.size() != 5 || scope[4] != "aws4_request")
        return bad("Credential must be KEY/DATE/REGION/SERVICE/aws4_request");
    out.access_key_id = scope[0];
    out.date = scope[1];
    out.region = scope[2];
    out.service = scope[3];
    if (signed_headers.empty()) return bad("SignedHeaders is missing");
    out.signed_headers = strings::split(signed_headers, ';');
    if (out.signature.size() != 64) return bad("Signature must be 64 hex digits");
    return out;
}

std::string amzTimeNow() {
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
    return buf;
}

}  // namespace hoist::provisioner::sigv4
