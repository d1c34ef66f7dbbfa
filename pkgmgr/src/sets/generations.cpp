#include "pkgmgr/generations.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <system_error>
#include <thread>

#include "core/crypto.hpp"
#include "core/files.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"
#include "merged_tree.hpp"

namespace hoist::pkgmgr {

namespace {

constexpr size_t kHistoryLimit = 200;

std::int64_t microsSince(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                 start)
        .count();
}
constexpr std::string_view kComponent = "generations";

std::string historyFile() {
    return "history.json";
}

// "7" -> 7; anything else (".tmp-*", "history.json") -> nullopt.
std::optional<long> parseNumber(std::string_view name) {
    if (name.empty() || name.size() > 15) return std::nullopt;
    long n = 0;
    for (char c : name) {
        if (c < '0' || c > '9') return std::nullopt;
        n = n * 10 + (c - '0');
    }
    if (name.size() > 1 && name[0] == '0') return std::nullopt;
    return n;
}

// The N of ".tmp-N-xxxx" (a generation being built), for number allocation.
std::optional<long> parseTempNumber(std::string_view name) {
    if (name.substr(0, 5) != ".tmp-") return std::nullopt;
    name.remove_prefix(5);
    auto dash = name.find('-');
    return parseNumber(name.substr(0, dash));
}

Result<void> writeNew(const fs::path& path, std::string_view data) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd.valid()) return failErrno(Errc::Io, errno, "cannot create '", path.string(), "'");
    HOIST_TRY(files::writeAll(fd.get(), data, path));
    if (::fsync(fd.get()) != 0)
        return failErrno(Errc::Io, errno, "cannot sync '", path.string(), "'");
    return ok();
}

std::string expand(std::string_view value, const std::string& pkg, const std::string& state) {
    std::string out;
    for (size_t i = 0; i < value.size();) {
        if (value.substr(i, 6) == "${PKG}") {
            out += pkg;
            i += 6;
        } else if (value.substr(i, 8) == "${STATE}") {
            out += state;
            i += 8;
        } else {
            out += value[i++];
        }
    }
    return out;
}

std::string setJson(const Generation& gen) {
    json::Writer w;
    w.beginObject();
    w.field("number", static_cast<std::int64_t>(gen.number));
    w.field("role", gen.role);
    w.field("release", gen.release);
    if (gen.upgrade_from) {
        w.key("upgrade_from").beginArray();
        for (const auto& pattern : *gen.upgrade_from) w.value(pattern);
        w.endArray();
    }
    w.field("created", gen.created);
    w.key("packages").beginArray();
    for (const auto& ref : gen.packages) ref.write(w);
    w.endArray();
    w.endObject();
    return w.str();
}

Result<Generation> parseSetJson(std::string_view text, const fs::path& path) {
    std::string ctx = path.string();
    HOIST_ASSIGN(auto doc, json::parseObject(text, ctx));
    HOIST_TRY(json::rejectUnknown(
        doc, {"number", "role", "release", "upgrade_from", "created", "packages"}, ctx));
    Generation gen;
    HOIST_ASSIGN(std::int64_t number, json::getInt(doc, "number", ctx));
    gen.number = static_cast<long>(number);
    HOIST_ASSIGN(gen.role, json::getString(doc, "role", ctx));
    HOIST_ASSIGN(gen.release, json::getString(doc, "release", ctx));
    HOIST_ASSIGN(const json::Value* upgrade_from, json::optArray(doc, "upgrade_from", ctx));
    if (upgrade_from != nullptr) {
        HOIST_ASSIGN(gen.upgrade_from, json::optStringArray(doc, "upgrade_from", ctx));
    }
    HOIST_ASSIGN(gen.created, json::getString(doc, "created", ctx));
    HOIST_ASSIGN(const json::Value* packages, json::getArray(doc, "packages", ctx));
    for (const auto& item : packages->GetArray()) {
        HOIST_ASSIGN(auto ref, PackageRef::fromJson(item, ctx));
        gen.packages.push_back(std::move(ref));
    }
    gen.path = path.parent_path();
    return gen;
}

