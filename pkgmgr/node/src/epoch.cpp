#include "pkgmgr/epoch.hpp"

#include <chrono>

#include "core/files.hpp"
#include "core/json.hpp"

namespace hoist::pkgmgr {

namespace {

std::filesystem::path epochFile(const NodeLayout& layout) {
    return layout.run() / "epoch.json";
}

// Not the node lock: an epoch check must not wait behind a stage that holds it for minutes.
std::filesystem::path epochLock(const NodeLayout& layout) {
    return layout.run() / "epoch.lock";
}

}  // namespace

Result<std::int64_t> seenEpoch(const NodeLayout& layout) {
    auto path = epochFile(layout);
    auto text = files::readFile(path, 4096);
    if (!text) {
        if (text.error().code == Errc::NotFound) return 0;
        return std::unexpected(text.error());
    }
    auto ctx = path.string();
    auto damaged = [&](std::string_view why) {
        return fail(Errc::Corrupt, "the coordinator epoch this node has seen does not read (", why,
                    "); commands under an epoch are refused until ", ctx,
                    " holds {\"epoch\": N}, N the highest epoch the coordinators use");
    };
    auto doc = json::parseObject(*text, ctx);
    if (!doc) return damaged(doc.error().message);
    auto epoch = json::getInt(*doc, "epoch", ctx);
    if (!epoch) return damaged(epoch.error().message);
    if (*epoch < 0) return damaged("the epoch is negative");
    return *epoch;
}

Result<void> admitEpoch(const NodeLayout& layout, std::int64_t epoch, std::string_view what) {
    if (epoch == 0) return ok();
    if (epoch < 0)
        return fail(Errc::Invalid, what, ": the coordinator epoch ", epoch, " is negative");
    HOIST_TRY(files::makeDirs(layout.run()));
    HOIST_ASSIGN(auto held, files::FileLock::acquire(epochLock(layout), std::chrono::seconds(10),
                                                     "epoch check"));
    HOIST_ASSIGN(auto seen, seenEpoch(layout));
    if (epoch < seen) return std::unexpected(staleEpoch(what, epoch, seen));
    if (epoch == seen) return ok();
    // Under the epoch lock no other write of the file runs: a temporary file is a killed
    // writer's (node recovery leaves these to us).
    HOIST_TRY(files::removeTempSiblings(epochFile(layout)));
    json::Writer w;
    w.beginObject().field("epoch", epoch).endObject();
    return files::writeFileAtomic(epochFile(layout), w.str() + "\n");
}

Error staleEpoch(std::string_view what, std::int64_t epoch, std::int64_t seen) {
    return Error{Errc::Conflict,
                 detail::concat(what, " refused: it carries coordinator epoch ", epoch,
                                ", but this node has already seen epoch ", seen,
                                " (a newer coordinator leads)"),
                 0};
}

}  // namespace hoist::pkgmgr
