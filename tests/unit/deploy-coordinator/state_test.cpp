#include <sqlite3.h>

#include <algorithm>

#include <gtest/gtest.h>

#include "deploy_coordinator/state.hpp"
#include "records.hpp"
#include "testing.hpp"

namespace hoist::deploy_coordinator {
namespace {

using hoist::testing::TempFolder;

int userVersion(const std::filesystem::path& path) {
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, nullptr);
    sqlite3_step(stmt);
    int v = sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return v;
}

void execSql(const std::filesystem::path& path, const char* sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    char* message = nullptr;
    int rc = sqlite3_exec(db, sql, nullptr, nullptr, &message);
    std::string text = message != nullptr ? message : "";
    sqlite3_free(message);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK) << text;
}

// A state file truncated to 0 bytes held holds and the node registry: it is refused, not
// silently started over, unless --init asks for an empty state.
TEST(State, AnEmptyFileIsRefusedUnlessInit) {
    TempFolder dir;
    auto path = dir / "state.db";
    hoist::testing::writeFile(path, "");
    auto refused = State::open(path);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, Errc::Corrupt);
    EXPECT_NE(refused.error().message.find("the file is empty (0 bytes)"), std::string::npos)
        << refused.error().message;
    EXPECT_NE(refused.error().message.find("--init"), std::string::npos) << refused.error().message;
    auto started = State::open(path, true);
    ASSERT_OK(started);
    EXPECT_EQ((*started)->schemaVersion(), State::kSchemaVersion);
    EXPECT_TRUE(std::filesystem::exists(dir / "state.db.damaged-1"));
}

TEST(State, CreatesTheLatestSchemaInWalMode) {
    TempFolder dir;
    auto path = dir / "state.db";
    {
        auto state = State::open(path);
        ASSERT_OK(state);
        EXPECT_EQ((*state)->schemaVersion(), State::kSchemaVersion);
    }
    EXPECT_EQ(userVersion(path), State::kSchemaVersion);
    EXPECT_TRUE(std::filesystem::exists(dir / "state.db-wal") || std::filesystem::exists(path));
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, nullptr);
    sqlite3_step(stmt);
    EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "wal");
    sqlite3_finalize(stmt);
    sqlite3_close(db);
}

