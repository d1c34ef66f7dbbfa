#include "core/http_client.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include <curl/curl.h>
#include <dlfcn.h>

#include "core/deleter.hpp"

namespace hoist::http {

namespace {

// libcurl is loaded on first use, not when a process starts: it and the two dozen libraries it
// needs cost milliseconds of dynamic loading and initialisers in every run of every binary,
// most of which never make a request (`pkgmgr active`, `pkgmgr stage`).
struct CurlApi {
    decltype(&::curl_global_init) global_init = nullptr;
    decltype(&::curl_easy_init) easy_init = nullptr;
    decltype(&::curl_easy_cleanup) easy_cleanup = nullptr;
    decltype(&::curl_easy_reset) easy_reset = nullptr;
    decltype(&::curl_easy_setopt) easy_setopt = nullptr;
    decltype(&::curl_easy_getinfo) easy_getinfo = nullptr;
    decltype(&::curl_easy_perform) easy_perform = nullptr;
    decltype(&::curl_easy_strerror) easy_strerror = nullptr;
    decltype(&::curl_slist_append) slist_append = nullptr;
    decltype(&::curl_slist_free_all) slist_free_all = nullptr;
    std::string error;  ///< why loading failed; empty when every function was found
};

const CurlApi& libcurl() {
    static const CurlApi api = [] {
        CurlApi c;
        constexpr const char* kLibrary = "libcurl.so.4";
        void* lib = ::dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
        if (lib == nullptr) {
            const char* why = ::dlerror();
            c.error = std::string("cannot load ") + kLibrary + ": " + (why ? why : "unknown error");
            return c;
        }
        auto find = [&](auto& fn, const char* name) {
            fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(lib, name));
            if (fn == nullptr && c.error.empty())
                c.error = std::string(kLibrary) + " has no function " + name;
        };
        find(c.global_init, "curl_global_init");
        find(c.easy_init, "curl_easy_init");
        find(c.easy_cleanup, "curl_easy_cleanup");
        find(c.easy_reset, "curl_easy_reset");
        find(c.easy_setopt, "curl_easy_setopt");
        find(c.easy_getinfo, "curl_easy_getinfo");
        find(c.easy_perform, "curl_easy_perform");
        find(c.easy_strerror, "curl_easy_strerror");
        find(c.slist_append, "curl_slist_append");
        find(c.slist_free_all, "curl_slist_free_all");
        if (!c.error.empty()) c.global_init = nullptr;
        if (c.global_init != nullptr) c.global_init(CURL_GLOBAL_DEFAULT);
        return c;
    }();
    return api;
}

// libcurl's free functions are known only at run time (dlsym), so each handle type gets a
// named function that calls through the table; core's one Deleter template then applies.
void easyCleanup(CURL* curl) noexcept {
    libcurl().easy_cleanup(curl);
}
void slistFreeAll(curl_slist* list) noexcept {
    libcurl().slist_free_all(list);
}
using EasyPtr = Handle<CURL, easyCleanup>;
using SlistPtr = Handle<curl_slist, slistFreeAll>;
using FilePtr = Handle<FILE, ::fclose>;

bool equalsNoCase(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

SlistPtr makeHeaders(const std::vector<Header>& headers) {
    curl_slist* list = nullptr;
    for (const auto& h : headers)
        list = libcurl().slist_append(list, (h.name + ": " + h.value).c_str());
    // libcurl adds "Expect: 100-continue" to large bodies; it only costs a round trip here.
    list = libcurl().slist_append(list, "Expect:");
    return SlistPtr(list);
}

std::string redact(std::string_view url) {
    // URLs may carry user:password; never log or return them.
    auto scheme = url.find("://");
    auto at = url.find('@');
    auto slash = url.find('/', scheme == std::string_view::npos ? 0 : scheme + 3);
    if (scheme != std::string_view::npos && at != std::string_view::npos && at < slash)
        return std::string(url.substr(0, scheme + 3)) + "***@" + std::string(url.substr(at + 1));
    return std::string(url);
}

std::unexpected<Error> transportError(CURLcode code, const char* errbuf, std::string_view url,
                                      std::string_view stored) {
    if (!stored.empty()) return fail(Errc::Internal, stored);
    std::string detail = errbuf[0] != '\0' ? errbuf : libcurl().easy_strerror(code);
    Errc kind = Errc::Network;
    if (code == CURLE_OPERATION_TIMEDOUT) kind = Errc::Timeout;
    if (code == CURLE_UNSUPPORTED_PROTOCOL || code == CURLE_URL_MALFORMAT) kind = Errc::Invalid;
    if (code == CURLE_FILE_COULDNT_READ_FILE) kind = Errc::NotFound;
    return fail(kind, "request to ", redact(url), " failed: ", detail);
}

struct HeaderCollector {
    std::vector<Header>* headers;
};

// Trampolines: noexcept, they store what went wrong and return libcurl's abort value.
size_t onHeader(char* data, size_t size, size_t count, void* user) noexcept {
    auto* out = static_cast<std::vector<Header>*>(user);
    std::string_view line(data, size * count);
    if (line.starts_with("HTTP/")) {
        out->clear();  // a new response (after 100 Continue): drop the previous headers
        return size * count;
    }
    auto colon = line.find(':');
    if (colon != std::string_view::npos) {
        auto value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
            value.remove_prefix(1);
        while (!value.empty() && (value.back() == '\r' || value.back() == '\n'))
            value.remove_suffix(1);
        try {
            out->push_back({std::string(line.substr(0, colon)), std::string(value)});
        } catch (...) {
            return 0;
        }
    }
    return size * count;
}

size_t onBody(char* data, size_t size, size_t count, void* user) noexcept {
    auto* out = static_cast<std::string*>(user);
    try {
        out->append(data, size * count);
    } catch (...) {
        return 0;
    }
    return size * count;
}

struct StreamState {
    CURL* curl;
    const StreamRequest* request;
    StreamResult* result;
    Error error;
    bool failed = false;
    bool status_known = false;
    bool success = false;
};

size_t onStream(char* data, size_t size, size_t count, void* user) noexcept {
    auto* state = static_cast<StreamState*>(user);
    size_t n = size * count;
    if (!state->status_known) {
        long status = 0;
        libcurl().easy_getinfo(state->curl, CURLINFO_RESPONSE_CODE, &status);
        state->result->status = status;
        // file:// has no status: its bytes are the content itself.
        state->success = status == 0 || (status >= 200 && status < 300);
        state->status_known = true;
    }
    if (!state->success) {
        if (state->result->error_body.size() < 4096)
            state->result->error_body.append(data, std::min<size_t>(n, 4096));
        return n;
    }
    try {
        auto r = state->request->on_data(std::string_view(data, n));
        if (!r) {
            state->error = std::move(r.error());
            state->failed = true;
            return 0;
        }
    } catch (...) {
        state->error = Error{Errc::Internal, "exception while receiving data", 0};
        state->failed = true;
        return 0;
    }
    return n;
}

void applyCommon(CURL* curl, std::string_view url, char* errbuf,
                 std::chrono::milliseconds connect_timeout, std::chrono::milliseconds timeout,
                 const ClientTls& asked = {}) {
    libcurl().easy_reset(curl);
    std::string url_copy(url);
    libcurl().easy_setopt(curl, CURLOPT_URL, url_copy.c_str());
    libcurl().easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    libcurl().easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    libcurl().easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                          static_cast<long>(connect_timeout.count()));
    libcurl().easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
    libcurl().easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https,file");
    libcurl().easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    libcurl().easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
    // libcurl verifies the peer and the host name by default; only the trust anchors and
    // this client's own certificate are set here (libcurl copies the strings).
    auto fallback = defaultTls();
    const std::string& ca = asked.ca_file.empty() ? fallback.ca_file : asked.ca_file;
    bool own_cert = !asked.client_cert.empty();
    const std::string& cert = own_cert ? asked.client_cert : fallback.client_cert;
    const std::string& key = own_cert ? asked.client_key : fallback.client_key;
    if (!ca.empty()) libcurl().easy_setopt(curl, CURLOPT_CAINFO, ca.c_str());
    if (!cert.empty()) libcurl().easy_setopt(curl, CURLOPT_SSLCERT, cert.c_str());
    if (!key.empty()) libcurl().easy_setopt(curl, CURLOPT_SSLKEY, key.c_str());
    errbuf[0] = '\0';
}

std::mutex& defaultTlsMutex() {
    static std::mutex mutex;
    return mutex;
}
std::optional<ClientTls>& defaultTlsValue() {
    static std::optional<ClientTls> value;
    return value;
}
}  // namespace

