#include "event_stream.hpp"

#include <algorithm>

#include "core/json.hpp"
#include "core/log.hpp"
#include "views.hpp"

namespace hoist::deploy_coordinator {

namespace {
constexpr std::string_view kLog = "deploy-coordinator";

std::string fleetSignature(const NodeRecord& n) {
    return n.role + '\n' + n.release + '\n' + std::to_string(n.generation) + '\n' + n.status +
           '\n' + n.mode;
}
}  // namespace

bool EventHub::Changes::any() const {
    return !deployments.empty() || !nodes.empty() || nodes_omitted > 0 || holds || fleet || events;
}

EventHub::EventHub(StateStore& store, std::chrono::milliseconds poll)
    : store_(store), poll_(poll) {}

EventHub::~EventHub() {
    stop();
}

void EventHub::start() {
    std::lock_guard lock(mutex_);
    if (started_) return;
    started_ = true;
    thread_ = std::thread([this] { loop(); });
}

void EventHub::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    std::lock_guard lock(subs_mutex_);
    for (auto& s : subs_) s.stream.close();
    subs_.clear();
}

void EventHub::committed(const StepWrite& write) {
    // Nobody listens: nothing to gather (a stream that opens reads everything afresh).
    if (!listening_.load(std::memory_order_relaxed)) return;
    std::lock_guard lock(mutex_);
    if (write.deployment) {
        auto& d = changes_.deployments[write.deployment->id];
        d = *write.deployment;
        d.release_json.clear();  // never shown; kept out of the notice
    }
    for (const auto& n : write.nodes) {
        auto key = std::make_pair(n.deployment, n.node);
        auto it = changes_.nodes.find(key);
        if (it != changes_.nodes.end())
            it->second = n;
        else if (changes_.nodes.size() < kMaxNodeRows)
            changes_.nodes.emplace(std::move(key), n);
        else
            ++changes_.nodes_omitted;
    }
    for (const auto& r : write.registry) {
        auto signature = fleetSignature(r);
        auto& known = fleet_[r.id];
        if (known != signature) {
            known = std::move(signature);
            changes_.fleet = true;
        }
    }
    if (!write.put_holds.empty() || !write.delete_holds.empty() || write.clear_holds)
        changes_.holds = true;
    if (!write.events.empty()) changes_.events = true;
    if (changes_.any()) wake_.notify_one();
}

Result<std::int64_t> EventHub::newestId() {
    HOIST_ASSIGN(auto newest, store_.events(std::nullopt, 1));
    return newest.empty() ? 0 : newest.back().id;
}

void EventHub::subscribe(http::EventStream stream, std::optional<std::int64_t> last_event_id) {
    std::lock_guard lock(subs_mutex_);
    if (last_id_ < 0) {
        auto newest = newestId();
        if (!newest) {
            log::warn(kLog, "event stream: cannot read the audit log",
                      {{"error", newest.error().describe()}});
            stream.close();
            return;
        }
        last_id_ = *newest;
    }
    Subscriber sub{stream, last_id_};
    json::Writer hello;
    hello.beginObject()
        .field("last_event_id", last_id_)
        .field("resumed", last_event_id.has_value())
        .field("time", formatTime(nowMs()))
        .endObject();
    stream.send("hello", hello.str(), last_event_id ? "" : std::to_string(last_id_));
    if (last_event_id && *last_event_id < last_id_) {
        auto missing = last_id_ - *last_event_id;
        auto backlog = store_.events(
            std::nullopt, static_cast<int>(std::min<std::int64_t>(missing, kMaxBacklog)));
        if (!backlog) {
            stream.close();
            return;
        }
        if (missing > kMaxBacklog ||
            (!backlog->empty() && backlog->front().id > *last_event_id + 1)) {
            json::Writer gap;
            gap.beginObject()
                .field("after", *last_event_id)
                .field("next", backlog->empty() ? last_id_ + 1 : backlog->front().id)
                .endObject();
            stream.send("gap", gap.str());
        }
        for (const auto& e : *backlog) {
            if (e.id <= *last_event_id || e.id > last_id_) continue;
            json::Writer w;
            writeEvent(w, e);
            stream.send("audit", w.str(), std::to_string(e.id));
        }
    }
    subs_.push_back(std::move(sub));
    listening_.store(true);
}

