#include "core/json.hpp"

#include <algorithm>
#include <unordered_set>

#include <rapidjson/encodedstream.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "core/strings.hpp"

namespace hoist::json {

namespace {
rapidjson::Value::ConstMemberIterator find(const Value& obj, std::string_view key) {
    return obj.FindMember(rapidjson::Value(
        rapidjson::StringRef(key.data(), static_cast<rapidjson::SizeType>(key.size()))));
}

std::unexpected<Error> typeError(std::string_view ctx, std::string_view key,
                                 std::string_view type) {
    return fail(Errc::Invalid, ctx, ": field '", key, "' must be ", type);
}

std::unexpected<Error> missing(std::string_view ctx, std::string_view key) {
    return fail(Errc::Invalid, ctx, ": field '", key, "' is required");
}
}  // namespace

namespace {
// Forwards RapidJSON's SAX events to the document being built, refusing nesting deeper than
// kMaxDepth and a key repeated within one object. The iterative parser keeps its own stack
// on the heap, so depth is bounded here and not by the thread's stack.
class LimitedHandler {
public:
    explicit LimitedHandler(Document& doc) : doc_(doc) {}

    enum class Refusal { None, TooDeep, DuplicateKey };
    Refusal refusal() const { return refusal_; }
    const std::string& duplicate() const { return duplicate_; }

    bool Null() { return doc_.Null(); }
    bool Bool(bool b) { return doc_.Bool(b); }
    bool Int(int i) { return doc_.Int(i); }
    bool Uint(unsigned u) { return doc_.Uint(u); }
    bool Int64(std::int64_t i) { return doc_.Int64(i); }
    bool Uint64(std::uint64_t u) { return doc_.Uint64(u); }
    bool Double(double d) { return doc_.Double(d); }
    bool RawNumber(const char* s, rapidjson::SizeType n, bool copy) {
        return doc_.RawNumber(s, n, copy);
    }
    bool String(const char* s, rapidjson::SizeType n, bool copy) { return doc_.String(s, n, copy); }
    bool StartObject() {
        if (!enter()) return false;
        keys_.emplace_back();
        return doc_.StartObject();
    }
    bool Key(const char* s, rapidjson::SizeType n, bool copy) {
        auto& seen = keys_.back();
        if (!seen.emplace(s, n).second) {
            refusal_ = Refusal::DuplicateKey;
            duplicate_.assign(s, n);
            return false;
        }
        return doc_.Key(s, n, copy);
    }
    bool EndObject(rapidjson::SizeType members) {
        --depth_;
        keys_.pop_back();
        return doc_.EndObject(members);
    }
    bool StartArray() { return enter() && doc_.StartArray(); }
    bool EndArray(rapidjson::SizeType elements) {
        --depth_;
        return doc_.EndArray(elements);
    }

private:
    bool enter() {
        if (++depth_ > kMaxDepth) {
            refusal_ = Refusal::TooDeep;
            return false;
        }
        return true;
    }