std::vector<std::string> sortedShas(const std::vector<PackageRef>& refs) {
    std::vector<std::string> out;
    for (const auto& ref : refs) out.push_back(ref.sha256);
    std::sort(out.begin(), out.end());
    return out;
}

// The folder in a generation that holds one link per package of the set, `.p/<index>` ->
// `../../../store/<sha256>`: every other link goes through it, so its target stays short
// (`../.p/3/bin/x`) and fits in the inode (ext4 stores targets under 60 bytes inline, longer
// ones take a 4 KiB block each).
constexpr std::string_view kPackageLinks = ".p";

// Builds the set's well-known folders in `gen`: a folder that only one package holds is one
// link to that package's folder; a folder several packages share is a real folder holding
// links to each file (and the single-owner folders) below it. Links are relative, so they
// hold wherever the root is, and go through `.p/<index>`.
Result<void> linkSet(const std::vector<StoredPackage>& set, const MergedTree& tree,
                     const fs::path& gen, const fs::path& root, std::vector<fs::path>& made,
                     size_t& links) {
    auto aliases = gen / kPackageLinks;
    if (::mkdir(aliases.c_str(), 0755) != 0)
        return failErrno(Errc::Io, errno, "cannot create '", aliases.string(), "'");
    made.push_back(aliases);
    for (size_t index = 0; index < set.size(); ++index) {
        auto target = "../../../" + set[index].path.lexically_relative(root).string();
        auto at = aliases / std::to_string(index);
        if (::symlink(target.c_str(), at.c_str()) != 0)
            return failErrno(Errc::Io, errno, "cannot link '", at.string(), "'");
    }
    // Parents come before their children.
    for (const auto& rel : tree.shared) {
        auto at = gen / rel;
        if (::mkdir(at.c_str(), 0755) != 0)
            return failErrno(Errc::Io, errno, "cannot create '", at.string(), "'");
        made.push_back(at);
    }
    for (const auto& [rel, owner] : tree.owned) {
        std::string target;
        for (char c : rel)
            if (c == '/') target += "../";
        target += std::string(kPackageLinks) + "/" + std::to_string(owner) + "/" + rel;
        auto at = gen / rel;
        if (::symlink(target.c_str(), at.c_str()) != 0)
            return failErrno(Errc::Io, errno, "cannot link '", at.string(), "'");
        ++links;
    }
    return ok();
}

}  // namespace

// ---------------------------------------------------------------------------------------------

Result<std::pair<PackageRef, ServiceSpec>> Generation::service(const Store& store,
                                                               const RoleRules& rules) const {
    for (const auto& ref : packages) {
        HOIST_ASSIGN(auto pkg, store.get(ref.sha256));
        if (pkg.info.kind == rules.service_kind && pkg.info.service)
            return std::make_pair(ref, *pkg.info.service);
    }
    return fail(Errc::NotFound, "generation ", number, " has no package of kind '",
                rules.service_kind, "' with a service");
}

Result<Generations> Generations::open(const NodeLayout& layout) {
    std::error_code ec;
    NodeLayout absolute = NodeLayout::at(fs::absolute(layout.root, ec));
    if (ec) absolute = layout;
    HOIST_TRY(absolute.ensure());
    return Generations(absolute);
}

Result<std::optional<files::FileLock>> Generations::lock(std::string_view what) const {
    if (caller_holds_lock_) return std::optional<files::FileLock>();
    HOIST_ASSIGN(auto held, files::FileLock::acquire(layout_.lock(), lock_wait_, what));
    return std::optional<files::FileLock>(std::move(held));
}

Result<std::optional<long>> Generations::current() const {
    std::error_code ec;
    auto target = fs::read_symlink(layout_.current(), ec);
    if (ec) {
        if (ec == std::errc::no_such_file_or_directory) return std::optional<long>();
        return failErrno(Errc::Io, ec.value(), "cannot read the link '", layout_.current().string(),
                         "'");
    }
    auto number = parseNumber(target.filename().string());
    if (target.parent_path() != "generations" || !number)
        return fail(Errc::Corrupt, "'", layout_.current().string(), "' points at '",
                    target.string(), "', not at generations/<N>");
    return std::optional<long>(*number);
}

