#include "pkgmgr/wire.hpp"

#include "core/http_client.hpp"
#include "core/json.hpp"
#include "pkgmgr/status.hpp"

namespace hoist::pkgmgr {

namespace {

constexpr std::string_view kNotRegistered = "' is not registered";

// A nullable integer: null and absence read as 0.
Result<std::int64_t> nullableInt(const json::Value& obj, std::string_view key,
                                 std::string_view ctx) {
    auto it = obj.FindMember(json::Value(
        rapidjson::StringRef(key.data(), static_cast<rapidjson::SizeType>(key.size()))));
    if (it == obj.MemberEnd() || it->value.IsNull()) return 0;
    if (!it->value.IsInt64())
        return fail(Errc::Invalid, ctx, ": field '", key, "' must be an integer or null");
    return it->value.GetInt64();
}

Result<std::vector<PackageRef>> refsFrom(const json::Value& array, std::string_view ctx) {
    std::vector<PackageRef> refs;
    std::string item_ctx = detail::concat(ctx, ": packages");
    for (const auto& item : array.GetArray()) {
        HOIST_ASSIGN(auto ref, PackageRef::fromJson(item, item_ctx));
        refs.push_back(std::move(ref));
    }
    return refs;
}

void writeRefs(json::Writer& w, const std::vector<PackageRef>& refs) {
    w.key("packages").beginArray();
    for (const auto& ref : refs) ref.write(w);
    w.endArray();
}

// An empty body reads as an empty object (POST /v1/rollback takes either).
Result<json::Document> parseBody(std::string_view text, std::string_view ctx) {
    if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) text = "{}";
    return json::parseObject(text, ctx);
}

// The optional "epoch" of a command or pull answer: absent reads as 0 (no epoch).
Result<std::int64_t> readEpoch(const json::Value& doc, std::string_view ctx) {
    HOIST_ASSIGN(auto epoch, json::optInt(doc, "epoch", ctx));
    if (epoch.value_or(0) < 0)
        return fail(Errc::Invalid, ctx, ": field 'epoch' must not be negative");
    return epoch.value_or(0);
}

void writeEpoch(json::Writer& w, std::int64_t epoch) {
    if (epoch > 0) w.field("epoch", epoch);
}

// The optional "deployment" and "report_to" of a restart or rollback.
Result<void> readReportTarget(const json::Value& doc, std::string_view ctx, std::string& deployment,
                              std::string& report_to) {
    HOIST_ASSIGN(auto d, json::optString(doc, "deployment", ctx));
    HOIST_ASSIGN(auto r, json::optString(doc, "report_to", ctx));
    deployment = d.value_or("");
    report_to = r.value_or("");
    return ok();
}

}  // namespace

// ---- status ping

Result<StatusPing> StatusPing::fromJson(std::string_view text) {
    constexpr std::string_view ctx = "status ping";
    HOIST_ASSIGN(auto doc, json::parseObject(text, ctx));
    HOIST_TRY(json::requireMembers(doc, {"node", "seq", "state"}, ctx));
    StatusPing ping;
    HOIST_ASSIGN(ping.node, json::getString(doc, "node", ctx));
    HOIST_ASSIGN(auto deployment, json::optString(doc, "deployment", ctx));
    ping.deployment = deployment.value_or("");
    HOIST_ASSIGN(ping.seq, json::getInt(doc, "seq", ctx));
    HOIST_ASSIGN(ping.state, json::getString(doc, "state", ctx));
    if (!isKnownState(ping.state))
        return fail(Errc::Invalid, ctx, ": field 'state' has the unknown value '", ping.state, "'");
    HOIST_ASSIGN(auto from, json::optInt(doc, "from_generation", ctx));
    HOIST_ASSIGN(auto to, json::optInt(doc, "to_generation", ctx));
    ping.from_generation = from.value_or(0);
    ping.to_generation = to.value_or(0);
    HOIST_ASSIGN(auto release, json::optString(doc, "release", ctx));
    HOIST_ASSIGN(auto message, json::optString(doc, "message", ctx));
    HOIST_ASSIGN(auto time, json::optString(doc, "time", ctx));
    ping.release = release.value_or("");
    ping.message = message.value_or("");
    ping.time = time.value_or("");
    if (ping.node.empty()) return fail(Errc::Invalid, ctx, ": field 'node' is empty");
    if (ping.seq < 0) return fail(Errc::Invalid, ctx, ": field 'seq' must not be negative");
    return ping;
}

