#include "deploy_coordinator/state.hpp"

#include <chrono>
#include <ctime>
#include <memory>

#include <sqlite3.h>

namespace hoist::deploy_coordinator {

std::int64_t nowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string formatTime(std::int64_t ms) {
    if (ms <= 0) return "";
    std::time_t seconds = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    char buffer[40];
    std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &tm);
    char out[48];
    std::snprintf(out, sizeof out, "%s.%03dZ", buffer, static_cast<int>(ms % 1000));
    return out;
}

bool Deployment::active() const {
    return state == "staging" || state == "rolling" || state == "paused" || state == "held" ||
           state == "reverting";
}

namespace {

struct DbCloser {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtCloser {
    void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtCloser>;

// Each entry moves the schema from version i to i + 1. Never edit a shipped entry: add one.
const char* const kMigrations[] = {
    // 1: the registry, deployments, holds and the audit log.
    R"sql(
    CREATE TABLE nodes (
        id TEXT PRIMARY KEY, role TEXT NOT NULL, address TEXT NOT NULL,
        release TEXT NOT NULL DEFAULT '', generation INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'up', registered_ms INTEGER NOT NULL,
        last_seen_ms INTEGER NOT NULL);
    CREATE TABLE deployments (
        id TEXT PRIMARY KEY, number INTEGER NOT NULL UNIQUE, version TEXT NOT NULL,
        kind TEXT NOT NULL, state TEXT NOT NULL, max_parallel TEXT NOT NULL,
        max_failures INTEGER NOT NULL, auto_revert INTEGER NOT NULL,
        min_healthy_ms INTEGER NOT NULL, node_deadline_ms INTEGER NOT NULL,
        progress_deadline_ms INTEGER NOT NULL, release_json TEXT NOT NULL,
        created_by TEXT NOT NULL, waiting_on TEXT NOT NULL, message TEXT NOT NULL,
        created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, finished_ms INTEGER NOT NULL);
    CREATE TABLE deployment_nodes (
        deployment TEXT NOT NULL REFERENCES deployments(id), node TEXT NOT NULL,
        role TEXT NOT NULL, ord INTEGER NOT NULL, state TEXT NOT NULL,
        node_state TEXT NOT NULL, from_release TEXT NOT NULL,
        from_generation INTEGER NOT NULL, target_generation INTEGER NOT NULL,
        last_seq INTEGER NOT NULL, restarts INTEGER NOT NULL, started_ms INTEGER NOT NULL,
        finished_ms INTEGER NOT NULL, message TEXT NOT NULL,
        PRIMARY KEY (deployment, node));
    CREATE TABLE holds (
        source TEXT PRIMARY KEY, reason TEXT NOT NULL, by TEXT NOT NULL,
        since_ms INTEGER NOT NULL);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL, actor TEXT NOT NULL,
        action TEXT NOT NULL, deployment TEXT NOT NULL, node TEXT NOT NULL,
        detail TEXT NOT NULL);
    )sql",
    // 2: the audit log is append-only; lookups by deployment.
    R"sql(
    CREATE TRIGGER events_no_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'the events table is append-only'); END;
    CREATE TRIGGER events_no_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'the events table is append-only'); END;
    CREATE INDEX events_by_deployment ON events(deployment, id);
    )sql",
    // 3: how each node gets its actions (pull mode); nodes registered before are push.
    R"sql(
    ALTER TABLE nodes ADD COLUMN mode TEXT NOT NULL DEFAULT 'push';
    )sql",
};
static_assert(std::size(kMigrations) == State::kSchemaVersion);

}  // namespace

struct State::Impl {
    DbPtr db;
    std::filesystem::path path;
    std::recursive_mutex mutex;

    Error dbError(std::string_view what) const {
        return Error{
            Errc::Io,
            detail::concat("state ", path.string(), ": ", what, ": ", sqlite3_errmsg(db.get())), 0};
    }

    Result<void> exec(const char* sql, std::string_view what) {
        char* message = nullptr;
        if (sqlite3_exec(db.get(), sql, nullptr, nullptr, &message) != SQLITE_OK) {
            std::string text = message != nullptr ? message : "unknown error";
            sqlite3_free(message);
            return fail(Errc::Io, "state ", path.string(), ": ", what, ": ", text);
        }
        return ok();
    }

    Result<StmtPtr> prepare(const char* sql) {
        sqlite3_stmt* stmt = nullptr;
        if (sqlite3_prepare_v2(db.get(), sql, -1, &stmt, nullptr) != SQLITE_OK)
            return std::unexpected(dbError("prepare"));
        return StmtPtr(stmt);
    }
};

