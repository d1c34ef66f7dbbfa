#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "core/error.hpp"

namespace hoist::json {

using Document = rapidjson::Document;
using Value = rapidjson::Value;

/// Nesting deeper than this (objects and arrays) is refused.
inline constexpr std::size_t kMaxDepth = 128;

/// Parses text; `what` names the input in errors ("pkginfo.json: invalid JSON at offset 12:
/// missing a comma"). Fails with Invalid. The parser is iterative (no recursion on the
/// thread's stack) and refuses nesting deeper than kMaxDepth, a key repeated in one object
/// and invalid UTF-8. Every JSON input goes through here.
Result<Document> parse(std::string_view text, std::string_view what);
/// Parses and requires the root to be an object.
Result<Document> parseObject(std::string_view text, std::string_view what);

// Field accessors. `ctx` names the object ("pkginfo.json", "release 2.0.0"); the error names
// ctx, the field and the rule: "pkginfo.json: field 'version' must be a string".
Result<std::string> getString(const Value& obj, std::string_view key, std::string_view ctx);
Result<std::optional<std::string>> optString(const Value& obj, std::string_view key,
                                             std::string_view ctx);
Result<std::int64_t> getInt(const Value& obj, std::string_view key, std::string_view ctx);
Result<std::optional<std::int64_t>> optInt(const Value& obj, std::string_view key,
                                           std::string_view ctx);
Result<bool> getBool(const Value& obj, std::string_view key, std::string_view ctx);
Result<std::optional<bool>> optBool(const Value& obj, std::string_view key, std::string_view ctx);
/// The member if present and an object; nullptr when absent; an error when another type.
Result<const Value*> optObject(const Value& obj, std::string_view key, std::string_view ctx);
Result<const Value*> getObject(const Value& obj, std::string_view key, std::string_view ctx);
Result<const Value*> optArray(const Value& obj, std::string_view key, std::string_view ctx);
Result<const Value*> getArray(const Value& obj, std::string_view key, std::string_view ctx);
/// An array of strings (absent: empty).
Result<std::vector<std::string>> optStringArray(const Value& obj, std::string_view key,
                                                std::string_view ctx);
/// Refuses an object that lacks any of `required`, naming every one missing:
/// "status ping: field 'seq' is required", "GET /v1/node: fields 'id', 'healthy' are required".
Result<void> requireMembers(const Value& obj, std::initializer_list<std::string_view> required,
                            std::string_view ctx);
/// Refuses members not in `allowed`: "node.json: unknown field 'rol' (did you mean 'role'?)".
Result<void> rejectUnknown(const Value& obj, std::initializer_list<std::string_view> allowed,
                           std::string_view ctx);

/// Compact serialisation of a value.
std::string toString(const Value& value);

/// Builds JSON text with a fixed key order. Not thread-safe; one per message.
class Writer {
public:
    Writer();
    ~Writer();
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;

    Writer& beginObject();
    Writer& endObject();
    Writer& beginArray();
    Writer& endArray();
    Writer& key(std::string_view k);
    Writer& value(std::string_view v);
    Writer& value(const char* v) { return value(std::string_view(v)); }
    Writer& value(const std::string& v) { return value(std::string_view(v)); }
    Writer& value(bool v);
    Writer& value(std::int64_t v);
    Writer& value(std::uint64_t v);
    Writer& value(int v) { return value(static_cast<std::int64_t>(v)); }
    Writer& value(unsigned v) { return value(static_cast<std::uint64_t>(v)); }
    Writer& value(double v);
    Writer& null();
    /// Inserts already-serialised JSON (trusted: produced by another Writer or toString).
    Writer& raw(std::string_view json);
    /// Inserts a parsed value.
    Writer& value(const Value& v);

    /// Convenience: key(k).value(v).
    template <class T>
    Writer& field(std::string_view k, const T& v) {
        key(k);
        return value(v);
    }

    std::string str() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// Re-serialises with two-space indentation, for people.
std::string pretty(std::string_view json_text);

}  // namespace hoist::json
