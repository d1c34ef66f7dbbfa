#include "halt_body.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <vector>

#include "core/crypto.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"

namespace hoist::deploy_coordinator {

namespace {

constexpr std::size_t kMaxReason = 512;
constexpr std::size_t kMaxAlertValue = 512;

bool sourceChar(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
           c == '/';
}

/// Cuts UTF-8 text to at most `max` bytes without splitting a character.
std::string cut(std::string_view text, std::size_t max) {
    if (text.size() <= max) return std::string(text);
    std::size_t end = max;
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
    return std::string(text.substr(0, end)) + "...";
}

/// One path segment of a hold source: characters a source may not hold become '-'.
std::string segment(std::string_view text) {
    std::string out;
    for (char c : text) out += (sourceChar(c) && c != '/') ? c : '-';
    return out.empty() ? "-" : out;
}

/// `prefix/receiver/group`, cut to kMaxSource with a digest of the whole so that two long
/// groups stay two holds.
std::string monitorSource(std::string_view prefix, std::string_view receiver,
                          std::string_view group) {
    std::string full = std::string(prefix) + "/" + segment(receiver) + "/" + segment(group);
    if (full.size() <= kMaxSource) return full;
    return full.substr(0, kMaxSource - 13) + "-" + crypto::sha256Hex(full).substr(0, 12);
}

/// The body as received, printable ASCII only and bounded, for the audit log.
std::string keep(std::string_view body) {
    std::string out;
    for (char c : body.substr(0, kMaxKeptBody)) {
        auto u = static_cast<unsigned char>(c);
        out += (u >= 0x20 && u < 0x7f) ? c : '?';
    }
    if (body.size() > kMaxKeptBody) out += "...";
    return out;
}

const json::Value* member(const json::Value& obj, const char* key) {
    if (!obj.IsObject()) return nullptr;
    auto it = obj.FindMember(key);
    return it == obj.MemberEnd() ? nullptr : &it->value;
}

std::string stringAt(const json::Value& obj, const char* key) {
    const auto* v = member(obj, key);
    return v != nullptr && v->IsString() ? std::string(v->GetString(), v->GetStringLength()) : "";
}

/// The first non-empty string among `keys` of the object at obj[container].
std::string firstOf(const json::Value& obj, const char* container,
                    std::initializer_list<const char*> keys) {
    const auto* inner = member(obj, container);
    if (inner == nullptr) return "";
    for (const char* k : keys)
        if (auto s = stringAt(*inner, k); !s.empty()) return s;
    return "";
}

/// groupLabels' values in key order, joined by '.'; "all" when the group has none.
std::string groupName(const json::Value& body) {
    const auto* labels = member(body, "groupLabels");
    if (labels == nullptr || !labels->IsObject() || labels->MemberCount() == 0) return "all";
    std::map<std::string, std::string> sorted;
    for (const auto& m : labels->GetObject())
        if (m.value.IsString()) sorted[m.name.GetString()] = m.value.GetString();
    std::vector<std::string> values;
    for (const auto& [k, v] : sorted) values.push_back(v);
    return values.empty() ? "all" : strings::join(values, ".");
}

/// A string-to-string object, each value bounded.
void writeLabels(json::Writer& w, const json::Value* obj) {
    w.beginObject();
    if (obj != nullptr && obj->IsObject())
        for (const auto& m : obj->GetObject())
            if (m.value.IsString())
                w.field(std::string_view(m.name.GetString(), m.name.GetStringLength()),
                        cut(std::string_view(m.value.GetString(), m.value.GetStringLength()),
                            kMaxAlertValue));
    w.endObject();
}

/// The firing alerts of an Alertmanager or Grafana body, bounded in count and bytes.
std::string firingAlerts(const json::Value& alerts) {
    std::string out = "[";
    std::size_t kept = 0;
    for (const auto& a : alerts.GetArray()) {
        if (kept == kMaxAlerts) break;
        if (!a.IsObject() || stringAt(a, "status") == "resolved") continue;
        json::Writer w;
        w.beginObject().key("labels");
        writeLabels(w, member(a, "labels"));
        w.key("annotations");
        writeLabels(w, member(a, "annotations"));
        w.field("startsAt", cut(stringAt(a, "startsAt"), 64)).endObject();
        std::string one = w.str();
        if (out.size() + one.size() + 2 > kMaxAlertsBytes) break;
        if (kept > 0) out += ',';
        out += one;
        ++kept;
    }
    return out + "]";
}

std::size_t countFiring(const json::Value& alerts) {
    return static_cast<std::size_t>(std::count_if(
        alerts.Begin(), alerts.End(),
        [](const json::Value& a) { return a.IsObject() && stringAt(a, "status") != "resolved"; }));
}

/// Alertmanager's webhook (version 4) and Grafana's alerting webhook: the same envelope
/// (receiver, status, groupLabels, common*, alerts), Grafana adding orgId, title and message.
HaltNotice readMonitor(const json::Value& body, std::string_view kind) {
    HaltNotice n;
    n.kind = std::string(kind);
    const auto& alerts = *member(body, "alerts");
    n.source = monitorSource(kind, stringAt(body, "receiver"), groupName(body));
    n.resolved = stringAt(body, "status") == "resolved";
    n.alerts_json = firingAlerts(alerts);
    // The people-facing text first, then the alert's name.
    std::string reason = firstOf(body, "commonAnnotations", {"summary", "description"});
    for (const auto& a : alerts.GetArray()) {
        if (!reason.empty()) break;
        reason = firstOf(a, "annotations", {"summary", "description"});
    }
    if (reason.empty() && kind == "grafana") reason = stringAt(body, "title");
    if (reason.empty()) reason = firstOf(body, "commonLabels", {"alertname"});
    for (const auto& a : alerts.GetArray()) {
        if (!reason.empty()) break;
        reason = firstOf(a, "labels", {"alertname"});
    }
    if (reason.empty()) reason = "alert from receiver '" + stringAt(body, "receiver") + "'";
    std::size_t firing = countFiring(alerts);
    if (firing > 1) reason += " (" + std::to_string(firing) + " alerts firing)";
    n.reason = cut(reason, kMaxReason);
    return n;
}

bool isMonitorEnvelope(const json::Value& body) {
    const auto* alerts = member(body, "alerts");
    const auto* receiver = member(body, "receiver");
    return alerts != nullptr && alerts->IsArray() && receiver != nullptr && receiver->IsString();
}

HaltNotice failSafe(std::string kind, std::string_view body, std::string warning) {
    HaltNotice n;
    n.kind = std::move(kind);
    n.source = "webhook";
    n.reason = "halt body not understood (" + cut(warning, 200) + "); kept in the audit log";
    n.warning = std::move(warning);
    n.kept_body = keep(body);
    return n;
}

}  // namespace

bool validHoldSource(std::string_view source) {
    return !source.empty() && source.size() <= kMaxSource &&
           std::all_of(source.begin(), source.end(), sourceChar);
}

HaltNotice readHaltBody(std::string_view body, std::string_view caller) {
    if (strings::trim(body).empty()) {
        HaltNotice n;
        n.kind = "empty";
        n.source = std::string(caller);
        n.reason = "halt requested with an empty body";
        return n;
    }
    auto doc = json::parse(body, "halt request");
    if (!doc) return failSafe("not-json", body, doc.error().message);
    if (!doc->IsObject())
        return failSafe("unknown", body, "halt request: the body is JSON but not an object");

    if (isMonitorEnvelope(*doc)) {
        if (member(*doc, "orgId") != nullptr) return readMonitor(*doc, "grafana");
        if (stringAt(*doc, "version") == "4") return readMonitor(*doc, "alertmanager");
    }

    // hoist's own body: {"reason", "source"?}, nothing else.
    const auto* reason = member(*doc, "reason");
    bool own_keys = std::all_of(doc->MemberBegin(), doc->MemberEnd(), [](const auto& m) {
        std::string_view k(m.name.GetString(), m.name.GetStringLength());
        return k == "reason" || k == "source";
    });
    if (reason == nullptr || !reason->IsString() || !own_keys) {
        std::string why =
            "halt request: expected {\"reason\",\"source\"}, an Alertmanager or a "
            "Grafana webhook";
        if (reason != nullptr && !reason->IsString())
            why =
                "halt request: field 'reason' must "
                "be a string";
        return failSafe("unknown", body, why);
    }
    HaltNotice n;
    n.kind = "hoist";
    n.reason = cut(std::string_view(reason->GetString(), reason->GetStringLength()), kMaxReason);
    if (n.reason.empty()) {
        n.reason = "no reason given";
        n.warning = "halt request: field 'reason' is empty";
    }
    n.source = std::string(caller);
    if (const auto* source = member(*doc, "source"); source != nullptr) {
        std::string_view given =
            source->IsString() ? std::string_view(source->GetString(), source->GetStringLength())
                               : std::string_view();
        if (validHoldSource(given))
            n.source = std::string(given);
        else
            n.warning =
                "halt request: field 'source' must be 1-128 characters of a-z, A-Z, 0-9, "
                "'.', '_', '-' or '/'; the hold is named '" +
                n.source + "'";
    }
    return n;
}

}  // namespace hoist::deploy_coordinator