namespace {

// Binds parameters in order: strings, integers and bools.
void bindOne(sqlite3_stmt* stmt, int index, std::string_view value) {
    sqlite3_bind_text(stmt, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
}
void bindOne(sqlite3_stmt* stmt, int index, const std::string& value) {
    bindOne(stmt, index, std::string_view(value));
}
void bindOne(sqlite3_stmt* stmt, int index, std::int64_t value) {
    sqlite3_bind_int64(stmt, index, value);
}
void bindOne(sqlite3_stmt* stmt, int index, bool value) {
    sqlite3_bind_int64(stmt, index, value ? 1 : 0);
}

template <class... Args>
void bindAll(sqlite3_stmt* stmt, const Args&... args) {
    (void)stmt;
    int index = 0;
    (bindOne(stmt, ++index, args), ...);
}

std::string columnText(sqlite3_stmt* stmt, int column) {
    const auto* text = sqlite3_column_text(stmt, column);
    return text != nullptr ? std::string(reinterpret_cast<const char*>(text)) : std::string();
}

}  // namespace

State::State() : impl_(std::make_unique<Impl>()) {}
State::~State() = default;

Result<std::unique_ptr<State>> State::open(const std::filesystem::path& path) {
    std::unique_ptr<State> self(new State());
    auto& impl = *self->impl_;
    impl.path = path;
    sqlite3* raw = nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &raw,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                             nullptr);
    impl.db.reset(raw);
    if (rc != SQLITE_OK) return std::unexpected(impl.dbError("cannot open"));
    sqlite3_busy_timeout(raw, 5000);
    HOIST_TRY(impl.exec("PRAGMA journal_mode=WAL", "cannot switch to WAL"));
    HOIST_TRY(impl.exec("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON", "pragmas"));
    int version = self->schemaVersion();
    if (version > kSchemaVersion)
        return fail(Errc::Invalid, "state ", path.string(), " has schema version ", version,
                    ", newer than this coordinator knows (", kSchemaVersion,
                    "); use a newer deploy-coordinator");
    for (int next = version; next < kSchemaVersion; ++next) {
        HOIST_TRY(impl.exec("BEGIN IMMEDIATE", "begin migration"));
        auto applied = impl.exec(kMigrations[next], "migration");
        if (applied) {
            std::string set = "PRAGMA user_version=" + std::to_string(next + 1);
            applied = impl.exec(set.c_str(), "migration");
        }
        if (!applied) {
            (void)impl.exec("ROLLBACK", "rollback");
            return std::unexpected(withContext(
                applied.error(), detail::concat("migrating to schema version ", next + 1)));
        }
        HOIST_TRY(impl.exec("COMMIT", "commit migration"));
    }
    return self;
}

int State::schemaVersion() {
    std::lock_guard lock(impl_->mutex);
    auto stmt = impl_->prepare("PRAGMA user_version");
    if (!stmt) return -1;
    if (sqlite3_step(stmt->get()) != SQLITE_ROW) return -1;
    return sqlite3_column_int(stmt->get(), 0);
}

Result<void> State::transaction(const std::function<Result<void>(Tx&)>& body, bool durable) {
    std::lock_guard lock(impl_->mutex);
    if (durable) HOIST_TRY(impl_->exec("PRAGMA synchronous=FULL", "pragma"));
    HOIST_TRY(impl_->exec("BEGIN IMMEDIATE", "begin"));
    Tx tx(*this);
    auto result = body(tx);
    if (result) result = impl_->exec("COMMIT", "commit");
    if (!result) (void)impl_->exec("ROLLBACK", "rollback");
    if (durable) (void)impl_->exec("PRAGMA synchronous=NORMAL", "pragma");
    return result;
}

namespace {
template <class... Args>
Result<void> write(State::Tx&, auto& impl, const char* sql, const Args&... args) {
    HOIST_ASSIGN(auto stmt, impl.prepare(sql));
    bindAll(stmt.get(), args...);
    if (sqlite3_step(stmt.get()) != SQLITE_DONE) return std::unexpected(impl.dbError("write"));
    return ok();
}
}  // namespace

Result<void> State::Tx::putNode(const NodeRecord& n) {
    return write(*this, *state_.impl_,
                 "INSERT OR REPLACE INTO nodes (id, role, address, release, generation, status, "
                 "registered_ms, last_seen_ms, mode) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 n.id, n.role, n.address, n.release, n.generation, n.status, n.registered_ms,
                 n.last_seen_ms, n.mode);
}

