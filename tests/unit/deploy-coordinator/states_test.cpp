// The deployment states and node steps: their string forms, the transition tables, the rollout
// model taking every transition of the tables, and the README listing the same tables.

#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "core/strings.hpp"
#include "deploy_coordinator/state.hpp"
#include "deploy_coordinator/states.hpp"
#include "rollout.hpp"

namespace hoist::deploy_coordinator {
namespace {

namespace fs = std::filesystem;
using NS = NodeStep;
using NE = NodeEvent;
using DS = DeploymentState;
using DE = DeploymentEvent;

TEST(States, StringFormsAreUniqueAndRoundTrip) {
    std::set<std::string_view> names;
    for (auto s : allDeploymentStates()) {
        EXPECT_EQ(parseDeploymentState(toString(s)), s);
        EXPECT_TRUE(names.insert(toString(s)).second) << toString(s);
    }
    names.clear();
    for (auto s : allNodeSteps()) {
        EXPECT_EQ(parseNodeStep(toString(s)), s);
        EXPECT_TRUE(names.insert(toString(s)).second) << toString(s);
    }
    EXPECT_EQ(allDeploymentStates().size(), 10u);
    EXPECT_EQ(allNodeSteps().size(), 14u);
    // The forms stored in state files of earlier versions.
    EXPECT_EQ(parseNodeStep("revert_sent"), NS::revert_sent);
    EXPECT_EQ(parseDeploymentState("rolled_back"), DS::rolled_back);
    EXPECT_FALSE(parseDeploymentState("Rolling").has_value());
    EXPECT_FALSE(parseNodeStep("").has_value());
}

TEST(States, TablesAreFunctionsWithNoTransitionOutOfAnEnd) {
    std::set<std::pair<int, int>> seen;
    for (const auto& t : deploymentTransitions()) {
        EXPECT_TRUE(seen.insert({static_cast<int>(t.from), static_cast<int>(t.event)}).second)
            << toString(t.from) << " " << toString(t.event) << " twice";
        EXPECT_NE(t.from, t.to) << toString(t.from);
        // Nothing leaves an end state (a rollback of an ended deployment is a new one).
        EXPECT_FALSE(isFinished(t.from)) << toString(t.from);
    }
    seen.clear();
    for (const auto& t : nodeTransitions()) {
        EXPECT_TRUE(seen.insert({static_cast<int>(t.from), static_cast<int>(t.event)}).second)
            << toString(t.from) << " " << toString(t.event) << " twice";
        EXPECT_NE(t.from, t.to);
    }
    for (auto s : {NS::failed, NS::skipped, NS::reverted, NS::revert_failed})
        for (auto e : allNodeEvents()) EXPECT_FALSE(next(s, e).has_value()) << toString(s);
    // Every step but the first is reachable.
    for (auto s : allNodeSteps()) {
        if (s == NS::pending) continue;
        bool reached = false;
        for (const auto& t : nodeTransitions()) reached = reached || t.to == s;
        EXPECT_TRUE(reached || s == NS::skipped) << toString(s);
    }
}

// A one-agent rollout with the node in `from`, for driving the model by hand.
struct Bench {
    Rollout r;
    Output out;
    RolloutSettings settings{3000, 5000};

