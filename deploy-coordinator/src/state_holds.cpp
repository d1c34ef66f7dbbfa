// The holds file: the halt's own small write path beside the state file (state.hpp, State).
// A step's commit holds the state file's write lock while it writes thousands of rows, and a
// durable commit there fsyncs every page the steps before it left in the WAL; a hold written
// here waits for neither. Its audit events are journalled here and folded into the state
// file's log afterwards, exactly once.

#include <chrono>
#include <string>

#include "core/log.hpp"
#include "state_impl.hpp"

namespace hoist::deploy_coordinator {

namespace {

const char* const kHoldsMigrations[] = {
    // 1: the holds (as the state file had them), and the journal of their audit events.
    R"sql(
    CREATE TABLE holds (
        source TEXT PRIMARY KEY, reason TEXT NOT NULL, by TEXT NOT NULL,
        since_ms INTEGER NOT NULL, alerts TEXT NOT NULL DEFAULT '[]',
        resolved_ms INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE journal (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL, actor TEXT NOT NULL,
        action TEXT NOT NULL, deployment TEXT NOT NULL, node TEXT NOT NULL,
        detail TEXT NOT NULL);
    )sql",
};

template <class... Args>
Result<void> run(sqlite::Database& db, const char* sql, const Args&... args) {
    HOIST_ASSIGN(auto stmt, db.prepare(sql));
    return stmt.bind(args...).run();
}

Result<void> putHold(sqlite::Database& db, const Hold& h) {
    return run(db,
               "INSERT OR REPLACE INTO holds (source, reason, by, since_ms, alerts, resolved_ms) "
               "VALUES (?, ?, ?, ?, ?, ?)",
               h.source, h.reason, h.by, h.since_ms, h.alerts_json, h.resolved_ms);
}

Result<int> deleteHolds(sqlite::Database& db, std::optional<std::string_view> source) {
    if (source)
        HOIST_TRY(run(db, "DELETE FROM holds WHERE source = ?", *source));
    else
        HOIST_TRY(run(db, "DELETE FROM holds"));
    return db.changes();
}

Result<std::int64_t> newestSeq(sqlite::Database& db) {
    HOIST_ASSIGN(auto stmt, db.prepare("SELECT COALESCE(MAX(seq), 0) FROM journal"));
    HOIST_ASSIGN(bool row, stmt.step());
    if (!row) return std::unexpected(db.error("read the hold journal"));
    return stmt.integer(0);
}

Result<std::int64_t> foldedSeq(sqlite::Database& db) {
    HOIST_ASSIGN(auto stmt, db.prepare("SELECT folded FROM hold_journal WHERE id = 0"));
    HOIST_ASSIGN(bool row, stmt.step());
    if (!row) return fail(Errc::Corrupt, db.name(), ": the hold_journal row is missing");
    return stmt.integer(0);
}

}  // namespace

Result<std::pair<sqlite::Database, sqlite::Database>> openHoldsFile(
    const std::filesystem::path& state_path, bool init) {
    auto path = state_path;
    path += ".holds";
    auto opened = sqlite::Database::open(
        path, "holds " + path.string(), sqlite::Database::Sync::Full,
        init ? sqlite::Database::Damaged::StartOver : sqlite::Database::Damaged::Refuse);
    if (!opened && opened.error().code == Errc::Corrupt)
        return fail(Errc::Corrupt, opened.error().message,
                    " (or start deploy-coordinator with --init to begin with no holds; the "
                    "damaged file is kept beside it)");
    HOIST_ASSIGN(auto db, std::move(opened));
    HOIST_TRY(db.migrate(kHoldsMigrations, "coordinator"));
    // A halt's commit appends to the WAL and fdatasyncs it; it never checkpoints (the
    // checkpointer does, after a fold). The WAL keeps its size and starts over from its
    // beginning, so the fdatasync overwrites blocks the file has: no metadata to journal.
    HOIST_TRY(db.exec("PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=-1", "pragmas"));
    HOIST_ASSIGN(auto checkpointer, sqlite::Database::open(path, "holds " + path.string(),
                                                           sqlite::Database::Sync::Full));
    HOIST_TRY(checkpointer.exec("PRAGMA wal_autocheckpoint=0", "pragmas"));
    return std::make_pair(std::move(db), std::move(checkpointer));
}

void checkpointHolds(State::Impl& impl) {
    std::lock_guard lock(impl.checkpoint_mutex);
    if (auto done = impl.holds_checkpoint_db.exec("PRAGMA wal_checkpoint(PASSIVE)", "checkpoint");
        !done)
        log::warn("deploy-coordinator", "cannot checkpoint the holds file",
                  {{"error", done.error().describe()}});
}

Result<void> StateStore::commitHolds(const StepWrite& write) {
    return commit(write, 0, true);
}

Result<void> State::commitHolds(const StepWrite& w) {
    if (w.deployment || !w.nodes.empty() || !w.registry.empty() || !w.forget_nodes.empty())
        return fail(Errc::Invalid,
                    "a holds write may hold only holds and their audit events, not rollout rows");
    if (w.empty()) return ok();
    auto asked = std::chrono::steady_clock::now();
    std::lock_guard lock(impl_->holds_mutex);
    auto& db = impl_->holds_db;
    std::int64_t seq = 0;
    auto began = asked;
    auto wrote = asked;
    auto written = db.transaction(
        [&]() -> Result<void> {
            began = std::chrono::steady_clock::now();
            if (w.clear_holds) HOIST_TRY(deleteHolds(db, std::nullopt));
            for (const auto& source : w.delete_holds)
                HOIST_TRY(deleteHolds(db, std::string_view(source)));
            for (const auto& h : w.put_holds) HOIST_TRY(putHold(db, h));
            for (auto e : w.events) {
                if (e.time_ms == 0) e.time_ms = nowMs();
                HOIST_TRY(run(db,
                              "INSERT INTO journal (time_ms, actor, action, deployment, node, "
                              "detail) VALUES (?, ?, ?, ?, ?, ?)",
                              e.time_ms, e.actor, e.action, e.deployment, e.node, e.detail));
            }
            if (!w.events.empty()) {
                HOIST_ASSIGN(seq, newestSeq(db));
            }
            wrote = std::chrono::steady_clock::now();
            return ok();
        },
        true);
    auto us = [](auto d) {
        return static_cast<std::int64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(d).count());
    };
    last_commit_timing = {us(began - asked), us(wrote - began),
                          us(std::chrono::steady_clock::now() - wrote)};
    if (!written) return written;
    if (seq > 0) impl_->journal_seq.store(seq);
    return ok();
}