Result<void> State::Tx::putDeployment(const Deployment& d) {
    return write(*this, *state_.impl_,
                 "INSERT OR REPLACE INTO deployments (id, number, version, kind, state, "
                 "max_parallel, max_failures, auto_revert, min_healthy_ms, node_deadline_ms, "
                 "progress_deadline_ms, release_json, created_by, waiting_on, message, created_ms, "
                 "updated_ms, finished_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                 "?, ?)",
                 d.id, d.number, d.version, d.kind, d.state, d.max_parallel, d.max_failures,
                 d.auto_revert, d.min_healthy_ms, d.node_deadline_ms, d.progress_deadline_ms,
                 d.release_json, d.created_by, d.waiting_on, d.message, d.created_ms, d.updated_ms,
                 d.finished_ms);
}

Result<void> State::Tx::putDeploymentNode(const DeploymentNode& n) {
    return write(*this, *state_.impl_,
                 "INSERT OR REPLACE INTO deployment_nodes (deployment, node, role, ord, state, "
                 "node_state, from_release, from_generation, target_generation, last_seq, "
                 "restarts, started_ms, finished_ms, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
                 "?, ?, ?, ?, ?)",
                 n.deployment, n.node, n.role, n.ord, n.state, n.node_state, n.from_release,
                 n.from_generation, n.target_generation, n.last_seq, n.restarts, n.started_ms,
                 n.finished_ms, n.message);
}

Result<void> State::Tx::putHold(const Hold& h) {
    return write(*this, *state_.impl_,
                 "INSERT OR REPLACE INTO holds (source, reason, by, since_ms) VALUES (?, ?, ?, ?)",
                 h.source, h.reason, h.by, h.since_ms);
}

Result<int> State::Tx::deleteHolds(std::optional<std::string_view> source) {
    auto& impl = *state_.impl_;
    if (source) {
        HOIST_TRY(write(*this, impl, "DELETE FROM holds WHERE source = ?", *source));
    } else {
        HOIST_TRY(write(*this, impl, "DELETE FROM holds"));
    }
    return sqlite3_changes(impl.db.get());
}

Result<void> State::Tx::appendEvent(Event e) {
    if (e.time_ms == 0) e.time_ms = nowMs();
    return write(*this, *state_.impl_,
                 "INSERT INTO events (time_ms, actor, action, deployment, node, detail) VALUES "
                 "(?, ?, ?, ?, ?, ?)",
                 e.time_ms, e.actor, e.action, e.deployment, e.node, e.detail);
}

Result<std::vector<NodeRecord>> State::nodes() {
    std::lock_guard lock(impl_->mutex);
    HOIST_ASSIGN(auto stmt,
                 impl_->prepare("SELECT id, role, address, release, generation, status, "
                                "registered_ms, last_seen_ms, mode FROM nodes ORDER BY id"));
    std::vector<NodeRecord> out;
    while (sqlite3_step(stmt.get()) == SQLITE_ROW) {
        NodeRecord n;
        n.id = columnText(stmt.get(), 0);
        n.role = columnText(stmt.get(), 1);
        n.address = columnText(stmt.get(), 2);
        n.release = columnText(stmt.get(), 3);
        n.generation = sqlite3_column_int64(stmt.get(), 4);
        n.status = columnText(stmt.get(), 5);
        n.registered_ms = sqlite3_column_int64(stmt.get(), 6);
        n.last_seen_ms = sqlite3_column_int64(stmt.get(), 7);
        n.mode = columnText(stmt.get(), 8);
        out.push_back(std::move(n));
    }
    return out;
}

Result<std::vector<Hold>> State::holds() {
    std::lock_guard lock(impl_->mutex);
    HOIST_ASSIGN(
        auto stmt,
        impl_->prepare("SELECT source, reason, by, since_ms FROM holds ORDER BY since_ms, source"));
    std::vector<Hold> out;
    while (sqlite3_step(stmt.get()) == SQLITE_ROW) {
        out.push_back({columnText(stmt.get(), 0), columnText(stmt.get(), 1),
                       columnText(stmt.get(), 2), sqlite3_column_int64(stmt.get(), 3)});
    }
    return out;
}

namespace {
constexpr const char* kDeploymentColumns =
    "SELECT id, number, version, kind, state, max_parallel, max_failures, auto_revert, "
    "min_healthy_ms, node_deadline_ms, progress_deadline_ms, release_json, created_by, "
    "waiting_on, message, created_ms, updated_ms, finished_ms FROM deployments ";

Deployment readDeployment(sqlite3_stmt* s) {
    Deployment d;
    d.id = columnText(s, 0);
    d.number = sqlite3_column_int64(s, 1);
    d.version = columnText(s, 2);
    d.kind = columnText(s, 3);
    d.state = columnText(s, 4);
    d.max_parallel = columnText(s, 5);
    d.max_failures = sqlite3_column_int64(s, 6);
    d.auto_revert = sqlite3_column_int64(s, 7) != 0;
    d.min_healthy_ms = sqlite3_column_int64(s, 8);
    d.node_deadline_ms = sqlite3_column_int64(s, 9);
    d.progress_deadline_ms = sqlite3_column_int64(s, 10);
    d.release_json = columnText(s, 11);
    d.created_by = columnText(s, 12);
    d.waiting_on = columnText(s, 13);
    d.message = columnText(s, 14);
    d.created_ms = sqlite3_column_int64(s, 15);
    d.updated_ms = sqlite3_column_int64(s, 16);
    d.finished_ms = sqlite3_column_int64(s, 17);
    return d;
}
}  // namespace