Result<std::vector<long>> Generations::history() const {
    auto text = files::readFile(layout_.generations() / historyFile(), 4u << 20);
    if (!text) {
        if (text.error().code == Errc::NotFound) return std::vector<long>();
        return std::unexpected(text.error());
    }
    std::string ctx = (layout_.generations() / historyFile()).string();
    HOIST_ASSIGN(auto doc, json::parseObject(*text, ctx));
    HOIST_ASSIGN(const json::Value* entries, json::getArray(doc, "activations", ctx));
    std::vector<long> out;
    for (const auto& entry : entries->GetArray()) {
        if (!entry.IsObject()) return fail(Errc::Corrupt, ctx, ": activations must be objects");
        HOIST_ASSIGN(std::int64_t number, json::getInt(entry, "generation", ctx));
        out.push_back(static_cast<long>(number));
    }
    return out;
}

Result<std::optional<long>> Generations::previous() const {
    HOIST_ASSIGN(auto cur, current());
    HOIST_ASSIGN(auto hist, history());
    // The newest activation of another generation that still exists. A crash between the
    // switch and the history update leaves current missing from the end of the history,
    // which this reads the same way.
    for (auto it = hist.rbegin(); it != hist.rend(); ++it) {
        if (cur && *it == *cur) continue;
        std::error_code ec;
        if (fs::exists(layout_.generation(*it) / "set.json", ec)) return std::optional<long>(*it);
    }
    return std::optional<long>();
}

Result<Generation> Generations::load(long number) const {
    auto path = layout_.generation(number) / "set.json";
    auto text = files::readFile(path, 64u << 20);
    if (!text) {
        if (text.error().code == Errc::NotFound)
            return fail(Errc::NotFound, "generation ", number, " does not exist");
        return std::unexpected(text.error());
    }
    HOIST_ASSIGN(auto gen, parseSetJson(*text, path));
    if (gen.number != number)
        return fail(Errc::Corrupt, path.string(), ": holds generation ", gen.number, ", not ",
                    number);
    return gen;
}

