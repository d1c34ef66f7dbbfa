#include "deploy_coordinator/state.hpp"

#include <chrono>
#include <memory>
#include <mutex>

#include "core/log.hpp"
#include "core/sqlite.hpp"
#include "state_impl.hpp"

namespace hoist::deploy_coordinator {

std::int64_t nowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string formatTime(std::int64_t ms) {
    if (ms <= 0) return "";
    return log::rfc3339(ms);
}

bool Deployment::active() const {
    return isActive(state);
}

namespace {

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
    // 4: a monitor's alerts on its hold, and when the monitor said they resolved.
    R"sql(
    ALTER TABLE holds ADD COLUMN alerts TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE holds ADD COLUMN resolved_ms INTEGER NOT NULL DEFAULT 0;
    )sql",
    // 5: the SLA monitors the dead man's switch watches.
    R"sql(
    CREATE TABLE monitors (
        name TEXT PRIMARY KEY, allowance_ms INTEGER NOT NULL, last_beat_ms INTEGER NOT NULL);
    )sql",
    // 6: a rollback is its own deployment, naming the one it undoes; the leadership term every
    // write is conditional on.
    R"sql(
    ALTER TABLE deployments ADD COLUMN undoes TEXT NOT NULL DEFAULT '';
    CREATE TABLE leadership (id INTEGER PRIMARY KEY CHECK (id = 0), term INTEGER NOT NULL);
    INSERT INTO leadership (id, term) VALUES (0, 0);
    )sql",
    // 7: the Idempotency-Key of the request that started a deployment, so that a retried POST
    // (after a timeout, or across a coordinator restart) gets the same deployment back.
    R"sql(
    ALTER TABLE deployments ADD COLUMN idempotency_key TEXT NOT NULL DEFAULT '';
    )sql",
    // 8: the deployment's metric gates (JSON, metric_gates.hpp; '' for none).
    R"sql(
    ALTER TABLE deployments ADD COLUMN gates TEXT NOT NULL DEFAULT '';
    )sql",
    // 9: the hash of each node's own secret (empty: registered before per-node secrets).
    R"sql(
    ALTER TABLE nodes ADD COLUMN secret_hash TEXT NOT NULL DEFAULT '';
    )sql",
    // 10: the holds live in their own file (state_holds.cpp); the audit events of hold changes
    // journalled there are folded into this log, exactly once: up to this sequence number.
    R"sql(
    CREATE TABLE hold_journal (id INTEGER PRIMARY KEY CHECK (id = 0), folded INTEGER NOT NULL);
    INSERT INTO hold_journal (id, folded) VALUES (0, 0);
    )sql",
};
static_assert(std::size(kMigrations) == State::kSchemaVersion);

}  // namespace

State::State() = default;
State::~State() = default;

Result<std::unique_ptr<State>> State::open(const std::filesystem::path& path, bool init) {
    auto opened = sqlite::Database::open(
        path, "state " + path.string(), sqlite::Database::Sync::Normal,
        init ? sqlite::Database::Damaged::StartOver : sqlite::Database::Damaged::Refuse);
    if (!opened && opened.error().code == Errc::Corrupt)
        return fail(Errc::Corrupt, opened.error().message,
                    " (or start deploy-coordinator with --init to begin an empty state; the "
                    "damaged file is kept beside it)");
    HOIST_ASSIGN(auto db, std::move(opened));
    HOIST_TRY(db.migrate(kMigrations, "coordinator"));
    HOIST_ASSIGN(auto holds, openHoldsFile(path, init));
    std::unique_ptr<State> self(new State());
    self->impl_ =
        std::make_unique<Impl>(std::move(db), std::move(holds.first), std::move(holds.second));
    HOIST_TRY(self->adoptHolds());
    return self;
}

int State::schemaVersion() {
    std::lock_guard lock(impl_->mutex);
    return impl_->db.userVersion();
}