void setDefaultTls(const ClientTls& tls) {
    std::lock_guard lock(defaultTlsMutex());
    defaultTlsValue() = tls;
    auto exportVar = [](const char* name, const std::string& value) {
        if (value.empty())
            ::unsetenv(name);
        else
            ::setenv(name, value.c_str(), 1);
    };
    exportVar("HOIST_CA_FILE", tls.ca_file);
    exportVar("HOIST_CLIENT_CERT", tls.client_cert);
    exportVar("HOIST_CLIENT_KEY", tls.client_key);
}

ClientTls defaultTls() {
    std::lock_guard lock(defaultTlsMutex());
    if (defaultTlsValue()) return *defaultTlsValue();
    auto env = [](const char* name) {
        const char* value = std::getenv(name);
        return value == nullptr ? std::string() : std::string(value);
    };
    return {env("HOIST_CA_FILE"), env("HOIST_CLIENT_CERT"), env("HOIST_CLIENT_KEY")};
}

Header bearer(std::string_view token) {
    return {"Authorization", "Bearer " + std::string(token)};
}

std::optional<std::string> Response::header(std::string_view name) const {
    for (const auto& h : headers)
        if (equalsNoCase(h.name, name)) return h.value;
    return std::nullopt;
}

std::chrono::milliseconds backoffDelay(const RetryPolicy& policy, int attempt) {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    auto ceiling = policy.base.count() << std::min(attempt, 20);
    ceiling = std::min<long long>(ceiling, policy.cap.count());
    std::uniform_int_distribution<long long> dist(0, std::max<long long>(ceiling, 0));
    return std::chrono::milliseconds(dist(rng));
}

