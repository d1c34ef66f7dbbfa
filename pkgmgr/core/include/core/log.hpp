#pragma once

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace hoist::log {

enum class Level { Debug, Info, Warn, Error };
enum class Format { Text, Json };

/// Sets the minimum level and the line format for the whole process. Thread-safe.
void configure(Level min_level, Format format);
/// Parses "debug|info|warn|error" and "text|json"; false when the word is unknown.
bool parseLevel(std::string_view word, Level& out);
bool parseFormat(std::string_view word, Format& out);

/// One key=value pair on a log line. Values are rendered as text (quoted when they hold
/// spaces) or as JSON strings/numbers in JSON mode. Never put a secret in a field.
struct Field {
    std::string key;
    std::string value;
    bool numeric = false;

    Field(std::string_view k, std::string_view v) : key(k), value(v) {}
    Field(std::string_view k, const char* v) : key(k), value(v) {}
    Field(std::string_view k, const std::string& v) : key(k), value(v) {}
    template <std::integral T>
    Field(std::string_view k, T v) : key(k), value(std::to_string(v)), numeric(true) {}
    Field(std::string_view k, double v);
};

/// Writes one line to stderr: `time level component message key=value ...`, or a JSON
/// object per line. Lines from several threads never interleave.
void write(Level level, std::string_view component, std::string_view message,
           std::initializer_list<Field> fields = {});

inline void debug(std::string_view c, std::string_view m, std::initializer_list<Field> f = {}) {
    write(Level::Debug, c, m, f);
}
inline void info(std::string_view c, std::string_view m, std::initializer_list<Field> f = {}) {
    write(Level::Info, c, m, f);
}
inline void warn(std::string_view c, std::string_view m, std::initializer_list<Field> f = {}) {
    write(Level::Warn, c, m, f);
}
inline void error(std::string_view c, std::string_view m, std::initializer_list<Field> f = {}) {
    write(Level::Error, c, m, f);
}

/// The current time as RFC 3339 UTC with milliseconds: 2026-11-22T10:00:00.123Z.
std::string nowRfc3339();
/// A time in milliseconds since the Unix epoch as RFC 3339 UTC with milliseconds.
std::string rfc3339(std::int64_t unix_ms);

}  // namespace hoist::log