bool StepWrite::empty() const {
    return !deployment && nodes.empty() && registry.empty() && forget_nodes.empty() &&
           put_holds.empty() && delete_holds.empty() && !clear_holds && events.empty();
}

namespace {
constexpr std::int64_t kSlowWriteMs = 50;

Result<std::int64_t> readTerm(sqlite::Database& db) {
    HOIST_ASSIGN(auto stmt, db.prepare("SELECT term FROM leadership WHERE id = 0"));
    HOIST_ASSIGN(bool found, stmt.step());
    if (!found) return fail(Errc::Corrupt, "the state file has no leadership row");
    return stmt.integer(0);
}
}  // namespace

CommitTiming lastCommitTiming() {
    return last_commit_timing;
}

Result<void> State::commit(const StepWrite& step, std::int64_t term, bool durable) {
    if (step.empty()) return ok();
    const StepWrite* rest = &step;
    StepWrite without_holds;
    if (!step.put_holds.empty() || !step.delete_holds.empty() || step.clear_holds) {
        StepWrite holds;
        holds.put_holds = step.put_holds;
        holds.delete_holds = step.delete_holds;
        holds.clear_holds = step.clear_holds;
        HOIST_TRY(commitHolds(holds));
        without_holds = step;
        without_holds.put_holds.clear();
        without_holds.delete_holds.clear();
        without_holds.clear_holds = false;
        if (without_holds.empty()) return ok();
        rest = &without_holds;
    }
    const StepWrite& w = *rest;
    auto asked = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point began = asked;
    std::chrono::steady_clock::time_point wrote = asked;
    std::int64_t folded = 0;
    std::unique_lock lock(impl_->mutex);
    auto result = transaction(
        [&](Tx& tx) -> Result<void> {
            HOIST_ASSIGN(auto current, readTerm(impl_->db));
            if (current != term)
                return fail(Errc::Conflict, "write refused: the state's leadership term is ",
                            current, ", this coordinator writes as term ", term);
            began = std::chrono::steady_clock::now();
            HOIST_ASSIGN(folded, foldHoldEvents());
            if (w.deployment) HOIST_TRY(tx.putDeployment(*w.deployment));
            for (const auto& n : w.nodes) HOIST_TRY(tx.putDeploymentNode(n));
            for (const auto& n : w.registry) HOIST_TRY(tx.putNode(n));
            for (const auto& id : w.forget_nodes) HOIST_TRY(tx.deleteNode(id));
            for (const auto& e : w.events) HOIST_TRY(tx.appendEvent(e));
            wrote = std::chrono::steady_clock::now();
            return ok();
        },
        durable);
    bool checkpoint = result && folded != impl_->folded_seq;
    if (result) impl_->folded_seq = folded;
    lock.unlock();
    if (checkpoint) checkpointHolds(*impl_);
    // A write that held the store long delays every other one.
    auto done = std::chrono::steady_clock::now();
    auto us = [](auto d) {
        return static_cast<std::int64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(d).count());
    };
    last_commit_timing = {us(began - asked), us(wrote - began), us(done - wrote)};
    auto ms = [](auto d) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    };
    if (ms(done - asked) >= kSlowWriteMs)
        log::warn("deploy-coordinator", "slow state write",
                  {{"waited_ms", static_cast<std::int64_t>(ms(began - asked))},
                   {"wrote_ms", static_cast<std::int64_t>(ms(done - began))},
                   {"nodes", static_cast<std::int64_t>(w.nodes.size())},
                   {"registry", static_cast<std::int64_t>(w.registry.size())},
                   {"events", static_cast<std::int64_t>(w.events.size())},
                   {"holds", static_cast<std::int64_t>(w.put_holds.size())},
                   {"durable", durable ? "yes" : "no"}});
    return result;
}

Result<std::int64_t> State::term() {
    std::lock_guard lock(impl_->mutex);
    return readTerm(impl_->db);
}

