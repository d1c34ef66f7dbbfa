#include "provisioner/state.hpp"

#include <sqlite3.h>

#include "core/json.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"

namespace hoist::provisioner {

namespace {

struct DbClose {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalize {
    void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using DbPtr = std::unique_ptr<sqlite3, DbClose>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalize>;

constexpr std::string_view kSchema = R"SQL(
CREATE TABLE IF NOT EXISTS requests (
    idempotency_key TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    count INTEGER NOT NULL,
    release TEXT NOT NULL,
    client_token TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    node_ids TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS nodes (
    id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    backend TEXT NOT NULL,
    state TEXT NOT NULL,
    address TEXT NOT NULL DEFAULT '',
    release TEXT NOT NULL DEFAULT '',
    request_key TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    pid INTEGER NOT NULL DEFAULT 0
);
)SQL";

std::string column(sqlite3_stmt* stmt, int i) {
    const unsigned char* text = sqlite3_column_text(stmt, i);
    return text ? reinterpret_cast<const char*>(text) : "";
}

std::string idsToJson(const std::vector<std::string>& ids) {
    json::Writer w;
    w.beginArray();
    for (const auto& id : ids) w.value(id);
    w.endArray();
    return w.str();
}

std::vector<std::string> idsFromJson(const std::string& text) {
    std::vector<std::string> out;
    auto doc = json::parse(text, "node_ids");
    if (!doc || !doc->IsArray()) return out;
    for (const auto& v : doc->GetArray())
        if (v.IsString()) out.emplace_back(v.GetString(), v.GetStringLength());
    return out;
}

NodeRecord readNode(sqlite3_stmt* stmt) {
    NodeRecord n;
    n.id = column(stmt, 0);
    n.role = column(stmt, 1);
    n.backend = column(stmt, 2);
    n.state = column(stmt, 3);
    n.address = column(stmt, 4);
    n.release = column(stmt, 5);
    n.request_key = column(stmt, 6);
    n.created_at = column(stmt, 7);
    n.updated_at = column(stmt, 8);
    n.message = column(stmt, 9);
    n.pid = sqlite3_column_int64(stmt, 10);
    return n;
}

constexpr std::string_view kNodeColumns =
    "id, role, backend, state, address, release, request_key, created_at, updated_at, message, pid";

}  // namespace

struct StateStore::Impl {
    DbPtr db;
    std::string path;

    Error sqlError(std::string_view what) const {
        return Error{
            Errc::Io,
            detail::concat("state database ", path, ": ", what, ": ", sqlite3_errmsg(db.get())), 0};
    }

    Result<void> exec(std::string_view sql) {
        char* message = nullptr;
        if (sqlite3_exec(db.get(), std::string(sql).c_str(), nullptr, nullptr, &message) !=
            SQLITE_OK) {
            std::string text = message ? message : "unknown error";
            sqlite3_free(message);
            return fail(Errc::Io, "state database ", path, ": ", text);
        }
        return ok();
    }

    Result<StmtPtr> prepare(std::string_view sql) {
        sqlite3_stmt* stmt = nullptr;
        if (sqlite3_prepare_v2(db.get(), sql.data(), static_cast<int>(sql.size()), &stmt,
                               nullptr) != SQLITE_OK)
            return std::unexpected(sqlError("prepare"));
        return StmtPtr(stmt);
    }

