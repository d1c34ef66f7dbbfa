#include "core/json.hpp"

#include <gtest/gtest.h>

#include "testing.hpp"

namespace hoist::json {
namespace {

TEST(Json, ParseErrorsNameTheInput) {
    ASSERT_ERROR(parse("{\"a\": }", "node.json"), Errc::Invalid, "node.json: invalid JSON at offset");
    ASSERT_ERROR(parseObject("[1]", "node.json"), Errc::Invalid, "node.json: must be a JSON object");
    ASSERT_ERROR(parse("{} {}", "x"), Errc::Invalid, "invalid JSON");
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
    ASSERT_ERROR(optStringArray(*doc, "tags", "pkginfo.json"), Errc::Invalid, "an array of strings");
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
    w.beginObject().field("z", 1).field("a", "q\"uote").key("list").beginArray().value(true).null().endArray().endObject();
    EXPECT_EQ(w.str(), R"({"z":1,"a":"q\"uote","list":[true,null]})");
}

}  // namespace
}  // namespace hoist::json
