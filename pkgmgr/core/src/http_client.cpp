#include "core/http_client.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>

#include <curl/curl.h>

namespace hoist::http {

namespace {
struct EasyDeleter {
    void operator()(CURL* curl) const noexcept { curl_easy_cleanup(curl); }
};
struct SlistDeleter {
    void operator()(curl_slist* list) const noexcept { curl_slist_free_all(list); }
};
struct FileDeleter {
    void operator()(FILE* file) const noexcept { std::fclose(file); }
};
using EasyPtr = std::unique_ptr<CURL, EasyDeleter>;
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;
using FilePtr = std::unique_ptr<FILE, FileDeleter>;

void globalInit() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

bool equalsNoCase(std::string_view a, std::string_view b) {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

SlistPtr makeHeaders(const std::vector<Header>& headers) {
    curl_slist* list = nullptr;
    for (const auto& h : headers) list = curl_slist_append(list, (h.name + ": " + h.value).c_str());
    // libcurl adds "Expect: 100-continue" to large bodies; it only costs a round trip here.
    list = curl_slist_append(list, "Expect:");
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
    std::string detail = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(code);
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
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
        while (!value.empty() && (value.back() == '\r' || value.back() == '\n')) value.remove_suffix(1);
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
        curl_easy_getinfo(state->curl, CURLINFO_RESPONSE_CODE, &status);
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
                 std::chrono::milliseconds connect_timeout, std::chrono::milliseconds timeout) {
    curl_easy_reset(curl);
    std::string url_copy(url);
    curl_easy_setopt(curl, CURLOPT_URL, url_copy.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(connect_timeout.count()));
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https,file");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
    errbuf[0] = '\0';
}
}  // namespace

Header bearer(std::string_view token) { return {"Authorization", "Bearer " + std::string(token)}; }

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
    if (!result) return result.error().code == Errc::Network || result.error().code == Errc::Timeout;
    long s = result->status;
    return s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504;
}

struct Client::Impl {
    EasyPtr curl;
    char errbuf[CURL_ERROR_SIZE];
};

Client::Client() : impl_(std::make_unique<Impl>()) {
    globalInit();
    impl_->curl.reset(curl_easy_init());
}

Client::~Client() = default;

Result<Response> Client::send(const Request& request) {
    CURL* curl = impl_->curl.get();
    if (curl == nullptr) return fail(Errc::Internal, "cannot create a libcurl handle");
    applyCommon(curl, request.url, impl_->errbuf, request.connect_timeout, request.timeout);
    Response response;
    auto headers = makeHeaders(request.headers);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, onHeader);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response.headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, onBody);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);
    if (request.method == "HEAD") {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (request.method != "GET" || !request.body.empty()) {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                         static_cast<curl_off_t>(request.body.size()));
    }
    CURLcode code = curl_easy_perform(curl);
    if (code != CURLE_OK) return transportError(code, impl_->errbuf, request.url, "");
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
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
    if (curl == nullptr) return fail(Errc::Internal, "cannot create a libcurl handle");
    applyCommon(curl, request.url, impl_->errbuf, request.connect_timeout, request.timeout);
    StreamResult result;
    std::vector<Header> response_headers;
    StreamState state{curl, &request, &result, {}, false, false, false};
    auto headers = makeHeaders(request.headers);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, onHeader);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response_headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, onStream);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &state);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, static_cast<long>(request.low_speed_time.count()));
    curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 512L * 1024L);
    if (request.offset > 0)
        curl_easy_setopt(curl, CURLOPT_RESUME_FROM_LARGE, static_cast<curl_off_t>(request.offset));
    CURLcode code = curl_easy_perform(curl);
    if (state.failed) return std::unexpected(std::move(state.error));
    if (code == CURLE_RANGE_ERROR && request.offset > 0) {
        // libcurl stops at the headers of a 200 without Content-Range to a resumed request.
        result.status = 200;
        result.range_ignored = true;
        return result;
    }
    if (code != CURLE_OK) return transportError(code, impl_->errbuf, request.url, "");
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &result.status);
    bool is_file = request.url.starts_with("file:");
    if (is_file) result.status = request.offset > 0 ? 206 : 200;
    curl_off_t length = -1;
    curl_easy_getinfo(curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
    // For a file, libcurl reports the whole file's size, not what follows the offset.
    auto offset = static_cast<curl_off_t>(request.offset);
    if (is_file && length >= 0) length = length >= offset ? length - offset : 0;
    if (length >= 0) result.content_length = static_cast<std::uint64_t>(length);
    return result;
}

Result<Response> Client::sendFile(const std::string& method, const std::string& url,
                                  const std::vector<Header>& headers,
                                  const std::filesystem::path& file,
                                  std::chrono::milliseconds connect_timeout,
                                  std::chrono::milliseconds timeout) {
    CURL* curl = impl_->curl.get();
    if (curl == nullptr) return fail(Errc::Internal, "cannot create a libcurl handle");
    FilePtr in(std::fopen(file.c_str(), "rb"));
    if (!in) return failErrno(Errc::Io, errno, "cannot open '", file.string(), "'");
    std::error_code ec;
    auto size = std::filesystem::file_size(file, ec);
    if (ec) return failErrno(Errc::Io, ec.value(), "cannot stat '", file.string(), "'");
    applyCommon(curl, url, impl_->errbuf, connect_timeout, timeout);
    Response response;
    auto list = makeHeaders(headers);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list.get());
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, onHeader);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response.headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, onBody);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(curl, CURLOPT_READDATA, in.get());
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(size));
    CURLcode code = curl_easy_perform(curl);
    if (code != CURLE_OK) return transportError(code, impl_->errbuf, url, "");
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
    return response;
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
