// Crash safety of stage, activate, rollback and gc: the real pkgmgr binary is stopped at every
// named crash point (HOIST_CRASH_AT) and, separately, by SIGKILL at random instants; after
// `pkgmgr recover` the node must be on a complete generation, old or new.
#include <gtest/gtest.h>

#include <csignal>
#include <random>
#include <thread>

#include "core/strings.hpp"
#include "pkgmgr/generations.hpp"
#include "sets_fixtures.hpp"
#include "testing.hpp"

namespace hoist::pkgmgr {
namespace {

using namespace sets_testing;

struct CrashCase {
    std::string point;
    std::string command;  // stage, activate, rollback, gc
};

// Every crash point of stage, activate, rollback and gc (generations.cpp).
std::vector<CrashCase> crashCases() {
    std::vector<CrashCase> cases;
    for (const char* p : {"stage.locked", "stage.created", "stage.linked", "stage.environment",
                          "stage.described", "stage.synced", "stage.renamed"})
        cases.push_back({p, "stage"});
    for (const char* p : {"activate.locked", "activate.linked", "activate.renamed",
                          "activate.synced", "activate.recorded"})
        cases.push_back({p, "activate"});
    for (const char* p : {"rollback.locked", "rollback.linked", "rollback.renamed",
                          "rollback.synced", "rollback.recorded"})
        cases.push_back({p, "rollback"});
    for (const char* p : {"gc.locked", "gc.generation_hidden", "gc.generation_removed",
                          "gc.package_removed", "store-remove-after-rename"})
        cases.push_back({p, "gc"});
    return cases;
}

class SetsCrashSlowTest : public NodeRootTest {
protected:
    // The packages of set i, packed once per test and added when the store lacks them.
    std::vector<std::string> set(int i, int files = 20) {
        std::vector<std::string> shas;
        for (const auto& spec : {mesos("1.11." + std::to_string(i)), config(),
                                 module("mod-" + std::to_string(i), "1.0.0", files)}) {
            auto id = spec.name + "--" + spec.version;
            auto cached = packed.find(id);
            if (cached == packed.end()) {
                auto tarball = packSpec(tmp.path() / "work", spec);
                EXPECT_TRUE(tarball.has_value()) << tarball.error().describe();
                if (!tarball) return shas;
                auto added = store->add(*tarball);
                EXPECT_TRUE(added.has_value()) << added.error().describe();
                if (!added) return shas;
                cached = packed.emplace(id, std::make_pair(*tarball, added->ref.sha256)).first;
            }
            auto added = store->add(cached->second.first, {}, cached->second.second);
            EXPECT_TRUE(added.has_value()) << added.error().describe();
            shas.push_back(cached->second.second);
        }
        return shas;
    }

    process::Outcome pkgmgr(const std::vector<std::string>& args,
                            const std::vector<std::pair<std::string, std::string>>& env = {}) {
        std::vector<std::string> argv = {PKGMGR_BIN, "--root", layout.root.string()};
        argv.insert(argv.end(), args.begin(), args.end());
        return testing::run(argv, env, std::chrono::seconds(60));
    }

    long currentNumber() {
        auto cur = gens->current();
        EXPECT_TRUE(cur.has_value() && cur->has_value());
        return cur && *cur ? **cur : -1;
    }

