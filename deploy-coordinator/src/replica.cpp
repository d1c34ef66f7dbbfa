#include "replica.hpp"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "core/http_client.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"

namespace hoist::deploy_coordinator {

namespace {

constexpr std::string_view kLog = "deploy-coordinator";
constexpr std::string_view kForwardedHeader = "X-Hoist-Forwarded-By";

std::int64_t steadyNs() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

std::string hex(std::int64_t value) {
    char text[24];
    std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
    return text;
}

// The GET routes a follower answers from the store rather than forwarding: the registry,
// the deployments with their nodes and audit events, the holds, the monitors, the plan (a
// dry run on a fresh read of the registry) and the event stream (fed by a watch).
bool isStoreRead(const std::string& path) {
    if (path == "/v1/nodes" || path == "/v1/deployments" || path == "/v1/events" ||
        path == "/v1/halt" || path == "/v1/monitors" || path == "/v1/plan" ||
        path == "/v1/events/stream")
        return true;
    constexpr std::string_view deployments = "/v1/deployments/";
    return path.starts_with(deployments) && path.find('/', deployments.size()) == std::string::npos;
}

http::ServerReply unavailable(std::string message) {
    return http::ServerReply::error(503, message);
}

}  // namespace

Replica::Replica(etcd::Client& client, EtcdStateStore& store, ReplicaOptions options, Hooks hooks)
    : client_(client),
      store_(store),
      options_(std::move(options)),
      hooks_(std::move(hooks)),
      election_prefix_(store.prefix() + "election/") {
    if (options_.renew_deadline.count() <= 0)
        options_.renew_deadline =
            std::chrono::duration_cast<std::chrono::milliseconds>(options_.ttl) * 2 / 3;
    heard_at_ = options_.store_heard
                    ? steadyNs()
                    : steadyNs() - std::chrono::nanoseconds(options_.ttl).count() - 1;
}

Replica::~Replica() {
    stop();
}

void Replica::start() {
    campaign_thread_ = std::thread([this] { campaign(); });
    holds_thread_ = std::thread([this] { watchHolds(); });
}

void Replica::stop() {
    if (stopping_.exchange(true)) return;
    if (campaign_thread_.joinable()) campaign_thread_.join();
    if (holds_thread_.joinable()) holds_thread_.join();
    if (lease_ != 0 && !lost_) (void)client_.revoke(lease_);
}

bool Replica::mayAct() const {
    if (!leading_) return false;
    auto since = std::chrono::nanoseconds(steadyNs() - renewed_at_.load());
    return since < options_.renew_deadline;
}

std::optional<Replica::Leader> Replica::leader() const {
    std::lock_guard lock(leader_mutex_);
    return leader_;
}

bool Replica::storeLost() const {
    return std::chrono::nanoseconds(steadyNs() - heard_at_.load()) > options_.ttl;
}

Result<void> Replica::enter() {
    HOIST_ASSIGN(auto lease, client_.grant(options_.ttl.count()));
    auto key = election_prefix_ + hex(lease);
    json::Writer w;
    w.beginObject().field("id", options_.id).field("url", options_.url).endObject();
    etcd::Compare absent{etcd::Compare::Target::create, etcd::Compare::Result::equal, key, 0, {}};
    HOIST_ASSIGN(auto done,
                 client_.txn({absent}, {etcd::Op::put(key, w.str(), lease), etcd::Op::range(key)},
                             {etcd::Op::range(key)}));
    if (done.ranges.empty() || done.ranges.front().kvs.empty())
        return fail(Errc::Internal, "etcd: the election key ", key, " is not there after its put");
    const auto& kv = done.ranges.front().kvs.front();
    if (kv.lease != lease)
        return fail(Errc::Conflict, "etcd: the election key ", key, " belongs to another lease");
    lease_ = lease;
    key_ = key;
    renewed_at_ = steadyNs();
    renewed_wall_ms_ = nowMs();
    log::info(kLog, "campaigning",
              {{"replica", options_.id}, {"key", key}, {"create_revision", kv.create_revision}});
    return publish();
}

Result<void> Replica::present() {
    HOIST_ASSIGN(auto lease, client_.grant(options_.ttl.count()));
    lease_ = lease;
    renewed_at_ = steadyNs();
    renewed_wall_ms_ = nowMs();
    return publish();
}

Result<void> Replica::publish() {
    json::Writer w;
    w.beginObject()
        .field("schema", EtcdStateStore::kSchema)
        .field("id", options_.id)
        .field("url", options_.url)
        .field("leader", leading_.load())
        .field("epoch", leading_ ? epoch_.load() : std::int64_t{0})
        .field("last_renewal_ms", renewed_wall_ms_.load())
        .field("leading_since_ms", leading_ ? leading_since_ms_.load() : std::int64_t{0});
    if (refused_) w.field("refused", refusal_);
    w.endObject();
    HOIST_ASSIGN(auto revision,
                 client_.put(store_.prefix() + "replicas/" + options_.id, w.str(), lease_));
    (void)revision;
    return ok();
}

void Replica::lose(const std::string& why) {
    leading_ = false;
    lost_ = true;
    store_.setLeadership(0, "", 0);
    log::warn(kLog, "stepping down", {{"replica", options_.id}, {"why", why}});
    if (hooks_.step_down) hooks_.step_down(why);
}

void Replica::refuseToLead(const Error& why) {
    leading_ = false;
    store_.setLeadership(0, "", 0);
    refusal_ = "replica " + options_.id + " refused to take over: " + why.message +
               " (repair or delete that key, then restart the replicas)";
    refused_ = true;
    {
        std::lock_guard lock(leader_mutex_);
        leader_.reset();
    }
    log::error(kLog, "refusing to lead: the state under the prefix is damaged",
               {{"replica", options_.id}, {"error", why.describe()}});
    // The election key goes with its lease: another replica may try (and refuse likewise).
    auto lease = std::exchange(lease_, 0);
    key_.clear();
    if (auto revoked = client_.revoke(lease); !revoked)
        log::warn(kLog, "cannot revoke the election lease",
                  {{"error", revoked.error().describe()}});
    // Still listed among the replicas, saying why it does not lead, under a lease of its own
    // that holds no election key (campaign() keeps it renewed).
    if (auto listed = present(); !listed)
        log::warn(kLog, "cannot list this replica as refusing",
                  {{"error", listed.error().describe()}});
}

void Replica::campaign() {
    const auto renew_every = std::chrono::duration_cast<std::chrono::nanoseconds>(options_.ttl) / 3;
    std::int64_t last_sent = 0;
    bool said_unreachable = false;
    while (!stopping_ && !lost_) {
        if (lease_ == 0) {
            // A replica that refused to lead holds a lease only to stay listed.
            auto entered = refused_ ? present() : enter();
            if (!entered) {
                if (!said_unreachable)
                    log::warn(kLog, "cannot campaign", {{"error", entered.error().describe()}});
                said_unreachable = true;
                std::this_thread::sleep_for(options_.poll);
                continue;
            }
            heard_at_ = steadyNs();
            said_unreachable = false;
            last_sent = steadyNs();
        }
        auto now = steadyNs();
        if (lease_ != 0 && now - last_sent >= renew_every.count()) {
            last_sent = now;
            auto renewed = client_.keepAlive(lease_);
            if (renewed) {
                renewed_at_ = now;
                heard_at_ = steadyNs();
                renewed_wall_ms_ = nowMs();
                renewals_++;
                (void)publish();
            } else {
                renewal_failures_++;
                if (renewed.error().code == Errc::NotFound) {
                    if (leading_) {
                        lose("the election lease expired");
                        return;
                    }
                    lease_ = 0;
                    continue;
                }
                log::warn(kLog, "lease renewal failed", {{"error", renewed.error().describe()}});
            }
        }
        if (leading_ &&
            std::chrono::nanoseconds(steadyNs() - renewed_at_.load()) >= options_.renew_deadline) {
            lose("no lease renewal succeeded within the renew deadline");
            return;
        }
        if (!leading_) {
            etcd::RangeRequest r;
            r.key = election_prefix_;
            r.range_end = etcd::prefixEnd(election_prefix_);
            r.limit = 1;
            r.sort_order = etcd::RangeRequest::Sort::ascend;
            r.sort_target = etcd::RangeRequest::Target::create;
            auto first = client_.range(r);
            if (first) {
                heard_at_ = steadyNs();
                std::optional<Leader> found;
                if (!first->kvs.empty()) {
                    const auto& kv = first->kvs.front();
                    Leader l;
                    l.epoch = kv.create_revision;
                    if (auto doc = json::parseObject(kv.value, "etcd key " + kv.key)) {
                        l.id = json::getString(*doc, "id", "election").value_or("");
                        l.url = json::getString(*doc, "url", "election").value_or("");
                    }
                    found = l;
                    if (!key_.empty() && kv.key == key_ && kv.lease == lease_) {
                        epoch_ = kv.create_revision;
                        leading_since_ms_ = nowMs();
                        store_.setLeadership(kv.create_revision, key_, lease_);
                        leading_ = true;
                        // At once, before the takeover's load: followers count the monitors'
                        // silence from it (leaderSinceMs), as this replica will.
                        (void)publish();
                        auto led = hooks_.lead ? hooks_.lead(kv.create_revision) : Result<void>();
                        if (!led && led.error().code == Errc::Corrupt) {
                            refuseToLead(led.error());
                            std::this_thread::sleep_for(options_.poll);
                            continue;
                        }
                        if (!led) {
                            lose("taking over failed: " + led.error().describe());
                            return;
                        }
                        (void)publish();
                        // The holds the watch saw while this replica stood by were not
                        // acknowledged (only the leader's counts); when this read fails, the
                        // watch acknowledges once it reads them.
                        (void)readHolds();
                        log::info(kLog, "elected",
                                  {{"replica", options_.id}, {"epoch", kv.create_revision}});
                    }
                }
                std::lock_guard lock(leader_mutex_);
                leader_ = found;
            }
        }
        std::this_thread::sleep_for(options_.poll);
    }
}

void Replica::watchHolds() {
    const auto prefix = store_.prefix() + "holds/";
    const auto end = etcd::prefixEnd(prefix);
    std::int64_t revision = 0;
    while (!stopping_) {
        if (revision == 0) {
            auto read = readHolds();
            if (!read) {
                std::this_thread::sleep_for(options_.poll);
                continue;
            }
            revision = *read;
        }
        auto watched = client_.watch(
            prefix, end, revision + 1,
            [&](std::int64_t, const std::vector<etcd::WatchEvent>& events) {
                for (const auto& e : events) revision = std::max(revision, e.kv.mod_revision);
                // Not read (etcd going away): read them whole again once etcd answers.
                if (!events.empty() && hooks_.holds_changed && !hooks_.holds_changed()) {
                    revision = 0;
                    return false;
                }
                if (!events.empty()) acknowledgeHolds(revision);
                return !stopping_.load();
            },
            stopping_, std::chrono::seconds(5));
        if (!watched) {
            // Compacted past what we saw: read again, then watch from there.
            if (watched.error().code == Errc::Conflict) {
                log::info(kLog, "holds watch compacted; reading again",
                          {{"error", watched.error().describe()}});
                revision = 0;
                continue;
            }
            std::this_thread::sleep_for(options_.poll);
        }
    }
}

void Replica::acknowledgeHolds(std::int64_t revision) {
    if (!mayAct()) return;
    auto acked = store_.acknowledgeHolds(revision);
    if (!acked)
        log::warn(kLog, "cannot acknowledge the holds",
                  {{"revision", revision}, {"error", acked.error().describe()}});
}

std::optional<std::int64_t> Replica::readHolds() {
    // The revision first: the holds read after it hold everything written up to it.
    etcd::RangeRequest r;
    r.key = store_.prefix() + "holds/";
    r.range_end = etcd::prefixEnd(r.key);
    r.count_only = true;
    auto read = client_.range(r);
    if (!read) return std::nullopt;
    if (hooks_.holds_changed && !hooks_.holds_changed()) return std::nullopt;
    acknowledgeHolds(read->revision);
    return read->revision;
}

Result<std::optional<std::int64_t>> Replica::leaderSinceMs() {
    if (leading_) return std::optional<std::int64_t>(leading_since_ms_.load());
    etcd::RangeRequest r;
    r.key = store_.prefix() + "replicas/";
    r.range_end = etcd::prefixEnd(r.key);
    auto read = client_.range(r);
    if (!read)
        return fail(Errc::Unhealthy, "state store etcd (", strings::join(client_.endpoints(), ","),
                    ") did not answer: ", read.error().message);
    // A deposed leader's entry may linger until its lease expires: the highest epoch leads.
    std::optional<std::int64_t> since;
    std::int64_t epoch = 0;
    for (const auto& kv : read->kvs) {
        auto doc = json::parseObject(kv.value, "etcd key " + kv.key);
        if (!doc || !json::getBool(*doc, "leader", "replica").value_or(false)) continue;
        auto e = json::getInt(*doc, "epoch", "replica").value_or(0);
        auto s = json::getInt(*doc, "leading_since_ms", "replica").value_or(0);
        if (e > epoch && s > 0) epoch = e, since = s;
    }
    return since;
}

Result<std::string> Replica::coordinatorsJson() {
    etcd::RangeRequest r;
    r.key = store_.prefix() + "replicas/";
    r.range_end = etcd::prefixEnd(r.key);
    auto read = client_.range(r);
    if (!read)
        return fail(Errc::Network, "state store etcd is unreachable: ", read.error().message);
    auto current = leader();
    if (leading_) current = Leader{options_.id, options_.url, epoch_.load()};
    json::Writer w;
    w.beginObject();
    if (current)
        w.field("leader", current->id);
    else
        w.key("leader").null();
    w.field("epoch", current ? current->epoch : std::int64_t{0});
    w.key("replicas").beginArray();
    for (const auto& kv : read->kvs) {
        auto doc = json::parseObject(kv.value, "etcd key " + kv.key);
        if (!doc) continue;
        auto id = json::getString(*doc, "id", "replica").value_or("");
        bool is_leader = current && current->id == id;
        w.beginObject()
            .field("id", id)
            .field("url", json::getString(*doc, "url", "replica").value_or(""))
            .field("leader", is_leader)
            .field("epoch", json::getInt(*doc, "epoch", "replica").value_or(0))
            .field("last_renewal",
                   formatTime(json::getInt(*doc, "last_renewal_ms", "replica").value_or(0)));
        // Only a replica that refused to lead (a damaged value) says so, and why.
        if (auto refused = json::getString(*doc, "refused", "replica"); refused)
            w.field("refused", *refused);
        w.endObject();
    }
    w.endArray().endObject();
    return w.str();
}

std::optional<http::ServerReply> Replica::intercept(const http::ServerRequest& request) {
    const auto& path = request.path;
    if (path == "/healthz" || path == "/metrics" || path == "/v1/cluster/coordinators")
        return std::nullopt;
    if (storeLost())
        return unavailable("state store etcd (" + strings::join(client_.endpoints(), ",") +
                           ") does not answer this replica (nothing for over " +
                           std::to_string(options_.ttl.count()) +
                           " s); no replica acts without it: start etcd again, or retry shortly");
    if (leading_) return std::nullopt;
    // Reads come from the store: a follower answers them itself (its standby engine reads
    // what the leader committed), so they go on while the leader is down or being elected.
    if (request.method == "GET" && isStoreRead(path)) return std::nullopt;
    // Holds are the store's: reading and clearing them is answered here. A halt goes to the
    // leader, which answers once no node action can start; when no leader answers, this
    // replica writes it to etcd itself and the next leader reads it before acting.
    bool halt_route = path == "/v1/halt" || path.starts_with("/v1/halt/");
    bool halt = halt_route && request.method == "POST";
    if (halt_route && !halt) return std::nullopt;
    if (request.header(kForwardedHeader)) {
        if (halt) return std::nullopt;
        return unavailable("replica " + options_.id + " does not lead either; retry shortly");
    }
    auto current = leader();
    if (!current || current->url.empty() || current->id == options_.id) {
        if (halt) return std::nullopt;
        if (refused_) return unavailable("no coordinator leads: " + refusal_);
        return unavailable(
            "no coordinator leads right now (an election is under way); retry "
            "shortly");
    }
    std::string url = current->url + path;
    for (std::size_t i = 0; i < request.query.size(); ++i)
        url += (i == 0 ? "?" : "&") + http::urlEncode(request.query[i].first) + "=" +
               http::urlEncode(request.query[i].second);
    http::Request out;
    out.method = request.method;
    out.url = url;
    out.body = request.body;
    out.timeout = halt ? std::chrono::seconds(3) : std::chrono::seconds(60);
    out.connect_timeout = halt ? std::chrono::seconds(1) : std::chrono::seconds(2);
    for (const auto& h : request.headers) {
        auto name = strings::toLower(h.name);
        if (name == "host" || name == "content-length" || name == "connection" ||
            name == "transfer-encoding" || name == "expect")
            continue;
        out.headers.push_back(h);
    }
    out.headers.push_back({std::string(kForwardedHeader), options_.id});
    thread_local http::Client client;
    auto answer = client.send(out);
    if (halt && (!answer || answer->status == 503)) return std::nullopt;
    if (!answer)
        return unavailable("the leader " + current->id + " (" + current->url +
                           ") did not answer: " + answer.error().message);
    http::ServerReply reply;
    reply.status = static_cast<int>(answer->status);
    reply.content_type = answer->header("Content-Type").value_or("application/json");
    reply.body = std::move(answer->body);
    for (const auto& h : answer->headers) {
        auto name = strings::toLower(h.name);
        if (name == "location" || name == "retry-after") reply.headers.push_back(h);
    }
    return reply;
}

void Replica::collectMetrics(metrics::Registry& r) const {
    r.describe("hoist_coordinator_is_leader", "gauge", "whether this replica leads (0 or 1)");
    r.describe("hoist_coordinator_epoch", "gauge", "the epoch this replica leads as (0: none)");
    r.describe("hoist_coordinator_lease_renewals_total", "counter", "election lease renewals");
    r.describe("hoist_coordinator_lease_renewal_failures_total", "counter",
               "election lease renewals that failed");
    r.describe("hoist_coordinator_store_staged_steps_total", "counter",
               "steps too large for one etcd txn, committed staged (one marker txn)");
    r.set("hoist_coordinator_store_staged_steps_total", "",
          static_cast<double>(store_.stagedSteps()));
    r.set("hoist_coordinator_is_leader", "", leading_ ? 1 : 0);
    r.set("hoist_coordinator_epoch", "", leading_ ? static_cast<double>(epoch_.load()) : 0);
    r.set("hoist_coordinator_lease_renewals_total", "", static_cast<double>(renewals_.load()));
    r.set("hoist_coordinator_lease_renewal_failures_total", "",
          static_cast<double>(renewal_failures_.load()));
    client_.collectMetrics(r);
}

}  // namespace hoist::deploy_coordinator
