#include "core/sqlite.hpp"

#include <sqlite3.h>

#include <cerrno>
#include <cstdio>

#include "core/log.hpp"

namespace hoist::sqlite {

// ---- Statement

Statement::Statement(Statement&& other) noexcept
    : stmt_(std::exchange(other.stmt_, nullptr)), db_(other.db_) {}

Statement& Statement::operator=(Statement&& other) noexcept {
    if (this != &other) {
        sqlite3_finalize(stmt_);
        stmt_ = std::exchange(other.stmt_, nullptr);
        db_ = other.db_;
    }
    return *this;
}

Statement::~Statement() {
    sqlite3_finalize(stmt_);
}

void Statement::bindOne(int index, std::string_view value) {
    sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
}

void Statement::bindInteger(int index, std::int64_t value) {
    sqlite3_bind_int64(stmt_, index, value);
}

Result<bool> Statement::step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return std::unexpected(db_->error("step"));
}

Result<void> Statement::run() {
    return each([](const Statement&) {});
}

std::string Statement::text(int column) const {
    const auto* value = sqlite3_column_text(stmt_, column);
    if (value == nullptr) return {};
    return std::string(reinterpret_cast<const char*>(value),
                       static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

std::int64_t Statement::integer(int column) const {
    return sqlite3_column_int64(stmt_, column);
}

// ---- Database

void Database::Close::operator()(sqlite3* db) const {
    sqlite3_close_v2(db);
}

Database::Database(Database&& other) noexcept = default;
Database& Database::operator=(Database&& other) noexcept = default;
Database::~Database() = default;

namespace {

bool damagedCode(int rc) {
    rc &= 0xff;  // the primary code of an extended one
    return rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB;
}

// The file and its WAL and shared-memory companions move to "<file>.damaged-<n>[-wal|-shm]":
// kept for a person, and out of the way of the new database (an old WAL beside a new file
// could otherwise be replayed into it).
Result<std::filesystem::path> setAside(const std::filesystem::path& path) {
    std::error_code ec;
    std::filesystem::path aside;
    for (int n = 1;; ++n) {
        aside = path.string() + ".damaged-" + std::to_string(n);
        if (!std::filesystem::exists(aside, ec)) break;
    }
    for (const char* suffix : {"-wal", "-shm", ""}) {
        std::filesystem::path from = path.string() + suffix;
        if (!std::filesystem::exists(from, ec)) continue;
        if (::rename(from.c_str(), (aside.string() + suffix).c_str()) != 0)
            return failErrno(Errc::Io, errno, "cannot move ", from.string(), " aside");
    }
    return aside;
}

}  // namespace

Result<Database> Database::openChecked(const std::filesystem::path& path, std::string name,
                                       Sync sync) {
    Database self;
    self.name_ = std::move(name);
    self.sync_ = sync;
    // A file that exists but is empty held a database once (a new one is created with its
    // schema at once): opening it would start over silently.
    std::error_code ec;
    if (auto size = std::filesystem::file_size(path, ec); !ec && size == 0)
        return fail(Errc::Corrupt, self.name_, ": the file is empty (0 bytes)");
    sqlite3* raw = nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &raw,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                             nullptr);
    self.db_.reset(raw);
    if (rc != SQLITE_OK) return std::unexpected(self.error("cannot open"));
    sqlite3_busy_timeout(raw, 5000);
    auto damaged = [&self](const Error& e) -> Error {
        if (!damagedCode(sqlite3_extended_errcode(self.db_.get()))) return e;
        return Error{Errc::Corrupt, e.message, 0};
    };
    if (auto wal = self.exec("PRAGMA journal_mode=WAL", "cannot switch to WAL"); !wal)
        return std::unexpected(damaged(wal.error()));
    // quick_check reads every page (not the index contents): O(size), a few ms for a state
    // database, and the difference between noticing damage now or losing a hold later.
    HOIST_ASSIGN(auto check, self.prepare("PRAGMA quick_check(3)"));
    std::string problems;
    while (true) {
        auto row = check.step();
        if (!row) return std::unexpected(damaged(row.error()));
        if (!*row) break;
        auto line = check.text(0);
        if (line != "ok") problems += (problems.empty() ? "" : "; ") + line;
    }
    if (!problems.empty())
        return fail(Errc::Corrupt, self.name_, ": PRAGMA quick_check found damage: ", problems);
    HOIST_TRY(self.exec(sync == Sync::Full ? "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON"
                                           : "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON",
                        "pragmas"));
    return self;
}

Result<Database> Database::open(const std::filesystem::path& path, std::string name, Sync sync,
                                Damaged on_damaged) {
    auto opened = openChecked(path, name, sync);
    if (opened || opened.error().code != Errc::Corrupt) return opened;
    if (on_damaged == Damaged::Refuse)
        return fail(Errc::Corrupt, opened.error().message,
                    "; refusing to use it (what it held would be lost without a word): restore "
                    "it from a backup, or move it aside to begin with an empty one");
    HOIST_ASSIGN(auto aside, setAside(path));
    log::warn(
        "sqlite", "the damaged database was moved aside; starting with an empty one",
        {{"database", name}, {"damage", opened.error().message}, {"kept_as", aside.string()}});
    return openChecked(path, std::move(name), sync);
}

Error Database::error(std::string_view what) const {
    return Error{
        Errc::Io,
        detail::concat(name_, ": ", what, ": ", db_ ? sqlite3_errmsg(db_.get()) : "out of memory"),
        0};
}

Result<void> Database::exec(std::string_view sql, std::string_view what) {
    char* message = nullptr;
    if (sqlite3_exec(db_.get(), std::string(sql).c_str(), nullptr, nullptr, &message) !=
        SQLITE_OK) {
        std::string text = message != nullptr ? message : sqlite3_errmsg(db_.get());
        sqlite3_free(message);
        return fail(Errc::Io, name_, ": ", what, ": ", text);
    }
    return ok();
}

Result<Statement> Database::prepare(std::string_view sql) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_.get(), sql.data(), static_cast<int>(sql.size()), &stmt, nullptr) !=
        SQLITE_OK)
        return std::unexpected(error("prepare"));
    return Statement(stmt, this);
}

