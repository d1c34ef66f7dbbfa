#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/http_client.hpp"

namespace hoist::deploy_coordinator {

/// One metric gate: a Prometheus query whose value must satisfy a comparison, continuously for
/// `for_ms`, between two waves. Written `NAME: QUERY OP NUMBER [for DURATION]`, as in
/// `error-rate: sum(rate(http_errors_total[1m])) < 5 for 30s`.
struct GateSpec {
    std::string name;
    std::string query;
    std::string op;  ///< <, <=, >, >=, ==, !=
    double threshold = 0;
    std::int64_t for_ms = 0;

    /// Invalid naming the text and what is wrong (no name, no comparison, a bad number or
    /// duration, a name other than letters, digits, '-', '_' and '.').
    static Result<GateSpec> parse(std::string_view text);
    /// The text parse() reads.
    std::string text() const;
    /// Whether `value` satisfies the comparison.
    bool holds(double value) const;
};

/// A deployment's gates and how they are evaluated (stored as JSON on the deployment).
struct GateConfig {
    /// The Prometheus server's base URL (its /api/v1/query is called).
    std::string prometheus;
    std::vector<GateSpec> gates;
    /// A query that keeps failing (Prometheus down, bad PromQL, no data) for this long counts
    /// as a failing gate.
    std::int64_t error_grace_ms = 60000;
    /// "hold": a failing gate puts the hold gate/<name>; "revert": the deployment reverts.
    std::string on_fail = "hold";

    bool empty() const { return gates.empty(); }
    /// {"prometheus","gates":[text...],"error_grace_ms","on_fail"}.
    std::string toJson() const;
    /// Empty text gives no gates. Invalid for a bad gate, a policy other than hold or revert,
    /// gates without a Prometheus URL, or a URL that is not http(s).
    static Result<GateConfig> fromJson(std::string_view text);
    /// Checks the combination (gates need a URL, known policy, unique names).
    Result<void> validate() const;
};

/// One evaluation of a gate's query.
struct GateSample {
    /// The query's value (the first sample of a vector, or a scalar); nullopt with `error`.
    std::optional<double> value;
    /// Why there is no value: Prometheus unreachable, an error answer, no data.
    std::string error;
    /// A simulated evaluation (rehearsal): the gate holds, whatever its comparison.
    bool assume_pass = false;
};

/// Runs `query` against Prometheus' HTTP API (GET <prometheus>/api/v1/query). Blocking (up to
/// 10 s): call it off the engine's loop thread. A transport failure, a non-success status, a
/// result that is not one number, or an empty result come back as GateSample::error.
GateSample evaluateGate(http::Client& client, const std::string& prometheus,
                        const std::string& query);

}  // namespace hoist::deploy_coordinator
