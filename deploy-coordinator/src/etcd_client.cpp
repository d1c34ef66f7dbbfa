#include "etcd_client.hpp"

#include <charconv>

#include "core/crypto.hpp"
#include "core/http_client.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"

namespace hoist::deploy_coordinator::etcd {

std::string prefixEnd(std::string_view prefix) {
    std::string end(prefix);
    while (!end.empty()) {
        auto last = static_cast<unsigned char>(end.back());
        if (last < 0xff) {
            end.back() = static_cast<char>(last + 1);
            return end;
        }
        end.pop_back();
    }
    return std::string(1, '\0');  // every key
}

Op Op::put(std::string key, std::string value, std::int64_t lease) {
    return Op{Kind::put, std::move(key), std::move(value), {}, lease};
}
Op Op::remove(std::string key, std::string range_end) {
    return Op{Kind::remove, std::move(key), {}, std::move(range_end), 0};
}
Op Op::range(std::string key, std::string range_end) {
    return Op{Kind::range, std::move(key), {}, std::move(range_end), 0};
}

namespace {

std::string b64(std::string_view bytes) {
    return crypto::base64Encode(bytes);
}

// The gateway writes int64 as strings and omits zeros; both shapes are read.
Result<std::int64_t> int64Field(const json::Value& obj, const char* name, std::string_view ctx) {
    auto it = obj.FindMember(name);
    if (it == obj.MemberEnd()) return std::int64_t{0};
    if (it->value.IsInt64()) return it->value.GetInt64();
    if (it->value.IsString()) {
        std::string_view text(it->value.GetString(), it->value.GetStringLength());
        std::int64_t value = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec == std::errc() && end == text.data() + text.size()) return value;
    }
    return fail(Errc::Invalid, ctx, ": field '", name, "' must be an int64");
}

Result<std::string> bytesField(const json::Value& obj, const char* name, std::string_view ctx) {
    auto it = obj.FindMember(name);
    if (it == obj.MemberEnd()) return std::string();
    if (!it->value.IsString())
        return fail(Errc::Invalid, ctx, ": field '", name, "' must be base64");
    auto decoded =
        crypto::base64Decode(std::string_view(it->value.GetString(), it->value.GetStringLength()));
    if (!decoded) return fail(Errc::Invalid, ctx, ": field '", name, "' is not base64");
    return std::move(*decoded);
}

Result<KeyValue> readKv(const json::Value& v) {
    constexpr std::string_view ctx = "etcd key-value";
    if (!v.IsObject()) return fail(Errc::Invalid, ctx, " must be an object");
    KeyValue kv;
    HOIST_ASSIGN(kv.key, bytesField(v, "key", ctx));
    HOIST_ASSIGN(kv.value, bytesField(v, "value", ctx));
    HOIST_ASSIGN(kv.create_revision, int64Field(v, "create_revision", ctx));
    HOIST_ASSIGN(kv.mod_revision, int64Field(v, "mod_revision", ctx));
    HOIST_ASSIGN(kv.version, int64Field(v, "version", ctx));
    HOIST_ASSIGN(kv.lease, int64Field(v, "lease", ctx));
    return kv;
}

Result<std::int64_t> headerRevision(const json::Value& doc) {
    auto header = doc.FindMember("header");
    if (header == doc.MemberEnd() || !header->value.IsObject()) return std::int64_t{0};
    return int64Field(header->value, "revision", "etcd header");
}

Result<RangeResult> readRange(const json::Value& doc) {
    RangeResult out;
    HOIST_ASSIGN(out.revision, headerRevision(doc));
    HOIST_ASSIGN(out.count, int64Field(doc, "count", "etcd range"));
    if (auto more = doc.FindMember("more"); more != doc.MemberEnd() && more->value.IsBool())
        out.more = more->value.GetBool();
    if (auto kvs = doc.FindMember("kvs"); kvs != doc.MemberEnd()) {
        if (!kvs->value.IsArray()) return fail(Errc::Invalid, "etcd range: 'kvs' must be an array");
        for (const auto& item : kvs->value.GetArray()) {
            HOIST_ASSIGN(auto kv, readKv(item));
            out.kvs.push_back(std::move(kv));
        }
    }
    return out;
}

void writeRange(json::Writer& w, const RangeRequest& r) {
    static constexpr const char* kOrder[] = {"NONE", "ASCEND", "DESCEND"};
    static constexpr const char* kTarget[] = {"KEY", "VERSION", "CREATE", "MOD", "VALUE"};
    w.beginObject();
    w.field("key", b64(r.key));
    if (!r.range_end.empty()) w.field("range_end", b64(r.range_end));
    if (r.limit > 0) w.field("limit", std::to_string(r.limit));
    if (r.sort_order != RangeRequest::Sort::none) {
        w.field("sort_order", kOrder[static_cast<int>(r.sort_order)]);
        w.field("sort_target", kTarget[static_cast<int>(r.sort_target)]);
    }
    if (r.keys_only) w.field("keys_only", true);
    if (r.count_only) w.field("count_only", true);
    if (r.revision > 0) w.field("revision", std::to_string(r.revision));
    w.endObject();
}

void writeOp(json::Writer& w, const Op& op) {
    w.beginObject();
    switch (op.kind) {
        case Op::Kind::put:
            w.key("request_put").beginObject();
            w.field("key", b64(op.key));
            w.field("value", b64(op.value));
            if (op.lease != 0) w.field("lease", std::to_string(op.lease));
            w.endObject();
            break;
        case Op::Kind::remove:
            w.key("request_delete_range").beginObject();
            w.field("key", b64(op.key));
            if (!op.range_end.empty()) w.field("range_end", b64(op.range_end));
            w.endObject();
            break;
        case Op::Kind::range: {
            w.key("request_range");
            RangeRequest r;
            r.key = op.key;
            r.range_end = op.range_end;
            writeRange(w, r);
            break;
        }
    }
    w.endObject();
}

void writeCompare(json::Writer& w, const Compare& c) {
    static constexpr const char* kTarget[] = {"VERSION", "CREATE", "MOD", "VALUE", "LEASE"};
    static constexpr const char* kResult[] = {"EQUAL", "GREATER", "LESS", "NOT_EQUAL"};
    w.beginObject();
    w.field("key", b64(c.key));
    w.field("target", kTarget[static_cast<int>(c.target)]);
    w.field("result", kResult[static_cast<int>(c.result)]);
    switch (c.target) {
        case Compare::Target::version:
            w.field("version", std::to_string(c.number));
            break;
        case Compare::Target::create:
            w.field("create_revision", std::to_string(c.number));
            break;
        case Compare::Target::mod:
            w.field("mod_revision", std::to_string(c.number));
            break;
        case Compare::Target::lease:
            w.field("lease", std::to_string(c.number));
            break;
        case Compare::Target::value:
            w.field("value", b64(c.value));
            break;
    }
    w.endObject();
}

// etcd's gRPC status in an error body: {"error","message","code"}.
Error etcdError(long status, const std::string& body, std::string_view endpoint,
                std::string_view path) {
    std::string message(strings::trim(body).substr(0, 200));
    std::int64_t code = 0;
    if (auto doc = json::parseObject(body, "etcd error")) {
        if (auto m = doc->FindMember("message"); m != doc->MemberEnd() && m->value.IsString())
            message = m->value.GetString();
        if (auto c = doc->FindMember("code"); c != doc->MemberEnd() && c->value.IsInt64())
            code = c->value.GetInt64();
    }
    Errc kind = Errc::Internal;
    switch (code) {
        case 3:
            kind = Errc::Invalid;
            break;
        case 4:
            kind = Errc::Timeout;
            break;
        case 5:
            kind = Errc::NotFound;
            break;
        case 11:
            kind = Errc::Conflict;
            break;  // compacted
        case 14:
            kind = Errc::Network;
            break;  // unavailable: leader changed, timed out
        default:
            break;
    }
    return Error{kind, detail::concat("etcd ", endpoint, path, " answered ", status, ": ", message),
                 0};
}

bool couldNotConnect(const Error& e) {
    return e.code == Errc::Network && (e.message.find("onnect") != std::string::npos ||
                                       e.message.find("refused") != std::string::npos);
}

http::Client& threadClient() {
    thread_local http::Client client;
    return client;
}

}  // namespace