bool isTransient(const Result<Response>& result) {
    if (!result)
        return result.error().code == Errc::Network || result.error().code == Errc::Timeout;
    long s = result->status;
    return s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504;
}

std::unexpected<Error> noHandle() {
    if (!libcurl().error.empty()) return fail(Errc::Internal, libcurl().error);
    return fail(Errc::Internal, "cannot create a libcurl handle");
}

struct Client::Impl {
    EasyPtr curl;
    char errbuf[CURL_ERROR_SIZE];
};

Client::Client() : impl_(std::make_unique<Impl>()) {
    if (libcurl().error.empty()) impl_->curl.reset(libcurl().easy_init());
}

Client::~Client() = default;

Result<Response> Client::send(const Request& request) {
    CURL* curl = impl_->curl.get();
    if (curl == nullptr) return noHandle();
    applyCommon(curl, request.url, impl_->errbuf, request.connect_timeout, request.timeout,
                {request.ca_file, request.client_cert, request.client_key});
    Response response;
    auto headers = makeHeaders(request.headers);
    libcurl().easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
    libcurl().easy_setopt(curl, CURLOPT_HEADERFUNCTION, onHeader);
    libcurl().easy_setopt(curl, CURLOPT_HEADERDATA, &response.headers);
    libcurl().easy_setopt(curl, CURLOPT_WRITEFUNCTION, onBody);
    libcurl().easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);
    if (request.method == "HEAD") {
        libcurl().easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (request.method != "GET" || !request.body.empty()) {
        libcurl().easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
        libcurl().easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
        libcurl().easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                              static_cast<curl_off_t>(request.body.size()));
    }
    CURLcode code = libcurl().easy_perform(curl);
    if (code != CURLE_OK) return transportError(code, impl_->errbuf, request.url, "");
    libcurl().easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
    if (response.status == 0) response.status = 200;  // file://
    return response;
}

Result<Response> Client::send(const Request& request, const RetryPolicy& policy) {
    for (int attempt = 0;; ++attempt) {
        auto result = send(request);
        if (!isTransient(result) || attempt + 1 >= policy.attempts) return result;
        std::this_thread::sleep_for(backoffDelay(policy, attempt));
    }
}