TEST(State, MigratesAVersionOneFileForwardKeepingItsRows) {
    TempFolder dir;
    auto path = dir / "state.db";
    // A file as version 1 left it: the tables, no triggers, one node.
    execSql(path, R"sql(
        CREATE TABLE nodes (id TEXT PRIMARY KEY, role TEXT NOT NULL, address TEXT NOT NULL,
            release TEXT NOT NULL DEFAULT '', generation INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL DEFAULT 'up', registered_ms INTEGER NOT NULL,
            last_seen_ms INTEGER NOT NULL);
        CREATE TABLE deployments (id TEXT PRIMARY KEY, number INTEGER NOT NULL UNIQUE,
            version TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL,
            max_parallel TEXT NOT NULL, max_failures INTEGER NOT NULL, auto_revert INTEGER NOT NULL,
            min_healthy_ms INTEGER NOT NULL, node_deadline_ms INTEGER NOT NULL,
            progress_deadline_ms INTEGER NOT NULL, release_json TEXT NOT NULL,
            created_by TEXT NOT NULL, waiting_on TEXT NOT NULL, message TEXT NOT NULL,
            created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, finished_ms INTEGER NOT NULL);
        CREATE TABLE deployment_nodes (deployment TEXT NOT NULL REFERENCES deployments(id),
            node TEXT NOT NULL, role TEXT NOT NULL, ord INTEGER NOT NULL, state TEXT NOT NULL,
            node_state TEXT NOT NULL, from_release TEXT NOT NULL, from_generation INTEGER NOT NULL,
            target_generation INTEGER NOT NULL, last_seq INTEGER NOT NULL, restarts INTEGER NOT NULL,
            started_ms INTEGER NOT NULL, finished_ms INTEGER NOT NULL, message TEXT NOT NULL,
            PRIMARY KEY (deployment, node));
        CREATE TABLE holds (source TEXT PRIMARY KEY, reason TEXT NOT NULL, by TEXT NOT NULL,
            since_ms INTEGER NOT NULL);
        CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL,
            actor TEXT NOT NULL, action TEXT NOT NULL, deployment TEXT NOT NULL, node TEXT NOT NULL,
            detail TEXT NOT NULL);
        INSERT INTO nodes VALUES ('agent-1', 'agent', 'http://127.0.0.1:1', '1.0.0', 1, 'up', 5, 6);
        INSERT INTO events (time_ms, actor, action, deployment, node, detail)
            VALUES (7, 'admin', 'halt', '', '', 'x');
        PRAGMA user_version = 1;
    )sql");
    auto state = State::open(path);
    ASSERT_OK(state);
    EXPECT_EQ((*state)->schemaVersion(), State::kSchemaVersion);
    auto nodes = (*state)->nodes();
    ASSERT_OK(nodes);
    ASSERT_EQ(nodes->size(), 1u);
    EXPECT_EQ((*nodes)[0].release, "1.0.0");
    // Version 3 added the mode: nodes registered before are push nodes.
    EXPECT_EQ((*nodes)[0].mode, "push");
    // Version 2 made the audit log append-only.
    // Version 2 made the audit log append-only.
    char* message = nullptr;
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    EXPECT_NE(sqlite3_exec(db, "DELETE FROM events", nullptr, nullptr, &message), SQLITE_OK);
    EXPECT_NE(std::string(message != nullptr ? message : ""), "");
    EXPECT_NE(std::string(message).find("append-only"), std::string::npos) << message;
    sqlite3_free(message);
    EXPECT_NE(sqlite3_exec(db, "UPDATE events SET actor = 'x'", nullptr, nullptr, &message),
              SQLITE_OK);
    sqlite3_free(message);
    sqlite3_close(db);
    auto events = (*state)->events(std::nullopt, 10);
    ASSERT_OK(events);
    ASSERT_EQ(events->size(), 1u);
    EXPECT_EQ((*events)[0].actor, "admin");
}

TEST(State, RefusesAFileFromANewerCoordinatorAndLeavesItAlone) {
    TempFolder dir;
    auto path = dir / "state.db";
    execSql(path, "CREATE TABLE future (x); PRAGMA user_version = 99;");
    ASSERT_ERROR(State::open(path), Errc::Invalid,
                 "has schema version 99, newer than this coordinator knows (" +
                     std::to_string(State::kSchemaVersion) + ")");
    EXPECT_EQ(userVersion(path), 99);
}

TEST(State, ATransactionIsAllOrNothing) {
    TempFolder dir;
    auto state = State::open(dir / "state.db");
    ASSERT_OK(state);
    auto& s = **state;
    NodeRecord node{"agent-1", "agent", "http://127.0.0.1:9", "1.0.0", 1, "up", 1, 1};
    ASSERT_ERROR(s.transaction([&](State::Tx& tx) -> Result<void> {
        HOIST_TRY(tx.putNode(node));
        HOIST_TRY(tx.appendEvent({0, 0, "admin", "register", "", "agent-1", ""}));
        return fail(Errc::Conflict, "changed my mind");
    }),
                 Errc::Conflict, "changed my mind");
    EXPECT_TRUE(s.nodes()->empty());
    EXPECT_TRUE(s.events(std::nullopt, 10)->empty());
    ASSERT_OK(s.transaction([&](State::Tx& tx) -> Result<void> {
        HOIST_TRY(tx.putNode(node));
        return tx.appendEvent({0, 0, "admin", "register", "", "agent-1", ""});
    }));
    EXPECT_EQ(s.nodes()->size(), 1u);
    EXPECT_EQ(s.events(std::nullopt, 10)->size(), 1u);
}

