// A step too large for one etcd txn, made atomic: its rows are staged in packed values that no
// reader takes for state, one fenced txn commits the marker with the step's small part, and the
// rows are then put in place (etcd_state.hpp). A new deployment's rows skip the staging: nothing
// reads a deployment's rows before its row exists, so they go in place first, named by a
// creating/<id> marker that the step's commit deletes.
#include <algorithm>
#include <cstdio>
#include <map>

#include "core/crypto.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "etcd_state.hpp"

namespace hoist::deploy_coordinator {

namespace {

using etcd::Op;

// Packed values (staged_part_bytes_, 384 KiB) stay well under etcd's request limit
// (--max-request-bytes, 1.5 MiB by default): a txn carries at most two parts.
constexpr std::size_t kPartsPerTxn = 2;

std::string partName(std::size_t index) {
    char text[24];
    std::snprintf(text, sizeof text, "%06zu", index);
    return text;
}

}  // namespace

std::vector<etcd::Compare> EtcdStateStore::fenceFor(std::int64_t term) {
    std::lock_guard lock(mutex_);
    if (term == 0 || term != epoch_) return {};
    return {
        {etcd::Compare::Target::create, etcd::Compare::Result::equal, election_key_, epoch_, {}},
        {etcd::Compare::Target::lease, etcd::Compare::Result::equal, election_key_, lease_, {}}};
}

Result<bool> EtcdStateStore::writeNewRows(const std::vector<etcd::Compare>& fence,
                                          std::vector<Op>& bulk, std::vector<Op>& control,
                                          std::int64_t term) {
    const auto deployments = prefix_ + "deployments/";
    std::string id;
    for (const auto& op : control)
        if (op.kind == Op::Kind::put && op.key.starts_with(deployments))
            id = op.key.substr(deployments.size());
    if (id.empty()) return false;
    const auto rows = prefix_ + "deployment-nodes/" + id + "/";
    auto is_row = [&](const Op& op) {
        return op.kind == Op::Kind::put && op.key.starts_with(rows);
    };
    if (std::none_of(bulk.begin(), bulk.end(), is_row)) return false;
    // Only a deployment that does not exist yet: an existing one's rows are read as state.
    etcd::RangeRequest known;
    known.key = deployments + id;
    known.count_only = true;
    auto read = client_.range(known);
    if (!read) return std::unexpected(unavailable(read.error()));
    if (read->count > 0) return false;
    std::vector<Op> direct;
    std::vector<Op> rest;
    for (auto& op : bulk) (is_row(op) ? direct : rest).push_back(std::move(op));
    bulk = std::move(rest);
    const auto marker = prefix_ + "creating/" + id;
    json::Writer w;
    w.beginObject()
        .field("schema", kSchema)
        .field("rows", static_cast<std::int64_t>(direct.size()))
        .endObject();
    // From the first write until the step commits, the marker names rows to drop if it does
    // not: the next commit (or the next leader) recovers first.
    unapplied_ = true;
    std::vector<Op> chunk{Op::put(marker, w.str())};
    for (auto& op : direct) {
        chunk.push_back(std::move(op));
        if (chunk.size() < max_txn_ops_) continue;
        HOIST_TRY(fencedTxn(fence, chunk, term));
        chunk.clear();
    }
    if (!chunk.empty()) HOIST_TRY(fencedTxn(fence, chunk, term));
    if (after_staged_) after_staged_("rows");
    control.push_back(Op::remove(marker));
    return true;
}

Result<void> EtcdStateStore::commitStaged(const std::vector<etcd::Compare>& fence,
                                          std::vector<Op> bulk, std::vector<Op> control,
                                          std::int64_t term) {
    HOIST_ASSIGN(bool creating, writeNewRows(fence, bulk, control, term));
    if (creating && bulk.empty() && control.size() <= max_txn_ops_) {
        // The new deployment's rows are in place already: the step is its small part.
        HOIST_TRY(fencedTxn(fence, control, term));
        unapplied_ = false;
        return ok();
    }
    const auto txid = crypto::randomHex(8);
    const auto base = prefix_ + "staged/" + txid + "/";
    // Keys are kept relative to the prefix: {"schema", "ops": [{"put": KEY, "value": TEXT} or
    // {"remove": KEY}]}.
    std::vector<std::string> parts;
    for (std::size_t at = 0; at < bulk.size();) {
        json::Writer w;
        w.beginObject().field("schema", kSchema).key("ops").beginArray();
        std::size_t bytes = 0;
        for (; at < bulk.size() && bytes < staged_part_bytes_; ++at) {
            const auto& op = bulk[at];
            auto key = std::string_view(op.key).substr(prefix_.size());
            if (op.kind == Op::Kind::put)
                w.beginObject().field("put", key).field("value", op.value).endObject();
            else
                w.beginObject().field("remove", key).endObject();
            bytes += key.size() + op.value.size() + 32;
        }
        w.endArray().endObject();
        parts.push_back(w.str());
    }
    for (std::size_t at = 0; at < parts.size(); at += kPartsPerTxn) {
        std::vector<Op> ops;
        for (std::size_t i = at; i < std::min(parts.size(), at + kPartsPerTxn); ++i)
            ops.push_back(Op::put(base + partName(i), std::move(parts[i])));
        HOIST_TRY(fencedTxn(fence, ops, term));
        if (after_staged_) after_staged_("part");
    }
    json::Writer marker;
    marker.beginObject()
        .field("schema", kSchema)
        .field("parts", static_cast<std::int64_t>(parts.size()))
        .endObject();
    control.push_back(Op::put(prefix_ + "applying/" + txid, marker.str()));
    // The step commits here, or not at all.
    HOIST_TRY(fencedTxn(fence, control, term));
    if (creating) unapplied_ = false;
    staged_steps_++;
    if (after_staged_) after_staged_("marker");
    if (auto applied = applyStaged(fence, txid, bulk, term); !applied) {
        // Committed all the same: readers lay it over their reads, and the next commit (or the
        // next leader) puts it in place.
        unapplied_ = true;
        log::warn("deploy-coordinator", "a committed step is not in place yet",
                  {{"step", txid}, {"error", applied.error().describe()}});
    }
    return ok();
}

Result<void> EtcdStateStore::applyStaged(const std::vector<etcd::Compare>& fence,
                                         const std::string& txid, const std::vector<Op>& ops,
                                         std::int64_t term) {
    for (std::size_t at = 0; at < ops.size(); at += max_txn_ops_) {
        auto end = std::min(ops.size(), at + max_txn_ops_);
        std::vector<Op> chunk(ops.begin() + static_cast<long>(at),
                              ops.begin() + static_cast<long>(end));
        HOIST_TRY(fencedTxn(fence, chunk, term));
    }
    const auto base = prefix_ + "staged/" + txid + "/";
    return fencedTxn(
        fence, {Op::remove(base, etcd::prefixEnd(base)), Op::remove(prefix_ + "applying/" + txid)},
        term);
}

Result<std::vector<Op>> EtcdStateStore::readStaged(const std::string& txid, std::int64_t revision) {
    etcd::RangeRequest r;
    r.key = prefix_ + "staged/" + txid + "/";
    r.range_end = etcd::prefixEnd(r.key);
    r.revision = revision;
    r.sort_order = etcd::RangeRequest::Sort::ascend;
    r.sort_target = etcd::RangeRequest::Target::key;
    auto read = client_.range(r);
    if (!read) return std::unexpected(unavailable(read.error()));
    std::vector<Op> ops;
    for (const auto& kv : read->kvs) {
        auto ctx = "etcd key " + kv.key;
        auto doc = json::parseObject(kv.value, ctx);
        if (!doc) return fail(Errc::Corrupt, doc.error().message);
        auto schema = json::getString(*doc, "schema", ctx);
        if (!schema || *schema != kSchema)
            return fail(Errc::Corrupt, ctx, " is not a staged step of ", kSchema);
        auto list = json::getArray(*doc, "ops", ctx);
        if (!list) return fail(Errc::Corrupt, list.error().message);
        for (const auto& op : (*list)->GetArray()) {
            if (auto put = json::optString(op, "put", ctx); put && *put) {
                auto value = json::getString(op, "value", ctx);
                if (!value) return fail(Errc::Corrupt, value.error().message);
                ops.push_back(Op::put(prefix_ + **put, std::move(*value)));
            } else if (auto gone = json::optString(op, "remove", ctx); gone && *gone) {
                ops.push_back(Op::remove(prefix_ + **gone));
            } else {
                return fail(Errc::Corrupt, ctx, ": an op must hold 'put' or 'remove'");
            }
        }
    }
    return ops;
}

Result<std::vector<etcd::KeyValue>> EtcdStateStore::overlayStaged(const std::string& prefix,
                                                                  etcd::RangeResult read) {
    // One read holds both kinds of marker: applying/ < creating/ (nothing lies between).
    etcd::RangeRequest m;
    m.key = prefix_ + "applying/";
    m.range_end = etcd::prefixEnd(prefix_ + "creating/");
    m.revision = read.revision;
    m.sort_order = etcd::RangeRequest::Sort::ascend;
    m.sort_target = etcd::RangeRequest::Target::mod;
    auto markers = client_.range(m);
    if (!markers) return std::unexpected(unavailable(markers.error()));
    // A new deployment's rows before its step commits are not state yet.
    const auto creating = prefix_ + "creating/";
    const auto rows = prefix_ + "deployment-nodes/";
    for (const auto& marker : markers->kvs)
        if (marker.key.starts_with(creating) && prefix.starts_with(rows) &&
            prefix == rows + marker.key.substr(creating.size()) + "/")
            return std::vector<etcd::KeyValue>{};
    std::erase_if(markers->kvs,
                  [&](const etcd::KeyValue& kv) { return kv.key.starts_with(creating); });
    if (markers->kvs.empty()) return std::move(read.kvs);
    const auto end = etcd::prefixEnd(prefix);
    std::map<std::string, etcd::KeyValue> by_key;
    for (auto& kv : read.kvs) {
        auto key = kv.key;
        by_key.emplace(std::move(key), std::move(kv));
    }
    for (const auto& marker : markers->kvs) {
        auto txid = marker.key.substr(m.key.size());
        HOIST_ASSIGN(auto ops, readStaged(txid, read.revision));
        for (auto& op : ops) {
            if (op.key < prefix || op.key >= end) continue;
            if (op.kind == Op::Kind::remove) {
                by_key.erase(op.key);
                continue;
            }
            auto& kv = by_key[op.key];
            if (kv.key.empty()) {
                kv.key = op.key;
                kv.create_revision = marker.mod_revision;
            }
            kv.value = std::move(op.value);
            kv.mod_revision = marker.mod_revision;
        }
    }
    std::vector<etcd::KeyValue> kvs;
    kvs.reserve(by_key.size());
    for (auto& [_, kv] : by_key) kvs.push_back(std::move(kv));
    return kvs;
}

Result<void> EtcdStateStore::recover() {
    std::lock_guard staging(staging_mutex_);
    return recoverLocked();
}

Result<void> EtcdStateStore::recoverLocked() {
    std::int64_t term = 0;
    {
        std::lock_guard lock(mutex_);
        term = epoch_;
    }
    auto fence = fenceFor(term);
    if (fence.empty()) return fail(Errc::Conflict, "staged steps are finished only by the leader");
    etcd::RangeRequest m;
    m.key = prefix_ + "applying/";
    m.range_end = etcd::prefixEnd(m.key);
    m.sort_order = etcd::RangeRequest::Sort::ascend;
    m.sort_target = etcd::RangeRequest::Target::mod;
    auto markers = client_.range(m);
    if (!markers) return std::unexpected(unavailable(markers.error()));
    for (const auto& marker : markers->kvs) {
        auto txid = marker.key.substr(m.key.size());
        HOIST_ASSIGN(auto ops, readStaged(txid, markers->revision));
        HOIST_TRY(applyStaged(fence, txid, ops, term));
        log::info("deploy-coordinator", "finished a committed step left staged",
                  {{"step", txid}, {"operations", static_cast<std::int64_t>(ops.size())}});
    }
    // A new deployment's rows whose step never committed (its creating/ marker is left):
    // nothing reads them, and a later deployment may get the same id.
    etcd::RangeRequest c;
    c.key = prefix_ + "creating/";
    c.range_end = etcd::prefixEnd(c.key);
    auto creating = client_.range(c);
    if (!creating) return std::unexpected(unavailable(creating.error()));
    for (const auto& kv : creating->kvs) {
        auto id = kv.key.substr(c.key.size());
        etcd::RangeRequest known;
        known.key = prefix_ + "deployments/" + id;
        known.count_only = true;
        auto read = client_.range(known);
        if (!read) return std::unexpected(unavailable(read.error()));
        std::vector<Op> ops{Op::remove(kv.key)};
        const auto rows = prefix_ + "deployment-nodes/" + id + "/";
        if (read->count == 0) ops.push_back(Op::remove(rows, etcd::prefixEnd(rows)));
        HOIST_TRY(fencedTxn(fence, ops, term));
        if (read->count == 0)
            log::info("deploy-coordinator",
                      "dropped the rows of a new deployment whose step never committed",
                      {{"deployment", id}});
    }
    // Parts with no marker: a leader gone before its step committed. Nothing reads them.
    etcd::RangeRequest s;
    s.key = prefix_ + "staged/";
    s.range_end = etcd::prefixEnd(s.key);
    s.keys_only = true;
    auto staged = client_.range(s);
    if (!staged) return std::unexpected(unavailable(staged.error()));
    std::string last;
    for (const auto& kv : staged->kvs) {
        auto rest = std::string_view(kv.key).substr(s.key.size());
        auto txid = std::string(rest.substr(0, rest.find('/')));
        if (txid == last) continue;
        last = txid;
        auto base = s.key + txid + "/";
        HOIST_TRY(fencedTxn(fence, {Op::remove(base, etcd::prefixEnd(base))}, term));
        log::info("deploy-coordinator", "dropped the parts of a step that never committed",
                  {{"step", txid}});
    }
    unapplied_ = false;
    return ok();
}

}  // namespace hoist::deploy_coordinator
