#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/http_server.hpp"
#include "deploy_coordinator/state.hpp"

namespace hoist::deploy_coordinator {

/// What GET /v1/events/stream pushes (README "Live status page"), to every open stream:
/// - `hello` (id: the newest audit id) when a stream opens;
/// - `audit` (id: the event's id): each audit event, as GET /v1/events shows it, in id order;
///   a stream opened with Last-Event-ID first gets the events after that id;
/// - `gap`: events were missed (more than kMaxBacklog after a Last-Event-ID); read GET
///   /v1/events, then follow on;
/// - `change`: what a commit changed: deployments, node rows of a deployment, holds, the
///   fleet; at most one every kCoalesce, and within a second of the commit.
///
/// The hub learns of changes from committed() (called by ObservedStore after each commit) and
/// reads audit events from the store, so their ids are the store's. Events written outside
/// StateStore::commit (the dead man's switch's own rows) are found by a poll every `poll`.
/// Thread-safe; one thread of its own between start() and stop().
class EventHub {
public:
    static constexpr std::chrono::milliseconds kCoalesce{100};
    /// Audit events sent to a resuming stream, and read per turn, at most.
    static constexpr int kMaxBacklog = 1000;
    /// Node rows one change notice carries; more are counted in `nodes_omitted`.
    static constexpr std::size_t kMaxNodeRows = 1000;

    explicit EventHub(StateStore& store,
                      std::chrono::milliseconds poll = std::chrono::milliseconds(1000));
    ~EventHub();
    EventHub(const EventHub&) = delete;
    EventHub& operator=(const EventHub&) = delete;

    void start();
    /// Closes every stream and joins the thread.
    void stop();

    /// The hook: records what a successful commit wrote and wakes the hub. Cheap (no I/O).
    void committed(const StepWrite& write);
    /// Adds an open stream. With `last_event_id`, the audit events after it are queued first
    /// (or `gap` when more than kMaxBacklog are missing).
    void subscribe(http::EventStream stream, std::optional<std::int64_t> last_event_id);
    /// Streams still open.
    std::size_t subscribers();
    /// Some stream is open (committed() gathers changes only then). Thread-safe, cheap.
    bool listening() const { return listening_.load(); }

private:
    struct Subscriber {
        http::EventStream stream;
        std::int64_t sent_id = 0;
    };
    /// What changed since the last notice.
    struct Changes {
        std::map<std::string, Deployment> deployments;
        std::map<std::pair<std::string, std::string>, DeploymentNode> nodes;
        std::int64_t nodes_omitted = 0;
        bool holds = false;
        bool fleet = false;
        bool events = false;
        bool any() const;
    };

    void loop();
    /// Sends the audit events after last_id_ (under subs_mutex_).
    void sendNewEvents();
    Result<std::int64_t> newestId();
    std::string changeJson(const Changes& c);

    StateStore& store_;
    std::chrono::milliseconds poll_;

    std::mutex mutex_;  // changes_, fleet_, stopping_
    std::condition_variable wake_;
    Changes changes_;
    /// Each node's role, release, generation, status and mode as last written: a fleet notice
    /// only when one of them changes (a ping's last_seen is no news).
    std::unordered_map<std::string, std::string> fleet_;
    bool stopping_ = false;
    bool started_ = false;

    /// Some stream is open: committed() gathers changes only then.
    std::atomic<bool> listening_{false};

    std::mutex subs_mutex_;  // subs_, last_id_; held while sending
    std::vector<Subscriber> subs_;
    /// The newest audit id read from the store (-1: not read yet).
    std::int64_t last_id_ = -1;

    std::thread thread_;
};

/// A StateStore that tells an EventHub what each successful commit wrote: the one hook between
/// the rollout and the live page. Forwards everything else unchanged.
class ObservedStore final : public StateStore {
public:
    ObservedStore(StateStore& inner, EventHub& hub) : inner_(inner), hub_(hub) {}

    Result<void> commit(const StepWrite& write, std::int64_t term, bool durable = false) override;
    Result<void> commitHolds(const StepWrite& write) override;
    void settleHolds() override { inner_.settleHolds(); }
    Result<void> confirmHolds() override { return inner_.confirmHolds(); }
    Result<std::int64_t> term() override { return inner_.term(); }
    Result<void> claim(std::int64_t term) override { return inner_.claim(term); }
    Result<std::vector<NodeRecord>> nodes() override { return inner_.nodes(); }
    Result<std::vector<Hold>> holds() override { return inner_.holds(); }
    Result<std::vector<Deployment>> deployments(int limit = 100) override {
        return inner_.deployments(limit);
    }
    Result<std::optional<Deployment>> deployment(std::string_view id) override {
        return inner_.deployment(id);
    }
    Result<std::vector<DeploymentNode>> deploymentNodes(std::string_view deployment) override {
        return inner_.deploymentNodes(deployment);
    }
    Result<std::vector<Event>> events(std::optional<std::string_view> deployment,
                                      int limit = 100) override {
        return inner_.events(deployment, limit);
    }
    Result<std::int64_t> nextDeploymentNumber() override { return inner_.nextDeploymentNumber(); }
    Result<std::vector<MonitorRecord>> monitors() override { return inner_.monitors(); }
    Result<void> writeMonitor(const std::optional<MonitorRecord>& put, std::string_view remove,
                              const std::vector<Event>& events) override {
        return inner_.writeMonitor(put, remove, events);
    }

private:
    StateStore& inner_;
    EventHub& hub_;
};

}  // namespace hoist::deploy_coordinator