Result<void> State::claim(std::int64_t term) {
    return transaction([&](Tx&) -> Result<void> {
        HOIST_ASSIGN(auto current, readTerm(impl_->db));
        if (current > term)
            return fail(Errc::Conflict, "term ", term, " is behind the state's term ", current);
        HOIST_ASSIGN(auto stmt, impl_->db.prepare("UPDATE leadership SET term = ? WHERE id = 0"));
        return stmt.bind(term).run();
    });
}

Result<void> State::transaction(const std::function<Result<void>(Tx&)>& body, bool durable) {
    std::lock_guard lock(impl_->mutex);
    Tx tx(*this);
    return impl_->db.transaction([&] { return body(tx); }, durable);
}

namespace {
template <class... Args>
Result<void> write(auto& impl, const char* sql, const Args&... args) {
    HOIST_ASSIGN(auto stmt, impl.db.prepare(sql));
    return stmt.bind(args...).run();
}
}  // namespace

Result<void> State::Tx::putNode(const NodeRecord& n) {
    return write(*state_.impl_,
                 "INSERT OR REPLACE INTO nodes (id, role, address, release, generation, status, "
                 "registered_ms, last_seen_ms, mode, secret_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
                 "?, ?)",
                 n.id, n.role, n.address, n.release, n.generation, n.status, n.registered_ms,
                 n.last_seen_ms, n.mode, n.secret_hash);
}

Result<void> State::Tx::deleteNode(std::string_view id) {
    return write(*state_.impl_, "DELETE FROM nodes WHERE id = ?", id);
}

Result<void> State::Tx::putDeployment(const Deployment& d) {
    return write(
        *state_.impl_,
        "INSERT OR REPLACE INTO deployments (id, number, version, kind, state, "
        "max_parallel, max_failures, auto_revert, min_healthy_ms, node_deadline_ms, "
        "progress_deadline_ms, release_json, created_by, waiting_on, message, created_ms, "
        "updated_ms, finished_ms, undoes, idempotency_key, gates) VALUES (?, ?, ?, ?, ?, ?, ?, "
        "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        d.id, d.number, d.version, d.kind, toString(d.state), d.max_parallel, d.max_failures,
        d.auto_revert, d.min_healthy_ms, d.node_deadline_ms, d.progress_deadline_ms, d.release_json,
        d.created_by, d.waiting_on, d.message, d.created_ms, d.updated_ms, d.finished_ms, d.undoes,
        d.idempotency_key, d.gates);
}

Result<void> State::Tx::putDeploymentNode(const DeploymentNode& n) {
    return write(*state_.impl_,
                 "INSERT OR REPLACE INTO deployment_nodes (deployment, node, role, ord, state, "
                 "node_state, from_release, from_generation, target_generation, last_seq, "
                 "restarts, started_ms, finished_ms, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
                 "?, ?, ?, ?, ?)",
                 n.deployment, n.node, n.role, n.ord, toString(n.state), n.node_state,
                 n.from_release, n.from_generation, n.target_generation, n.last_seq, n.restarts,
                 n.started_ms, n.finished_ms, n.message);
}

Result<void> State::Tx::appendEvent(Event e) {
    if (e.time_ms == 0) e.time_ms = nowMs();
    return write(*state_.impl_,
                 "INSERT INTO events (time_ms, actor, action, deployment, node, detail) VALUES "
                 "(?, ?, ?, ?, ?, ?)",
                 e.time_ms, e.actor, e.action, e.deployment, e.node, e.detail);
}

Result<void> State::Tx::putMonitor(const MonitorRecord& m) {
    return write(
        *state_.impl_,
        "INSERT OR REPLACE INTO monitors (name, allowance_ms, last_beat_ms) VALUES (?, ?, ?)",
        m.name, m.allowance_ms, m.last_beat_ms);
}

Result<void> State::Tx::deleteMonitor(std::string_view name) {
    return write(*state_.impl_, "DELETE FROM monitors WHERE name = ?", name);
}