    Document& doc_;
    std::size_t depth_ = 0;
    std::vector<std::unordered_set<std::string>> keys_;
    Refusal refusal_ = Refusal::None;
    std::string duplicate_;
};

constexpr unsigned kParseFlags =
    rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;
}  // namespace

Result<Document> parse(std::string_view text, std::string_view what) {
    Document doc;
    LimitedHandler handler(doc);
    rapidjson::ParseResult result;
    auto generate = [&](Document&) {
        rapidjson::MemoryStream stream(text.data(), text.size());
        rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> input(stream);
        rapidjson::Reader reader;
        result = reader.Parse<kParseFlags>(input, handler);
        return !result.IsError();
    };
    doc.Populate(generate);
    if (handler.refusal() == LimitedHandler::Refusal::TooDeep)
        return fail(Errc::Invalid, what, ": JSON nested deeper than ", kMaxDepth,
                    " levels (at offset ", result.Offset(), ")");
    if (handler.refusal() == LimitedHandler::Refusal::DuplicateKey)
        return fail(Errc::Invalid, what, ": duplicate key '", handler.duplicate(), "' at offset ",
                    result.Offset());
    if (result.IsError()) {
        if (result.Code() == rapidjson::kParseErrorStringInvalidEncoding)
            return fail(Errc::Invalid, what, ": invalid UTF-8 in a string at offset ",
                        result.Offset());
        return fail(Errc::Invalid, what, ": invalid JSON at offset ", result.Offset(), ": ",
                    rapidjson::GetParseError_En(result.Code()));
    }
    return doc;
}

Result<Document> parseObject(std::string_view text, std::string_view what) {
    HOIST_ASSIGN(Document doc, parse(text, what));
    if (!doc.IsObject()) return fail(Errc::Invalid, what, ": must be a JSON object");
    return doc;
}

Result<std::string> getString(const Value& obj, std::string_view key, std::string_view ctx) {
    auto it = find(obj, key);
    if (it == obj.MemberEnd()) return missing(ctx, key);
    if (!it->value.IsString()) return typeError(ctx, key, "a string");
    return std::string(it->value.GetString(), it->value.GetStringLength());
}

Result<std::optional<std::string>> optString(const Value& obj, std::string_view key,
                                             std::string_view ctx) {
    auto it = find(obj, key);
    if (it == obj.MemberEnd()) return std::optional<std::string>{};
    if (!it->value.IsString()) return typeError(ctx, key, "a string");
    return std::optional<std::string>(
        std::string(it->value.GetString(), it->value.GetStringLength()));
}

Result<std::int64_t> getInt(const Value& obj, std::string_view key, std::string_view ctx) {
    auto it = find(obj, key);
    if (it == obj.MemberEnd()) return missing(ctx, key);
    if (!it->value.IsInt64()) return typeError(ctx, key, "an integer");
    return it->value.GetInt64();
}

Result<std::optional<std::int64_t>> optInt(const Value& obj, std::string_view key,
                                           std::string_view ctx) {
    auto it = find(obj, key);
    if (it == obj.MemberEnd()) return std::optional<std::int64_t>{};
    if (!it->value.IsInt64()) return typeError(ctx, key, "an integer");
    return std::optional<std::int64_t>(it->value.GetInt64());
}

Result<bool> getBool(const Value& obj, std::string_view key, std::string_view ctx) {
    auto it = find(obj, key);
    if (it == obj.MemberEnd()) return missing(ctx, key);
    if (!it->value.IsBool()) return typeError(ctx, key, "true or false");
    return it->value.GetBool();
}

Result<std::optional<bool>> optBool(const Value& obj, std::string_view key, std::string_view ctx) {
    auto it = find(obj, key);
    if (it == obj.MemberEnd()) return std::optional<bool>{};
    if (!it->value.IsBool()) return typeError(ctx, key, "true or false");
    return std::optional<bool>(it->value.GetBool());
}

Result<const Value*> optObject(const Value& obj, std::string_view key, std::string_view ctx) {
    auto it = find(obj, key);
    if (it == obj.MemberEnd()) return static_cast<const Value*>(nullptr);
    if (!it->value.IsObject()) return typeError(ctx, key, "an object");
    return &it->value;
}

Result<const Value*> getObject(const Value& obj, std::string_view key, std::string_view ctx) {
    HOIST_ASSIGN(const Value* v, optObject(obj, key, ctx));
    if (v == nullptr) return missing(ctx, key);
    return v;
}

Result<const Value*> optArray(const Value& obj, std::string_view key, std::string_view ctx) {
    auto it = find(obj, key);
    if (it == obj.MemberEnd()) return static_cast<const Value*>(nullptr);
    if (!it->value.IsArray()) return typeError(ctx, key, "an array");
    return &it->value;
}

Result<const Value*> getArray(const Value& obj, std::string_view key, std::string_view ctx) {
    HOIST_ASSIGN(const Value* v, optArray(obj, key, ctx));
    if (v == nullptr) return missing(ctx, key);
    return v;
}

Result<std::vector<std::string>> optStringArray(const Value& obj, std::string_view key,
                                                std::string_view ctx) {
    HOIST_ASSIGN(const Value* arr, optArray(obj, key, ctx));
    std::vector<std::string> out;
    if (arr == nullptr) return out;
    for (const auto& item : arr->GetArray()) {
        if (!item.IsString()) return typeError(ctx, key, "an array of strings");
        out.emplace_back(item.GetString(), item.GetStringLength());
    }
    return out;
}

Result<void> requireMembers(const Value& obj, std::initializer_list<std::string_view> required,
                            std::string_view ctx) {
    std::vector<std::string_view> absent;
    for (auto key : required)
        if (find(obj, key) == obj.MemberEnd()) absent.push_back(key);
    if (absent.empty()) return ok();
    if (absent.size() == 1) return missing(ctx, absent.front());
    std::string names;
    for (auto key : absent) names += detail::concat(names.empty() ? "" : ", ", "'", key, "'");
    return fail(Errc::Invalid, ctx, ": fields ", names, " are required");
}

Result<void> rejectUnknown(const Value& obj, std::initializer_list<std::string_view> allowed,
                           std::string_view ctx) {
    for (const auto& member : obj.GetObject()) {
        std::string_view name(member.name.GetString(), member.name.GetStringLength());
        bool known = false;
        for (auto a : allowed) known = known || a == name;
        if (known) continue;
        std::vector<std::string> candidates(allowed.begin(), allowed.end());
        auto hint = strings::didYouMean(name, candidates);
        if (hint.empty()) return fail(Errc::Invalid, ctx, ": unknown field '", name, "'");
        return fail(Errc::Invalid, ctx, ": unknown field '", name, "' (did you mean '", hint,
                    "'?)");
    }
    return ok();
}

std::string toString(const Value& value) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
    value.Accept(w);
    return {buffer.GetString(), buffer.GetSize()};
}