int Database::userVersion() const {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_.get(), "PRAGMA user_version", -1, &stmt, nullptr) != SQLITE_OK)
        return -1;
    int version = sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int(stmt, 0) : -1;
    sqlite3_finalize(stmt);
    return version;
}

int Database::changes() const {
    return sqlite3_changes(db_.get());
}

Result<void> Database::migrate(std::span<const char* const> migrations, std::string_view program) {
    const int latest = static_cast<int>(migrations.size());
    int version = userVersion();
    if (version < 0) return std::unexpected(error("cannot read the schema version"));
    if (version > latest)
        return fail(Errc::Invalid, name_, " has schema version ", version, ", newer than this ",
                    program, " knows (", latest, "); use a newer ", program);
    for (int next = version; next < latest; ++next) {
        auto applied = transaction(
            [&]() -> Result<void> {
                HOIST_TRY(exec(migrations[static_cast<size_t>(next)], "migration"));
                return exec("PRAGMA user_version=" + std::to_string(next + 1), "migration");
            },
            true);
        if (!applied)
            return std::unexpected(withContext(
                applied.error(), detail::concat("migrating to schema version ", next + 1)));
    }
    return ok();
}

Result<void> Database::transaction(const std::function<Result<void>()>& body, bool durable) {
    bool raise = durable && sync_ != Sync::Full;
    if (raise) HOIST_TRY(exec("PRAGMA synchronous=FULL", "pragma"));
    auto result = exec("BEGIN IMMEDIATE", "begin");
    if (result) {
        result = body();
        if (result) result = exec("COMMIT", "commit");
        if (!result) (void)exec("ROLLBACK", "rollback");
    }
    if (raise) (void)exec("PRAGMA synchronous=NORMAL", "pragma");
    return result;
}

}  // namespace hoist::sqlite