TEST(State, DeploymentsAndTheirNodesRoundTrip) {
    TempFolder dir;
    auto path = dir / "state.db";
    Deployment d = sampleDeployment(1);
    d.waiting_on = "health of agent-1";
    DeploymentNode n = sampleDeploymentNode("agent-1");
    n.target_generation = 5;
    {
        auto state = State::open(path);
        ASSERT_OK(state);
        ASSERT_OK((*state)->transaction([&](State::Tx& tx) -> Result<void> {
            HOIST_TRY(tx.putDeployment(d));
            return tx.putDeploymentNode(n);
        }));
    }
    auto state = State::open(path);
    ASSERT_OK(state);
    auto got = (*state)->deployment("d-1");
    ASSERT_OK(got);
    ASSERT_TRUE(got->has_value());
    EXPECT_EQ((*got)->max_parallel, "10%");
    EXPECT_TRUE((*got)->auto_revert);
    EXPECT_TRUE((*got)->active());
    EXPECT_EQ((*got)->waiting_on, "health of agent-1");
    auto nodes = (*state)->deploymentNodes("d-1");
    ASSERT_OK(nodes);
    ASSERT_EQ(nodes->size(), 1u);
    EXPECT_EQ((*nodes)[0].state, NodeStep::restarting);
    EXPECT_EQ((*nodes)[0].target_generation, 5);
    EXPECT_EQ(*(*state)->nextDeploymentNumber(), 2);
    auto missing = (*state)->deployment("d-9");
    ASSERT_OK(missing);
    EXPECT_FALSE(missing->has_value());
}

TEST(State, HoldsSurviveReopening) {
    TempFolder dir;
    auto path = dir / "state.db";
    {
        auto state = State::open(path);
        ASSERT_OK(state);
        ASSERT_OK((*state)->transaction(
            [](State::Tx& tx) -> Result<void> {
                HOIST_TRY(tx.putHold({"sla", "p99 too high", "monitor", 10}));
                return tx.putHold({"oncall", "investigating", "admin", 20});
            },
            true));
    }
    auto state = State::open(path);
    ASSERT_OK(state);
    auto holds = (*state)->holds();
    ASSERT_OK(holds);
    ASSERT_EQ(holds->size(), 2u);
    EXPECT_EQ((*holds)[0].source, "sla");
    EXPECT_EQ((*holds)[1].reason, "investigating");
    ASSERT_OK((*state)->transaction([](State::Tx& tx) -> Result<void> {
        HOIST_ASSIGN(int removed, tx.deleteHolds(std::string_view("sla")));
        EXPECT_EQ(removed, 1);
        return ok();
    }));
    EXPECT_EQ((*state)->holds()->size(), 1u);
}

int countEvents(State& state, const std::string& action) {
    auto events = state.events(std::nullopt, 1000);
    EXPECT_TRUE(events.has_value());
    if (!events) return -1;
    return static_cast<int>(std::count_if(events->begin(), events->end(),
                                          [&](const Event& e) { return e.action == action; }));
}