std::string pretty(std::string_view json_text) {
    auto doc = parse(json_text, "json");
    if (!doc) return std::string(json_text);
    rapidjson::StringBuffer buffer;
    rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buffer);
    w.SetIndent(' ', 2);
    doc->Accept(w);
    return {buffer.GetString(), buffer.GetSize()};
}

namespace {
// A byte stream over a string_view, as RapidJSON's encoders read one.
struct ViewStream {
    using Ch = char;
    const char* at;
    const char* end;
    Ch Peek() const { return at == end ? '\0' : *at; }
    Ch Take() { return at == end ? '\0' : *at++; }
};

// Discards what the validator copies.
struct NullStream {
    using Ch = char;
    void Put(Ch) {}
};

// `text` when it is valid UTF-8; otherwise a copy in `scratch` with each byte that does not
// decode replaced by U+FFFD: output JSON stays valid whatever bytes a caller echoes (a path,
// a query parameter, a file name).
std::string_view validUtf8(std::string_view text, std::string& scratch) {
    bool ascii = std::all_of(text.begin(), text.end(),
                             [](char c) { return static_cast<unsigned char>(c) < 0x80; });
    if (ascii) return text;
    scratch.clear();
    ViewStream in{text.data(), text.data() + text.size()};
    NullStream out;
    bool changed = false;
    while (in.at != in.end) {
        const char* start = in.at;
        if (rapidjson::UTF8<>::Validate(in, out)) {
            scratch.append(start, in.at);
            continue;
        }
        // U+FFFD for the first byte of what does not decode; go on after it.
        scratch.append("\xEF\xBF\xBD");
        in.at = start + 1;
        changed = true;
    }
    return changed ? std::string_view(scratch) : text;
}
}  // namespace

struct Writer::Impl {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer{buffer};
};

Writer::Writer() : impl_(std::make_unique<Impl>()) {}
Writer::~Writer() = default;

Writer& Writer::beginObject() {
    impl_->writer.StartObject();
    return *this;
}
Writer& Writer::endObject() {
    impl_->writer.EndObject();
    return *this;
}
Writer& Writer::beginArray() {
    impl_->writer.StartArray();
    return *this;
}
Writer& Writer::endArray() {
    impl_->writer.EndArray();
    return *this;
}
Writer& Writer::key(std::string_view k) {
    std::string scratch;
    k = validUtf8(k, scratch);
    impl_->writer.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()), true);
    return *this;
}
Writer& Writer::value(std::string_view v) {
    std::string scratch;
    v = validUtf8(v, scratch);
    impl_->writer.String(v.data(), static_cast<rapidjson::SizeType>(v.size()), true);
    return *this;
}
Writer& Writer::value(bool v) {
    impl_->writer.Bool(v);
    return *this;
}
Writer& Writer::value(std::int64_t v) {
    impl_->writer.Int64(v);
    return *this;
}
Writer& Writer::value(std::uint64_t v) {
    impl_->writer.Uint64(v);
    return *this;
}
Writer& Writer::value(double v) {
    impl_->writer.Double(v);
    return *this;
}
Writer& Writer::null() {
    impl_->writer.Null();
    return *this;
}
Writer& Writer::raw(std::string_view json) {
    impl_->writer.RawValue(json.data(), json.size(), rapidjson::kObjectType);
    return *this;
}
Writer& Writer::value(const Value& v) {
    v.Accept(impl_->writer);
    return *this;
}

std::string Writer::str() const {
    return {impl_->buffer.GetString(), impl_->buffer.GetSize()};
}

}  // namespace hoist::json