Result<void> State::writeMonitor(const std::optional<MonitorRecord>& put, std::string_view remove,
                                 const std::vector<Event>& events) {
    return transaction([&](Tx& tx) -> Result<void> {
        if (put) HOIST_TRY(tx.putMonitor(*put));
        if (!remove.empty()) HOIST_TRY(tx.deleteMonitor(remove));
        for (const auto& e : events) HOIST_TRY(tx.appendEvent(e));
        return ok();
    });
}

Result<std::vector<MonitorRecord>> State::monitors() {
    std::lock_guard lock(impl_->mutex);
    HOIST_ASSIGN(
        auto stmt,
        impl_->db.prepare("SELECT name, allowance_ms, last_beat_ms FROM monitors ORDER BY name"));
    std::vector<MonitorRecord> out;
    HOIST_TRY(stmt.each([&](const sqlite::Statement& s) {
        out.push_back({s.text(0), s.integer(1), s.integer(2)});
    }));
    return out;
}

Result<std::vector<NodeRecord>> State::nodes() {
    std::lock_guard lock(impl_->mutex);
    HOIST_ASSIGN(
        auto stmt,
        impl_->db.prepare("SELECT id, role, address, release, generation, status, "
                          "registered_ms, last_seen_ms, mode, secret_hash FROM nodes ORDER BY id"));
    std::vector<NodeRecord> out;
    HOIST_TRY(stmt.each([&](const sqlite::Statement& s) {
        NodeRecord n;
        n.id = s.text(0);
        n.role = s.text(1);
        n.address = s.text(2);
        n.release = s.text(3);
        n.generation = s.integer(4);
        n.status = s.text(5);
        n.registered_ms = s.integer(6);
        n.last_seen_ms = s.integer(7);
        n.mode = s.text(8);
        n.secret_hash = s.text(9);
        out.push_back(std::move(n));
    }));
    return out;
}

namespace {
constexpr const char* kDeploymentColumns =
    "SELECT id, number, version, kind, state, max_parallel, max_failures, auto_revert, "
    "min_healthy_ms, node_deadline_ms, progress_deadline_ms, release_json, created_by, "
    "waiting_on, message, created_ms, updated_ms, finished_ms, undoes, idempotency_key, gates "
    "FROM deployments ";

Result<Deployment> readDeployment(const sqlite::Statement& s) {
    Deployment d;
    d.id = s.text(0);
    d.number = s.integer(1);
    d.version = s.text(2);
    d.kind = s.text(3);
    auto state = s.text(4);
    auto parsed = parseDeploymentState(state);
    if (!parsed)
        return fail(Errc::Corrupt, "deployment ", d.id, " has the unknown state '", state, "'");
    d.state = *parsed;
    d.max_parallel = s.text(5);
    d.max_failures = s.integer(6);
    d.auto_revert = s.integer(7) != 0;
    d.min_healthy_ms = s.integer(8);
    d.node_deadline_ms = s.integer(9);
    d.progress_deadline_ms = s.integer(10);
    d.release_json = s.text(11);
    d.created_by = s.text(12);
    d.waiting_on = s.text(13);
    d.message = s.text(14);
    d.created_ms = s.integer(15);
    d.updated_ms = s.integer(16);
    d.finished_ms = s.integer(17);
    d.undoes = s.text(18);
    d.idempotency_key = s.text(19);
    d.gates = s.text(20);
    return d;
}
}  // namespace

Result<std::vector<Deployment>> State::deployments(int limit) {
    std::lock_guard lock(impl_->mutex);
    std::string sql = std::string(kDeploymentColumns) + "ORDER BY number DESC LIMIT ?";
    HOIST_ASSIGN(auto stmt, impl_->db.prepare(sql.c_str()));
    stmt.bind(static_cast<std::int64_t>(limit));
    std::vector<Deployment> out;
    std::optional<Error> bad;
    HOIST_TRY(stmt.each([&](const sqlite::Statement& s) {
        auto d = readDeployment(s);
        if (d)
            out.push_back(std::move(*d));
        else if (!bad)
            bad = d.error();
    }));
    if (bad) return std::unexpected(*bad);
    return out;
}

