#include "manifest.hpp"

#include <cstdio>

namespace hoist::pkgmgr::manifest {

namespace {

constexpr std::string_view kCtx = "store manifest";

std::string modeText(unsigned mode) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", mode & 07777u);
    return buf;
}

Result<unsigned> parseMode(const std::string& text) {
    if (text.size() != 4 || text.find_first_not_of("01234567") != std::string::npos) {
        return fail(Errc::Corrupt, kCtx, ": bad mode '", text, "'");
    }
    return static_cast<unsigned>(std::stoul(text, nullptr, 8));
}

std::string_view typeName(Type type) {
    switch (type) {
        case Type::File:
            return "file";
        case Type::Dir:
            return "dir";
        case Type::Symlink:
            return "symlink";
    }
    return "file";
}

}  // namespace

std::string toJson(const Manifest& manifest) {
    json::Writer w;
    w.beginObject().field("format", 1).key("package");
    manifest.ref.write(w);
    w.field("unpacked_bytes", manifest.unpacked_bytes).key("entries").beginArray();
    for (const auto& e : manifest.entries) {
        w.beginObject().field("path", e.path).field("type", typeName(e.type));
        w.field("mode", modeText(e.mode));
        if (e.type == Type::File) w.field("size", e.size).field("sha256", e.sha256);
        if (e.type == Type::Symlink) w.field("target", e.target);
        w.endObject();
    }
    w.endArray().endObject();
    return w.str();
}

Result<Manifest> parse(std::string_view text) {
    auto doc = json::parseObject(text, kCtx);
    if (!doc) return fail(Errc::Corrupt, doc.error().message);
    Manifest m;
    HOIST_ASSIGN(const json::Value* ref, json::getObject(*doc, "package", kCtx));
    HOIST_ASSIGN(m.ref, PackageRef::fromJson(*ref, kCtx));
    auto unpacked = doc->FindMember("unpacked_bytes");
    if (unpacked != doc->MemberEnd() && unpacked->value.IsUint64()) {
        m.unpacked_bytes = unpacked->value.GetUint64();
    }
    HOIST_ASSIGN(const json::Value* entries, json::getArray(*doc, "entries", kCtx));
    m.entries.reserve(entries->Size());
    for (const auto& item : entries->GetArray()) {
        if (!item.IsObject()) return fail(Errc::Corrupt, kCtx, ": an entry is not an object");
        Entry e;
        HOIST_ASSIGN(e.path, json::getString(item, "path", kCtx));
        HOIST_ASSIGN(auto type, json::getString(item, "type", kCtx));
        HOIST_ASSIGN(auto mode, json::getString(item, "mode", kCtx));
        HOIST_ASSIGN(e.mode, parseMode(mode));
        if (type == "file") {
            e.type = Type::File;
            HOIST_ASSIGN(auto size, json::getInt(item, "size", kCtx));
            e.size = static_cast<std::uint64_t>(size);
            HOIST_ASSIGN(e.sha256, json::getString(item, "sha256", kCtx));
        } else if (type == "dir") {
            e.type = Type::Dir;
        } else if (type == "symlink") {
            e.type = Type::Symlink;
            HOIST_ASSIGN(e.target, json::getString(item, "target", kCtx));
        } else {
            return fail(Errc::Corrupt, kCtx, ": unknown entry type '", type, "'");
        }
        m.entries.push_back(std::move(e));
    }
    return m;
}

}  // namespace hoist::pkgmgr::manifest
