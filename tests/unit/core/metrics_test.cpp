// The Prometheus registry: series from 0, whole-family replacement (no stale per-state
// values), histograms, number formatting, and route templates.

#include <gtest/gtest.h>

#include "core/metrics.hpp"

namespace hoist::metrics {
namespace {

TEST(Metrics, DeclaredSeriesExistAtZeroAndKeepTheirCounts) {
    Registry r;
    r.describe("jobs_total", "counter", "jobs");
    r.declare("jobs_total", "result=\"ok\"");
    r.declare("jobs_total", "result=\"failed\"");
    r.add("jobs_total", "result=\"ok\"", 2);
    r.declare("jobs_total", "result=\"ok\"");  // declaring again keeps the count
    auto text = r.render();
    EXPECT_NE(text.find("jobs_total{result=\"failed\"} 0\n"), std::string::npos) << text;
    EXPECT_NE(text.find("jobs_total{result=\"ok\"} 2\n"), std::string::npos) << text;
    EXPECT_NE(text.find("# TYPE jobs_total counter\n"), std::string::npos) << text;
}

TEST(Metrics, ReplaceDropsSeriesThatAreGone) {
    Registry r;
    r.describe("info", "gauge", "the current one");
    r.replace("info", {{"id=\"d-1\"", 1}});
    r.replace("info", {{"id=\"d-2\"", 1}});
    auto text = r.render();
    EXPECT_EQ(text.find("d-1"), std::string::npos) << text;
    EXPECT_NE(text.find("info{id=\"d-2\"} 1\n"), std::string::npos) << text;
    r.replace("info", {});
    EXPECT_EQ(r.render().find("info"), std::string::npos);
}

TEST(Metrics, HistogramsRenderCumulativeBuckets) {
    Registry r;
    r.describeHistogram("took_seconds", "how long", {0.1, 1, 10});
    r.declare("took_seconds", "result=\"failed\"");
    r.observe("took_seconds", "result=\"done\"", 0.05);
    r.observe("took_seconds", "result=\"done\"", 1);  // on a bound: in that bucket
    r.observe("took_seconds", "result=\"done\"", 20);
    auto text = r.render();
    for (const char* line : {
             "# TYPE took_seconds histogram\n",
             "took_seconds_bucket{result=\"done\",le=\"0.1\"} 1\n",
             "took_seconds_bucket{result=\"done\",le=\"1\"} 2\n",
             "took_seconds_bucket{result=\"done\",le=\"10\"} 2\n",
             "took_seconds_bucket{result=\"done\",le=\"+Inf\"} 3\n",
             "took_seconds_sum{result=\"done\"} 21.05\n",
             "took_seconds_count{result=\"done\"} 3\n",
             "took_seconds_bucket{result=\"failed\",le=\"+Inf\"} 0\n",
             "took_seconds_count{result=\"failed\"} 0\n",
         })
        EXPECT_NE(text.find(line), std::string::npos) << line << text;
    auto h = r.histogram("took_seconds", "result=\"done\"");
    EXPECT_EQ(h.count, 3u);
}

TEST(Metrics, MergeCopiesFamilies) {
    Registry own;
    own.describeHistogram("a_seconds", "a", {1});
    own.observe("a_seconds", "", 0.5);
    own.describe("b_total", "counter", "b");
    own.add("b_total", "", 3);
    Registry server;
    server.merge(own);
    auto text = server.render();
    EXPECT_NE(text.find("a_seconds_count 1\n"), std::string::npos) << text;
    EXPECT_NE(text.find("b_total 3\n"), std::string::npos) << text;
}

TEST(Metrics, NumbersKeepEveryDigit) {
    Registry r;
    r.describe("start_time_seconds", "gauge", "start");
    r.set("start_time_seconds", "", 1764583380.25);
    EXPECT_NE(r.render().find("start_time_seconds 1764583380.25\n"), std::string::npos)
        << r.render();
}

TEST(Metrics, RouteTemplatesNameTheGroups) {
    EXPECT_EQ(routeTemplate(R"(/v1/deployments/([^/]+)/(pause|resume|abort|rollback))"),
              "/v1/deployments/{id}/{action}");
    EXPECT_EQ(routeTemplate(R"(/v1/nodes/([^/]+)/status)"), "/v1/nodes/{id}/status");
    EXPECT_EQ(routeTemplate("/packages/(.*)"), "/packages/{path}");
    EXPECT_EQ(routeTemplate(R"(/releases/(.*?)\.json(\.sig)?)"), "/releases/{path}.json[.sig]");
    EXPECT_EQ(routeTemplate("/v1/packages/([0-9a-f]{64})"), "/v1/packages/{id}");
    EXPECT_EQ(routeTemplate("/v1/halt"), "/v1/halt");
}

TEST(Metrics, ProcessMetricsAndBuildInfo) {
    Registry r;
    collectProcess(r);
    EXPECT_GT(r.get("process_resident_memory_bytes"), 0);
    EXPECT_GT(r.get("process_open_fds"), 0);
    EXPECT_GT(r.get("process_start_time_seconds"), 1.6e9);
    auto text = r.render();
    EXPECT_NE(
        text.find("hoist_build_info{version=\"" + std::string(buildVersion()) + "\",revision=\""),
        std::string::npos)
        << text;
}

}  // namespace
}  // namespace hoist::metrics