    static void bind(sqlite3_stmt* stmt, int i, const std::string& value) {
        sqlite3_bind_text(stmt, i, value.c_str(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
    }

    Result<void> step(sqlite3_stmt* stmt) {
        if (sqlite3_step(stmt) != SQLITE_DONE) return std::unexpected(sqlError("write"));
        return ok();
    }

    Result<void> writeRequest(const RequestRecord& r) {
        HOIST_ASSIGN(
            auto stmt,
            prepare(
                "INSERT INTO requests (idempotency_key, role, count, release, client_token, state, "
                "error, node_ids, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
                "ON CONFLICT(idempotency_key) DO UPDATE SET state = ?6, error = ?7, node_ids = "
                "?8"));
        bind(stmt.get(), 1, r.key);
        bind(stmt.get(), 2, r.role);
        sqlite3_bind_int(stmt.get(), 3, r.count);
        bind(stmt.get(), 4, r.release);
        bind(stmt.get(), 5, r.client_token);
        bind(stmt.get(), 6, r.state);
        bind(stmt.get(), 7, r.error);
        bind(stmt.get(), 8, idsToJson(r.node_ids));
        bind(stmt.get(), 9, r.created_at);
        return step(stmt.get());
    }

    Result<void> writeNode(const NodeRecord& n) {
        HOIST_ASSIGN(
            auto stmt,
            prepare(
                "INSERT INTO nodes (id, role, backend, state, address, release, request_key, "
                "created_at, updated_at, message, pid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                "?10, ?11) ON CONFLICT(id) DO UPDATE SET state = ?4, address = ?5, updated_at = "
                "?9, "
                "message = ?10, pid = ?11"));
        bind(stmt.get(), 1, n.id);
        bind(stmt.get(), 2, n.role);
        bind(stmt.get(), 3, n.backend);
        bind(stmt.get(), 4, n.state);
        bind(stmt.get(), 5, n.address);
        bind(stmt.get(), 6, n.release);
        bind(stmt.get(), 7, n.request_key);
        bind(stmt.get(), 8, n.created_at);
        bind(stmt.get(), 9, n.updated_at);
        bind(stmt.get(), 10, n.message);
        sqlite3_bind_int64(stmt.get(), 11, n.pid);
        return step(stmt.get());
    }
};

Result<std::unique_ptr<StateStore>> StateStore::open(const std::filesystem::path& file) {
    std::unique_ptr<StateStore> store(new StateStore());
    store->impl_ = std::make_unique<Impl>();
    auto& impl = *store->impl_;
    impl.path = file.string();
    sqlite3* db = nullptr;
    int rc = sqlite3_open_v2(impl.path.c_str(), &db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                             nullptr);
    impl.db.reset(db);
    if (rc != SQLITE_OK) return std::unexpected(impl.sqlError("open"));
    sqlite3_busy_timeout(db, 5000);
    HOIST_TRY(impl.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"));

    HOIST_ASSIGN(auto version_stmt, impl.prepare("PRAGMA user_version"));
    int version = 0;
    if (sqlite3_step(version_stmt.get()) == SQLITE_ROW)
        version = sqlite3_column_int(version_stmt.get(), 0);
    if (version > kSchemaVersion)
        return fail(Errc::Corrupt, "state database ", impl.path, " has schema version ", version,
                    ", newer than this provisioner's ", kSchemaVersion);
    if (version < kSchemaVersion) {
        HOIST_TRY(impl.exec("BEGIN IMMEDIATE"));
        auto created = impl.exec(std::string(kSchema) +
                                 "PRAGMA user_version = " + std::to_string(kSchemaVersion) + ";");
        if (!created) {
            (void)impl.exec("ROLLBACK");
            return std::unexpected(created.error());
        }
        HOIST_TRY(impl.exec("COMMIT"));
    }
    return store;
}

StateStore::~StateStore() = default;

Result<std::optional<RequestRecord>> StateStore::findRequest(const std::string& key) {
    std::lock_guard lock(mutex_);
    HOIST_ASSIGN(
        auto stmt,
        impl_->prepare(
            "SELECT idempotency_key, role, count, release, client_token, state, error, node_ids, "
            "created_at FROM requests WHERE idempotency_key = ?1"));
    Impl::bind(stmt.get(), 1, key);
    int rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_DONE) return std::optional<RequestRecord>{};
    if (rc != SQLITE_ROW) return std::unexpected(impl_->sqlError("read request"));
    RequestRecord r;
    r.key = column(stmt.get(), 0);
    r.role = column(stmt.get(), 1);
    r.count = sqlite3_column_int(stmt.get(), 2);
    r.release = column(stmt.get(), 3);
    r.client_token = column(stmt.get(), 4);
    r.state = column(stmt.get(), 5);
    r.error = column(stmt.get(), 6);
    r.node_ids = idsFromJson(column(stmt.get(), 7));
    r.created_at = column(stmt.get(), 8);
    return std::optional<RequestRecord>(std::move(r));
}

Result<void> StateStore::putRequest(const RequestRecord& request) {
    std::lock_guard lock(mutex_);
    return impl_->writeRequest(request);
}

Result<void> StateStore::putLaunch(const RequestRecord& request,
                                   const std::vector<NodeRecord>& nodes) {
    std::lock_guard lock(mutex_);
    HOIST_TRY(impl_->exec("BEGIN IMMEDIATE"));
    auto write = [&]() -> Result<void> {
        HOIST_TRY(impl_->writeRequest(request));
        for (const auto& node : nodes) HOIST_TRY(impl_->writeNode(node));
        return ok();
    }();
    if (!write) {
        (void)impl_->exec("ROLLBACK");
        return write;
    }
    return impl_->exec("COMMIT");
}

Result<void> StateStore::putNode(const NodeRecord& node) {
    std::lock_guard lock(mutex_);
    return impl_->writeNode(node);
}

Result<std::optional<NodeRecord>> StateStore::findNode(const std::string& id) {
    std::lock_guard lock(mutex_);
    HOIST_ASSIGN(auto stmt, impl_->prepare("SELECT " + std::string(kNodeColumns) +
                                           " FROM nodes WHERE id = ?1"));
    Impl::bind(stmt.get(), 1, id);
    int rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_DONE) return std::optional<NodeRecord>{};
    if (rc != SQLITE_ROW) return std::unexpected(impl_->sqlError("read node"));
    return std::optional<NodeRecord>(readNode(stmt.get()));
}

Result<std::vector<NodeRecord>> StateStore::nodes(bool include_terminated) {
    std::lock_guard lock(mutex_);
    std::string sql = "SELECT " + std::string(kNodeColumns) + " FROM nodes";
    if (!include_terminated) sql += " WHERE state != 'terminated'";
    sql += " ORDER BY created_at, id";
    HOIST_ASSIGN(auto stmt, impl_->prepare(sql));
    std::vector<NodeRecord> out;
    int rc;
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) out.push_back(readNode(stmt.get()));
    if (rc != SQLITE_DONE) return std::unexpected(impl_->sqlError("read nodes"));
    return out;
}

}  // namespace hoist::provisioner