Result<std::vector<Deployment>> State::deployments(int limit) {
    std::lock_guard lock(impl_->mutex);
    std::string sql = std::string(kDeploymentColumns) + "ORDER BY number DESC LIMIT ?";
    HOIST_ASSIGN(auto stmt, impl_->prepare(sql.c_str()));
    bindAll(stmt.get(), static_cast<std::int64_t>(limit));
    std::vector<Deployment> out;
    while (sqlite3_step(stmt.get()) == SQLITE_ROW) out.push_back(readDeployment(stmt.get()));
    return out;
}

Result<std::optional<Deployment>> State::deployment(std::string_view id) {
    std::lock_guard lock(impl_->mutex);
    std::string sql = std::string(kDeploymentColumns) + "WHERE id = ?";
    HOIST_ASSIGN(auto stmt, impl_->prepare(sql.c_str()));
    bindAll(stmt.get(), id);
    if (sqlite3_step(stmt.get()) != SQLITE_ROW) return std::optional<Deployment>();
    return std::optional<Deployment>(readDeployment(stmt.get()));
}

Result<std::vector<DeploymentNode>> State::deploymentNodes(std::string_view deployment) {
    std::lock_guard lock(impl_->mutex);
    HOIST_ASSIGN(
        auto stmt,
        impl_->prepare("SELECT deployment, node, role, ord, state, node_state, from_release, "
                       "from_generation, target_generation, last_seq, restarts, started_ms, "
                       "finished_ms, message FROM deployment_nodes WHERE deployment = ? "
                       "ORDER BY ord"));
    bindAll(stmt.get(), deployment);
    std::vector<DeploymentNode> out;
    while (sqlite3_step(stmt.get()) == SQLITE_ROW) {
        auto* s = stmt.get();
        DeploymentNode n;
        n.deployment = columnText(s, 0);
        n.node = columnText(s, 1);
        n.role = columnText(s, 2);
        n.ord = sqlite3_column_int64(s, 3);
        n.state = columnText(s, 4);
        n.node_state = columnText(s, 5);
        n.from_release = columnText(s, 6);
        n.from_generation = sqlite3_column_int64(s, 7);
        n.target_generation = sqlite3_column_int64(s, 8);
        n.last_seq = sqlite3_column_int64(s, 9);
        n.restarts = sqlite3_column_int64(s, 10);
        n.started_ms = sqlite3_column_int64(s, 11);
        n.finished_ms = sqlite3_column_int64(s, 12);
        n.message = columnText(s, 13);
        out.push_back(std::move(n));
    }
    return out;
}

Result<std::vector<Event>> State::events(std::optional<std::string_view> deployment, int limit) {
    std::lock_guard lock(impl_->mutex);
    const char* sql = deployment
                          ? "SELECT * FROM (SELECT id, time_ms, actor, action, deployment, node, "
                            "detail FROM events WHERE deployment = ? ORDER BY id DESC LIMIT ?) "
                            "ORDER BY id"
                          : "SELECT * FROM (SELECT id, time_ms, actor, action, deployment, node, "
                            "detail FROM events ORDER BY id DESC LIMIT ?) ORDER BY id";
    HOIST_ASSIGN(auto stmt, impl_->prepare(sql));
    if (deployment)
        bindAll(stmt.get(), *deployment, static_cast<std::int64_t>(limit));
    else
        bindAll(stmt.get(), static_cast<std::int64_t>(limit));
    std::vector<Event> out;
    while (sqlite3_step(stmt.get()) == SQLITE_ROW) {
        auto* s = stmt.get();
        out.push_back({sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1), columnText(s, 2),
                       columnText(s, 3), columnText(s, 4), columnText(s, 5), columnText(s, 6)});
    }
    return out;
}

Result<std::int64_t> State::nextDeploymentNumber() {
    std::lock_guard lock(impl_->mutex);
    HOIST_ASSIGN(auto stmt, impl_->prepare("SELECT COALESCE(MAX(number), 0) + 1 FROM deployments"));
    if (sqlite3_step(stmt.get()) != SQLITE_ROW) return std::unexpected(impl_->dbError("read"));
    return sqlite3_column_int64(stmt.get(), 0);
}

}  // namespace hoist::deploy_coordinator