Client::Client(ClientOptions options) : options_(std::move(options)) {}
Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::create(ClientOptions options) {
    if (options.endpoints.empty()) return fail(Errc::Invalid, "etcd: no endpoint given");
    return std::unique_ptr<Client>(new Client(std::move(options)));
}

void Client::observe(std::chrono::steady_clock::duration took, bool ok) const {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(took).count();
    requests_++;
    if (!ok) failures_++;
    sum_us_ += static_cast<std::uint64_t>(us);
    double seconds = static_cast<double>(us) / 1e6;
    std::size_t i = 0;
    while (i < kBuckets.size() && seconds > kBuckets[i]) ++i;
    buckets_[i]++;
}

void Client::collectMetrics(metrics::Registry& r) const {
    r.describe("hoist_coordinator_store_request_seconds", "histogram",
               "etcd requests by latency (each attempt on one member)");
    r.describe("hoist_coordinator_store_request_failures_total", "counter",
               "etcd requests that failed (transport or etcd error)");
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < kBuckets.size(); ++i) {
        cumulative += buckets_[i].load();
        r.set("hoist_coordinator_store_request_seconds_bucket",
              "le=\"" + std::to_string(kBuckets[i]).substr(0, 6) + "\"",
              static_cast<double>(cumulative));
    }
    cumulative += buckets_[kBuckets.size()].load();
    r.set("hoist_coordinator_store_request_seconds_bucket", "le=\"+Inf\"",
          static_cast<double>(cumulative));
    r.set("hoist_coordinator_store_request_seconds_count", "",
          static_cast<double>(requests_.load()));
    r.set("hoist_coordinator_store_request_seconds_sum", "",
          static_cast<double>(sum_us_.load()) / 1e6);
    r.set("hoist_coordinator_store_request_failures_total", "",
          static_cast<double>(failures_.load()));
}

