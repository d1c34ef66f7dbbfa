#include "core/metrics.hpp"

#include <cmath>
#include <cstdio>

namespace hoist::metrics {

void Registry::describe(std::string_view name, std::string_view type, std::string_view help) {
    std::lock_guard lock(mutex_);
    auto& family = families_[std::string(name)];
    family.type = type;
    family.help = help;
}

void Registry::add(std::string_view name, std::string_view labels, double value) {
    std::lock_guard lock(mutex_);
    families_[std::string(name)].series[std::string(labels)] += value;
}

void Registry::set(std::string_view name, std::string_view labels, double value) {
    std::lock_guard lock(mutex_);
    families_[std::string(name)].series[std::string(labels)] = value;
}

double Registry::get(std::string_view name, std::string_view labels) const {
    std::lock_guard lock(mutex_);
    auto it = families_.find(name);
    if (it == families_.end()) return 0.0;
    auto s = it->second.series.find(std::string(labels));
    return s == it->second.series.end() ? 0.0 : s->second;
}

std::string Registry::render() const {
    std::lock_guard lock(mutex_);
    std::string out;
    char number[64];
    for (const auto& [name, family] : families_) {
        if (!family.help.empty()) out += "# HELP " + name + " " + family.help + "\n";
        out += "# TYPE " + name + " " + family.type + "\n";
        for (const auto& [labels, value] : family.series) {
            out += name;
            if (!labels.empty()) out += "{" + labels + "}";
            if (std::floor(value) == value && std::fabs(value) < 1e15)
                std::snprintf(number, sizeof number, " %.0f\n", value);
            else
                std::snprintf(number, sizeof number, " %.6g\n", value);
            out += number;
        }
    }
    return out;
}

std::string labelValue(std::string_view value) {
    std::string out;
    for (char c : value) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

}  // namespace hoist::metrics