Result<std::vector<Hold>> State::holds() {
    std::lock_guard lock(impl_->holds_mutex);
    HOIST_ASSIGN(auto stmt, impl_->holds_db.prepare(
                                "SELECT source, reason, by, since_ms, alerts, resolved_ms FROM "
                                "holds ORDER BY since_ms, source"));
    std::vector<Hold> out;
    HOIST_TRY(stmt.each([&](const sqlite::Statement& s) {
        out.push_back({s.text(0), s.text(1), s.text(2), s.integer(3), s.text(4), s.integer(5)});
    }));
    return out;
}

Result<void> State::Tx::putHold(const Hold& h) {
    std::lock_guard lock(state_.impl_->holds_mutex);
    return deploy_coordinator::putHold(state_.impl_->holds_db, h);
}

Result<int> State::Tx::deleteHolds(std::optional<std::string_view> source) {
    std::lock_guard lock(state_.impl_->holds_mutex);
    return deploy_coordinator::deleteHolds(state_.impl_->holds_db, source);
}

Result<std::int64_t> State::foldHoldEvents() {
    auto& impl = *impl_;
    auto upto = impl.journal_seq.load();
    if (upto <= impl.folded_seq) return impl.folded_seq;
    std::vector<Event> events;
    {
        std::lock_guard lock(impl.holds_mutex);
        HOIST_ASSIGN(auto stmt,
                     impl.holds_db.prepare("SELECT seq, time_ms, actor, action, deployment, node, "
                                           "detail FROM journal WHERE seq > ? AND seq <= ? "
                                           "ORDER BY seq"));
        stmt.bind(impl.folded_seq, upto);
        HOIST_TRY(stmt.each([&](const sqlite::Statement& s) {
            events.push_back({s.integer(0), s.integer(1), s.text(2), s.text(3), s.text(4),
                              s.text(5), s.text(6)});
        }));
    }
    Tx tx(*this);
    for (auto e : events) {
        e.id = 0;
        HOIST_TRY(tx.appendEvent(std::move(e)));
    }
    HOIST_TRY(run(impl.db, "UPDATE hold_journal SET folded = ? WHERE id = 0", upto));
    return upto;
}

