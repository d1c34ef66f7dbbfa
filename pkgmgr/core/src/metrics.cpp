#include "core/metrics.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>

namespace hoist::metrics {

namespace {

void appendNumber(std::string& out, double value) {
    if (std::isnan(value)) {
        out += "NaN";
        return;
    }
    if (std::isinf(value)) {
        out += value > 0 ? "+Inf" : "-Inf";
        return;
    }
    char buffer[64];
    // The shortest text that reads back as the same double (timestamps keep every digit).
    auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
    if (ec != std::errc{}) {
        out += "NaN";
        return;
    }
    out.append(buffer, end);
}

std::string withLabel(const std::string& labels, const std::string& extra) {
    return labels.empty() ? extra : labels + "," + extra;
}

void appendSeries(std::string& out, std::string_view name, const std::string& labels,
                  double value) {
    out += name;
    if (!labels.empty()) out += "{" + labels + "}";
    out += ' ';
    appendNumber(out, value);
    out += '\n';
}

}  // namespace

const std::vector<double>& requestBuckets() {
    static const std::vector<double> kBounds{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                             0.25,  0.5,    1,     2.5,  5,     10};
    return kBounds;
}

const std::vector<double>& stepBuckets() {
    static const std::vector<double> kBounds{0.1, 0.25, 0.5, 1,   2.5, 5,    10,  15,
                                             30,  60,   120, 300, 600, 1200, 1800};
    return kBounds;
}

void Registry::describe(std::string_view name, std::string_view type, std::string_view help) {
    std::lock_guard lock(mutex_);
    auto& family = families_[std::string(name)];
    family.type = type;
    family.help = help;
}

void Registry::describeHistogram(std::string_view name, std::string_view help,
                                 std::vector<double> bounds) {
    std::lock_guard lock(mutex_);
    auto& family = families_[std::string(name)];
    family.type = "histogram";
    family.help = help;
    family.bounds = std::move(bounds);
}

void Registry::declare(std::string_view name, std::string_view labels) {
    std::lock_guard lock(mutex_);
    auto& family = families_[std::string(name)];
    if (family.type == "histogram") {
        auto& h = family.histograms[std::string(labels)];
        if (h.counts.empty()) h.counts.assign(family.bounds.size() + 1, 0);
        return;
    }
    family.series.try_emplace(std::string(labels), 0.0);
}

void Registry::add(std::string_view name, std::string_view labels, double value) {
    std::lock_guard lock(mutex_);
    families_[std::string(name)].series[std::string(labels)] += value;
}

void Registry::set(std::string_view name, std::string_view labels, double value) {
    std::lock_guard lock(mutex_);
    families_[std::string(name)].series[std::string(labels)] = value;
}

void Registry::replace(std::string_view name,
                       const std::vector<std::pair<std::string, double>>& series) {
    std::lock_guard lock(mutex_);
    auto& family = families_[std::string(name)];
    family.series.clear();
    for (const auto& [labels, value] : series) family.series[labels] = value;
}

void Registry::observe(std::string_view name, std::string_view labels, double value) {
    std::lock_guard lock(mutex_);
    auto it = families_.find(name);
    if (it == families_.end() || it->second.type != "histogram") return;
    auto& family = it->second;
    auto& h = family.histograms[std::string(labels)];
    if (h.counts.empty()) h.counts.assign(family.bounds.size() + 1, 0);
    ++h.counts[bucketIndex(family.bounds, value)];
    h.sum += value;
    ++h.count;
}

void Registry::setHistogram(std::string_view name, std::string_view labels,
                            const HistogramCounts& counts) {
    std::lock_guard lock(mutex_);
    auto it = families_.find(name);
    if (it == families_.end() || it->second.type != "histogram") return;
    if (counts.counts.size() != it->second.bounds.size() + 1) return;
    it->second.histograms[std::string(labels)] = counts;
}

double Registry::get(std::string_view name, std::string_view labels) const {
    std::lock_guard lock(mutex_);
    auto it = families_.find(name);
    if (it == families_.end()) return 0.0;
    auto s = it->second.series.find(std::string(labels));
    return s == it->second.series.end() ? 0.0 : s->second;
}

HistogramCounts Registry::histogram(std::string_view name, std::string_view labels) const {
    std::lock_guard lock(mutex_);
    auto it = families_.find(name);
    if (it == families_.end()) return {};
    auto h = it->second.histograms.find(std::string(labels));
    return h == it->second.histograms.end() ? HistogramCounts{} : h->second;
}

void Registry::merge(const Registry& from) {
    if (&from == this) return;
    std::map<std::string, Family, std::less<>> copy;
    {
        std::lock_guard lock(from.mutex_);
        copy = from.families_;
    }
    std::lock_guard lock(mutex_);
    for (auto& [name, family] : copy) families_[name] = std::move(family);
}

std::string Registry::render() const {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& [name, family] : families_) {
        if (family.series.empty() && family.histograms.empty()) continue;
        if (!family.help.empty()) out += "# HELP " + name + " " + family.help + "\n";
        out += "# TYPE " + name + " " + family.type + "\n";
        for (const auto& [labels, value] : family.series) appendSeries(out, name, labels, value);
        for (const auto& [labels, h] : family.histograms) {
            std::uint64_t cumulative = 0;
            for (std::size_t i = 0; i < h.counts.size(); ++i) {
                cumulative += h.counts[i];
                std::string le;
                if (i < family.bounds.size())
                    appendNumber(le, family.bounds[i]);
                else
                    le = "+Inf";
                appendSeries(out, name + "_bucket", withLabel(labels, "le=\"" + le + "\""),
                             static_cast<double>(cumulative));
            }
            appendSeries(out, name + "_sum", labels, h.sum);
            appendSeries(out, name + "_count", labels, static_cast<double>(h.count));
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

std::string label(std::string_view name, std::string_view value) {
    return std::string(name) + "=\"" + labelValue(value) + "\"";
}

std::size_t bucketIndex(const std::vector<double>& bounds, double value) {
    return static_cast<std::size_t>(std::lower_bound(bounds.begin(), bounds.end(), value) -
                                    bounds.begin());
}

std::string routeTemplate(std::string_view pattern) {
    auto literal = [](std::string_view text) {
        std::string out;
        for (std::size_t i = 0; i < text.size(); ++i) {
            if (text[i] == '\\' && i + 1 < text.size()) ++i;
            out += text[i];
        }
        return out;
    };
    auto plainText = [](std::string_view text, bool allow_bar) {
        for (std::size_t i = 0; i < text.size(); ++i) {
            char c = text[i];
            if (c == '\\') {
                ++i;
                continue;
            }
            if (c == '|' && allow_bar) continue;
            if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '_' && c != '-' &&
                c != '/')
                return false;
        }
        return !text.empty();
    };
    std::string out;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        char c = pattern[i];
        if (c == '\\' && i + 1 < pattern.size()) {
            out += pattern[++i];
            continue;
        }
        if (c != '(') {
            out += c;
            continue;
        }
        // The group's end, counting nested groups and skipping escapes and classes.
        std::size_t depth = 0, j = i;
        bool in_class = false;
        for (; j < pattern.size(); ++j) {
            char d = pattern[j];
            if (d == '\\') {
                ++j;
                continue;
            }
            if (in_class) {
                in_class = d != ']';
                continue;
            }
            if (d == '[')
                in_class = true;
            else if (d == '(')
                ++depth;
            else if (d == ')' && --depth == 0)
                break;
        }
        auto inner =
            pattern.substr(i + 1, j >= pattern.size() ? std::string_view::npos : j - i - 1);
        if (inner.starts_with("?:")) inner.remove_prefix(2);
        bool optional = j + 1 < pattern.size() && pattern[j + 1] == '?';
        if (optional && plainText(inner, false))
            out += "[" + literal(inner) + "]";
        else if (inner.find('|') != std::string_view::npos && plainText(inner, true))
            out += "{action}";
        else if (inner == ".*" || inner == ".+" || inner == ".*?" || inner == ".+?")
            out += "{path}";
        else
            out += "{id}";
        i = optional ? j + 1 : j;
    }
    return out;
}

std::string_view buildVersion() {
    return HOIST_VERSION;
}
std::string_view buildRevision() {
    return HOIST_REVISION;
}

void collectProcess(Registry& r) {
    r.describe("hoist_build_info", "gauge",
               "1, labelled with the version and source revision built");
    r.describe("process_resident_memory_bytes", "gauge", "resident memory size in bytes");
    r.describe("process_virtual_memory_bytes", "gauge", "virtual memory size in bytes");
    r.describe("process_open_fds", "gauge", "open file descriptors");
    r.describe("process_max_fds", "gauge", "the limit of open file descriptors");
    r.describe("process_start_time_seconds", "gauge",
               "start time of the process since the Unix epoch in seconds");
    r.describe("process_cpu_seconds_total", "counter", "user and system CPU time spent in seconds");
    r.replace("hoist_build_info",
              {{label("version", buildVersion()) + "," + label("revision", buildRevision()), 1.0}});

    const auto page = static_cast<double>(::sysconf(_SC_PAGESIZE));
    const auto ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    {
        std::ifstream statm("/proc/self/statm");
        double size = 0, resident = 0;
        if (statm >> size >> resident) {
            r.set("process_virtual_memory_bytes", {}, size * page);
            r.set("process_resident_memory_bytes", {}, resident * page);
        }
    }
    if (DIR* dir = ::opendir("/proc/self/fd")) {
        double fds = 0;
        while (auto* entry = ::readdir(dir))
            if (entry->d_name[0] != '.') ++fds;
        ::closedir(dir);
        r.set("process_open_fds", {}, fds - 1);  // less the descriptor of this listing
    }
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0)
        r.set("process_max_fds", {}, static_cast<double>(limit.rlim_cur));
    rusage usage{};
    if (::getrusage(RUSAGE_SELF, &usage) == 0) {
        auto seconds = [](const timeval& t) {
            return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
        };
        r.set("process_cpu_seconds_total", {}, seconds(usage.ru_utime) + seconds(usage.ru_stime));
    }
    // The start time: clock ticks after boot (field 22 of /proc/self/stat) plus the boot time.
    static const double start_time = [ticks] {
        std::ifstream stat("/proc/self/stat");
        std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
        auto close = text.rfind(')');
        if (close == std::string::npos) return 0.0;
        std::istringstream fields(text.substr(close + 2));
        std::string field;
        // Fields after the command name start at field 3 (the state); starttime is field 22.
        for (int n = 3; n <= 22 && (fields >> field); ++n) {
        }
        double start_ticks = 0;
        try {
            start_ticks = std::stod(field);
        } catch (...) {
            return 0.0;
        }
        std::ifstream proc_stat("/proc/stat");
        std::string line;
        while (std::getline(proc_stat, line)) {
            if (line.starts_with("btime ")) {
                try {
                    return std::stod(line.substr(6)) + start_ticks / ticks;
                } catch (...) {
                    return 0.0;
                }
            }
        }
        return 0.0;
    }();
    if (start_time > 0) r.set("process_start_time_seconds", {}, start_time);
}

}  // namespace hoist::metrics