std::string StatusPing::toJson() const {
    json::Writer w;
    w.beginObject()
        .field("node", node)
        .field("deployment", deployment)
        .field("seq", seq)
        .field("state", state)
        .field("from_generation", from_generation)
        .field("to_generation", to_generation)
        .field("release", release)
        .field("message", message)
        .field("time", time)
        .endObject();
    return w.str();
}

// ---- registration

Result<Registration> Registration::fromJson(std::string_view text) {
    constexpr std::string_view ctx = "registration";
    HOIST_ASSIGN(auto doc, json::parseObject(text, ctx));
    HOIST_TRY(json::requireMembers(doc, {"id", "role", "address"}, ctx));
    Registration r;
    HOIST_ASSIGN(r.id, json::getString(doc, "id", ctx));
    HOIST_ASSIGN(r.role, json::getString(doc, "role", ctx));
    HOIST_ASSIGN(r.address, json::getString(doc, "address", ctx));
    HOIST_ASSIGN(auto release, json::optString(doc, "release", ctx));
    HOIST_ASSIGN(auto generation, json::optInt(doc, "generation", ctx));
    HOIST_ASSIGN(auto mode, json::optString(doc, "mode", ctx));
    r.release = release.value_or("");
    r.generation = generation.value_or(0);
    r.mode = mode.value_or("push");
    if (r.mode != "push" && r.mode != "pull")
        return fail(Errc::Invalid, ctx, ": field 'mode' must be 'push' or 'pull', not '", r.mode,
                    "'");
    return r;
}

std::string Registration::toJson() const {
    json::Writer w;
    w.beginObject()
        .field("id", id)
        .field("role", role)
        .field("address", address)
        .field("release", release)
        .field("generation", generation);
    if (mode != "push") w.field("mode", mode);
    w.endObject();
    return w.str();
}

// ---- GET /v1/node

Result<NodeView> NodeView::fromJson(std::string_view text) {
    constexpr std::string_view ctx = "GET /v1/node";
    HOIST_ASSIGN(auto doc, json::parseObject(text, ctx));
    HOIST_TRY(json::requireMembers(doc, {"id", "role", "release", "generation", "healthy"}, ctx));
    NodeView v;
    HOIST_ASSIGN(v.id, json::getString(doc, "id", ctx));
    HOIST_ASSIGN(v.role, json::getString(doc, "role", ctx));
    HOIST_ASSIGN(auto address, json::optString(doc, "address", ctx));
    v.address = address.value_or("");
    HOIST_ASSIGN(v.release, json::getString(doc, "release", ctx));
    HOIST_ASSIGN(v.generation, nullableInt(doc, "generation", ctx));
    HOIST_ASSIGN(v.healthy, json::getBool(doc, "healthy", ctx));
    HOIST_ASSIGN(const json::Value* service, json::optObject(doc, "service", ctx));
    if (service != nullptr) {
        constexpr std::string_view sctx = "GET /v1/node: service";
        HOIST_ASSIGN(auto manager, json::optString(*service, "manager", sctx));
        HOIST_ASSIGN(auto running, json::optBool(*service, "running", sctx));
        HOIST_ASSIGN(auto detail, json::optString(*service, "detail", sctx));
        v.service.manager = manager.value_or("");
        v.service.running = running.value_or(false);
        v.service.detail = detail.value_or("");
        HOIST_ASSIGN(v.service.pid, nullableInt(*service, "pid", sctx));
    }
    auto txn = doc.FindMember("transaction");
    if (txn != doc.MemberEnd() && !txn->value.IsNull()) {
        constexpr std::string_view tctx = "GET /v1/node: transaction";
        if (!txn->value.IsObject())
            return fail(Errc::Invalid, ctx, ": field 'transaction' must be an object or null");
        TransactionSummary summary;
        HOIST_ASSIGN(auto damaged, json::optString(txn->value, "damaged", tctx));
        if (damaged) {
            summary.damaged = *damaged;
        } else {
            HOIST_ASSIGN(summary.operation, json::getString(txn->value, "operation", tctx));
            HOIST_ASSIGN(summary.state, json::getString(txn->value, "state", tctx));
        }
        v.transaction = std::move(summary);
    }
    HOIST_ASSIGN(v.epoch, readEpoch(doc, ctx));
    return v;
}

