#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hoist::metrics {

/// Bucket bounds (seconds) for durations of HTTP requests: 1 ms to 10 s.
const std::vector<double>& requestBuckets();
/// Bucket bounds (seconds) for rollout steps (a stage, a node's swap): 100 ms to 30 min.
const std::vector<double>& stepBuckets();

/// The counts of one histogram series: counts[i] are the observations <= bounds[i] of its
/// family (not cumulative); the last entry counts those above every bound.
struct HistogramCounts {
    std::vector<std::uint64_t> counts;
    double sum = 0;
    std::uint64_t count = 0;
};

/// A small Prometheus registry: counters, gauges and histograms keyed by name and a label set
/// written as Prometheus text (`route="/v1/node",status="200"`). Thread-safe.
///
/// Every series a dashboard may rate over should exist from the start: `declare` creates a
/// series at 0. Gauges whose label set changes (a per-state gauge, an info metric) are
/// written whole with `replace`, so no series keeps a stale value.
class Registry {
public:
    /// Declares a metric's type ("counter", "gauge") and help text; optional but shown.
    void describe(std::string_view name, std::string_view type, std::string_view help);
    /// Declares a histogram with its bucket upper bounds (ascending, +Inf implied).
    void describeHistogram(std::string_view name, std::string_view help,
                           std::vector<double> bounds);
    /// Creates the series at 0 (an empty histogram for a histogram) unless it exists.
    void declare(std::string_view name, std::string_view labels = {});
    void add(std::string_view name, std::string_view labels = {}, double value = 1.0);
    void set(std::string_view name, std::string_view labels, double value);
    /// Replaces every series of the family with these (label set, value) pairs.
    void replace(std::string_view name, const std::vector<std::pair<std::string, double>>& series);
    /// Records one observation in a histogram declared with describeHistogram (ignored
    /// otherwise).
    void observe(std::string_view name, std::string_view labels, double value);
    /// Sets a histogram series whole (counts kept elsewhere, copied in before a render);
    /// counts must have one entry per bound plus one.
    void setHistogram(std::string_view name, std::string_view labels,
                      const HistogramCounts& counts);
    double get(std::string_view name, std::string_view labels = {}) const;
    /// A histogram series' counts (empty when there is none).
    HistogramCounts histogram(std::string_view name, std::string_view labels = {}) const;
    /// Copies every family of `from` into this one, replacing families of the same name (a
    /// component keeping its own registry publishes it into the server's before a render).
    void merge(const Registry& from);
    /// The text exposition format, metrics sorted by name then labels.
    std::string render() const;

private:
    struct Family {
        std::string type = "untyped";
        std::string help;
        std::map<std::string, double> series;
        std::vector<double> bounds;
        std::map<std::string, HistogramCounts> histograms;
    };
    mutable std::mutex mutex_;
    std::map<std::string, Family, std::less<>> families_;
};

/// Escapes a label value for the text format (backslash, quote, newline).
std::string labelValue(std::string_view value);

/// `name="value"` with the value escaped.
std::string label(std::string_view name, std::string_view value);

/// The index of the bucket a value falls in (bounds.size() for above every bound).
std::size_t bucketIndex(const std::vector<double>& bounds, double value);

/// The label a route's regex pattern is reported under: each capture group becomes a
/// placeholder (`/v1/deployments/([^/]+)/(pause|resume)` gives `/v1/deployments/{id}/{action}`):
/// a group of plain alternatives is `{action}`, `(.*)` or `(.+)` is `{path}`, an optional group
/// of literal text is `[text]`, any other group `{id}`; escaped characters lose their backslash.
std::string routeTemplate(std::string_view pattern);

/// Sets hoist_build_info{version,revision} and the process metrics (process_resident_memory_bytes,
/// process_virtual_memory_bytes, process_open_fds, process_max_fds, process_start_time_seconds,
/// process_cpu_seconds_total) from /proc. Every serving binary calls it before a render.
void collectProcess(Registry& registry);

/// The version and source revision this binary was built from.
std::string_view buildVersion();
std::string_view buildRevision();

}  // namespace hoist::metrics
