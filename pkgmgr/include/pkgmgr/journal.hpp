#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/json.hpp"
#include "pkgmgr/layout.hpp"

namespace hoist::pkgmgr {

/// One state the transaction went through, with when it was entered.
struct JournalStep {
    std::string state;
    std::string time;
    std::string message;
};

/// <root>/txn.json: the restart helper's journal. The helper writes it atomically before each
/// step, so after a crash `recover` knows the last step that may have been taken; `pkgmgr serve`
/// reads it for GET /v1/node and GET /v1/transaction. When the transaction ends (healthy,
/// rolled_back, failed) the final journal moves to <root>/run/last-txn.json and txn.json goes
/// away.
/// {"operation", "kind": "swap"|"bootstrap", "deployment", "report_to", "release",
///  "from_generation", "to_generation", "state", "message", "started", "updated",
///  "pid", "recovered", "steps": [{"state", "time", "message"}]}
/// Required: operation, kind, from_generation, to_generation, state. Unknown fields are
/// ignored (a newer helper may add some; the journal also travels in GET /v1/transaction).
struct Journal {
    std::string operation;
    std::string kind = "swap";
    std::string deployment;
    std::string report_to;     ///< coordinator base URL; empty: no pings
    std::string release;       ///< of the target generation, when known
    long from_generation = 0;  ///< 0: the node had no current generation
    long to_generation = 0;
    std::string state;
    std::string message;
    std::string started;
    std::string updated;
    std::int64_t pid = 0;    ///< the helper that wrote it last
    bool recovered = false;  ///< `recover` took this transaction over after a crash
    std::vector<JournalStep> steps;

    /// Corrupt when a required field is missing or mistyped, or kind or state is unknown;
    /// the message names `ctx` and the field.
    static Result<Journal> fromJson(std::string_view text, std::string_view ctx);
    static Result<Journal> fromJson(const json::Value& value, std::string_view ctx);
    std::string toJson() const;
    void write(json::Writer& w) const;

    /// txn.json, or nullopt when no transaction is under way. Corrupt when it does not parse
    /// or lacks a required field (a truncated write, a bad disk): `restart-helper recover`
    /// sets such a journal aside; `pkgmgr serve` reports it and refuses restarts until then.
    static Result<std::optional<Journal>> load(const NodeLayout& layout);
    /// run/last-txn.json: how the last transaction ended; nullopt before the first.
    static Result<std::optional<Journal>> loadLast(const NodeLayout& layout);

    /// Enters `state` (appending a step) and writes txn.json atomically.
    Result<void> enter(const NodeLayout& layout, std::string_view state,
                       std::string_view message = {});
    /// Writes run/last-txn.json, then removes txn.json (both durably).
    Result<void> close(const NodeLayout& layout) const;
};

/// <root>/run/last-txn.json.
fs::path lastJournalPath(const NodeLayout& layout);

}  // namespace hoist::pkgmgr