    Bench(DS state, NS from, bool pull) {
        r.d.id = "d-1";
        r.d.version = "2.0.0";
        r.d.state = state;
        r.d.node_deadline_ms = 1000;
        r.d.min_healthy_ms = 100;
        r.d.progress_deadline_ms = 0;
        Slot slot;
        slot.row.node = "agent-1";
        slot.row.role = "agent";
        slot.row.state = from;
        slot.row.from_release = "1.0.0";
        slot.row.from_generation = 1;
        slot.row.target_generation = 2;
        slot.pull = pull;
        slot.last_heard_ms = 0;
        r.slots.push_back(slot);
        r.index();
    }
    Slot& slot() { return r.slots[0]; }
    void tick(std::int64_t now, bool held = false) { r.tick(now, held, "", settings, out); }
};

using Fire = std::function<void(Bench&)>;

Fire tickAt(std::int64_t now, bool held = false) {
    return [now, held](Bench& b) { b.tick(now, held); };
}
Fire stage(StageOutcome::Kind kind) {
    return [kind](Bench& b) { b.r.onStage(b.slot(), {kind, 2, "boom"}, 10, b.out); };
}
Fire restart(RestartOutcome::Kind kind) {
    return [kind](Bench& b) { b.r.onRestart(b.slot(), {kind, "boom"}, 10, b.out); };
}
Fire report(pkgmgr::HelperStep state) {
    return [state](Bench& b) { b.r.onPing(b.slot(), {1, state, 1, 2, ""}, 10, b.out); };
}
Fire probe(bool healthy) {
    return [healthy](Bench& b) {
        std::optional<NodeView> view;
        if (healthy) view = NodeView{2, "2.0.0", true};
        b.r.onProbe(b.slot(), view, 500, b.out);
    };
}
Fire offeredTickAt(std::int64_t now) {
    return [now](Bench& b) {
        b.slot().offered_ms = 1;
        b.tick(now);
    };
}
Fire reload() {  // what the engine does with a push stage under way when it restarts
    return [](Bench& b) {
        auto to = next(b.slot().row.state, NE::stage_lost);
        if (to) b.slot().row.state = *to;
    };
}

struct NodeCase {
    NS from;
    NE event;
    DS deployment;
    bool pull;
    Fire fire;
};

// Each row of the node table, with the input that makes the model take it.
const std::vector<NodeCase>& nodeCases() {
    static const std::vector<NodeCase> cases = {
        {NS::pending, NE::stage_sent, DS::staging, false, tickAt(10)},
        {NS::pending, NE::deadline, DS::staging, true, offeredTickAt(100000)},
        {NS::pending, NE::revert_due, DS::reverting, false, tickAt(10, true)},
        {NS::staging, NE::stage_deferred, DS::staging, false, stage(StageOutcome::Kind::deferred)},
        {NS::staging, NE::stage_lost, DS::staging, false, reload()},
        {NS::staging, NE::staged, DS::staging, false, stage(StageOutcome::Kind::staged)},
        {NS::staging, NE::stage_failed, DS::staging, false, stage(StageOutcome::Kind::failed)},
        {NS::staged, NE::restart_sent, DS::rolling, false, tickAt(10)},
        {NS::staged, NE::deadline, DS::rolling, true, offeredTickAt(100000)},
        {NS::staged, NE::revert_due, DS::reverting, false, tickAt(10, true)},
        {NS::restarting, NE::restart_deferred, DS::rolling, false,
         restart(RestartOutcome::Kind::deferred)},
        {NS::restarting, NE::restart_busy, DS::rolling, false, restart(RestartOutcome::Kind::busy)},
        {NS::restarting, NE::restart_accepted, DS::rolling, false,
         restart(RestartOutcome::Kind::accepted)},
        {NS::restarting, NE::restart_refused, DS::rolling, false,
         restart(RestartOutcome::Kind::refused)},
        {NS::restarting, NE::deadline, DS::rolling, false, tickAt(100000)},
        {NS::restarted, NE::healthy, DS::rolling, false, report(pkgmgr::HelperStep::healthy)},
        {NS::restarted, NE::unhealthy, DS::rolling, false, report(pkgmgr::HelperStep::rolled_back)},
        {NS::restarted, NE::deadline, DS::rolling, false, tickAt(100000)},
        {NS::settling, NE::settled, DS::rolling, false, probe(true)},
        {NS::settling, NE::unhealthy, DS::rolling, false, probe(false)},
        {NS::settling, NE::deadline, DS::rolling, false, tickAt(100000)},
        {NS::done, NE::revert_due, DS::reverting, false, tickAt(10, true)},
        {NS::revert_pending, NE::restart_sent, DS::reverting, false, tickAt(10)},
        {NS::revert_pending, NE::deadline, DS::reverting, true, offeredTickAt(100000)},
        {NS::reverting, NE::restart_deferred, DS::reverting, false,
         restart(RestartOutcome::Kind::deferred)},
        {NS::reverting, NE::restart_busy, DS::reverting, false,
         restart(RestartOutcome::Kind::busy)},
        {NS::reverting, NE::restart_accepted, DS::reverting, false,
         restart(RestartOutcome::Kind::accepted)},
        {NS::reverting, NE::restart_refused, DS::reverting, false,
         restart(RestartOutcome::Kind::refused)},
        {NS::reverting, NE::deadline, DS::reverting, false, tickAt(100000)},
        {NS::revert_sent, NE::healthy, DS::reverting, false, report(pkgmgr::HelperStep::healthy)},
        {NS::revert_sent, NE::unhealthy, DS::reverting, false, report(pkgmgr::HelperStep::failed)},
        {NS::revert_sent, NE::deadline, DS::reverting, false, tickAt(100000)},
    };
    return cases;
}

TEST(States, TheModelTakesEveryNodeTransition) {
    std::set<std::pair<NS, NE>> covered;
    for (const auto& c : nodeCases()) {
        SCOPED_TRACE(std::string(toString(c.from)) + " --" + std::string(toString(c.event)) +
                     "-->");
        auto to = next(c.from, c.event);
        ASSERT_TRUE(to.has_value()) << "not in the table";
        Bench b(c.deployment, c.from, c.pull);
        c.fire(b);
        EXPECT_EQ(toString(b.slot().row.state), toString(*to));
        covered.insert({c.from, c.event});
    }
    for (const auto& t : nodeTransitions())
        EXPECT_TRUE(covered.contains({t.from, t.event}))
            << "no case for " << toString(t.from) << " --" << toString(t.event) << "-->";
}

// A two-agent rollout in deployment state `from`: agent-1 in `a`, agent-2 in `b`.
struct DeploymentCase {
    DS from;
    DE event;
    NS a;
    NS b;
    bool auto_revert;
    std::function<void(Rollout&, Output&)> fire;
};

std::function<void(Rollout&, Output&)> command(const char* verb) {
    return [verb](Rollout& r, Output& out) {
        auto done = r.command(verb, std::nullopt, "admin", 10, out);
        EXPECT_TRUE(done.has_value()) << done.error().describe();
    };
}
std::function<void(Rollout&, Output&)> tickFor(std::int64_t now) {
    return [now](Rollout& r, Output& out) { r.tick(now, false, "", {3000, 600000}, out); };
}
std::function<void(Rollout&, Output&)> progressDeadline() {
    return [](Rollout& r, Output& out) {
        r.d.progress_deadline_ms = 1000;
        r.tick(5000, false, "", {3000, 600000}, out);
    };
}

TEST(States, TheModelTakesEveryDeploymentTransition) {
    const std::vector<DeploymentCase> cases = {
        {DS::staging, DE::all_staged, NS::staged, NS::staged, false, tickFor(10)},
        {DS::staging, DE::pause, NS::staging, NS::staged, false, command("pause")},
        {DS::rolling, DE::pause, NS::restarted, NS::staged, false, command("pause")},
        {DS::paused, DE::resume_staging, NS::staging, NS::staged, false, command("resume")},
        {DS::paused, DE::resume_rolling, NS::staged, NS::staged, false, command("resume")},
        {DS::held, DE::resume_staging, NS::pending, NS::staged, false,
         [](Rollout& r, Output& out) { ASSERT_TRUE(r.command("resume", 1, "admin", 10, out)); }},
        {DS::held, DE::resume_rolling, NS::failed, NS::staged, false,
         [](Rollout& r, Output& out) { ASSERT_TRUE(r.command("resume", 1, "admin", 10, out)); }},
        {DS::staging, DE::budget_spent, NS::failed, NS::staging, false, tickFor(10)},
        {DS::rolling, DE::budget_spent, NS::failed, NS::staged, false, tickFor(10)},
        {DS::staging, DE::budget_spent_auto, NS::failed, NS::staging, true, tickFor(10)},
        {DS::rolling, DE::budget_spent_auto, NS::failed, NS::staged, true, tickFor(10)},
        {DS::rolling, DE::all_finished, NS::done, NS::skipped, false, tickFor(10)},
        {DS::staging, DE::progress_deadline, NS::staging, NS::staging, false, progressDeadline()},
        {DS::rolling, DE::progress_deadline, NS::restarted, NS::staged, false, progressDeadline()},
        {DS::reverting, DE::progress_deadline, NS::revert_sent, NS::done, false,
         progressDeadline()},
        {DS::staging, DE::abort, NS::staging, NS::staged, false, command("abort")},
        {DS::rolling, DE::abort, NS::restarted, NS::staged, false, command("abort")},
        {DS::paused, DE::abort, NS::staged, NS::staged, false, command("abort")},
        {DS::held, DE::abort, NS::failed, NS::staged, false, command("abort")},
        {DS::reverting, DE::abort, NS::revert_sent, NS::done, false, command("abort")},
        {DS::staging, DE::rollback, NS::staging, NS::staged, false, command("rollback")},
        {DS::rolling, DE::rollback, NS::restarted, NS::staged, false, command("rollback")},
        {DS::paused, DE::rollback, NS::done, NS::staged, false, command("rollback")},
        {DS::held, DE::rollback, NS::failed, NS::done, false, command("rollback")},
        {DS::reverting, DE::revert_finished, NS::reverted, NS::skipped, true,
         [](Rollout& r, Output& out) {
             r.d.message = "auto-revert: 1 nodes failed";
             tickFor(10)(r, out);
         }},
        {DS::reverting, DE::rollback_finished, NS::reverted, NS::revert_failed, false, tickFor(10)},
    };
    std::set<std::pair<DS, DE>> covered;
    for (const auto& c : cases) {
        SCOPED_TRACE(std::string(toString(c.from)) + " --" + std::string(toString(c.event)) +
                     "-->");
        auto to = next(c.from, c.event);
        ASSERT_TRUE(to.has_value()) << "not in the table";
        Rollout r;
        r.d.id = "d-1";
        r.d.version = "2.0.0";
        r.d.state = c.from;
        r.d.auto_revert = c.auto_revert;
        r.d.progress_deadline_ms = 0;
        for (auto [name, step] : {std::pair{"agent-1", c.a}, std::pair{"agent-2", c.b}}) {
            Slot slot;
            slot.row.node = name;
            slot.row.role = "agent";
            slot.row.state = step;
            slot.row.from_generation = 1;
            slot.row.target_generation = 2;
            slot.last_heard_ms = 5000;  // no poll due
            slot.row.started_ms = 5000;
            r.slots.push_back(slot);
        }
        r.index();
        Output out;
        c.fire(r, out);
        EXPECT_EQ(toString(r.d.state), toString(*to));
        covered.insert({c.from, c.event});
    }
    for (const auto& t : deploymentTransitions())
        EXPECT_TRUE(covered.contains({t.from, t.event}))
            << "no case for " << toString(t.from) << " --" << toString(t.event) << "-->";
}

TEST(States, NoCommandOutsideTheTableChangesAnything) {
    for (auto from : allDeploymentStates())
        for (const char* verb : {"pause", "resume", "abort", "rollback"}) {
            Rollout r;
            r.d.id = "d-1";
            r.d.state = from;
            Output out;
            auto done = r.command(verb, std::nullopt, "admin", 10, out);
            if (!done) {
                EXPECT_EQ(r.d.state, from) << verb << " " << toString(from);
                EXPECT_TRUE(out.events.empty());
            }
        }
}

// The README's tables (rows "| `from` | `event` | `to` |" under the two headings) list
// exactly the code's.
std::set<std::string> readmeRows(const std::string& heading) {
    std::ifstream in(std::string(HOIST_SOURCE_DIR) + "/deploy-coordinator/README.md");
    EXPECT_TRUE(in.good());
    std::set<std::string> rows;
    std::string line;
    bool inside = false;
    std::regex row(R"(^\| `(\w+)` \| `(\w+)` \| `(\w+)` \|)");
    while (std::getline(in, line)) {
        if (line.starts_with("#")) inside = line == heading;
        std::smatch m;
        if (inside && std::regex_search(line, m, row))
            rows.insert(m[1].str() + " " + m[2].str() + " " + m[3].str());
    }
    return rows;
}

TEST(States, TheReadmeListsTheTables) {
    std::set<std::string> want;
    for (const auto& t : deploymentTransitions())
        want.insert(std::string(toString(t.from)) + " " + std::string(toString(t.event)) + " " +
                    std::string(toString(t.to)));
    EXPECT_EQ(readmeRows("### Deployment transitions"), want);
    want.clear();
    for (const auto& t : nodeTransitions())
        want.insert(std::string(toString(t.from)) + " " + std::string(toString(t.event)) + " " +
                    std::string(toString(t.to)));
    EXPECT_EQ(readmeRows("### Node transitions"), want);
}

// The README's state lists (the bullets "- Deployment:" and "- Node:" under "### States", the
// names in backquotes outside parentheses, in order) are the code's, and "the first five are
// *active*" holds.
std::vector<std::string> readmeList(const std::string& bullet, std::string* text = nullptr) {
    std::ifstream in(std::string(HOIST_SOURCE_DIR) + "/deploy-coordinator/README.md");
    EXPECT_TRUE(in.good());
    std::string line;
    std::string item;
    bool inside = false;
    bool in_item = false;
    while (std::getline(in, line)) {
        if (line.starts_with("#")) inside = line == "### States";
        if (!inside) continue;
        if (line.starts_with("- "))
            in_item = line.starts_with("- " + bullet + ":");
        else if (!line.starts_with("  "))
            in_item = false;
        if (in_item) item += line + "\n";
    }
    if (text != nullptr) *text = item;
    // What a parenthesis says of a state is not a state.
    item = std::regex_replace(item, std::regex(R"(\([^)]*\))"), "");
    std::vector<std::string> names;
    std::regex name(R"(`(\w+)`)");
    for (auto it = std::sregex_iterator(item.begin(), item.end(), name);
         it != std::sregex_iterator(); ++it)
        names.push_back((*it)[1].str());
    return names;
}

TEST(States, TheReadmeListsTheStatesInOrder) {
    std::vector<std::string> want;
    for (auto s : allDeploymentStates()) want.emplace_back(toString(s));
    std::string text;
    EXPECT_EQ(readmeList("Deployment", &text), want);
    int active = 0;
    for (auto s : allDeploymentStates()) {
        if (!isActive(s)) break;
        ++active;
    }
    EXPECT_EQ(active, 5);
    for (size_t i = 0; i < allDeploymentStates().size(); ++i)
        EXPECT_EQ(isActive(allDeploymentStates()[i]), i < 5) << toString(allDeploymentStates()[i]);
    EXPECT_NE(text.find("The first five are *active*"), std::string::npos) << text;
    want.clear();
    for (auto s : allNodeSteps()) want.emplace_back(toString(s));
    EXPECT_EQ(readmeList("Node"), want);
}

// No deployment state, node step, helper step, registry status or node mode is compared as a
// string (== or != against a literal of its name) outside its conversion functions, in the
// coordinator, `cluster`, the node endpoint, the restart helper and the fake fleet. The node
// mode is read off the wire in pkgmgr's wire.cpp (the registration's own fromJson/toJson).
TEST(States, NoStateIsComparedAsAStringOutsideItsConversions) {
    auto pattern = [](const std::set<std::string>& names) {
        std::string alternatives;
        for (const auto& n : names) alternatives += (alternatives.empty() ? "" : "|") + n;
        return std::regex("(==|!=)\\s*\"(" + alternatives + ")\"|\"(" + alternatives +
                          ")\"\\s*(==|!=)");
    };
    std::set<std::string> names;
    for (auto s : allDeploymentStates()) names.emplace(toString(s));
    for (auto s : allNodeSteps()) names.emplace(toString(s));
    for (const char* s : {"stopping", "swapping", "starting", "checking", "healthy", "rolling_back",
                          "rolled_back", "failed", "bootstrapping"})
        names.emplace(s);
    std::set<std::string> registry;
    for (auto s : {NodeStatus::up, NodeStatus::down, NodeStatus::removed})
        registry.emplace(toString(s));
    for (auto m : {NodeMode::push, NodeMode::pull}) registry.emplace(toString(m));
    auto steps = pattern(names);
    auto standing = pattern(registry);
    const fs::path root = HOIST_SOURCE_DIR;
    std::vector<std::string> found;
    size_t files = 0;
    for (const char* dir : {"deploy-coordinator/src", "deploy-coordinator/include", "cluster",
                            "pkgmgr/src", "pkgmgr/include", "pkgmgr/node", "pkgmgr/cli",
                            "restart-helper", "tests/helpers/fake-fleet"}) {
        ASSERT_TRUE(fs::is_directory(root / dir)) << dir;
        for (const auto& entry : fs::recursive_directory_iterator(root / dir)) {
            auto ext = entry.path().extension();
            if (ext != ".cpp" && ext != ".hpp") continue;
            auto name = entry.path().filename();
            // The conversion functions themselves.
            if (name == "states.cpp" || name == "status.cpp") continue;
            bool wire = name == "wire.cpp";
            ++files;
            std::ifstream in(entry.path());
            std::string line;
            for (int n = 1; std::getline(in, line); ++n)
                if (std::regex_search(line, steps) || (!wire && std::regex_search(line, standing)))
                    found.push_back(fs::relative(entry.path(), root).string() + ":" +
                                    std::to_string(n) + ": " + line);
        }
    }
    EXPECT_GT(files, 50u);
    EXPECT_TRUE(found.empty()) << strings::join(found, "\n");
}

// The coordinator stays readable: no source file of it is over about 600 lines.
TEST(States, NoCoordinatorSourceIsOverAbout600Lines) {
    const fs::path dir = fs::path(HOIST_SOURCE_DIR) / "deploy-coordinator/src";
    ASSERT_TRUE(fs::is_directory(dir));
    for (const auto& entry : fs::directory_iterator(dir)) {
        std::ifstream in(entry.path());
        size_t lines = 0;
        for (std::string line; std::getline(in, line);) ++lines;
        EXPECT_LE(lines, 620u) << entry.path().filename();
    }
}

TEST(States, RegistryStatusesAndModesRoundTrip) {
    for (auto s : {NodeStatus::up, NodeStatus::down, NodeStatus::removed})
        EXPECT_EQ(parseNodeStatus(toString(s)), s);
    for (auto m : {NodeMode::push, NodeMode::pull}) EXPECT_EQ(parseNodeMode(toString(m)), m);
    EXPECT_FALSE(parseNodeStatus("Up").has_value());
    EXPECT_FALSE(parseNodeMode("sideways").has_value());
    NodeRecord n;
    EXPECT_TRUE(n.is(NodeStatus::up));  // the defaults: up, push
    EXPECT_FALSE(n.pull());
    n.set(NodeStatus::removed);
    EXPECT_EQ(n.status, "removed");
    n.mode = "pull";
    EXPECT_TRUE(n.pull());
}

}  // namespace
}  // namespace hoist::deploy_coordinator
