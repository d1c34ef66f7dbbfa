#include <gtest/gtest.h>

#include "core/sqlite.hpp"
#include "testing.hpp"

namespace hoist::sqlite {
namespace {

const char* const kTwo[] = {
    "CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)",
    "ALTER TABLE kv ADD COLUMN note TEXT NOT NULL DEFAULT ''",
};

Result<std::int64_t> count(Database& db) {
    HOIST_ASSIGN(auto stmt, db.prepare("SELECT COUNT(*) FROM kv"));
    HOIST_ASSIGN(bool row, stmt.step());
    if (!row) return fail(Errc::Internal, "no row");
    return stmt.integer(0);
}

TEST(Sqlite, MigratesStepByStepAndRefusesANewerFile) {
    testing::TempFolder tmp;
    {
        auto db = Database::open(tmp / "s.db", "state s.db");
        ASSERT_OK(db);
        ASSERT_OK(db->migrate(std::span(kTwo, 1), "tester"));
        EXPECT_EQ(db->userVersion(), 1);
        ASSERT_OK(db->migrate(kTwo, "tester"));  // only the second runs now
        EXPECT_EQ(db->userVersion(), 2);
        auto insert = db->prepare("INSERT INTO kv (k, v, note) VALUES (?1, ?2, ?3)");
        ASSERT_OK(insert);
        ASSERT_OK(insert->bind(std::string("a"), 7, "first").run());
        auto read = db->prepare("SELECT v, note FROM kv WHERE k = ?1");
        ASSERT_OK(read);
        auto row = read->bind("a").step();
        ASSERT_OK(row);
        ASSERT_TRUE(*row);
        EXPECT_EQ(read->integer(0), 7);
        EXPECT_EQ(read->text(1), "first");
    }
    auto older = Database::open(tmp / "s.db", "state s.db");
    ASSERT_OK(older);
    ASSERT_ERROR(
        older->migrate(std::span(kTwo, 1), "tester"), Errc::Invalid,
        "state s.db has schema version 2, newer than this tester knows (1); use a newer tester");
}

/// A database of `rows` rows of 1 KiB, closed and checkpointed (everything in the main file).
void fill(const std::filesystem::path& path, int rows) {
    auto db = Database::open(path, "state s.db");
    ASSERT_OK(db);
    ASSERT_OK(db->migrate(std::span(kTwo, 1), "tester"));
    ASSERT_OK(db->transaction([&]() -> Result<void> {
        for (int i = 0; i < rows; ++i) {
            HOIST_ASSIGN(auto insert, db->prepare("INSERT INTO kv (k, v) VALUES (?1, ?2)"));
            HOIST_TRY(insert.bind(std::to_string(i) + std::string(1000, 'x'), i).run());
        }
        return ok();
    }));
    ASSERT_OK(db->exec("PRAGMA wal_checkpoint(TRUNCATE)", "checkpoint"));
}

TEST(Sqlite, AnEmptyFileIsRefusedNotStartedOver) {
    testing::TempFolder tmp;
    testing::writeFile(tmp / "s.db", "");
    ASSERT_ERROR(Database::open(tmp / "s.db", "state s.db"), Errc::Corrupt,
                 "state s.db: the file is empty (0 bytes); refusing to use it");
    EXPECT_EQ(std::filesystem::file_size(tmp / "s.db"), 0u) << "the refusal changed the file";
}

TEST(Sqlite, PageDamageIsFoundAtOpen) {
    testing::TempFolder tmp;
    auto path = tmp / "s.db";
    fill(path, 200);
    // Garbage over a page in the middle of the table's b-tree.
    auto bytes = testing::readFile(path);
    ASSERT_GT(bytes.size(), 40u * 4096u);
    for (std::size_t i = 20 * 4096; i < 20 * 4096 + 4096; ++i) bytes[i] = static_cast<char>(0xA5);
    testing::writeFile(path, bytes);
    ASSERT_ERROR(Database::open(path, "state s.db"), Errc::Corrupt, "state s.db");
    auto refused = Database::open(path, "state s.db");
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find("refusing to use it"), std::string::npos)
        << refused.error().message;
    EXPECT_EQ(testing::readFile(path), bytes) << "the refusal changed the file";
}

TEST(Sqlite, StartOverMovesTheDamagedFileAsideAndBeginsEmpty) {
    testing::TempFolder tmp;
    auto path = tmp / "s.db";
    testing::writeFile(path, "");
    auto db =
        Database::open(path, "state s.db", Database::Sync::Normal, Database::Damaged::StartOver);
    ASSERT_OK(db);
    EXPECT_EQ(db->userVersion(), 0);
    EXPECT_TRUE(std::filesystem::exists(tmp / "s.db.damaged-1"));
    EXPECT_EQ(std::filesystem::file_size(tmp / "s.db.damaged-1"), 0u);
    // A sound file is opened as it is, StartOver or not.
    ASSERT_OK(db->migrate(std::span(kTwo, 1), "tester"));
    db = Database::open(path, "state s.db", Database::Sync::Normal, Database::Damaged::StartOver);
    ASSERT_OK(db);
    EXPECT_EQ(db->userVersion(), 1);
    EXPECT_FALSE(std::filesystem::exists(tmp / "s.db.damaged-2"));
}

TEST(Sqlite, AFailedMigrationChangesNothing) {
    testing::TempFolder tmp;
    const char* const broken[] = {kTwo[0], "ALTER TABLE kv ADD COLUMN x; NOT SQL"};
    auto db = Database::open(tmp / "s.db", "state s.db");
    ASSERT_OK(db);
    ASSERT_ERROR(db->migrate(broken, "tester"), Errc::Io,
                 "migrating to schema version 2: state s.db: migration:");
    EXPECT_EQ(db->userVersion(), 1);
    auto columns = db->prepare("SELECT COUNT(*) FROM pragma_table_info('kv')");
    ASSERT_OK(columns);
    ASSERT_OK(columns->step());
    EXPECT_EQ(columns->integer(0), 2) << "the half-applied ALTER was rolled back";
}

TEST(Sqlite, ATransactionThatFailsIsRolledBack) {
    testing::TempFolder tmp;
    auto db = Database::open(tmp / "s.db", "state s.db", Database::Sync::Full);
    ASSERT_OK(db);
    ASSERT_OK(db->migrate(std::span(kTwo, 1), "tester"));
    auto add = [&](const char* key) -> Result<void> {
        HOIST_ASSIGN(auto stmt, db->prepare("INSERT INTO kv (k, v) VALUES (?1, 1)"));
        return stmt.bind(key).run();
    };
    ASSERT_OK(db->transaction([&]() -> Result<void> { return add("a"); }, true));
    ASSERT_ERROR(db->transaction([&]() -> Result<void> {
        HOIST_TRY(add("b"));
        return add("a");  // the primary key refuses it
    }),
                 Errc::Io, "state s.db: step: UNIQUE constraint failed: kv.k");
    auto n = count(*db);
    ASSERT_OK(n);
    EXPECT_EQ(*n, 1) << "b went with the failed transaction";
    auto erase = db->prepare("DELETE FROM kv WHERE k IN ('a', 'b')");
    ASSERT_OK(erase);
    ASSERT_OK(erase->run());
    EXPECT_EQ(db->changes(), 1);
}

}  // namespace
}  // namespace hoist::sqlite
