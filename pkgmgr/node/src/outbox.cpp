#include "pkgmgr/outbox.hpp"

#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "core/files.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"
#include "pkgmgr/node_config.hpp"

namespace hoist::pkgmgr {

namespace {

constexpr std::string_view kComponent = "outbox";
constexpr std::size_t kSeqDigits = 12;
constexpr std::string_view kDamagedSuffix = ".damaged";

std::string seqName(std::int64_t seq) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%012lld", static_cast<long long>(seq));
    return std::string(buf) + ".json";
}

bool isPingFile(const std::string& name) {
    return name.size() == kSeqDigits + 5 && name.ends_with(".json") &&
           name.find_first_not_of("0123456789") == kSeqDigits;
}

Result<QueuedPing> readQueued(const fs::path& file) {
    HOIST_ASSIGN(auto text, files::readFile(file, 1u << 20));
    std::string ctx = file.string();
    HOIST_ASSIGN(auto doc, json::parseObject(text, ctx));
    HOIST_TRY(json::rejectUnknown(doc, {"url", "ping"}, ctx));
    QueuedPing queued;
    queued.file = file;
    HOIST_ASSIGN(queued.url, json::getString(doc, "url", ctx));
    HOIST_ASSIGN(const json::Value* ping, json::getObject(doc, "ping", ctx));
    HOIST_ASSIGN(queued.ping, StatusPing::fromJson(json::toString(*ping)));
    return queued;
}

Result<void> removeDurable(const fs::path& file) {
    if (::unlink(file.c_str()) != 0 && errno != ENOENT)
        return failErrno(Errc::Io, errno, "cannot remove ", file.string());
    return files::fsyncPath(file.parent_path());
}

bool transientStatus(long status) {
    return status == 408 || status == 429 || status >= 500;
}

}  // namespace

Result<Outbox> Outbox::open(const NodeLayout& layout) {
    HOIST_TRY(files::makeDirs(layout.outbox()));
    return Outbox(layout);
}

std::string Outbox::statusUrl(std::string_view coordinator, std::string_view node) {
    return http::joinUrl(coordinator, "/v1/nodes/" + http::urlEncode(node) + "/status");
}

Result<StatusPing> Outbox::enqueue(StatusPing ping, const std::string& url) {
    HOIST_ASSIGN(auto lock, files::FileLock::acquire(folder_ / ".seq.lock",
                                                     std::chrono::seconds(10), "outbox seq"));
    std::int64_t last = 0;
    auto seq_file = folder_ / ".seq";
    auto text = files::readFile(seq_file, 64);
    if (text) {
        auto trimmed = std::string(strings::trim(*text));
        try {
            last = std::stoll(trimmed);
        } catch (const std::exception&) {
            return fail(Errc::Corrupt, seq_file.string(), " holds '", trimmed, "', not a number");
        }
    } else if (text.error().code != Errc::NotFound) {
        return std::unexpected(text.error());
    }
    // A ping file newer than .seq (a crash between the two writes) must not be reused.
    HOIST_ASSIGN(auto queued, pending());
    if (!queued.empty()) last = std::max(last, queued.back().ping.seq);
    ping.seq = last + 1;
    if (ping.time.empty()) ping.time = log::nowRfc3339();
    HOIST_TRY(files::writeFileAtomic(seq_file, std::to_string(ping.seq) + "\n"));
    json::Writer w;
    w.beginObject().field("url", url).key("ping").raw(ping.toJson()).endObject();
    HOIST_TRY(files::writeFileAtomic(folder_ / seqName(ping.seq), w.str() + "\n"));
    return ping;
}

Result<std::vector<QueuedPing>> Outbox::pending() const {
    return scan(nullptr);
}

