#pragma once
// Small real packages for the active-set tests: a folder is written, packed with
// packDirectory and added to a node's store.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/files.hpp"
#include "pkgmgr/generations.hpp"
#include "pkgmgr/pack.hpp"
#include "pkgmgr/store.hpp"
#include "testing.hpp"

namespace hoist::pkgmgr::sets_testing {

namespace fs = std::filesystem;

struct PkgSpec {
    std::string name;
    std::string version;
    std::string kind;
    /// path inside the package -> content
    std::map<std::string, std::string> files;
    /// extra pkginfo.json members, already serialised: R"("requires": ["libev"])"
    std::string extra;
};

/// Packs the spec under `work` and returns the tarball path.
inline Result<fs::path> packSpec(const fs::path& work, const PkgSpec& spec) {
    auto dir = work / "src" / (spec.name + "--" + spec.version);
    std::string info = R"({"name": ")" + spec.name + R"(", "version": ")" + spec.version +
                       R"(", "kind": ")" + spec.kind + "\"" +
                       (spec.extra.empty() ? "" : ", " + spec.extra) + "}";
    HOIST_TRY(files::makeDirs(dir));
    HOIST_TRY(files::writeFileAtomic(dir / "pkginfo.json", info));
    for (const auto& [path, content] : spec.files) {
        HOIST_TRY(files::makeDirs((dir / path).parent_path()));
        HOIST_TRY(
            files::writeFileAtomic(dir / path, content, path.rfind("bin/", 0) == 0 ? 0755 : 0644));
    }
    auto out = work / "tarballs" / (spec.name + "--" + spec.version + ".tar.zst");
    HOIST_TRY(files::makeDirs(out.parent_path()));
    HOIST_ASSIGN(auto packed, packDirectory(dir, out));
    return packed.file;
}

inline Result<StoredPackage> addSpec(Store& store, const fs::path& work, const PkgSpec& spec) {
    HOIST_ASSIGN(auto tarball, packSpec(work, spec));
    return store.add(tarball);
}

inline PkgSpec mesos(const std::string& version = "1.11.0") {
    return {"mesos",
            version,
            "mesos",
            {{"bin/mesos-master", "#!/bin/sh\necho master " + version + "\n"},
             {"lib/libmesos.so", "mesos " + version},
             {"units/mesos.service", "[Service]\n"}},
            R"("environment": {"MESOS_HOME": "${PKG}", "MESOS_WORK": "${STATE}/mesos"},)"
            R"( "service": {"exec": ["bin/mesos-master"]})"};
}

inline PkgSpec config(const std::string& version = "1.0.0") {
    return {"mesos-config",
            version,
            "mesos-config",
            {{"etc/mesos/master.conf", "quorum=1 # " + version}},
            ""};
}

inline PkgSpec module(const std::string& name, const std::string& version = "1.0.0",
                      int files = 1) {
    PkgSpec spec{name, version, "module", {}, ""};
    for (int i = 0; i < files; ++i)
        spec.files["lib/mesos/modules/" + name + "/f" + std::to_string(i) + ".so"] =
            name + version + std::to_string(i);
    return spec;
}

/// Checks what a crash must never break: `current` names a complete generation, every
/// generation holds only complete packages whose links resolve, no temporary leftovers.
/// Returns the problems found (empty: all good).
inline std::vector<std::string> checkNode(const NodeLayout& layout, bool require_current = true) {
    std::vector<std::string> problems;
    auto gens = Generations::open(layout);
    if (!gens) return {"open: " + gens.error().describe()};
    auto store = Store::open(layout);
    if (!store) return {"store: " + store.error().describe()};
    auto current = gens->current();
    if (!current) {
        problems.push_back("current: " + current.error().describe());
    } else if (!*current) {
        if (require_current) problems.push_back("no current generation");
    } else if (auto gen = gens->load(**current); !gen) {
        problems.push_back("current generation: " + gen.error().describe());
    }
    auto all = gens->list();
    if (!all) return {"list: " + all.error().describe()};
    for (const auto& gen : *all) {
        for (const auto& ref : gen.packages) {
            auto report = store->verify(ref.sha256);
            if (!report) {
                problems.push_back("generation " + std::to_string(gen.number) + ": " +
                                   report.error().describe());
            } else if (!report->ok()) {
                problems.push_back("generation " + std::to_string(gen.number) + ": package " +
                                   ref.id + " is damaged");
            }
        }
        std::error_code ec;
        for (auto it = fs::recursive_directory_iterator(gen.path, ec);
             !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
            if (it->is_symlink(ec) && !fs::exists(it->path(), ec))
                problems.push_back("dangling link " + it->path().string());
        }
    }
    for (const auto& dir : {layout.root, layout.generations(), layout.store()}) {
        std::error_code ec;
        for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
             it.increment(ec)) {
            if (it->path().filename().string().rfind(".tmp-", 0) == 0)
                problems.push_back("leftover " + it->path().string());
        }
    }
    return problems;
}

/// A fresh node root with its store, generations and the master role's rules.
class NodeRootTest : public ::testing::Test {
protected:
    void SetUp() override {
        layout = NodeLayout::at(tmp.path() / "root");
        auto s = Store::open(layout);
        ASSERT_OK(s);
        store.emplace(std::move(*s));
        auto g = Generations::open(layout);
        ASSERT_OK(g);
        gens.emplace(std::move(*g));
        auto r = RoleRules::load("master");
        ASSERT_OK(r);
        rules = *r;
    }

    hoist::testing::TempFolder tmp;
    NodeLayout layout;
    std::optional<Store> store;
    std::optional<Generations> gens;
    RoleRules rules;
};

}  // namespace hoist::pkgmgr::sets_testing