std::size_t EventHub::subscribers() {
    std::lock_guard lock(subs_mutex_);
    std::erase_if(subs_, [](const Subscriber& s) { return s.stream.closed(); });
    return subs_.size();
}

void EventHub::loop() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        bool changed = wake_.wait_for(lock, poll_, [this] { return stopping_ || changes_.any(); });
        if (stopping_) break;
        // A burst of commits (a wave starting) goes out as one notice.
        if (changed) wake_.wait_for(lock, kCoalesce, [this] { return stopping_; });
        if (stopping_) break;
        Changes c = std::move(changes_);
        changes_ = {};
        lock.unlock();
        {
            std::lock_guard subs_lock(subs_mutex_);
            std::erase_if(subs_, [](const Subscriber& s) { return s.stream.closed(); });
            if (subs_.empty()) {
                // Nobody listens: read the log again only when someone does.
                last_id_ = -1;
                listening_.store(false);
            } else {
                if (!changed || c.events) sendNewEvents();
                if (c.any() && (c.holds || c.fleet || !c.deployments.empty() || !c.nodes.empty() ||
                                c.nodes_omitted > 0)) {
                    auto text = changeJson(c);
                    for (auto& s : subs_) s.stream.send("change", text);
                }
            }
        }
        lock.lock();
    }
}

// Events written outside commit() show up here too (the poll).
void EventHub::sendNewEvents() {
    auto newest = newestId();
    if (!newest) {
        log::warn(kLog, "event stream: cannot read the audit log",
                  {{"error", newest.error().describe()}});
        return;
    }
    if (*newest <= last_id_) return;
    auto missing = *newest - last_id_;
    auto list =
        store_.events(std::nullopt, static_cast<int>(std::min<std::int64_t>(missing, kMaxBacklog)));
    if (!list || list->empty()) return;
    if (list->front().id > last_id_ + 1) {
        json::Writer gap;
        gap.beginObject().field("after", last_id_).field("next", list->front().id).endObject();
        auto text = gap.str();
        for (auto& s : subs_) s.stream.send("gap", text);
    }
    for (const auto& e : *list) {
        if (e.id <= last_id_) continue;
        json::Writer w;
        writeEvent(w, e);
        auto text = w.str();
        auto id = std::to_string(e.id);
        for (auto& s : subs_) {
            if (e.id <= s.sent_id) continue;
            s.stream.send("audit", text, id);
            s.sent_id = e.id;
        }
        last_id_ = e.id;
    }
}

std::string EventHub::changeJson(const Changes& c) {
    json::Writer w;
    w.beginObject().field("time", formatTime(nowMs())).key("deployments").beginArray();
    for (const auto& [_, d] : c.deployments)
        w.beginObject()
            .field("id", d.id)
            .field("version", d.version)
            .field("kind", d.kind)
            .field("state", toString(d.state))
            .field("waiting_on", d.waiting_on)
            .field("message", d.message)
            .field("updated", formatTime(d.updated_ms))
            .field("finished", formatTime(d.finished_ms))
            .endObject();
    w.endArray().key("nodes").beginArray();
    for (const auto& [_, n] : c.nodes)
        w.beginObject()
            .field("deployment", n.deployment)
            .field("node", n.node)
            .field("role", n.role)
            .field("state", toString(n.state))
            .field("node_state", n.node_state)
            .field("restarts", n.restarts)
            .field("started", formatTime(n.started_ms))
            .field("finished", formatTime(n.finished_ms))
            .field("message", n.message)
            .endObject();
    w.endArray()
        .field("nodes_omitted", c.nodes_omitted)
        .field("holds", c.holds)
        .field("fleet", c.fleet)
        .endObject();
    return w.str();
}

Result<void> ObservedStore::commit(const StepWrite& write, std::int64_t term, bool durable) {
    HOIST_TRY(inner_.commit(write, term, durable));
    hub_.committed(write);
    return ok();
}

Result<void> ObservedStore::commitHolds(const StepWrite& write) {
    HOIST_TRY(inner_.commitHolds(write));
    hub_.committed(write);
    return ok();
}

}  // namespace hoist::deploy_coordinator