Result<StreamResult> Client::stream(const StreamRequest& request) {
    CURL* curl = impl_->curl.get();
    if (curl == nullptr) return noHandle();
    applyCommon(curl, request.url, impl_->errbuf, request.connect_timeout, request.timeout,
                {request.ca_file, request.client_cert, request.client_key});
    StreamResult result;
    std::vector<Header> response_headers;
    StreamState state{curl, &request, &result, {}, false, false, false};
    auto headers = makeHeaders(request.headers);
    libcurl().easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
    libcurl().easy_setopt(curl, CURLOPT_HEADERFUNCTION, onHeader);
    libcurl().easy_setopt(curl, CURLOPT_HEADERDATA, &response_headers);
    libcurl().easy_setopt(curl, CURLOPT_WRITEFUNCTION, onStream);
    libcurl().easy_setopt(curl, CURLOPT_WRITEDATA, &state);
    libcurl().easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    libcurl().easy_setopt(curl, CURLOPT_LOW_SPEED_TIME,
                          static_cast<long>(request.low_speed_time.count()));
    libcurl().easy_setopt(curl, CURLOPT_BUFFERSIZE, 512L * 1024L);
    if (!request.body.empty()) {
        libcurl().easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
        libcurl().easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                              static_cast<curl_off_t>(request.body.size()));
    }
    if (request.offset > 0)
        libcurl().easy_setopt(curl, CURLOPT_RESUME_FROM_LARGE,
                              static_cast<curl_off_t>(request.offset));
    CURLcode code = libcurl().easy_perform(curl);
    if (state.failed) return std::unexpected(std::move(state.error));
    if (code == CURLE_RANGE_ERROR && request.offset > 0) {
        // libcurl stops at the headers of a 200 without Content-Range to a resumed request.
        result.status = 200;
        result.range_ignored = true;
        return result;
    }
    if (code != CURLE_OK) return transportError(code, impl_->errbuf, request.url, "");
    libcurl().easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &result.status);
    bool is_file = request.url.starts_with("file:");
    if (is_file) result.status = request.offset > 0 ? 206 : 200;
    curl_off_t length = -1;
    libcurl().easy_getinfo(curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
    // For a file, libcurl reports the whole file's size, not what follows the offset.
    auto offset = static_cast<curl_off_t>(request.offset);
    if (is_file && length >= 0) length = length >= offset ? length - offset : 0;
    if (length >= 0) result.content_length = static_cast<std::uint64_t>(length);
    return result;
}

namespace {
int onUploadProgress(void* user, curl_off_t, curl_off_t, curl_off_t total,
                     curl_off_t sent) noexcept {
    try {
        (*static_cast<const Client::UploadProgress*>(user))(static_cast<std::uint64_t>(sent),
                                                            static_cast<std::uint64_t>(total));
        return 0;
    } catch (...) {
        return 1;  // aborts the transfer: CURLE_ABORTED_BY_CALLBACK
    }
}
}  // namespace

Result<Response> Client::sendFile(const std::string& method, const std::string& url,
                                  const std::vector<Header>& headers,
                                  const std::filesystem::path& file,
                                  std::chrono::milliseconds connect_timeout,
                                  std::chrono::milliseconds timeout,
                                  const UploadProgress& progress) {
    CURL* curl = impl_->curl.get();
    if (curl == nullptr) return noHandle();
    FilePtr in(std::fopen(file.c_str(), "rb"));
    if (!in) return failErrno(Errc::Io, errno, "cannot open '", file.string(), "'");
    std::error_code ec;
    auto size = std::filesystem::file_size(file, ec);
    if (ec) return failErrno(Errc::Io, ec.value(), "cannot stat '", file.string(), "'");
    applyCommon(curl, url, impl_->errbuf, connect_timeout, timeout);
    Response response;
    auto list = makeHeaders(headers);
    libcurl().easy_setopt(curl, CURLOPT_HTTPHEADER, list.get());
    libcurl().easy_setopt(curl, CURLOPT_HEADERFUNCTION, onHeader);
    libcurl().easy_setopt(curl, CURLOPT_HEADERDATA, &response.headers);
    libcurl().easy_setopt(curl, CURLOPT_WRITEFUNCTION, onBody);
    libcurl().easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);
    libcurl().easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    libcurl().easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    libcurl().easy_setopt(curl, CURLOPT_READDATA, in.get());
    libcurl().easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(size));
    if (progress) {
        libcurl().easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, onUploadProgress);
        libcurl().easy_setopt(curl, CURLOPT_XFERINFODATA, &progress);
        libcurl().easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    }
    CURLcode code = libcurl().easy_perform(curl);
    if (code != CURLE_OK) return transportError(code, impl_->errbuf, url, "");
    libcurl().easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
    return response;
}

namespace {
int hexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
}  // namespace

std::string urlDecode(std::string_view text, bool plus_is_space) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        int hi = c == '%' && i + 2 < text.size() ? hexValue(text[i + 1]) : -1;
        int lo = hi >= 0 ? hexValue(text[i + 2]) : -1;
        if (lo >= 0) {
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out.push_back(' ');
        } else {
            out.push_back(c);
        }
    }
    return out;
}

std::string urlEncode(std::string_view text) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += kHex[c >> 4];
            out += kHex[c & 0xf];
        }
    }
    return out;
}

std::string joinUrl(std::string_view base, std::string_view path) {
    while (!base.empty() && base.back() == '/') base.remove_suffix(1);
    while (!path.empty() && path.front() == '/') path.remove_prefix(1);
    return std::string(base) + "/" + std::string(path);
}

}  // namespace hoist::http
