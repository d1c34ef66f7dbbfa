// POST /v1/halt reads what monitors send: hoist's body, an empty one, Alertmanager's and
// Grafana's webhooks as their senders write them; anything else still halts (fail safe).
#include "halt_body.hpp"

#include <gtest/gtest.h>

#include "core/json.hpp"

namespace hoist::deploy_coordinator {
namespace {

// Alertmanager 0.25's webhook (version 4), as its webhook receiver posts it.
const char* const kAlertmanagerFiring = R"({
  "receiver": "hoist-halt", "status": "firing",
  "alerts": [
    {"status": "firing", "labels": {"alertname": "HighErrorRate", "severity": "page"},
     "annotations": {"summary": "error rate 7% on agents"},
     "startsAt": "2026-12-01T08:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
     "generatorURL": "http://prometheus/graph", "fingerprint": "a1b2c3"},
    {"status": "firing", "labels": {"alertname": "HighErrorRate", "instance": "agent-2"},
     "annotations": {}, "startsAt": "2026-12-01T08:00:05Z", "endsAt": "0001-01-01T00:00:00Z",
     "generatorURL": "", "fingerprint": "d4e5f6"}
  ],
  "groupLabels": {"alertname": "HighErrorRate"},
  "commonLabels": {"alertname": "HighErrorRate"},
  "commonAnnotations": {},
  "externalURL": "http://alertmanager:9093", "version": "4",
  "groupKey": "{}:{alertname=\"HighErrorRate\"}", "truncatedAlerts": 0
})";

// Grafana's unified alerting webhook contact point.
const char* const kGrafanaFiring = R"({
  "receiver": "hoist", "status": "firing", "orgId": 1,
  "alerts": [{"status": "firing", "labels": {"alertname": "Latency p99", "grafana_folder": "SLO"},
              "annotations": {}, "startsAt": "2026-12-01T08:00:00Z",
              "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "0f0f", "values": {"B": 2.5},
              "silenceURL": "", "dashboardURL": "", "panelURL": "", "valueString": "B=2.5"}],
  "groupLabels": {"alertname": "Latency p99", "grafana_folder": "SLO"},
  "commonLabels": {"alertname": "Latency p99"}, "commonAnnotations": {},
  "externalURL": "http://grafana:3000/", "version": "1", "groupKey": "{}:{}",
  "truncatedAlerts": 0, "title": "[FIRING:1] Latency p99 SLO", "state": "alerting",
  "message": "**Firing**"
})";

/// `text` with its one `from` replaced by `to` (fails the test when `from` is not there).
std::string replaced(std::string text, std::string_view from, std::string_view to) {
    auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) text.replace(at, from.size(), to);
    return text;
}

TEST(HaltBody, HoistsOwnBodyKeepsItsSourceAndReason) {
    auto n = readHaltBody(R"({"reason":"slo burn","source":"sla"})", "monitor");
    EXPECT_EQ(n.kind, "hoist");
    EXPECT_EQ(n.source, "sla");
    EXPECT_EQ(n.reason, "slo burn");
    EXPECT_EQ(n.warning, "");
    EXPECT_FALSE(n.resolved);
    EXPECT_EQ(readHaltBody(R"({"reason":"x"})", "admin").source, "admin");
}

TEST(HaltBody, AnEmptyBodyHaltsInTheCallersName) {
    for (const char* body : {"", "  \n"}) {
        auto n = readHaltBody(body, "monitor");
        EXPECT_EQ(n.kind, "empty");
        EXPECT_EQ(n.source, "monitor");
        EXPECT_EQ(n.reason, "halt requested with an empty body");
    }
}

TEST(HaltBody, AlertmanagerNamesTheReceiverAndGroupAndKeepsTheFiringAlerts) {
    auto n = readHaltBody(kAlertmanagerFiring, "monitor");
    EXPECT_EQ(n.kind, "alertmanager");
    EXPECT_EQ(n.source, "alertmanager/hoist-halt/HighErrorRate");
    EXPECT_EQ(n.reason, "error rate 7% on agents (2 alerts firing)");
    EXPECT_FALSE(n.resolved);
    auto alerts = json::parse(n.alerts_json, "alerts");
    ASSERT_TRUE(alerts.has_value());
    ASSERT_EQ(alerts->Size(), 2u);
    EXPECT_STREQ((*alerts)[1]["labels"]["instance"].GetString(), "agent-2");
    EXPECT_STREQ((*alerts)[0]["startsAt"].GetString(), "2026-12-01T08:00:00Z");
}

TEST(HaltBody, AlertmanagerResolvedIsMarkedAndNamesTheSameHold) {
    std::string body =
        replaced(kAlertmanagerFiring, R"("receiver": "hoist-halt", "status": "firing")",
                 R"("receiver": "hoist-halt", "status": "resolved")");
    auto n = readHaltBody(body, "monitor");
    EXPECT_TRUE(n.resolved);
    EXPECT_EQ(n.source, "alertmanager/hoist-halt/HighErrorRate");
}

TEST(HaltBody, ReasonFallsBackToTheAlertName) {
    std::string body = replaced(kAlertmanagerFiring, R"("summary": "error rate 7% on agents")", "");
    auto n = readHaltBody(body, "monitor");
    EXPECT_EQ(n.reason, "HighErrorRate (2 alerts firing)");
}