std::string NodeView::toJson() const {
    json::Writer w;
    w.beginObject()
        .field("id", id)
        .field("role", role)
        .field("address", address)
        .field("release", release);
    w.key("generation");
    if (generation > 0)
        w.value(generation);
    else
        w.null();
    w.key("service")
        .beginObject()
        .field("manager", service.manager)
        .field("running", service.running);
    w.key("pid");
    if (service.pid > 0)
        w.value(service.pid);
    else
        w.null();
    w.field("detail", service.detail).endObject();
    w.field("healthy", healthy);
    w.key("transaction");
    if (transaction && !transaction->damaged.empty())
        w.beginObject().field("damaged", transaction->damaged).endObject();
    else if (transaction)
        w.beginObject()
            .field("operation", transaction->operation)
            .field("state", transaction->state)
            .endObject();
    else
        w.null();
    w.field("epoch", epoch);
    w.endObject();
    return w.str();
}

// ---- GET /v1/transaction

bool TransactionView::underWay() const {
    return active && (!transaction || !isTerminalState(transaction->state));
}

std::string TransactionView::step() const {
    if (transaction) return transaction->state;
    return active ? "starting" : "";
}

Result<TransactionView> TransactionView::fromJson(std::string_view text) {
    constexpr std::string_view ctx = "GET /v1/transaction";
    HOIST_ASSIGN(auto doc, json::parseObject(text, ctx));
    HOIST_TRY(json::requireMembers(doc, {"active", "transaction"}, ctx));
    TransactionView v;
    HOIST_ASSIGN(v.active, json::getBool(doc, "active", ctx));
    const auto& txn = doc.FindMember("transaction")->value;
    if (!txn.IsNull()) {
        if (!txn.IsObject())
            return fail(Errc::Invalid, ctx, ": field 'transaction' must be an object or null");
        HOIST_ASSIGN(auto journal, Journal::fromJson(txn, "GET /v1/transaction: transaction"));
        v.transaction = std::move(journal);
    }
    HOIST_ASSIGN(auto damaged, json::optString(doc, "damaged", ctx));
    v.damaged = damaged.value_or("");
    return v;
}

std::string TransactionView::toJson() const {
    json::Writer w;
    w.beginObject().field("active", active).key("transaction");
    if (transaction)
        transaction->write(w);
    else
        w.null();
    if (!damaged.empty()) w.field("damaged", damaged);
    w.endObject();
    return w.str();
}

// ---- POST /v1/stage

Result<StageRequest> StageRequest::fromJson(std::string_view text) {
    constexpr std::string_view ctx = "stage request";
    HOIST_ASSIGN(auto doc, json::parseObject(text, ctx));
    HOIST_TRY(json::rejectUnknown(doc, {"release", "packages", "epoch"}, ctx));
    StageRequest r;
    HOIST_ASSIGN(r.epoch, readEpoch(doc, ctx));
    HOIST_ASSIGN(r.release, json::optString(doc, "release", ctx));
    HOIST_ASSIGN(const json::Value* packages, json::optArray(doc, "packages", ctx));
    if (r.release.has_value() == (packages != nullptr))
        return fail(Errc::Invalid, "give exactly one of 'release' or 'packages'");
    if (packages != nullptr) {
        HOIST_ASSIGN(r.packages, refsFrom(*packages, ctx));
        if (r.packages->empty()) return fail(Errc::Invalid, "'packages' is empty");
    }
    return r;
}

std::string StageRequest::toJson() const {
    json::Writer w;
    w.beginObject();
    if (release) w.field("release", *release);
    if (packages) writeRefs(w, *packages);
    writeEpoch(w, epoch);
    w.endObject();
    return w.str();
}

Result<StageReply> StageReply::fromJson(std::string_view text) {
    constexpr std::string_view ctx = "stage reply";
    HOIST_ASSIGN(auto doc, json::parseObject(text, ctx));
    HOIST_TRY(json::requireMembers(doc, {"generation", "release", "packages"}, ctx));
    StageReply r;
    HOIST_ASSIGN(r.generation, json::getInt(doc, "generation", ctx));
    if (r.generation <= 0) return fail(Errc::Invalid, ctx, ": field 'generation' must be above 0");
    HOIST_ASSIGN(r.release, json::getString(doc, "release", ctx));
    HOIST_ASSIGN(const json::Value* packages, json::getArray(doc, "packages", ctx));
    HOIST_ASSIGN(r.packages, refsFrom(*packages, ctx));
    return r;
}