Result<std::string> Client::call(std::string_view path, const std::string& body, Retry retry) {
    auto& client = threadClient();
    std::optional<Error> last;
    const auto n = options_.endpoints.size();
    for (std::size_t attempt = 0; attempt < n; ++attempt) {
        auto index = current_.load() % n;
        const auto& endpoint = options_.endpoints[index];
        http::Request request;
        request.method = "POST";
        request.url = endpoint + std::string(path);
        request.headers.push_back({"Content-Type", "application/json"});
        request.body = body;
        request.connect_timeout = options_.connect_timeout;
        request.timeout = options_.request_timeout;
        auto started = std::chrono::steady_clock::now();
        auto response = client.send(request);
        bool answered = response && response->status == 200;
        observe(std::chrono::steady_clock::now() - started, answered);
        if (answered) return std::move(response->body);
        Error error = response ? etcdError(response->status, response->body, endpoint, path)
                               : response.error();
        // An answer other than "unavailable" is etcd's word, the same on every member.
        bool member_trouble = !response || error.code == Errc::Network ||
                              error.code == Errc::Timeout || response->status >= 500;
        if (!member_trouble) return std::unexpected(std::move(error));
        bool may_retry = retry == Retry::always || (!response && couldNotConnect(error));
        current_.compare_exchange_strong(index, index + 1);
        last = std::move(error);
        if (!may_retry) break;
    }
    return std::unexpected(*last);
}

std::string Client::rangeBody(const RangeRequest& request) {
    json::Writer w;
    writeRange(w, request);
    return w.str();
}

