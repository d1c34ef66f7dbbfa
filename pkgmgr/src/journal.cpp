#include "pkgmgr/journal.hpp"

#include <unistd.h>
#include <cerrno>

#include "core/files.hpp"
#include "core/log.hpp"
#include "pkgmgr/status.hpp"

namespace hoist::pkgmgr {

namespace {

Result<std::optional<Journal>> loadFrom(const fs::path& path) {
    auto text = files::readFile(path, 4u << 20);
    if (!text) {
        if (text.error().code == Errc::NotFound) return std::optional<Journal>();
        return std::unexpected(text.error());
    }
    // A journal that does not parse is damaged (a truncated write, a bad disk): Corrupt, so
    // that recover can tell it from a journal it cannot read at all.
    auto journal = Journal::fromJson(*text, path.string());
    if (!journal) return fail(Errc::Corrupt, journal.error().message);
    return std::optional<Journal>(std::move(*journal));
}

}  // namespace

fs::path lastJournalPath(const NodeLayout& layout) {
    return layout.run() / "last-txn.json";
}

Result<Journal> Journal::fromJson(std::string_view text, std::string_view ctx) {
    HOIST_ASSIGN(auto doc, json::parseObject(text, ctx));
    return fromJson(doc, ctx);
}

Result<Journal> Journal::fromJson(const json::Value& doc, std::string_view ctx) {
    if (!doc.IsObject()) return fail(Errc::Invalid, ctx, ": must be a JSON object");
    HOIST_TRY(json::requireMembers(
        doc, {"operation", "kind", "from_generation", "to_generation", "state"}, ctx));
    Journal j;
    HOIST_ASSIGN(j.operation, json::getString(doc, "operation", ctx));
    HOIST_ASSIGN(j.kind, json::getString(doc, "kind", ctx));
    if (j.kind != "swap" && j.kind != "bootstrap")
        return fail(Errc::Corrupt, ctx, ": field 'kind' must be 'swap' or 'bootstrap'");
    HOIST_ASSIGN(auto deployment, json::optString(doc, "deployment", ctx));
    HOIST_ASSIGN(auto report_to, json::optString(doc, "report_to", ctx));
    HOIST_ASSIGN(auto release, json::optString(doc, "release", ctx));
    j.deployment = deployment.value_or("");
    j.report_to = report_to.value_or("");
    j.release = release.value_or("");
    HOIST_ASSIGN(auto from, json::getInt(doc, "from_generation", ctx));
    HOIST_ASSIGN(auto to, json::getInt(doc, "to_generation", ctx));
    j.from_generation = static_cast<long>(from);
    j.to_generation = static_cast<long>(to);
    HOIST_ASSIGN(j.state, json::getString(doc, "state", ctx));
    if (!isKnownState(j.state))
        return fail(Errc::Corrupt, ctx, ": field 'state' has the unknown value '", j.state, "'");
    HOIST_ASSIGN(auto message, json::optString(doc, "message", ctx));
    j.message = message.value_or("");
    HOIST_ASSIGN(auto started, json::optString(doc, "started", ctx));
    HOIST_ASSIGN(auto updated, json::optString(doc, "updated", ctx));
    j.started = started.value_or("");
    j.updated = updated.value_or("");
    HOIST_ASSIGN(auto pid, json::optInt(doc, "pid", ctx));
    j.pid = pid.value_or(0);
    HOIST_ASSIGN(auto recovered, json::optBool(doc, "recovered", ctx));
    j.recovered = recovered.value_or(false);
    HOIST_ASSIGN(const json::Value* steps, json::optArray(doc, "steps", ctx));
    if (steps != nullptr) {
        for (const auto& step : steps->GetArray()) {
            if (!step.IsObject()) return fail(Errc::Corrupt, ctx, ": each step must be an object");
            JournalStep s;
            HOIST_ASSIGN(s.state, json::getString(step, "state", ctx));
            HOIST_ASSIGN(s.time, json::getString(step, "time", ctx));
            HOIST_ASSIGN(auto step_message, json::optString(step, "message", ctx));
            s.message = step_message.value_or("");
            j.steps.push_back(std::move(s));
        }
    }
    return j;
}

void Journal::write(json::Writer& w) const {
    w.beginObject()
        .field("operation", operation)
        .field("kind", kind)
        .field("deployment", deployment)
        .field("report_to", report_to)
        .field("release", release)
        .field("from_generation", static_cast<std::int64_t>(from_generation))
        .field("to_generation", static_cast<std::int64_t>(to_generation))
        .field("state", state)
        .field("message", message)
        .field("started", started)
        .field("updated", updated)
        .field("pid", pid)
        .field("recovered", recovered);
    w.key("steps").beginArray();
    for (const auto& s : steps)
        w.beginObject()
            .field("state", s.state)
            .field("time", s.time)
            .field("message", s.message)
            .endObject();
    w.endArray().endObject();
}

std::string Journal::toJson() const {
    json::Writer w;
    write(w);
    return w.str();
}

Result<std::optional<Journal>> Journal::load(const NodeLayout& layout) {
    return loadFrom(layout.txn());
}

Result<std::optional<Journal>> Journal::loadLast(const NodeLayout& layout) {
    return loadFrom(lastJournalPath(layout));
}

Result<void> Journal::enter(const NodeLayout& layout, std::string_view new_state,
                            std::string_view new_message) {
    state = std::string(new_state);
    message = std::string(new_message);
    updated = log::nowRfc3339();
    if (started.empty()) started = updated;
    pid = static_cast<std::int64_t>(::getpid());
    steps.push_back({state, updated, message});
    return files::writeFileAtomic(layout.txn(), toJson() + "\n");
}

Result<void> Journal::close(const NodeLayout& layout) const {
    HOIST_TRY(files::makeDirs(layout.run()));
    HOIST_TRY(files::writeFileAtomic(lastJournalPath(layout), toJson() + "\n"));
    if (::unlink(layout.txn().c_str()) != 0 && errno != ENOENT)
        return failErrno(Errc::Io, errno, "cannot remove ", layout.txn().string());
    return files::fsyncPath(layout.root);
}

}  // namespace hoist::pkgmgr