Result<std::vector<Generation>> Generations::list() const {
    std::vector<long> numbers;
    std::error_code ec;
    for (auto it = fs::directory_iterator(layout_.generations(), ec);
         !ec && it != fs::directory_iterator(); it.increment(ec)) {
        if (auto n = parseNumber(it->path().filename().string())) numbers.push_back(*n);
    }
    if (ec)
        return failErrno(Errc::Io, ec.value(), "cannot list '", layout_.generations().string(),
                         "'");
    std::sort(numbers.begin(), numbers.end());
    std::vector<Generation> out;
    for (long n : numbers) {
        HOIST_ASSIGN(auto gen, load(n));
        out.push_back(std::move(gen));
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// check and stage

Result<std::vector<StoredPackage>> Generations::check(const std::vector<std::string>& sha256s,
                                                      const RoleRules& rules) const {
    HOIST_ASSIGN(auto set, resolve(sha256s));
    HOIST_TRY(validateSet(set, rules));
    return set;
}

Result<std::vector<StoredPackage>> Generations::resolve(
    const std::vector<std::string>& sha256s) const {
    HOIST_ASSIGN(auto store, Store::open(layout_));
    // The first problem in the list's order is the one reported; the packages before it are
    // looked up together.
    std::optional<Error> bad;
    std::size_t good = 0;
    std::set<std::string> seen;
    for (; good < sha256s.size(); ++good) {
        const auto& sha = sha256s[good];
        if (!crypto::isSha256Hex(sha)) {
            bad = fail(Errc::Invalid, "set: '", sha, "' is not a sha256 (64 lowercase hex digits)")
                      .error();
            break;
        }
        if (!seen.insert(sha).second) {
            bad = fail(Errc::Invalid, "set: package ", sha, " is listed twice").error();
            break;
        }
    }
    auto got = store.getMany({sha256s.begin(), sha256s.begin() + static_cast<long>(good)});
    std::vector<StoredPackage> set;
    for (std::size_t i = 0; i < good; ++i) {
        const auto& sha = sha256s[i];
        auto& pkg = got[i];
        if (!pkg) {
            if (pkg.error().code == Errc::NotFound)
                return fail(Errc::NotFound, "set: package ", sha,
                            " is not in the store (fetch or add it first)");
            return std::unexpected(pkg.error());
        }
        set.push_back(std::move(*pkg));
    }
    if (bad) return std::unexpected(*bad);
    return set;
}

Result<std::vector<StoredPackage>> Generations::check(const Release& release,
                                                      const RoleRules& rules) const {
    HOIST_ASSIGN(auto shas, releaseShas(release, rules));
    return check(shas, rules);
}

Result<std::vector<std::string>> Generations::releaseShas(const Release& release,
                                                          const RoleRules& rules) const {
    HOIST_ASSIGN(auto refs, release.packagesFor(rules.role));
    HOIST_ASSIGN(auto store, Store::open(layout_));
    std::vector<std::string> wanted;
    for (const auto& ref : refs) wanted.push_back(ref.sha256);
    auto got = store.getMany(wanted);
    std::vector<std::string> shas;
    for (std::size_t i = 0; i < refs.size(); ++i) {
        const auto& ref = refs[i];
        auto& pkg = got[i];
        if (!pkg) {
            if (pkg.error().code == Errc::NotFound)
                return fail(Errc::NotFound, "release ", release.version, ": package '", ref.id,
                            "' (", ref.sha256, ") is not in the store (fetch it first)");
            return std::unexpected(pkg.error());
        }
        if (pkg->info.id().str() != ref.id)
            return fail(Errc::Corrupt, "release ", release.version, " names '", ref.id,
                        "' with sha256 ", ref.sha256, ", but the store holds '",
                        pkg->info.id().str(), "' under that hash");
        shas.push_back(ref.sha256);
    }
    HOIST_TRY(checkTransition(release.version, release.upgrade_from, std::nullopt));
    return shas;
}

Result<void> Generations::checkTransition(
    const std::string& release, const std::optional<std::vector<std::string>>& upgrade_from,
    std::optional<long> target) const {
    if (release.empty() || !upgrade_from) return ok();
    HOIST_ASSIGN(auto cur, current());
    if (!cur) return ok();
    if (target && *target == *cur) return ok();
    HOIST_ASSIGN(auto from, load(*cur));
    if (from.release.empty() || from.release == release) return ok();
    if (target) {
        // Going back to a generation that ran before is a rollback, always allowed.
        HOIST_ASSIGN(auto hist, history());
        if (std::find(hist.begin(), hist.end(), *target) != hist.end()) return ok();
    }
    if (upgradeAllowed(*upgrade_from, from.release)) return ok();
    return fail(Errc::Conflict, "transition: release ", release,
                " does not allow upgrading from release ", from.release, " (upgrade_from: ",
                upgrade_from->empty() ? std::string("none") : strings::join(*upgrade_from, ", "),
                "; current generation ", *cur, ")");
}

Result<void> Generations::requireIntact(const std::vector<PackageRef>& packages) const {
    // Bytes whose hash differs from the manifest are never used: each package is re-hashed,
    // unless its verified stamp shows that nothing in it changed since it last was.
    // The packages are checked on a few threads (stats and reads, mostly in the kernel); the
    // first failure in the set's order is reported.
    auto start = std::chrono::steady_clock::now();
    HOIST_ASSIGN(auto store, Store::open(layout_));
    std::vector<std::optional<Result<bool>>> results(packages.size());
    std::atomic<std::size_t> next{0};
    auto work = [&] {
        for (std::size_t i = next++; i < packages.size(); i = next++)
            results[i] = store.requireIntact(packages[i].sha256);
    };
    std::size_t threads = std::min<std::size_t>(
        {4, std::max(1u, std::thread::hardware_concurrency()), (packages.size() + 15) / 16});
    std::vector<std::thread> pool;
    for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    std::size_t rehashed = 0;
    for (auto& r : results) {
        if (!*r) return std::unexpected(r->error());
        if (**r) ++rehashed;
    }
    log::info(kComponent, "packages verified",
              {{"packages", packages.size()},
               {"rehashed", rehashed},
               {"elapsed_us", microsSince(start)}});
    return ok();
}

Result<void> Generations::requireIntact(const std::vector<StoredPackage>& set) const {
    std::vector<PackageRef> refs;
    for (const auto& pkg : set) refs.push_back(pkg.ref);
    return requireIntact(refs);
}

Result<Generation> Generations::stage(const std::vector<std::string>& sha256s,
                                      const RoleRules& rules, const std::string& release) {
    HOIST_ASSIGN(auto held, lock("stage"));
    crashPoint("stage.locked");
    HOIST_ASSIGN(auto set, resolve(sha256s));
    return stageVerified(set, rules, release, std::nullopt);
}

Result<Generation> Generations::stage(const Release& release, const RoleRules& rules) {
    HOIST_ASSIGN(auto held, lock("stage"));
    crashPoint("stage.locked");
    HOIST_ASSIGN(auto shas, releaseShas(release, rules));
    HOIST_ASSIGN(auto set, resolve(shas));
    return stageVerified(set, rules, release.version, release.upgrade_from);
}

Result<Generation> Generations::stageVerified(
    const std::vector<StoredPackage>& set, const RoleRules& rules, const std::string& release,
    const std::optional<std::vector<std::string>>& upgrade_from) {
    // Bytes that differ from what was added are never used: the packages are checked on other
    // threads while the set is validated and the links are made, and the generation is renamed
    // into place (or an existing one handed back) only once the check passed. A set that does
    // not validate is refused as such, as before.
    std::optional<Result<void>> verdict;
    std::future<Result<void>> checking;
    try {
        checking = std::async(std::launch::async, [this, &set] { return requireIntact(set); });
    } catch (const std::system_error&) {
        verdict = requireIntact(set);  // no thread to be had: check first, as before
        HOIST_TRY(*verdict);
    }
    // The link time (the walk of the shared folders the links are planned from, and the
    // build without its wait for the check) is logged apart from that wait, so that what the
    // check adds to a stage can be told from what linking costs.
    std::int64_t waited_us = 0;
    auto checked = [&]() -> Result<void> {
        if (!verdict) {
            auto wait_start = std::chrono::steady_clock::now();
            verdict = checking.get();
            waited_us = microsSince(wait_start);
        }
        return *verdict;
    };
    std::int64_t merge_us = 0;
    auto valid = [&]() -> Result<MergedTree> {
        if (set.empty()) return fail(Errc::Invalid, "set: the set is empty");
        auto merge_start = std::chrono::steady_clock::now();
        HOIST_ASSIGN(auto merged, mergeWellKnownFolders(set));
        merge_us = microsSince(merge_start);
        HOIST_TRY(validateSet(set, rules, merged));
        return merged;
    }();
    if (!valid) {
        if (!verdict) checking.wait();
        return std::unexpected(valid.error());
    }
    auto build_start = std::chrono::steady_clock::now();
    auto built = build(set, *valid, rules, release, upgrade_from, checked);
    auto build_us = microsSince(build_start);
    HOIST_TRY(checked());
    if (built)
        log::info(kComponent, "stage timings",
                  {{"generation", built->number},
                   {"merge_us", merge_us},
                   {"build_us", build_us - waited_us},
                   {"check_wait_us", waited_us},
                   {"link_us", merge_us + build_us - waited_us}});
    return built;
}

Result<Generation> Generations::build(const std::vector<StoredPackage>& set, const MergedTree& tree,
                                      const RoleRules& rules, const std::string& release,
                                      const std::optional<std::vector<std::string>>& upgrade_from,
                                      const std::function<Result<void>()>& before_publish) {
    auto start = std::chrono::steady_clock::now();
    std::vector<PackageRef> refs;
    for (const auto& pkg : set) refs.push_back(pkg.ref);

    // Idempotent: the newest generation with the same packages, role and release.
    HOIST_ASSIGN(auto existing, list());
    auto wanted = sortedShas(refs);
    for (auto it = existing.rbegin(); it != existing.rend(); ++it) {
        if (it->role == rules.role && it->release == release && it->upgrade_from == upgrade_from &&
            sortedShas(it->packages) == wanted) {
            HOIST_TRY(before_publish());
            log::info(kComponent, "set already staged", {{"generation", it->number}});
            return *it;
        }
    }

    long number = 0;
    std::error_code ec;
    for (auto it = fs::directory_iterator(layout_.generations(), ec);
         !ec && it != fs::directory_iterator(); it.increment(ec)) {
        auto name = it->path().filename().string();
        if (auto n = parseNumber(name)) number = std::max(number, *n);
        if (auto n = parseTempNumber(name)) number = std::max(number, *n);
    }
    if (ec)
        return failErrno(Errc::Io, ec.value(), "cannot list '", layout_.generations().string(),
                         "'");
    HOIST_ASSIGN(auto hist, history());
    for (long n : hist) number = std::max(number, n);
    ++number;

    Generation gen;
    gen.number = number;
    gen.role = rules.role;
    gen.release = release;
    gen.upgrade_from = upgrade_from;
    gen.packages = refs;
    gen.created = log::nowRfc3339();
    gen.path = layout_.generation(number);

    HOIST_ASSIGN(auto tmp, files::TempDir::create(layout_.generations(),
                                                  ".tmp-" + std::to_string(number) + "-"));
    if (::chmod(tmp.path().c_str(), 0755) != 0)
        return failErrno(Errc::Io, errno, "cannot set the mode of '", tmp.path().string(), "'");
    crashPoint("stage.created");

    std::vector<fs::path> made;
    size_t links = 0;
    HOIST_TRY(linkSet(set, tree, tmp.path(), layout_.root, made, links));
    crashPoint("stage.linked");

    std::vector<std::pair<std::string, std::string>> env;
    for (const auto& pkg : set) {
        for (const auto& [key, value] : pkg.info.environment) {
            auto expanded = expand(value, pkg.path.string(), layout_.state().string());
            if (expanded.find('\n') != std::string::npos)
                return fail(Errc::Invalid, "package '", pkg.info.id().str(),
                            "': environment variable '", key, "' holds a newline");
            env.emplace_back(key, std::move(expanded));
        }
    }
    std::sort(env.begin(), env.end());
    std::string env_text;
    for (const auto& [key, value] : env) env_text += key + "=" + value + "\n";
    HOIST_TRY(writeNew(tmp.path() / "environment", env_text));
    crashPoint("stage.environment");

    HOIST_TRY(writeNew(tmp.path() / "set.json", setJson(gen)));
    crashPoint("stage.described");

    // The links live in the folders' entries: syncing each folder made (deepest first) makes
    // the whole farm durable before the rename publishes it.
    for (auto it = made.rbegin(); it != made.rend(); ++it) HOIST_TRY(files::fsyncPath(*it));
    HOIST_TRY(files::fsyncPath(tmp.path()));
    crashPoint("stage.synced");

    HOIST_TRY(before_publish());
    HOIST_TRY(files::renameDurable(tmp.path(), gen.path));
    tmp.keep();
    crashPoint("stage.renamed");
    log::info(kComponent, "staged",
              {{"generation", number},
               {"packages", set.size()},
               {"links", links},
               {"role", rules.role},
               {"release", release},
               {"elapsed_us", microsSince(start)}});
    return gen;
}

// ---------------------------------------------------------------------------------------------
// activate and rollback

Result<void> Generations::switchTo(long number, std::string_view step) {
    std::string prefix(step);
    // The new link is made under a temporary name and renamed over `current`: one rename(2),
    // whatever the size of the set.
    auto tmp = files::tempSibling(layout_.current());
    auto target = "generations/" + std::to_string(number);
    if (::symlink(target.c_str(), tmp.c_str()) != 0)
        return failErrno(Errc::Io, errno, "cannot create the link '", tmp.string(), "'");
    crashPoint(prefix + ".linked");
    if (::rename(tmp.c_str(), layout_.current().c_str()) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        return failErrno(Errc::Io, err, "cannot switch '", layout_.current().string(), "'");
    }
    crashPoint(prefix + ".renamed");
    HOIST_TRY(files::fsyncPath(layout_.root));
    crashPoint(prefix + ".synced");

    HOIST_ASSIGN(auto hist, history());
    hist.push_back(number);
    if (hist.size() > kHistoryLimit)
        hist.erase(hist.begin(), hist.begin() + static_cast<long>(hist.size() - kHistoryLimit));
    json::Writer w;
    w.beginObject().key("activations").beginArray();
    for (long n : hist)
        w.beginObject().field("generation", static_cast<std::int64_t>(n)).endObject();
    w.endArray().endObject();
    HOIST_TRY(files::writeFileAtomic(layout_.generations() / historyFile(), w.str()));
    crashPoint(prefix + ".recorded");
    return ok();
}

Result<void> Generations::activate(long number) {
    auto start = std::chrono::steady_clock::now();
    HOIST_ASSIGN(auto held, lock("activate"));
    crashPoint("activate.locked");
    HOIST_ASSIGN(auto gen, load(number));
    HOIST_TRY(checkTransition(gen.release, gen.upgrade_from, number));
    HOIST_ASSIGN(auto cur, current());
    if (cur && *cur == number) return ok();
    HOIST_TRY(switchTo(number, "activate"));
    log::info(kComponent, "activated",
              {{"generation", number}, {"elapsed_us", microsSince(start)}});
    return ok();
}

Result<long> Generations::rollback() {
    HOIST_ASSIGN(auto held, lock("rollback"));
    crashPoint("rollback.locked");
    HOIST_ASSIGN(auto prev, previous());
    if (!prev) return fail(Errc::NotFound, "rollback: no previous generation to go back to");
    HOIST_TRY(load(*prev));
    HOIST_TRY(switchTo(*prev, "rollback"));
    log::info(kComponent, "rolled back", {{"generation", *prev}});
    return *prev;
}

// ---------------------------------------------------------------------------------------------
// gc and recovery

Result<std::vector<long>> Generations::keptGenerations(int keep) const {
    HOIST_ASSIGN(auto cur, current());
    HOIST_ASSIGN(auto hist, history());
    HOIST_ASSIGN(auto all, list());
    std::set<long> exists;
    for (const auto& gen : all) exists.insert(gen.number);
    std::set<long> kept;
    if (cur) kept.insert(*cur);
    int previous = 0;
    for (auto it = hist.rbegin(); it != hist.rend() && previous < keep; ++it) {
        if (kept.count(*it) != 0 || exists.count(*it) == 0) continue;
        kept.insert(*it);
        ++previous;
    }
    // The newest staged generation, when it is newer than current, waits to be activated.
    if (!exists.empty() && (!cur || *exists.rbegin() > *cur)) kept.insert(*exists.rbegin());
    return std::vector<long>(kept.begin(), kept.end());
}

Result<std::vector<std::string>> Generations::packagesInUse(int keep) const {
    HOIST_ASSIGN(auto kept, keptGenerations(keep));
    std::set<std::string> shas;
    for (long n : kept) {
        HOIST_ASSIGN(auto gen, load(n));
        for (const auto& ref : gen.packages) shas.insert(ref.sha256);
    }
    return std::vector<std::string>(shas.begin(), shas.end());
}

Result<GcReport> Generations::gc(int keep, bool dry_run) {
    if (keep < 0) return fail(Errc::Invalid, "gc: --keep must be 0 or more");
    std::optional<files::FileLock> held;
    if (!dry_run) {
        HOIST_ASSIGN(held, lock("gc"));
    }
    crashPoint("gc.locked");
    HOIST_ASSIGN(auto kept_list, keptGenerations(keep));
    std::set<long> kept(kept_list.begin(), kept_list.end());
    HOIST_ASSIGN(auto in_use_list, packagesInUse(keep));
    std::set<std::string> in_use(in_use_list.begin(), in_use_list.end());
    HOIST_ASSIGN(auto all, list());
    HOIST_ASSIGN(auto store, Store::open(layout_));
    HOIST_ASSIGN(auto stored, store.list());

    GcReport report;
    for (const auto& gen : all) {
        if (kept.count(gen.number) != 0) continue;
        report.generations_removed.push_back(gen.number);
        if (dry_run) continue;
        // Out of sight first (one rename), then deleted: a crash in between leaves a .tmp-*
        // folder that recovery removes, never a half generation under its number.
        auto doomed = files::tempSibling(gen.path);
        HOIST_TRY(files::renameDurable(gen.path, doomed));
        crashPoint("gc.generation_hidden");
        HOIST_TRY(files::removeTree(doomed));
        crashPoint("gc.generation_removed");
    }
    for (const auto& pkg : stored) {
        if (in_use.count(pkg.ref.sha256) != 0) continue;
        report.packages_removed.push_back(pkg.ref.sha256);
        report.bytes_freed += pkg.ref.size;
        if (dry_run) continue;
        HOIST_TRY(store.remove(pkg.ref.sha256));
        crashPoint("gc.package_removed");
    }
    if (!dry_run)
        log::info(kComponent, "gc",
                  {{"generations", report.generations_removed.size()},
                   {"packages", report.packages_removed.size()}});
    return report;
}

Result<RecoverReport> Generations::recover() {
    HOIST_ASSIGN(auto held, lock("recover"));
    RecoverReport report;
    auto removeLeftovers = [&](const fs::path& dir, std::string_view prefix,
                               std::span<const std::string_view> not_ours = {}) -> Result<void> {
        std::error_code ec;
        std::vector<fs::path> doomed;
        for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
             it.increment(ec)) {
            auto name = it->path().filename().string();
            bool foreign = std::any_of(not_ours.begin(), not_ours.end(),
                                       [&](auto other) { return name.starts_with(other); });
            if (name.starts_with(prefix) && !foreign) doomed.push_back(it->path());
        }
        if (ec && ec != std::errc::no_such_file_or_directory)
            return failErrno(Errc::Io, ec.value(), "cannot list '", dir.string(), "'");
        for (const auto& path : doomed) {
            HOIST_TRY(files::removeTree(path));
            report.actions.push_back("removed " + path.lexically_relative(layout_.root).string());
        }
        return ok();
    };
    HOIST_TRY(removeLeftovers(layout_.generations(), ".tmp-"));
    // Temporary files of atomic writes (.tmp-current-*, .tmp-txn.json-*, .tmp-node.json-*,
    // run/.tmp-service.pid-*) that a killed process never renamed into place.
    HOIST_TRY(removeLeftovers(layout_.root, ".tmp-"));
    // Not those of files that processes without the node lock write while we run: the
    // service writes run/service.port whenever it starts (also while we recover, after a
    // helper that started it was killed), and an epoch check writes run/epoch.json under its
    // own lock. Their writers clean up after themselves.
    static constexpr std::array<std::string_view, 2> kNotOurs = {".tmp-service.port-",
                                                                 ".tmp-epoch.json-"};
    HOIST_TRY(removeLeftovers(layout_.run(), ".tmp-", kNotOurs));
    HOIST_ASSIGN(auto store, Store::open(layout_));
    HOIST_ASSIGN(int store_leftovers, store.recover());
    if (store_leftovers > 0)
        report.actions.push_back("removed " + std::to_string(store_leftovers) +
                                 " unfinished store entr" + (store_leftovers == 1 ? "y" : "ies"));
    HOIST_TRY(files::fsyncPath(layout_.generations()));

    // `current` must name a complete generation; if it does not, go back to the newest one
    // that ran before and still exists.
    auto cur = current();
    bool broken = !cur;
    if (cur && *cur) {
        std::error_code ec;
        broken = !fs::exists(layout_.generation(**cur) / "set.json", ec);
    }
    if (broken) {
        HOIST_ASSIGN(auto hist, history());
        std::optional<long> good;
        for (auto it = hist.rbegin(); it != hist.rend() && !good; ++it) {
            std::error_code ec;
            if (fs::exists(layout_.generation(*it) / "set.json", ec)) good = *it;
        }
        if (good) {
            HOIST_TRY(
                files::swapSymlink(layout_.current(), "generations/" + std::to_string(*good)));
            report.actions.push_back("pointed current at generation " + std::to_string(*good));
        } else {
            if (::unlink(layout_.current().c_str()) != 0 && errno != ENOENT)
                return failErrno(Errc::Io, errno, "cannot remove '", layout_.current().string(),
                                 "'");
            HOIST_TRY(files::fsyncPath(layout_.root));
            report.actions.push_back("removed current, which pointed at no generation");
        }
    }
    for (const auto& action : report.actions)
        log::info(kComponent, "recover", {{"action", action}});
    return report;
}

}  // namespace hoist::pkgmgr