std::vector<fs::path> Outbox::damaged() const {
    std::vector<fs::path> out;
    std::error_code ec;
    for (fs::directory_iterator it(folder_, ec), end; !ec && it != end; it.increment(ec)) {
        auto name = it->path().filename().string();
        if (name.ends_with(kDamagedSuffix) &&
            isPingFile(name.substr(0, name.size() - kDamagedSuffix.size())))
            out.push_back(it->path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

Result<std::vector<QueuedPing>> Outbox::scan(int* set_aside) const {
    std::vector<fs::path> names;
    std::error_code ec;
    for (fs::directory_iterator it(folder_, ec), end; !ec && it != end; it.increment(ec)) {
        auto name = it->path().filename().string();
        if (isPingFile(name)) names.push_back(it->path());
    }
    if (ec) return fail(Errc::Io, "cannot list ", folder_.string(), ": ", ec.message());
    std::sort(names.begin(), names.end());
    std::vector<QueuedPing> out;
    for (const auto& file : names) {
        auto queued = readQueued(file);
        if (!queued) {
            if (queued.error().code == Errc::NotFound) continue;  // delivered meanwhile
            if (set_aside == nullptr) {
                log::warn(kComponent, "skipping an unreadable ping",
                          {{"file", file.string()}, {"error", queued.error().describe()}});
                continue;
            }
            auto aside = fs::path(file.string() + std::string(kDamagedSuffix));
            HOIST_TRY(files::renameDurable(file, aside));
            ++*set_aside;
            log::error(kComponent, "a queued ping is unreadable; set aside, it will not be sent",
                       {{"file", aside.string()}, {"error", queued.error().describe()}});
            continue;
        }
        out.push_back(std::move(*queued));
    }
    return out;
}

Result<Outbox::DrainResult> Outbox::drain(http::Client& client, const std::string& token,
                                          std::chrono::milliseconds request_timeout) {
    HOIST_ASSIGN(auto lock, files::FileLock::acquire(folder_ / ".drain.lock",
                                                     std::chrono::milliseconds(0), "outbox drain"));
    DrainResult result;
    HOIST_ASSIGN(auto queued, scan(&result.damaged));
    if (queued.empty()) return result;
    HOIST_ASSIGN(auto secret, nodeSecret(layout_, false));
    for (std::size_t i = 0; i < queued.size(); ++i) {
        const auto& q = queued[i];
        http::Request request;
        request.method = "POST";
        request.url = q.url;
        request.body = q.ping.toJson();
        request.headers.push_back({"Content-Type", "application/json"});
        if (!token.empty()) request.headers.push_back(http::bearer(token));
        if (!secret.empty()) request.headers.push_back({std::string(kNodeSecretHeader), secret});
        request.connect_timeout = request_timeout;
        request.timeout = request_timeout;
        auto response = client.send(request);
        if (!response || transientStatus(response->status)) {
            result.last_error =
                response ? "HTTP " + std::to_string(response->status) : response.error().describe();
            result.left = queued.size() - i;
            log::debug(kComponent, "coordinator did not take the ping",
                       {{"seq", q.ping.seq}, {"error", result.last_error}});
            return result;
        }
        if (isNotRegistered(response->status, response->body)) {
            // Registration comes first: the ping is kept, and the ones after it wait behind it
            // so that the coordinator still sees them in seq order.
            result.unregistered = true;
            result.last_error = "the coordinator does not know this node yet";
            result.left = queued.size() - i;
            log::debug(kComponent, "the coordinator does not know this node yet; keeping the ping",
                       {{"seq", q.ping.seq}});
            return result;
        }
        if (response->ok()) {
            ++result.delivered;
            log::debug(kComponent, "delivered", {{"seq", q.ping.seq}, {"state", q.ping.state}});
        } else {
            ++result.dropped;
            log::warn(kComponent, "the coordinator refused a ping; dropping it",
                      {{"seq", q.ping.seq},
                       {"status", static_cast<std::int64_t>(response->status)},
                       {"body", response->body.substr(0, 200)}});
        }
        HOIST_TRY(removeDurable(q.file));
    }
    return result;
}

// ---- PingCourier

PingCourier::PingCourier(NodeLayout layout, std::function<std::string()> token,
                         http::RetryPolicy backoff, std::chrono::milliseconds request_timeout)
    : layout_(std::move(layout)),
      token_(std::move(token)),
      backoff_(backoff),
      request_timeout_(request_timeout) {}

PingCourier::~PingCourier() {
    (void)stop(std::chrono::milliseconds(0));
}

void PingCourier::start() {
    std::lock_guard lock(mutex_);
    if (thread_.joinable()) return;
    stopping_ = false;
    thread_ = std::thread([this] { loop(); });
}

void PingCourier::notify() {
    {
        std::lock_guard lock(mutex_);
        notified_ = true;
    }
    wake_.notify_all();
}

void PingCourier::resume() {
    {
        std::lock_guard lock(mutex_);
        parked_ = false;
        notified_ = true;
        ++resumes_;
    }
    wake_.notify_all();
}

bool PingCourier::parked() {
    std::lock_guard lock(mutex_);
    return parked_;
}

std::size_t PingCourier::stop(std::chrono::milliseconds grace) {
    {
        std::lock_guard lock(mutex_);
        if (!thread_.joinable()) return left_;
        stopping_ = true;
        notified_ = true;
        stop_deadline_ = std::chrono::steady_clock::now() + grace;
    }
    wake_.notify_all();
    thread_.join();
    std::lock_guard lock(mutex_);
    return left_;
}

void PingCourier::loop() {
    http::Client client;
    int failures = 0;
    while (true) {
        std::uint64_t resumes = 0;
        {
            std::unique_lock lock(mutex_);
            // Parked: sending again would be refused the same way until the node registers.
            wake_.wait(lock, [this] { return !parked_ || stopping_; });
            if (parked_) return;
            resumes = resumes_;
        }
        std::size_t left = 0;
        bool delivered_all = false;
        bool unregistered = false;
        auto outbox = Outbox::open(layout_);
        if (outbox) {
            auto drained =
                outbox->drain(client, token_ ? token_() : std::string(), request_timeout_);
            if (drained) {
                left = drained->left;
                delivered_all = drained->left == 0;
                unregistered = drained->unregistered;
            } else {
                // Busy: another process drains; check again soon.
                auto queued = outbox->pending();
                left = queued ? queued->size() : 1;
            }
        } else {
            left = 1;
        }
        std::unique_lock lock(mutex_);
        left_ = left;
        if (unregistered) {
            // A registration that finished while this drain ran: try again at once.
            failures = 0;
            if (resumes == resumes_) parked_ = true;
            if (stopping_) return;
            continue;
        }
        if (delivered_all)
            failures = 0;
        else
            ++failures;
        auto now = std::chrono::steady_clock::now();
        if (stopping_ && (delivered_all || now >= stop_deadline_)) return;
        if (notified_ && !delivered_all) notified_ = false;
        if (notified_) {
            notified_ = false;
            continue;
        }
        std::chrono::steady_clock::time_point until;
        if (delivered_all) {
            // Nothing queued: sleep until notified (or, in case another process queued
            // something, a while).
            until = now + backoff_.cap;
        } else {
            until = now + std::max(http::backoffDelay(backoff_, failures - 1),
                                   std::chrono::milliseconds(20));
        }
        if (stopping_) until = std::min(until, stop_deadline_);
        wake_.wait_until(lock, until, [this] { return notified_; });
        notified_ = false;
    }
}

}  // namespace hoist::pkgmgr
