#include "core/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace hoist::log {

namespace {
std::atomic<Level> g_level{Level::Info};
std::atomic<Format> g_format{Format::Text};
std::mutex g_mutex;

std::string_view levelName(Level level) {
    switch (level) {
        case Level::Debug:
            return "debug";
        case Level::Info:
            return "info";
        case Level::Warn:
            return "warn";
        case Level::Error:
            return "error";
    }
    return "info";
}

bool needsQuotes(std::string_view value) {
    if (value.empty()) return true;
    for (char c : value)
        if (c == ' ' || c == '"' || c == '=' || c == '\n' || c == '\t') return true;
    return false;
}

void appendQuoted(std::string& out, std::string_view value) {
    out += '"';
    for (char c : value) {
        if (c == '"' || c == '\\') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    out += '"';
}
}  // namespace

Field::Field(std::string_view k, double v) : key(k), value(std::to_string(v)), numeric(true) {}

void configure(Level min_level, Format format) {
    g_level = min_level;
    g_format = format;
}

bool parseLevel(std::string_view word, Level& out) {
    for (Level l : {Level::Debug, Level::Info, Level::Warn, Level::Error})
        if (levelName(l) == word) {
            out = l;
            return true;
        }
    return false;
}

bool parseFormat(std::string_view word, Format& out) {
    if (word == "text")
        out = Format::Text;
    else if (word == "json")
        out = Format::Json;
    else
        return false;
    return true;
}

std::string rfc3339(std::int64_t unix_ms) {
    std::int64_t seconds = unix_ms / 1000;
    std::int64_t millis = unix_ms % 1000;
    if (millis < 0) {
        millis += 1000;
        seconds -= 1;
    }
    auto secs = static_cast<std::time_t>(seconds);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[96];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(millis));
    return buf;
}

std::string nowRfc3339() {
    using namespace std::chrono;
    return rfc3339(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

void write(Level level, std::string_view component, std::string_view message,
           std::initializer_list<Field> fields) {
    if (level < g_level.load()) return;
    std::string line;
    if (g_format.load() == Format::Json) {
        rapidjson::StringBuffer buffer;
        rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
        w.StartObject();
        auto str = [&w](std::string_view s) {
            w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
        };
        w.Key("time");
        str(nowRfc3339());
        w.Key("level");
        str(levelName(level));
        w.Key("component");
        str(component);
        w.Key("message");
        str(message);
        for (const auto& f : fields) {
            str(f.key);
            if (f.numeric)
                w.RawValue(f.value.data(), f.value.size(), rapidjson::kNumberType);
            else
                str(f.value);
        }
        w.EndObject();
        line.assign(buffer.GetString(), buffer.GetSize());
    } else {
        line = nowRfc3339();
        line += ' ';
        line += levelName(level);
        line += ' ';
        line += component;
        line += ' ';
        line += message;
        for (const auto& f : fields) {
            line += ' ';
            line += f.key;
            line += '=';
            if (!f.numeric && needsQuotes(f.value))
                appendQuoted(line, f.value);
            else
                line += f.value;
        }
    }
    line += '\n';
    std::lock_guard lock(g_mutex);
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
}

}  // namespace hoist::log
