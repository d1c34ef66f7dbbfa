#pragma once

#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace hoist::metrics {

/// A small Prometheus registry: counters and gauges keyed by name and a label set written
/// as Prometheus text (`route="/v1/node",status="200"`). Thread-safe.
class Registry {
public:
    /// Declares a metric's type ("counter" or "gauge") and help text; optional but shown.
    void describe(std::string_view name, std::string_view type, std::string_view help);
    void add(std::string_view name, std::string_view labels = {}, double value = 1.0);
    void set(std::string_view name, std::string_view labels, double value);
    double get(std::string_view name, std::string_view labels = {}) const;
    /// The text exposition format, metrics sorted by name then labels.
    std::string render() const;

private:
    struct Family {
        std::string type = "untyped";
        std::string help;
        std::map<std::string, double> series;
    };
    mutable std::mutex mutex_;
    std::map<std::string, Family, std::less<>> families_;
};

/// Escapes a label value for the text format (backslash, quote, newline).
std::string labelValue(std::string_view value);

}  // namespace hoist::metrics