std::string StageReply::toJson() const {
    json::Writer w;
    w.beginObject().field("generation", generation).field("release", release);
    writeRefs(w, packages);
    w.endObject();
    return w.str();
}

// ---- POST /v1/restart, POST /v1/rollback

Result<RestartRequest> RestartRequest::fromJson(std::string_view text) {
    constexpr std::string_view ctx = "restart request";
    HOIST_ASSIGN(auto doc, json::parseObject(text, ctx));
    HOIST_TRY(json::rejectUnknown(doc, {"generation", "deployment", "report_to", "epoch"}, ctx));
    RestartRequest r;
    HOIST_ASSIGN(r.generation, json::getInt(doc, "generation", ctx));
    HOIST_TRY(readReportTarget(doc, ctx, r.deployment, r.report_to));
    HOIST_ASSIGN(r.epoch, readEpoch(doc, ctx));
    return r;
}

std::string RestartRequest::toJson() const {
    json::Writer w;
    w.beginObject()
        .field("generation", generation)
        .field("deployment", deployment)
        .field("report_to", report_to);
    writeEpoch(w, epoch);
    w.endObject();
    return w.str();
}

Result<RollbackRequest> RollbackRequest::fromJson(std::string_view text) {
    constexpr std::string_view ctx = "rollback request";
    HOIST_ASSIGN(auto doc, parseBody(text, ctx));
    HOIST_TRY(json::rejectUnknown(doc, {"deployment", "report_to", "epoch"}, ctx));
    RollbackRequest r;
    HOIST_TRY(readReportTarget(doc, ctx, r.deployment, r.report_to));
    HOIST_ASSIGN(r.epoch, readEpoch(doc, ctx));
    return r;
}

std::string RollbackRequest::toJson() const {
    json::Writer w;
    w.beginObject().field("deployment", deployment).field("report_to", report_to);
    writeEpoch(w, epoch);
    w.endObject();
    return w.str();
}

Result<RestartReply> RestartReply::fromJson(std::string_view text) {
    constexpr std::string_view ctx = "restart reply";
    HOIST_ASSIGN(auto doc, json::parseObject(text, ctx));
    HOIST_TRY(json::requireMembers(doc, {"operation", "generation"}, ctx));
    RestartReply r;
    HOIST_ASSIGN(r.operation, json::getString(doc, "operation", ctx));
    HOIST_ASSIGN(r.generation, json::getInt(doc, "generation", ctx));
    return r;
}

std::string RestartReply::toJson() const {
    json::Writer w;
    w.beginObject().field("operation", operation).field("generation", generation).endObject();
    return w.str();
}

// ---- pull mode

Result<DesiredState> DesiredState::fromJson(std::string_view text) {
    constexpr std::string_view ctx = "desired state";
    HOIST_ASSIGN(auto doc, json::parseObject(text, ctx));
    HOIST_TRY(json::requireMembers(doc, {"action", "deployment", "release", "generation"}, ctx));
    DesiredState d;
    HOIST_ASSIGN(d.action, json::getString(doc, "action", ctx));
    HOIST_ASSIGN(d.deployment, json::getString(doc, "deployment", ctx));
    HOIST_ASSIGN(d.release, json::getString(doc, "release", ctx));
    HOIST_ASSIGN(d.generation, json::getInt(doc, "generation", ctx));
    HOIST_ASSIGN(auto held, json::optBool(doc, "held", ctx));
    d.held = held.value_or(false);
    HOIST_ASSIGN(d.epoch, readEpoch(doc, ctx));
    return d;
}

std::string DesiredState::toJson() const {
    json::Writer w;
    w.beginObject()
        .field("action", action)
        .field("deployment", deployment)
        .field("release", release)
        .field("generation", generation)
        .field("held", held);
    writeEpoch(w, epoch);
    w.endObject();
    return w.str();
}

std::string desiredPath(std::string_view node, std::int64_t generation) {
    return detail::concat("/v1/nodes/", http::urlEncode(node), "/desired?generation=", generation);
}

// ---- refusals

Error notRegistered(std::string_view node) {
    return Error{Errc::NotFound, detail::concat("node '", node, kNotRegistered), 0};
}

bool isNotRegistered(long status, std::string_view body) {
    if (status != 404) return false;
    auto doc = json::parseObject(body, "reply");
    if (!doc) return false;
    auto text = json::optString(*doc, "error", "reply");
    return text && *text && (*text)->starts_with("node '") && (*text)->ends_with(kNotRegistered);
}

}  // namespace hoist::pkgmgr
