#pragma once

#include <string>
#include <string_view>

namespace hoist::deploy_coordinator {

/// What an authenticated POST /v1/halt asks for, read from whichever body the caller sends:
/// hoist's own `{"reason","source"}`, an empty body, Prometheus Alertmanager's webhook
/// (version 4) or Grafana's alerting webhook, each as its sender writes it. The rule is fail
/// safe: every body halts. One that cannot be read as any of those still puts a hold (source
/// "webhook"), keeps the body (bounded) for the audit log and says why in `warning`; nothing
/// a caller holding the halt token sends is refused for its shape.
struct HaltNotice {
    /// "hoist", "empty", "alertmanager", "grafana", "unknown" or "not-json".
    std::string kind;
    /// The hold's name: the given source, the caller, `alertmanager/<receiver>/<group>`,
    /// `grafana/<receiver>/<group>` or "webhook". Always a valid hold source.
    std::string source;
    std::string reason;
    /// A monitor's "resolved" notification: recorded on the hold, never lifts it.
    bool resolved = false;
    /// The firing alerts, a compact JSON array bounded by kMaxAlerts and kMaxAlertsBytes
    /// ("[]" when the body carried none).
    std::string alerts_json = "[]";
    /// What was wrong with the body, for the reply and the audit log ("" when nothing).
    std::string warning;
    /// The body as received, cut at kMaxKeptBody, when its shape was not understood.
    std::string kept_body;
};

inline constexpr std::size_t kMaxAlerts = 20;
inline constexpr std::size_t kMaxAlertsBytes = 16 * 1024;
inline constexpr std::size_t kMaxKeptBody = 4 * 1024;
inline constexpr std::size_t kMaxSource = 128;

/// True for 1-128 characters of a-z, A-Z, 0-9, '.', '_', '-' and '/'.
bool validHoldSource(std::string_view source);

/// Reads a halt body. `caller` ("monitor" or "admin") names holds from bodies that give no
/// source of their own. Never fails: see HaltNotice.
HaltNotice readHaltBody(std::string_view body, std::string_view caller);

}  // namespace hoist::deploy_coordinator
