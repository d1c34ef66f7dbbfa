#include "core/json.hpp"

#include <gtest/gtest.h>

#include "testing.hpp"

namespace hoist::json {
namespace {

TEST(Json, ParseErrorsNameTheInput) {
    ASSERT_ERROR(parse("{\"a\": }", "node.json"), Errc::Invalid,
                 "node.json: invalid JSON at offset");
    ASSERT_ERROR(parseObject("[1]", "node.json"), Errc::Invalid,
                 "node.json: must be a JSON object");
    ASSERT_ERROR(parse("{} {}", "x"), Errc::Invalid, "invalid JSON");
}

TEST(Json, DeepNestingIsRefusedNotACrash) {
    // 200 KB of '[' overflowed the recursive parser's stack (SIGSEGV).
    ASSERT_ERROR(parse(std::string(200 * 1024, '['), "body"), Errc::Invalid,
                 "body: JSON nested deeper than 128 levels");
    std::string objects;
    for (int i = 0; i < 150'000; ++i) objects += "{\"a\":";
    ASSERT_ERROR(parse(objects, "body"), Errc::Invalid, "body: JSON nested deeper than 128 levels");
    // The limit itself is allowed.
    std::string deepest = std::string(kMaxDepth, '[') + std::string(kMaxDepth, ']');
    EXPECT_OK(parse(deepest, "body"));
    ASSERT_ERROR(parse("[" + deepest + "]", "body"), Errc::Invalid, "nested deeper");
}

TEST(Json, DuplicateKeysAreRefused) {
    ASSERT_ERROR(parse(R"({"version": "1.0.0", "version": "9.9.9"})", "release"), Errc::Invalid,
                 "release: duplicate key 'version'");
    ASSERT_ERROR(parse(R"({"a": {"b": 1, "b": 2}})", "x"), Errc::Invalid, "duplicate key 'b'");
    // The same key in sibling objects is fine.
    EXPECT_OK(parse(R"({"a": {"b": 1}, "c": {"b": 2}, "d": [{"b": 1}, {"b": 2}]})", "x"));
}

TEST(Json, InvalidUtf8IsRefused) {
    ASSERT_ERROR(parse("{\"name\": \"a\xff\xfe\"}", "node.json"), Errc::Invalid,
                 "node.json: invalid UTF-8 in a string at offset");
    ASSERT_ERROR(parse("[\"\xc3\"]", "x"), Errc::Invalid, "invalid UTF-8");
    auto ok = parse("{\"name\": \"caf\xc3\xa9\"}", "x");
    ASSERT_OK(ok);
    EXPECT_EQ(toString(*ok), "{\"name\":\"caf\xc3\xa9\"}");
}

TEST(Json, WriterOutputStaysValidUtf8) {
    // An echoed path or query parameter with stray bytes used to make the reply invalid JSON.
    Writer w;
    w.beginObject()
        .field("error", "no deployment 'a\xff\xc3'")
        .field("caf\xc3\xa9", "ok")
        .endObject();
    auto text = w.str();
    EXPECT_EQ(text,
              "{\"error\":\"no deployment 'a\xEF\xBF\xBD\xEF\xBF\xBD'\",\"caf\xc3\xa9\":\"ok\"}");
    EXPECT_OK(parse(text, "reply"));
}

TEST(Json, TypedAccessorsNameFieldAndRule) {
    auto doc = parseObject(R"({"name": "mesos", "count": "3", "tags": ["a", 1]})", "pkginfo.json");
    ASSERT_OK(doc);
    auto name = getString(*doc, "name", "pkginfo.json");
    ASSERT_OK(name);
    EXPECT_EQ(*name, "mesos");
    ASSERT_ERROR(getInt(*doc, "count", "pkginfo.json"), Errc::Invalid,
                 "pkginfo.json: field 'count' must be an integer");
    ASSERT_ERROR(getString(*doc, "version", "pkginfo.json"), Errc::Invalid,
                 "pkginfo.json: field 'version' is required");
    ASSERT_ERROR(optStringArray(*doc, "tags", "pkginfo.json"), Errc::Invalid,
                 "an array of strings");
    auto absent = optString(*doc, "kind", "pkginfo.json");
    ASSERT_OK(absent);
    EXPECT_FALSE(absent->has_value());
}

TEST(Json, UnknownFieldsSuggestTheClosest) {
    auto doc = parseObject(R"({"rol": "agent"})", "node.json");
    ASSERT_OK(doc);
    ASSERT_ERROR(rejectUnknown(*doc, {"role", "id"}, "node.json"), Errc::Invalid,
                 "node.json: unknown field 'rol' (did you mean 'role'?)");
}

TEST(Json, WriterKeepsKeyOrderAndEscapes) {
    Writer w;
    w.beginObject()
        .field("z", 1)
        .field("a", "q\"uote")
        .key("list")
        .beginArray()
        .value(true)
        .null()
        .endArray()
        .endObject();
    EXPECT_EQ(w.str(), R"({"z":1,"a":"q\"uote","list":[true,null]})");
}

}  // namespace
}  // namespace hoist::json