    std::map<std::string, std::pair<fs::path, std::string>> packed;
};

TEST_F(SetsCrashSlowTest, EveryCrashPointRecovers) {
    // One template root, copied for each point: generations 1..3 activated in order, 4 staged,
    // and a fifth set's packages in the store, so every command has work to do.
    std::vector<std::vector<std::string>> sets;
    for (int i = 1; i <= 5; ++i) {
        sets.push_back(set(i));
        if (i == 5) break;
        auto gen = gens->stage(sets.back(), rules, "");
        ASSERT_OK(gen);
        if (i <= 3) ASSERT_OK(gens->activate(gen->number));
    }
    auto template_root = tmp.path() / "template";
    ASSERT_EQ(::rename(layout.root.c_str(), template_root.c_str()), 0);
    for (const auto& c : crashCases()) {
        SCOPED_TRACE(c.point);
        ASSERT_OK(files::removeTree(layout.root));
        auto copied = testing::run({"cp", "-a", template_root.string(), layout.root.string()});
        ASSERT_EQ(copied.exit_code, 0) << copied.err;
        std::vector<std::string> args;
        std::set<long> allowed;
        if (c.command == "stage") {
            args = {"stage", "--role", "master", strings::join(sets[4], ",")};
            allowed = {3};
        } else if (c.command == "activate") {
            args = {"activate", "4"};
            allowed = {3, 4};
        } else if (c.command == "rollback") {
            args = {"rollback"};
            allowed = {2, 3};
        } else {
            args = {"gc", "--keep", "0"};
            allowed = {3};
        }
        auto crashed = pkgmgr(args, {{"HOIST_CRASH_AT", c.point}});
        EXPECT_EQ(crashed.exit_code, kCrashExitCode) << crashed.err;
        auto recovered = pkgmgr({"recover"});
        EXPECT_EQ(recovered.exit_code, 0) << recovered.err;
        auto problems = checkNode(layout);
        EXPECT_TRUE(problems.empty()) << strings::join(problems, "\n");
        EXPECT_EQ(allowed.count(currentNumber()), 1u) << "current is " << currentNumber();
        // The interrupted command can be run again to its end.
        auto again = pkgmgr(args);
        EXPECT_EQ(again.exit_code, 0) << again.err;
        problems = checkNode(layout);
        EXPECT_TRUE(problems.empty()) << strings::join(problems, "\n");
    }
}

TEST_F(SetsCrashSlowTest, RandomKills) {
    // 200 SIGKILLs at random instants into stage, activate and gc, each followed by recover.
    std::vector<std::vector<std::string>> sets;
    for (int i = 0; i < 4; ++i) sets.push_back(set(i, 300));
    std::mt19937 random(20261122);
    int killed_mid_way = 0;
    for (int round = 0; round < 200; ++round) {
        SCOPED_TRACE("round " + std::to_string(round));
        // gc may have collected packages: put every set's packages back.
        for (int i = 0; i < 4; ++i) set(i, 300);
        auto all = gens->list();
        ASSERT_OK(all);
        std::vector<std::string> args;
        switch (round % 3) {
            case 0: {
                // Force a fresh build: a set not staged yet, or staged and then collected.
                auto& chosen = sets[static_cast<size_t>(random() % sets.size())];
                args = {"stage", "--role", "master", strings::join(chosen, ",")};
                break;
            }
            case 1:
                if (all->empty()) continue;
                args = {"activate", std::to_string((*all)[random() % all->size()].number)};
                break;
            default:
                args = {"gc", "--keep", std::to_string(random() % 2)};
        }
        std::vector<std::string> argv = {PKGMGR_BIN, "--root", layout.root.string(), "--log-level",
                                         "error"};
        argv.insert(argv.end(), args.begin(), args.end());
        auto child = process::Child::start(argv);
        ASSERT_OK(child);
        std::this_thread::sleep_for(std::chrono::microseconds(random() % 15000));
        child->signal(SIGKILL);
        auto outcome = child->wait(std::chrono::seconds(30));
        ASSERT_OK(outcome);
        if (outcome->signal == SIGKILL) ++killed_mid_way;
        auto recovered = pkgmgr({"recover"});
        ASSERT_EQ(recovered.exit_code, 0) << recovered.err;
        auto problems = checkNode(layout, false);
        ASSERT_TRUE(problems.empty()) << strings::join(problems, "\n");
    }
    // The instants must land inside the commands, not only after them.
    EXPECT_GT(killed_mid_way, 50);
}

}  // namespace
}  // namespace hoist::pkgmgr