std::string Client::txnBody(const std::vector<Compare>& compares, const std::vector<Op>& success,
                            const std::vector<Op>& failure) {
    json::Writer w;
    w.beginObject();
    w.key("compare").beginArray();
    for (const auto& c : compares) writeCompare(w, c);
    w.endArray();
    w.key("success").beginArray();
    for (const auto& op : success) writeOp(w, op);
    w.endArray();
    w.key("failure").beginArray();
    for (const auto& op : failure) writeOp(w, op);
    w.endArray();
    w.endObject();
    return w.str();
}

Result<RangeResult> Client::range(const RangeRequest& request) {
    HOIST_ASSIGN(auto text, call("/v3/kv/range", rangeBody(request), Retry::always));
    HOIST_ASSIGN(auto doc, json::parseObject(text, "etcd range answer"));
    return readRange(doc);
}

Result<std::int64_t> Client::put(std::string_view key, std::string_view value, std::int64_t lease) {
    json::Writer w;
    w.beginObject().field("key", b64(key)).field("value", b64(value));
    if (lease != 0) w.field("lease", std::to_string(lease));
    w.endObject();
    HOIST_ASSIGN(auto text, call("/v3/kv/put", w.str(), Retry::if_not_sent));
    HOIST_ASSIGN(auto doc, json::parseObject(text, "etcd put answer"));
    return headerRevision(doc);
}

Result<std::int64_t> Client::deleteRange(std::string_view key, std::string_view range_end) {
    json::Writer w;
    w.beginObject().field("key", b64(key));
    if (!range_end.empty()) w.field("range_end", b64(range_end));
    w.endObject();
    HOIST_ASSIGN(auto text, call("/v3/kv/deleterange", w.str(), Retry::if_not_sent));
    HOIST_ASSIGN(auto doc, json::parseObject(text, "etcd deleterange answer"));
    return int64Field(doc, "deleted", "etcd deleterange answer");
}

Result<TxnResult> Client::txn(const std::vector<Compare>& compares, const std::vector<Op>& success,
                              const std::vector<Op>& failure) {
    // Only a guarded txn is sent again: its compares make a second application a no-op.
    auto retry = compares.empty() ? Retry::if_not_sent : Retry::always;
    HOIST_ASSIGN(auto text, call("/v3/kv/txn", txnBody(compares, success, failure), retry));
    constexpr std::string_view ctx = "etcd txn answer";
    HOIST_ASSIGN(auto doc, json::parseObject(text, ctx));
    TxnResult out;
    HOIST_ASSIGN(out.revision, headerRevision(doc));
    // A failed txn has no "succeeded" at all (zero values are omitted).
    if (auto s = doc.FindMember("succeeded"); s != doc.MemberEnd() && s->value.IsBool())
        out.succeeded = s->value.GetBool();
    if (auto responses = doc.FindMember("responses");
        responses != doc.MemberEnd() && responses->value.IsArray()) {
        for (const auto& r : responses->value.GetArray()) {
            if (!r.IsObject()) continue;
            if (auto range = r.FindMember("response_range"); range != r.MemberEnd()) {
                HOIST_ASSIGN(auto rr, readRange(range->value));
                out.ranges.push_back(std::move(rr));
            }
        }
    }
    return out;
}

Result<std::int64_t> Client::grant(std::int64_t ttl_seconds) {
    json::Writer w;
    w.beginObject().field("TTL", std::to_string(ttl_seconds)).endObject();
    HOIST_ASSIGN(auto text, call("/v3/lease/grant", w.str(), Retry::always));
    HOIST_ASSIGN(auto doc, json::parseObject(text, "etcd lease grant answer"));
    HOIST_ASSIGN(auto id, int64Field(doc, "ID", "etcd lease grant answer"));
    HOIST_ASSIGN(auto ttl, int64Field(doc, "TTL", "etcd lease grant answer"));
    if (id == 0 || ttl == 0)
        return fail(Errc::Internal, "etcd granted no lease: ", text.substr(0, 200));
    return id;
}