TEST(HaltBody, GrafanaIsToldApartByItsOrgIdAndUsesItsTitle) {
    auto n = readHaltBody(kGrafanaFiring, "monitor");
    EXPECT_EQ(n.kind, "grafana");
    // Group values in key order; characters a source cannot hold become '-'.
    EXPECT_EQ(n.source, "grafana/hoist/Latency-p99.SLO");
    EXPECT_EQ(n.reason, "[FIRING:1] Latency p99 SLO");
    EXPECT_TRUE(validHoldSource(n.source));
}

TEST(HaltBody, ALongGroupIsCutWithADigestSoTwoGroupsStayTwoHolds) {
    const char* group = R"("groupLabels": {"alertname": "HighErrorRate"})";
    std::string a = replaced(kAlertmanagerFiring, group,
                             R"("groupLabels": {"x": ")" + std::string(200, 'a') + "1\"}");
    std::string b = replaced(kAlertmanagerFiring, group,
                             R"("groupLabels": {"x": ")" + std::string(200, 'a') + "2\"}");
    auto na = readHaltBody(a, "monitor");
    auto nb = readHaltBody(b, "monitor");
    EXPECT_EQ(na.source.size(), kMaxSource);
    EXPECT_TRUE(validHoldSource(na.source)) << na.source;
    EXPECT_NE(na.source, nb.source);
}

TEST(HaltBody, FiringAlertsAreBoundedInCountAndBytes) {
    std::string body = R"({"receiver":"r","status":"firing","version":"4","alerts":[)";
    for (int i = 0; i < 500; ++i) {
        if (i > 0) body += ',';
        body += R"({"status":"firing","labels":{"alertname":"A","big":")" + std::string(2000, 'x') +
                R"("},"annotations":{}})";
    }
    body += "]}";
    auto n = readHaltBody(body, "monitor");
    EXPECT_EQ(n.kind, "alertmanager");
    EXPECT_LE(n.alerts_json.size(), kMaxAlertsBytes);
    auto alerts = json::parse(n.alerts_json, "alerts");
    ASSERT_TRUE(alerts.has_value()) << alerts.error().message;
    EXPECT_GT(alerts->Size(), 0u);
    EXPECT_LE(alerts->Size(), kMaxAlerts);
    EXPECT_NE(n.reason.find("(500 alerts firing)"), std::string::npos);
}

TEST(HaltBody, UnknownShapesStillHaltAndKeepTheBody) {
    struct Case {
        const char* body;
        const char* kind;
        const char* warning;
    };
    const Case cases[] = {
        {R"({"text":"disk full"})", "unknown", "expected {\"reason\",\"source\"}"},
        {R"({"reason":"x","extra":1})", "unknown", "expected {\"reason\",\"source\"}"},
        {R"({"reason":5})", "unknown", "field 'reason' must be a string"},
        {R"([1,2])", "unknown", "JSON but not an object"},
        {R"({"alerts":[],"receiver":"r","version":"9"})", "unknown", "an Alertmanager"},
        {"halt now\x01\xff", "not-json", "invalid JSON"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.body);
        auto n = readHaltBody(c.body, "monitor");
        EXPECT_EQ(n.kind, c.kind);
        EXPECT_EQ(n.source, "webhook");
        EXPECT_NE(n.warning.find(c.warning), std::string::npos) << n.warning;
        EXPECT_NE(n.reason.find("halt body not understood"), std::string::npos);
        EXPECT_FALSE(n.kept_body.empty());
        for (char ch : n.kept_body) EXPECT_TRUE(ch >= 0x20 && ch < 0x7f) << int(ch);
    }
    auto big = readHaltBody(R"({"x":")" + std::string(100000, 'y') + R"("})", "monitor");
    EXPECT_EQ(big.kept_body.size(), kMaxKeptBody + 3);
}

TEST(HaltBody, BadValuesInHoistsBodyAreWarnedNotRefused) {
    auto empty = readHaltBody(R"({"reason":""})", "monitor");
    EXPECT_EQ(empty.reason, "no reason given");
    EXPECT_EQ(empty.warning, "halt request: field 'reason' is empty");
    auto bad = readHaltBody(R"({"reason":"x","source":"has space"})", "admin");
    EXPECT_EQ(bad.source, "admin");
    EXPECT_NE(bad.warning.find("field 'source' must be 1-128 characters"), std::string::npos);
    auto reason = readHaltBody(R"({"reason":")" + std::string(2000, 'r') + R"("})", "admin");
    EXPECT_EQ(reason.reason.size(), 512u + 3);
}

TEST(HaltBody, SourcesMayHoldSlashesButNothingElseOdd) {
    EXPECT_TRUE(validHoldSource("alertmanager/r/g"));
    EXPECT_TRUE(validHoldSource("sla"));
    EXPECT_FALSE(validHoldSource(""));
    EXPECT_FALSE(validHoldSource("a b"));
    EXPECT_FALSE(validHoldSource(std::string(kMaxSource + 1, 'a')));
}

}  // namespace
}  // namespace hoist::deploy_coordinator