Result<std::optional<Deployment>> State::deployment(std::string_view id) {
    std::lock_guard lock(impl_->mutex);
    std::string sql = std::string(kDeploymentColumns) + "WHERE id = ?";
    HOIST_ASSIGN(auto stmt, impl_->db.prepare(sql.c_str()));
    stmt.bind(id);
    HOIST_ASSIGN(bool found, stmt.step());
    if (!found) return std::optional<Deployment>();
    HOIST_ASSIGN(auto d, readDeployment(stmt));
    return std::optional<Deployment>(std::move(d));
}

Result<std::vector<DeploymentNode>> State::deploymentNodes(std::string_view deployment) {
    std::lock_guard lock(impl_->mutex);
    HOIST_ASSIGN(
        auto stmt,
        impl_->db.prepare("SELECT deployment, node, role, ord, state, node_state, from_release, "
                          "from_generation, target_generation, last_seq, restarts, started_ms, "
                          "finished_ms, message FROM deployment_nodes WHERE deployment = ? "
                          "ORDER BY ord"));
    stmt.bind(deployment);
    std::vector<DeploymentNode> out;
    std::optional<Error> bad;
    HOIST_TRY(stmt.each([&](const sqlite::Statement& s) {
        DeploymentNode n;
        n.deployment = s.text(0);
        n.node = s.text(1);
        n.role = s.text(2);
        n.ord = s.integer(3);
        auto step = parseNodeStep(s.text(4));
        if (!step && !bad)
            bad = Error{Errc::Corrupt,
                        detail::concat("node ", n.node, " of deployment ", n.deployment,
                                       " has the unknown step '", s.text(4), "'"),
                        0};
        n.state = step.value_or(NodeStep::pending);
        n.node_state = s.text(5);
        n.from_release = s.text(6);
        n.from_generation = s.integer(7);
        n.target_generation = s.integer(8);
        n.last_seq = s.integer(9);
        n.restarts = s.integer(10);
        n.started_ms = s.integer(11);
        n.finished_ms = s.integer(12);
        n.message = s.text(13);
        out.push_back(std::move(n));
    }));
    if (bad) return std::unexpected(*bad);
    return out;
}

Result<std::vector<Event>> State::events(std::optional<std::string_view> deployment, int limit) {
    std::lock_guard lock(impl_->mutex);
    HOIST_TRY(foldPending(false));
    const char* sql = deployment
                          ? "SELECT * FROM (SELECT id, time_ms, actor, action, deployment, node, "
                            "detail FROM events WHERE deployment = ? ORDER BY id DESC LIMIT ?) "
                            "ORDER BY id"
                          : "SELECT * FROM (SELECT id, time_ms, actor, action, deployment, node, "
                            "detail FROM events ORDER BY id DESC LIMIT ?) ORDER BY id";
    HOIST_ASSIGN(auto stmt, impl_->db.prepare(sql));
    if (deployment)
        stmt.bind(*deployment, static_cast<std::int64_t>(limit));
    else
        stmt.bind(static_cast<std::int64_t>(limit));
    std::vector<Event> out;
    HOIST_TRY(stmt.each([&](const sqlite::Statement& s) {
        out.push_back(
            {s.integer(0), s.integer(1), s.text(2), s.text(3), s.text(4), s.text(5), s.text(6)});
    }));
    return out;
}

Result<std::int64_t> State::nextDeploymentNumber() {
    std::lock_guard lock(impl_->mutex);
    HOIST_ASSIGN(auto stmt,
                 impl_->db.prepare("SELECT COALESCE(MAX(number), 0) + 1 FROM deployments"));
    HOIST_ASSIGN(bool row, stmt.step());
    if (!row) return std::unexpected(impl_->db.error("read the next deployment number"));
    return stmt.integer(0);
}

}  // namespace hoist::deploy_coordinator