Result<std::int64_t> Client::keepAlive(std::int64_t lease) {
    json::Writer w;
    w.beginObject().field("ID", std::to_string(lease)).endObject();
    HOIST_ASSIGN(auto text, call("/v3/lease/keepalive", w.str(), Retry::always));
    // One reply, {"result":{...}}; a dead lease answers without TTL.
    HOIST_ASSIGN(auto doc, json::parseObject(text, "etcd keepalive answer"));
    auto result = doc.FindMember("result");
    if (result == doc.MemberEnd() || !result->value.IsObject())
        return fail(Errc::Internal, "etcd keepalive answer has no result: ", text.substr(0, 200));
    HOIST_ASSIGN(auto ttl, int64Field(result->value, "TTL", "etcd keepalive answer"));
    if (ttl <= 0) return fail(Errc::NotFound, "etcd lease ", lease, " has expired");
    return ttl;
}

Result<void> Client::revoke(std::int64_t lease) {
    json::Writer w;
    w.beginObject().field("ID", std::to_string(lease)).endObject();
    auto done = call("/v3/lease/revoke", w.str(), Retry::always);
    if (!done && done.error().code != Errc::NotFound) return std::unexpected(done.error());
    return ok();
}

Result<std::string> Client::status(const std::string& endpoint) {
    http::Request request;
    request.method = "POST";
    request.url = endpoint + "/v3/maintenance/status";
    request.body = "{}";
    request.connect_timeout = options_.connect_timeout;
    request.timeout = options_.request_timeout;
    HOIST_ASSIGN(auto response, threadClient().send(request));
    if (response.status != 200)
        return std::unexpected(
            etcdError(response.status, response.body, endpoint, "/v3/maintenance/status"));
    return std::move(response.body);
}

