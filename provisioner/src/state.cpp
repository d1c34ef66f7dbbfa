#include "provisioner/state.hpp"

#include "core/json.hpp"
#include "core/log.hpp"
#include "core/sqlite.hpp"
#include "core/strings.hpp"

namespace hoist::provisioner {

namespace {

// Each entry moves the schema from version i to i + 1. Never edit a shipped entry: add one.
const char* const kMigrations[] = {
    // 1: requests by idempotency key, and the nodes they launched.
    R"SQL(
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
)SQL",
};
static_assert(std::size(kMigrations) == StateStore::kSchemaVersion);

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

NodeRecord readNode(const sqlite::Statement& row) {
    NodeRecord n;
    n.id = row.text(0);
    n.role = row.text(1);
    n.backend = row.text(2);
    n.state = row.text(3);
    n.address = row.text(4);
    n.release = row.text(5);
    n.request_key = row.text(6);
    n.created_at = row.text(7);
    n.updated_at = row.text(8);
    n.message = row.text(9);
    n.pid = row.integer(10);
    return n;
}

constexpr std::string_view kNodeColumns =
    "id, role, backend, state, address, release, request_key, created_at, updated_at, message, pid";

}  // namespace

struct StateStore::Impl {
    explicit Impl(sqlite::Database database) : db(std::move(database)) {}
    sqlite::Database db;

    Result<void> writeRequest(const RequestRecord& r) {
        HOIST_ASSIGN(
            auto stmt,
            db.prepare(
                "INSERT INTO requests (idempotency_key, role, count, release, client_token, state, "
                "error, node_ids, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
                "ON CONFLICT(idempotency_key) DO UPDATE SET state = ?6, error = ?7, node_ids = "
                "?8"));
        return stmt
            .bind(r.key, r.role, r.count, r.release, r.client_token, r.state, r.error,
                  idsToJson(r.node_ids), r.created_at)
            .run();
    }

    Result<void> writeNode(const NodeRecord& n) {
        HOIST_ASSIGN(
            auto stmt,
            db.prepare(
                "INSERT INTO nodes (id, role, backend, state, address, release, request_key, "
                "created_at, updated_at, message, pid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                "?10, ?11) ON CONFLICT(id) DO UPDATE SET state = ?4, address = ?5, updated_at = "
                "?9, "
                "message = ?10, pid = ?11"));
        return stmt
            .bind(n.id, n.role, n.backend, n.state, n.address, n.release, n.request_key,
                  n.created_at, n.updated_at, n.message, n.pid)
            .run();
    }
};

Result<std::unique_ptr<StateStore>> StateStore::open(const std::filesystem::path& file) {
    HOIST_ASSIGN(auto db, sqlite::Database::open(file, "state database " + file.string(),
                                                 sqlite::Database::Sync::Full));
    HOIST_TRY(db.migrate(kMigrations, "provisioner"));
    std::unique_ptr<StateStore> store(new StateStore());
    store->impl_ = std::make_unique<Impl>(std::move(db));
    return store;
}

StateStore::~StateStore() = default;

Result<std::optional<RequestRecord>> StateStore::findRequest(const std::string& key) {
    std::lock_guard lock(mutex_);
    HOIST_ASSIGN(
        auto stmt,
        impl_->db.prepare(
            "SELECT idempotency_key, role, count, release, client_token, state, error, node_ids, "
            "created_at FROM requests WHERE idempotency_key = ?1"));
    HOIST_ASSIGN(bool found, stmt.bind(key).step());
    if (!found) return std::optional<RequestRecord>{};
    RequestRecord r;
    r.key = stmt.text(0);
    r.role = stmt.text(1);
    r.count = static_cast<int>(stmt.integer(2));
    r.release = stmt.text(3);
    r.client_token = stmt.text(4);
    r.state = stmt.text(5);
    r.error = stmt.text(6);
    r.node_ids = idsFromJson(stmt.text(7));
    r.created_at = stmt.text(8);
    return std::optional<RequestRecord>(std::move(r));
}

Result<void> StateStore::putRequest(const RequestRecord& request) {
    std::lock_guard lock(mutex_);
    return impl_->writeRequest(request);
}

Result<void> StateStore::putLaunch(const RequestRecord& request,
                                   const std::vector<NodeRecord>& nodes) {
    std::lock_guard lock(mutex_);
    return impl_->db.transaction([&]() -> Result<void> {
        HOIST_TRY(impl_->writeRequest(request));
        for (const auto& node : nodes) HOIST_TRY(impl_->writeNode(node));
        return ok();
    });
}

Result<void> StateStore::putNode(const NodeRecord& node) {
    std::lock_guard lock(mutex_);
    return impl_->writeNode(node);
}

Result<std::optional<NodeRecord>> StateStore::findNode(const std::string& id) {
    std::lock_guard lock(mutex_);
    HOIST_ASSIGN(auto stmt, impl_->db.prepare("SELECT " + std::string(kNodeColumns) +
                                              " FROM nodes WHERE id = ?1"));
    HOIST_ASSIGN(bool found, stmt.bind(id).step());
    if (!found) return std::optional<NodeRecord>{};
    return std::optional<NodeRecord>(readNode(stmt));
}

Result<std::vector<NodeRecord>> StateStore::nodes(bool include_terminated) {
    std::lock_guard lock(mutex_);
    std::string sql = "SELECT " + std::string(kNodeColumns) + " FROM nodes";
    if (!include_terminated) sql += " WHERE state != 'terminated'";
    sql += " ORDER BY created_at, id";
    HOIST_ASSIGN(auto stmt, impl_->db.prepare(sql));
    std::vector<NodeRecord> out;
    HOIST_TRY(stmt.each([&](const sqlite::Statement& row) { out.push_back(readNode(row)); }));
    return out;
}

}  // namespace hoist::provisioner
