#include "monitor_watch.hpp"

#include <charconv>

#include "core/json.hpp"
#include "core/log.hpp"
#include "halt_body.hpp"

namespace hoist::deploy_coordinator {

namespace {
constexpr const char* kLog = "deploy-coordinator";

std::string holdSource(const std::string& name) {
    return "heartbeat/" + name;
}
}  // namespace

Result<std::int64_t> parseAllowance(std::string_view text) {
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    std::string_view unit(end, static_cast<std::size_t>(text.data() + text.size() - end));
    std::int64_t scale = unit == "" || unit == "ms" ? 1
                         : unit == "s"              ? 1000
                         : unit == "m"              ? 60 * 1000
                         : unit == "h"              ? 3600 * 1000
                                                    : 0;
    if (ec != std::errc() || value < 0 || scale == 0)
        return fail(Errc::Invalid, "allowance '", text,
                    "' must be a whole number with an optional unit: ms, s, m or h (\"90s\")");
    if (value > MonitorWatch::kMaxAllowanceMs / scale ||
        value * scale < MonitorWatch::kMinAllowanceMs)
        return fail(Errc::Invalid, "allowance '", text, "' must be between 1s and 24h");
    return value * scale;
}

Result<std::unique_ptr<MonitorWatch>> MonitorWatch::create(StateStore& state, Hooks hooks,
                                                           bool load) {
    std::unique_ptr<MonitorWatch> self(new MonitorWatch(state, std::move(hooks)));
    if (load) HOIST_TRY(self->reload());
    return self;
}

Result<void> MonitorWatch::reload(std::optional<std::int64_t> since_ms) {
    HOIST_ASSIGN(auto rows, state_.monitors());
    auto read = fromRows(rows, since_ms.value_or(hooks_.now_ms()));
    std::lock_guard lock(mutex_);
    monitors_ = std::move(read);
    loaded_ = true;
    return ok();
}

MonitorWatch::~MonitorWatch() {
    stop();
}

Result<std::string> MonitorWatch::beat(const std::string& name,
                                       std::optional<std::string> allowance,
                                       const std::string& by) {
    // The hold's source is heartbeat/<name>; the name is one segment of it.
    if (!validHoldSource(holdSource(name)) || name.find('/') != std::string::npos)
        return fail(Errc::Invalid, "monitor name '", name,
                    "' must be 1-100 characters of a-z, A-Z, 0-9, '.', '_' or '-'");
    std::optional<std::int64_t> allowance_ms;
    if (allowance) {
        auto parsed = parseAllowance(*allowance);
        if (!parsed) return std::unexpected(parsed.error());
        allowance_ms = *parsed;
    }
    std::lock_guard lock(mutex_);
    auto it = monitors_.find(name);
    if (it == monitors_.end()) {
        if (!allowance_ms)
            return fail(Errc::Invalid, "monitor '", name,
                        "' is not watched yet: its first beat needs ?allowance= (\"5m\")");
        if (monitors_.size() >= kMaxMonitors)
            return fail(Errc::Busy, "already ", kMaxMonitors,
                        " monitors watched; forget one first (cluster monitors remove NAME)");
    }
    MonitorRecord row{name,
                      allowance_ms.value_or(it != monitors_.end() ? it->second.allowance_ms : 0),
                      hooks_.now_ms()};
    bool is_new = it == monitors_.end();
    std::vector<Event> events;
    if (is_new)
        events.push_back({0, row.last_beat_ms, by, "monitor watched", "", "",
                          name + ": allowance " + std::to_string(row.allowance_ms) + " ms"});
    auto written = state_.writeMonitor(row, {}, events);
    if (!written) return std::unexpected(written.error());
    monitors_[name] = {row.allowance_ms, row.last_beat_ms, row.last_beat_ms};
    json::Writer w;
    w.beginObject()
        .field("name", name)
        .field("allowance_ms", row.allowance_ms)
        .field("last_beat", formatTime(row.last_beat_ms))
        .field("new", is_new)
        .endObject();
    return w.str();
}

Result<void> MonitorWatch::forget(const std::string& name, const std::string& by) {
    std::lock_guard lock(mutex_);
    if (!monitors_.contains(name))
        return fail(Errc::NotFound, "monitor '", name, "' is not watched");
    auto written = state_.writeMonitor(
        std::nullopt, name, {{0, hooks_.now_ms(), by, "monitor forgotten", "", "", name}});
    if (!written) return std::unexpected(written.error());
    monitors_.erase(name);
    return ok();
}

std::string MonitorWatch::json() {
    auto now = hooks_.now_ms();
    std::lock_guard lock(mutex_);
    return json(monitors_, now);
}

Result<std::string> MonitorWatch::view() {
    {
        std::lock_guard lock(mutex_);
        if (loaded_) return json(monitors_, hooks_.now_ms());
    }
    // A follower holds no monitors: it reads what the leader wrote, and counts silence from
    // where the leader counts it.
    std::optional<std::int64_t> since;
    if (hooks_.leader_since_ms) {
        HOIST_ASSIGN(since, hooks_.leader_since_ms());
    }
    HOIST_ASSIGN(auto rows, state_.monitors());
    return json(fromRows(rows, since), hooks_.now_ms());
}

std::map<std::string, MonitorWatch::Monitor> MonitorWatch::fromRows(
    const std::vector<MonitorRecord>& rows, std::optional<std::int64_t> counted_from) {
    // Silence is counted from the last beat, or from `counted_from` (a takeover) when later.
    std::map<std::string, Monitor> out;
    for (const auto& m : rows)
        out[m.name] = {m.allowance_ms, m.last_beat_ms,
                       std::max(m.last_beat_ms, counted_from.value_or(m.last_beat_ms))};
    return out;
}

std::string MonitorWatch::json(const std::map<std::string, Monitor>& monitors, std::int64_t now) {
    json::Writer w;
    w.beginObject().key("monitors").beginArray();
    for (const auto& [name, m] : monitors)
        w.beginObject()
            .field("name", name)
            .field("allowance_ms", m.allowance_ms)
            .field("last_beat", formatTime(m.last_beat_ms))
            .field("silent", now - m.heard_ms > m.allowance_ms)
            .endObject();
    w.endArray().endObject();
    return w.str();
}

void MonitorWatch::check() {
    std::vector<std::pair<std::string, Monitor>> silent;
    {
        auto now = hooks_.now_ms();
        std::lock_guard lock(mutex_);
        for (const auto& [name, m] : monitors_)
            if (now - m.heard_ms > m.allowance_ms) silent.emplace_back(name, m);
    }
    if (silent.empty() || !hooks_.acting()) return;
    for (const auto& [name, m] : silent) {
        // The same words each time, so a hold already standing is not written again.
        auto held = hooks_.halt(holdSource(name),
                                "monitor " + name + " silent since " + formatTime(m.last_beat_ms) +
                                    " (allowance " + std::to_string(m.allowance_ms / 1000) + " s)");
        if (!held)
            log::error(kLog, "cannot put a heartbeat hold",
                       {{"monitor", name}, {"error", held.error().describe()}});
    }
}

void MonitorWatch::start() {
    thread_ = std::thread([this] {
        std::unique_lock lock(mutex_);
        while (!stopping_) {
            lock.unlock();
            check();
            lock.lock();
            // A quarter of a second past an allowance of at least a second.
            wake_.wait_for(lock, std::chrono::milliseconds(250), [this] { return stopping_; });
        }
    });
}

void MonitorWatch::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

}  // namespace hoist::deploy_coordinator