Result<void> State::foldPending(bool durable) {
    std::lock_guard lock(impl_->mutex);
    if (impl_->journal_seq.load() <= impl_->folded_seq) return ok();
    std::int64_t folded = 0;
    HOIST_TRY(impl_->db.transaction(
        [&]() -> Result<void> {
            HOIST_ASSIGN(folded, foldHoldEvents());
            return ok();
        },
        durable));
    impl_->folded_seq = folded;
    checkpointHolds(*impl_);
    return ok();
}

void State::settleHolds() {
    if (auto folded = foldPending(false); !folded)
        log::warn("deploy-coordinator", "cannot fold the hold journal into the audit log",
                  {{"error", folded.error().describe()}});
    checkpointHolds(*impl_);
}

Result<void> State::adoptHolds() {
    auto& impl = *impl_;
    std::lock_guard lock(impl.mutex);
    // Holds the state file kept before the holds file existed: copied over durably first, then
    // dropped there (a crash between copies them again, the same rows).
    std::vector<Hold> legacy;
    {
        HOIST_ASSIGN(auto stmt, impl.db.prepare("SELECT source, reason, by, since_ms, alerts, "
                                                "resolved_ms FROM holds"));
        HOIST_TRY(stmt.each([&](const sqlite::Statement& s) {
            legacy.push_back(
                {s.text(0), s.text(1), s.text(2), s.integer(3), s.text(4), s.integer(5)});
        }));
    }
    if (!legacy.empty()) {
        {
            std::lock_guard holds_lock(impl.holds_mutex);
            auto copied = impl.holds_db.transaction(
                [&]() -> Result<void> {
                    for (const auto& h : legacy) HOIST_TRY(putHold(impl.holds_db, h));
                    return ok();
                },
                true);
            if (!copied) return copied;
        }
        HOIST_TRY(impl.db.transaction([&] { return run(impl.db, "DELETE FROM holds"); }, true));
        log::info("deploy-coordinator", "holds moved to the holds file",
                  {{"holds", static_cast<std::int64_t>(legacy.size())}});
    }
    HOIST_ASSIGN(impl.folded_seq, foldedSeq(impl.db));
    {
        std::lock_guard holds_lock(impl.holds_mutex);
        HOIST_ASSIGN(auto newest, newestSeq(impl.holds_db));
        impl.journal_seq.store(newest);
    }
    // A state file started over (--init) or restored from a backup may be behind the journal,
    // or ahead of a holds file started over: fold what it lacks, and never fold twice.
    if (impl.journal_seq.load() < impl.folded_seq) impl.journal_seq.store(impl.folded_seq);
    // Durable, so that pruning the journal below never drops an event the log lacks on disk.
    std::int64_t folded = impl.folded_seq;
    HOIST_TRY(impl.db.transaction(
        [&]() -> Result<void> {
            HOIST_ASSIGN(folded, foldHoldEvents());
            return ok();
        },
        true));
    impl.folded_seq = folded;
    {
        std::lock_guard holds_lock(impl.holds_mutex);
        HOIST_TRY(run(impl.holds_db, "DELETE FROM journal WHERE seq <= ?", folded));
    }
    checkpointHolds(impl);
    return ok();
}

}  // namespace hoist::deploy_coordinator