Result<void> Client::watch(std::string_view key, std::string_view range_end,
                           std::int64_t start_revision, const WatchSink& sink,
                           const std::atomic<bool>& stop, std::chrono::milliseconds max_time) {
    json::Writer w;
    w.beginObject().key("create_request").beginObject().field("key", b64(key));
    if (!range_end.empty()) w.field("range_end", b64(range_end));
    if (start_revision > 0) w.field("start_revision", std::to_string(start_revision));
    w.endObject().endObject();
    const auto n = options_.endpoints.size();
    auto index = current_.load() % n;
    const auto& endpoint = options_.endpoints[index];
    std::string pending;
    std::optional<Error> failure;
    bool stopped = false;
    http::StreamRequest request;
    request.url = endpoint + "/v3/watch";
    request.body = w.str();
    request.headers.push_back({"Content-Type", "application/json"});
    request.connect_timeout = options_.connect_timeout;
    request.timeout = max_time;
    request.low_speed_time = std::chrono::seconds(std::max<std::int64_t>(
        1, std::chrono::duration_cast<std::chrono::seconds>(max_time).count()));
    request.on_data = [&](std::string_view chunk) -> Result<void> {
        if (stop) {
            stopped = true;
            return fail(Errc::Internal, "watch stopped");
        }
        pending.append(chunk);
        std::size_t newline;
        while ((newline = pending.find('\n')) != std::string::npos) {
            std::string line = pending.substr(0, newline);
            pending.erase(0, newline + 1);
            if (strings::trim(line).empty()) continue;
            auto doc = json::parseObject(line, "etcd watch message");
            if (!doc) {
                failure = doc.error();
                return fail(Errc::Internal, "bad watch message");
            }
            auto result = doc->FindMember("result");
            if (result == doc->MemberEnd() || !result->value.IsObject()) {
                failure = etcdError(200, line, endpoint, "/v3/watch");
                return fail(Errc::Internal, "watch error");
            }
            const auto& r = result->value;
            if (auto c = r.FindMember("canceled");
                c != r.MemberEnd() && c->value.IsBool() && c->value.GetBool()) {
                auto compact = int64Field(r, "compact_revision", "etcd watch");
                failure = Error{
                    Errc::Conflict,
                    detail::concat("etcd watch canceled: revision ", start_revision,
                                   " was compacted (compact revision ", compact.value_or(0), ")"),
                    0};
                return fail(Errc::Internal, "watch canceled");
            }
            auto revision = headerRevision(r).value_or(0);
            std::vector<WatchEvent> events;
            if (auto list = r.FindMember("events");
                list != r.MemberEnd() && list->value.IsArray()) {
                for (const auto& e : list->value.GetArray()) {
                    if (!e.IsObject()) continue;
                    WatchEvent event;
                    // A PUT has no "type" (zero value).
                    if (auto t = e.FindMember("type");
                        t != e.MemberEnd() && t->value.IsString() &&
                        std::string_view(t->value.GetString()) == "DELETE")
                        event.type = WatchEvent::Type::remove;
                    if (auto kv = e.FindMember("kv"); kv != e.MemberEnd()) {
                        auto parsed = readKv(kv->value);
                        if (!parsed) {
                            failure = parsed.error();
                            return fail(Errc::Internal, "bad watch event");
                        }
                        event.kv = std::move(*parsed);
                    }
                    events.push_back(std::move(event));
                }
            }
            bool created = false;
            if (auto c = r.FindMember("created"); c != r.MemberEnd() && c->value.IsBool())
                created = c->value.GetBool();
            if (created && events.empty()) {
                if (!sink(revision, events)) {
                    stopped = true;
                    return fail(Errc::Internal, "watch stopped");
                }
                continue;
            }
            if (!sink(revision, events)) {
                stopped = true;
                return fail(Errc::Internal, "watch stopped");
            }
        }
        return ok();
    };
    // A handle of its own: the sink may call the client (a range) while the stream runs.
    http::Client stream_client;
    auto streamed = stream_client.stream(request);
    if (failure) return std::unexpected(*failure);
    if (stopped) return ok();
    if (!streamed) {
        // The whole time passing is how a watch ends normally.
        if (streamed.error().code == Errc::Timeout) return ok();
        current_.compare_exchange_strong(index, index + 1);
        return std::unexpected(streamed.error());
    }
    if (streamed->status != 200) {
        current_.compare_exchange_strong(index, index + 1);
        return std::unexpected(
            etcdError(streamed->status, streamed->error_body, endpoint, "/v3/watch"));
    }
    return ok();
}

Result<EtcdUrl> parseEtcdUrl(std::string_view url) {
    constexpr std::string_view kScheme = "etcd://";
    auto rule = [&] {
        return fail(Errc::Invalid, "--state '", url,
                    "' must be etcd://HOST:PORT[,HOST:PORT...]/PREFIX");
    };
    if (!url.starts_with(kScheme)) return rule();
    auto rest = url.substr(kScheme.size());
    auto slash = rest.find('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 1 >= rest.size()) return rule();
    EtcdUrl out;
    for (const auto& hostport : strings::split(rest.substr(0, slash), ',')) {
        auto colon = hostport.rfind(':');
        if (hostport.empty() || colon == std::string::npos || colon == 0 ||
            colon + 1 == hostport.size())
            return rule();
        int port = 0;
        auto digits = std::string_view(hostport).substr(colon + 1);
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
        if (ec != std::errc() || end != digits.data() + digits.size() || port <= 0 || port > 65535)
            return rule();
        out.endpoints.push_back("http://" + std::string(hostport));
    }
    auto prefix = rest.substr(slash + 1);
    while (prefix.ends_with('/')) prefix.remove_suffix(1);
    if (prefix.empty()) return rule();
    out.prefix = "/" + std::string(prefix) + "/";
    return out;
}

}  // namespace hoist::deploy_coordinator::etcd
