#include "store_feed.hpp"

#include <algorithm>

#include "core/log.hpp"

namespace hoist::deploy_coordinator {

namespace {
constexpr std::string_view kLog = "deploy-coordinator";

// What one watch event under `prefix` changed, added to `into` as a commit would have written
// it. False (nothing added) for a second deployment row: each commit writes one, so `into` goes
// to the hub first. Keys of other kinds add nothing; Corrupt naming the key of a bad value.
Result<bool> addChange(const std::string& prefix, const etcd::WatchEvent& event, StepWrite& into) {
    const auto& kv = event.kv;
    if (!kv.key.starts_with(prefix)) return true;
    std::string_view rest = std::string_view(kv.key).substr(prefix.size());
    bool put = event.type == etcd::WatchEvent::Type::put;
    auto under = [&](std::string_view kind) {
        if (!rest.starts_with(kind)) return false;
        rest.remove_prefix(kind.size());
        return true;
    };
    if (under("nodes/")) {
        if (!put) {
            into.forget_nodes.emplace_back(rest);
            return true;
        }
        HOIST_ASSIGN(auto n, EtcdStateStore::decodeNodeValue(kv));
        into.registry.push_back(std::move(n));
    } else if (under("deployments/")) {
        if (!put) return true;
        if (into.deployment) return false;
        HOIST_ASSIGN(auto d, EtcdStateStore::decodeDeploymentValue(kv));
        into.deployment = std::move(d);
    } else if (under("deployment-nodes/")) {
        if (!put) return true;
        HOIST_ASSIGN(auto n, EtcdStateStore::decodeDeploymentNodeValue(kv));
        into.nodes.push_back(std::move(n));
    } else if (under("holds/")) {
        if (!put) {
            into.delete_holds.emplace_back(rest);
            return true;
        }
        HOIST_ASSIGN(auto h, EtcdStateStore::decodeHold(kv));
        into.put_holds.push_back(std::move(h));
    } else if (under("events/")) {
        if (!put) return true;
        HOIST_ASSIGN(auto e, EtcdStateStore::decodeEventValue(kv));
        into.events.push_back(std::move(e));
    }
    return true;
}

}  // namespace

StoreFeed::StoreFeed(etcd::Client& client, EtcdStateStore& store, EventHub& hub,
                     std::function<bool()> active, std::chrono::milliseconds poll)
    : client_(client),
      store_(store),
      hub_(hub),
      active_(std::move(active)),
      poll_(poll),
      // applying/ < deployment-nodes/ < deployments/ < election/ < events/ < holds/ < meta/ <
      // monitors/ < nodes/: one range holds every record a stream reports, and none of the
      // replicas' renewals (replicas/) or a staged step's packed parts (staged/).
      from_(store.prefix() + "applying/"),
      to_(etcd::prefixEnd(store.prefix() + "nodes/")) {}

StoreFeed::~StoreFeed() {
    stop();
}

void StoreFeed::start() {
    thread_ = std::thread([this] { loop(); });
}

void StoreFeed::stop() {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
}

void StoreFeed::loop() {
    std::int64_t revision = 0;
    bool compacted = false;
    while (!stopping_) {
        if (!active_()) {
            // Nobody listens here (or this replica leads: its commits feed the hub): the
            // next stream starts from the revision current then.
            revision = 0;
            std::this_thread::sleep_for(poll_);
            continue;
        }
        if (revision == 0) {
            etcd::RangeRequest r;
            r.key = from_;
            r.range_end = to_;
            r.count_only = true;
            auto read = client_.range(r);
            if (!read) {
                std::this_thread::sleep_for(poll_);
                continue;
            }
            revision = read->revision;
            readCreating(revision);
            if (std::exchange(compacted, false)) reread();
        }
        if (before_watch_) before_watch_();
        auto watched = client_.watch(
            from_, to_, revision + 1,
            [&](std::int64_t, const std::vector<etcd::WatchEvent>& events) {
                // Taken over (or the last stream went): the rest is the leader's hook's.
                if (!active_()) return false;
                deliver(events);
                for (const auto& e : events) revision = std::max(revision, e.kv.mod_revision);
                return !stopping_.load();
            },
            stopping_, std::chrono::seconds(1));
        if (!watched) {
            if (watched.error().code == Errc::Conflict) {
                // Compacted past what was seen: read again, then watch from there.
                log::info(kLog, "event feed watch compacted; reading again",
                          {{"error", watched.error().describe()}});
                rereads_++;
                compacted = true;
                revision = 0;
                continue;
            }
            std::this_thread::sleep_for(poll_);
        }
    }
}

void StoreFeed::readCreating(std::int64_t revision) {
    creating_.clear();
    etcd::RangeRequest r;
    r.key = store_.prefix() + "creating/";
    r.range_end = etcd::prefixEnd(r.key);
    r.revision = revision;
    r.keys_only = true;
    if (auto read = client_.range(r))
        for (const auto& kv : read->kvs) creating_[kv.key.substr(r.key.size())];
}

void StoreFeed::deliver(const std::vector<etcd::WatchEvent>& events) {
    const auto creating = store_.prefix() + "creating/";
    const auto rows = store_.prefix() + "deployment-nodes/";
    const auto deployments = store_.prefix() + "deployments/";
    StepWrite write;
    std::vector<std::string> ended;
    for (const auto& e : events) {
        // A new deployment's rows are put before its step commits (etcd_staged.cpp): held back
        // until its row arrives, with the marker's deletion in the same revision.
        const auto& key = e.kv.key;
        bool put = e.type == etcd::WatchEvent::Type::put;
        if (key.starts_with(creating)) {
            if (put)
                creating_[key.substr(creating.size())];
            else
                ended.push_back(key.substr(creating.size()));
            continue;
        }
        if (put && key.starts_with(rows)) {
            auto id = key.substr(rows.size(), key.find('/', rows.size()) - rows.size());
            if (auto held = creating_.find(id); held != creating_.end()) {
                if (auto n = EtcdStateStore::decodeDeploymentNodeValue(e.kv))
                    held->second.push_back(std::move(*n));
                continue;
            }
        }
        auto added = addChange(store_.prefix(), e, write);
        if (added && !*added) {
            // A second deployment row: each commit writes one.
            hub_.committed(write);
            write = {};
            added = addChange(store_.prefix(), e, write);
        }
        if (!added)
            log::warn(kLog, "event feed: a value under the prefix does not decode",
                      {{"error", added.error().describe()}});
        if (put && added && key.starts_with(deployments)) {
            auto held = creating_.find(key.substr(deployments.size()));
            if (held != creating_.end()) {
                for (auto& n : held->second) write.nodes.push_back(std::move(n));
                creating_.erase(held);
            }
        }
    }
    // A marker gone without its deployment's row in the same revision: the step never
    // committed, and its rows were dropped.
    for (const auto& id : ended) creating_.erase(id);
    if (!write.empty()) hub_.committed(write);
}

void StoreFeed::reread() {
    // What changed unseen is not known: the registry goes whole (the hub reports only rows
    // whose role, release, generation, status or mode differ from what it last saw), the
    // recent deployments go as changed (a page reads their rows again), and the holds and the
    // audit log are flagged for reading.
    StepWrite whole;
    whole.clear_holds = true;
    whole.events.emplace_back();
    if (auto nodes = store_.nodes()) whole.registry = std::move(*nodes);
    hub_.committed(whole);
    if (auto recent = store_.deployments(20))
        for (auto& d : *recent) {
            StepWrite one;
            one.deployment = std::move(d);
            hub_.committed(one);
        }
}

}  // namespace hoist::deploy_coordinator
