#include "provisioner/state.hpp"

#include <sqlite3.h>

#include "testing.hpp"

namespace hoist::provisioner {
namespace {

using hoist::testing::TempFolder;

TEST(StateStore, KeepsRequestsAndNodesAcrossReopen) {
    TempFolder tmp;
    {
        auto store = StateStore::open(tmp / "state.db");
        ASSERT_OK(store);
        RequestRecord r{"k1", "agent", 2, "1.0.0", "hoist-abc", "pending", "", "2026", {}};
        ASSERT_OK((*store)->putRequest(r));
        r.state = "done";
        r.node_ids = {"i-1", "i-2"};
        NodeRecord a{"i-1", "agent", "aws", "pending", "10.0.0.1", "1.0.0",
                     "k1",  "t1",    "t1",  "",        0};
        NodeRecord b{"i-2", "agent", "aws", "running", "10.0.0.2", "1.0.0",
                     "k1",  "t2",    "t2",  "",        0};
        ASSERT_OK((*store)->putLaunch(r, {a, b}));
        b.state = "terminated";
        ASSERT_OK((*store)->putNode(b));
    }
    auto store = StateStore::open(tmp / "state.db");
    ASSERT_OK(store);
    auto r = (*store)->findRequest("k1");
    ASSERT_OK(r);
    ASSERT_TRUE(r->has_value());
    EXPECT_EQ((*r)->state, "done");
    EXPECT_EQ((*r)->client_token, "hoist-abc");
    EXPECT_EQ((*r)->node_ids, (std::vector<std::string>{"i-1", "i-2"}));
    auto live = (*store)->nodes(false);
    ASSERT_OK(live);
    ASSERT_EQ(live->size(), 1u);
    EXPECT_EQ((*live)[0].id, "i-1");
    EXPECT_EQ((*live)[0].address, "10.0.0.1");
    auto all = (*store)->nodes(true);
    ASSERT_OK(all);
    EXPECT_EQ(all->size(), 2u);
    auto missing = (*store)->findNode("i-9");
    ASSERT_OK(missing);
    EXPECT_FALSE(missing->has_value());
}

TEST(StateStore, RefusesANewerSchema) {
    TempFolder tmp;
    ASSERT_OK(StateStore::open(tmp / "state.db"));
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((tmp / "state.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
    ASSERT_ERROR(
        StateStore::open(tmp / "state.db"), Errc::Invalid,
        "has schema version 99, newer than this provisioner knows (1); use a newer provisioner");
}

TEST(StateStore, UsesWriteAheadLogging) {
    TempFolder tmp;
    ASSERT_OK(StateStore::open(tmp / "state.db"));
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((tmp / "state.db").c_str(), &db), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
    EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "wal");
    sqlite3_finalize(stmt);
    sqlite3_close(db);
}

}  // namespace
}  // namespace hoist::provisioner