// A hold and its audit event go to the holds file; the event reaches the audit log once,
// whether the next step's commit, a read of the log or the next open folds it.
TEST(State, AHoldsWriteIsFoldedIntoTheAuditLogExactlyOnce) {
    TempFolder dir;
    auto path = dir / "state.db";
    StepWrite halt;
    halt.put_holds.push_back({"sla", "p99 too high", "monitor", 10});
    halt.events.push_back({0, 0, "monitor", "halt", "", "", "sla: p99 too high"});
    {
        auto state = State::open(path);
        ASSERT_OK(state);
        ASSERT_OK((*state)->commitHolds(halt));
        EXPECT_TRUE(std::filesystem::exists(dir / "state.db.holds"));
        // Nothing read the log nor committed a step: the event waits in the journal.
    }
    {
        auto state = State::open(path);
        ASSERT_OK(state);
        ASSERT_EQ((*state)->holds()->size(), 1u);
        EXPECT_EQ(countEvents(**state, "halt"), 1);
        StepWrite clear;
        clear.delete_holds.push_back("sla");
        clear.events.push_back({0, 0, "admin", "halt cleared", "", "", "sla"});
        ASSERT_OK((*state)->commitHolds(clear));
        StepWrite step;
        step.events.push_back({0, 0, "coordinator", "step", "", "", ""});
        ASSERT_OK((*state)->commit(step, 0));
        EXPECT_EQ(countEvents(**state, "halt cleared"), 1);
        EXPECT_EQ(countEvents(**state, "halt"), 1);
    }
    auto state = State::open(path);
    ASSERT_OK(state);
    EXPECT_TRUE((*state)->holds()->empty());
    EXPECT_EQ(countEvents(**state, "halt"), 1);
    EXPECT_EQ(countEvents(**state, "halt cleared"), 1);
    // Holds only: a rollout row is refused, and nothing is written.
    StepWrite mixed = halt;
    mixed.registry.push_back({"agent-1", "agent", "http://a"});
    auto refused = (*state)->commitHolds(mixed);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, Errc::Invalid);
    EXPECT_TRUE((*state)->holds()->empty());
}

// Holds a state file kept before the holds file existed are moved there on open.
TEST(State, HoldsInTheStateFileFromBeforeMoveToTheHoldsFile) {
    TempFolder dir;
    auto path = dir / "state.db";
    ASSERT_OK(State::open(path));
    std::filesystem::remove(dir / "state.db.holds");
    execSql(path,
            "INSERT INTO holds (source, reason, by, since_ms, alerts, resolved_ms) VALUES "
            "('oncall', 'investigating', 'admin', 20, '[]', 0)");
    {
        auto state = State::open(path);
        ASSERT_OK(state);
        auto holds = (*state)->holds();
        ASSERT_OK(holds);
        ASSERT_EQ(holds->size(), 1u);
        EXPECT_EQ((*holds)[0].reason, "investigating");
    }
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM holds", -1, &stmt, nullptr);
    sqlite3_step(stmt);
    EXPECT_EQ(sqlite3_column_int(stmt, 0), 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    auto state = State::open(path);
    ASSERT_OK(state);
    EXPECT_EQ((*state)->holds()->size(), 1u);
}

TEST(State, FormatsTimesAsRfc3339) {
    EXPECT_EQ(formatTime(0), "");
    EXPECT_EQ(formatTime(1700000000123), "2023-11-14T22:13:20.123Z");
}

TEST(State, AWriteIsConditionalOnTheLeadershipTerm) {
    TempFolder dir;
    auto state = State::open(dir / "state.db");
    ASSERT_OK(state);
    auto& store = static_cast<StateStore&>(**state);
    EXPECT_EQ(store.term().value_or(-1), 0);
    StepWrite write;
    Deployment d;
    d.id = "d-1";
    d.number = 1;
    d.version = "2.0.0";
    write.deployment = d;
    write.events.push_back({0, 0, "admin", "deployment start", "d-1", "", ""});
    ASSERT_OK(store.commit(write, 0));
    // A new leader claims term 1: the old one's writes are refused and change nothing.
    ASSERT_OK(store.claim(1));
    d.state = DeploymentState::aborted;
    write.deployment = d;
    ASSERT_ERROR(store.commit(write, 0), Errc::Conflict,
                 "write refused: the state's leadership term is 1, this coordinator writes as "
                 "term 0");
    EXPECT_EQ(store.deployment("d-1")->value().state, DeploymentState::staging);
    EXPECT_EQ(store.events(std::nullopt, 10)->size(), 1u);
    ASSERT_OK(store.commit(write, 1));
    EXPECT_EQ(store.deployment("d-1")->value().state, DeploymentState::aborted);
    ASSERT_ERROR(store.claim(0), Errc::Conflict, "term 0 is behind the state's term 1");
}

}  // namespace
}  // namespace hoist::deploy_coordinator
