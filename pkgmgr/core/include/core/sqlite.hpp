#pragma once

#include <concepts>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/error.hpp"

struct sqlite3;
struct sqlite3_stmt;

/// SQLite, where the coordinator and the provisioner keep their state: one handle per file,
/// prepared statements with typed binds and columns, schema migrations counted by
/// `PRAGMA user_version`, and transactions. Errors are Io and name the database and the step.
namespace hoist::sqlite {

class Database;

/// A prepared statement; parameters bind in order (?1, ?2, ...).
class Statement {
public:
    Statement(Statement&& other) noexcept;
    Statement& operator=(Statement&& other) noexcept;
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    ~Statement();

    /// Binds every parameter, in order: strings (text) and integers (bool as 0 or 1).
    template <class... Args>
    Statement& bind(const Args&... args) {
        int index = 0;
        (bindOne(++index, args), ...);
        return *this;
    }
    /// One step: true when a row is there to read, false when the statement is done.
    Result<bool> step();
    /// Steps to the end (a write).
    Result<void> run();
    /// Steps through every row, calling `read(*this)` on each.
    template <class Read>
    Result<void> each(Read read) {
        while (true) {
            HOIST_ASSIGN(bool row, step());
            if (!row) return ok();
            read(static_cast<const Statement&>(*this));
        }
    }
    /// Columns of the current row; NULL reads as "" and 0.
    std::string text(int column) const;
    std::int64_t integer(int column) const;

private:
    friend class Database;
    Statement(sqlite3_stmt* stmt, const Database* db) : stmt_(stmt), db_(db) {}
    void bindOne(int index, std::string_view value);
    void bindInteger(int index, std::int64_t value);
    template <std::integral T>
    void bindOne(int index, T value) {
        bindInteger(index, static_cast<std::int64_t>(value));
    }

    sqlite3_stmt* stmt_ = nullptr;
    const Database* db_ = nullptr;
};

class Database {
public:
    /// How commits reach the disk: Normal (WAL; a crash of the machine may lose the last
    /// commits but never corrupts) unless a transaction asks for durability, or Full (every
    /// commit is on disk when it returns).
    enum class Sync { Normal, Full };

    /// What open does with a damaged file: Refuse (Corrupt), or StartOver (the file and its
    /// -wal/-shm move to "<file>.damaged-<n>" and an empty database is created).
    enum class Damaged { Refuse, StartOver };

    /// Opens (creating when absent) the file in WAL mode with foreign keys on and a 5 s busy
    /// timeout. `name` starts every error message ("state /var/lib/hoist/coordinator.db").
    /// A file that exists but is empty (0 bytes), is not a database, or fails
    /// `PRAGMA quick_check` is damaged: see Damaged.
    static Result<Database> open(const std::filesystem::path& path, std::string name,
                                 Sync sync = Sync::Normal, Damaged on_damaged = Damaged::Refuse);
    Database(Database&& other) noexcept;
    Database& operator=(Database&& other) noexcept;
    ~Database();

    Result<void> exec(std::string_view sql, std::string_view what);
    Result<Statement> prepare(std::string_view sql);
    /// `PRAGMA user_version`; -1 when it cannot be read.
    int userVersion() const;
    /// Rows the latest INSERT, UPDATE or DELETE changed.
    int changes() const;
    /// Brings the schema up to migrations.size(): entry i moves version i to i + 1, in one
    /// transaction with the version bump. Invalid when the file is newer than `program` knows.
    Result<void> migrate(std::span<const char* const> migrations, std::string_view program);
    /// Runs `body` between BEGIN IMMEDIATE and COMMIT, rolling back when it or the commit
    /// fails. `durable` makes this commit reach the disk before it returns.
    Result<void> transaction(const std::function<Result<void>()>& body, bool durable = false);
    /// An Io error naming the database, `what` failed and SQLite's message.
    Error error(std::string_view what) const;
    const std::string& name() const { return name_; }

private:
    Database() = default;
    static Result<Database> openChecked(const std::filesystem::path& path, std::string name,
                                        Sync sync);
    struct Close {
        void operator()(sqlite3* db) const;
    };
    std::unique_ptr<sqlite3, Close> db_;
    std::string name_;
    Sync sync_ = Sync::Normal;
};

}  // namespace hoist::sqlite
