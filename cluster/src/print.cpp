#include "print.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>
#include <vector>

#include "core/strings.hpp"
#include "deploy_coordinator/states.hpp"

namespace hoist::cluster {

std::string str(const json::Value& obj, const char* key) {
    auto m = obj.FindMember(key);
    return m != obj.MemberEnd() && m->value.IsString() ? m->value.GetString() : "";
}
std::int64_t num(const json::Value& obj, const char* key) {
    auto m = obj.FindMember(key);
    return m != obj.MemberEnd() && m->value.IsInt64() ? m->value.GetInt64() : 0;
}
const json::Value* member(const json::Value& obj, const char* key) {
    auto m = obj.FindMember(key);
    return m != obj.MemberEnd() ? &m->value : nullptr;
}

namespace {
// "gates after each wave (Prometheus URL, on fail: hold): SPEC; SPEC".
void printGates(std::ostringstream& s, const json::Value& doc) {
    const auto* gates = member(doc, "gates");
    if (gates == nullptr || !gates->IsObject()) return;
    std::vector<std::string> specs;
    if (const auto* list = member(*gates, "gates"); list != nullptr && list->IsArray())
        for (const auto& g : list->GetArray())
            if (g.IsString()) specs.push_back(g.GetString());
    s << "gates after each wave (" << str(*gates, "prometheus")
      << ", on fail: " << str(*gates, "on_fail") << "): " << strings::join(specs, "; ") << "\n";
}
}  // namespace

std::string printPlan(const json::Value& plan) {
    std::ostringstream s;
    s << "plan for " << str(plan, "version") << ": " << num(plan, "nodes") << " nodes, agents "
      << num(plan, "max_parallel") << " at a time\n";
    if (const auto* halted = member(plan, "halted");
        halted != nullptr && halted->IsBool() && halted->GetBool())
        s << "note: a hold stands; the upgrade would be refused until an admin clears it\n";
    if (auto nothing = str(plan, "nothing_to_do"); !nothing.empty())
        s << "nothing to do: " << nothing << "; an upgrade would be refused\n";
    printGates(s, plan);
    if (const auto* waves = member(plan, "waves"); waves != nullptr && waves->IsArray()) {
        int n = 0;
        for (const auto& w : waves->GetArray()) {
            std::vector<std::string> ids;
            const auto* nodes = member(w, "nodes");
            size_t count = nodes != nullptr && nodes->IsArray() ? nodes->Size() : 0;
            if (nodes != nullptr && nodes->IsArray())
                for (const auto& id : nodes->GetArray()) {
                    if (ids.size() == 5) {
                        ids.push_back("...");
                        break;
                    }
                    ids.push_back(id.GetString());
                }
            s << "wave " << ++n << " (" << str(w, "role") << ", " << count
              << "): " << strings::join(ids, " ") << "\n";
        }
    }
    if (const auto* roles = member(plan, "roles"); roles != nullptr && roles->IsObject()) {
        for (auto it = roles->MemberBegin(); it != roles->MemberEnd(); ++it) {
            const auto& r = it->value;
            s << "role " << it->name.GetString() << " (from "
              << (str(r, "from").empty() ? "?" : str(r, "from")) << "):";
            for (const char* kind : {"add", "remove", "keep"}) {
                const auto* list = member(r, kind);
                if (list == nullptr || !list->IsArray()) continue;
                const char* mark = kind[0] == 'a' ? " +" : kind[0] == 'r' ? " -" : " =";
                for (const auto& id : list->GetArray()) s << mark << id.GetString();
            }
            s << "\n";
        }
    }
    for (const char* kind : {"skipped", "refused"}) {
        const auto* list = member(plan, kind);
        if (list == nullptr || !list->IsArray() || list->Empty()) continue;
        s << kind << " ("
          << (kind[0] == 's' ? "already on the version" : "upgrade_from does not allow it") << "):";
        for (const auto& id : list->GetArray()) s << " " << id.GetString();
        s << "\n";
    }
    return s.str();
}

namespace {
/// m:ss (h:mm:ss from an hour on) for a rehearsal's milliseconds.
std::string clock(std::int64_t ms) {
    std::int64_t s = (ms + 500) / 1000;
    char text[32];
    if (s >= 3600)
        std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                      static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
    else
        std::snprintf(text, sizeof text, "%lld:%02lld", static_cast<long long>(s / 60),
                      static_cast<long long>(s % 60));
    return text;
}
/// 150ms below a second, else as clock().
std::string span(std::int64_t ms) {
    return ms < 1000 ? std::to_string(ms) + "ms" : clock(ms);
}
bool isNull(const json::Value& obj, const char* key) {
    const auto* m = member(obj, key);
    return m == nullptr || m->IsNull();
}
}  // namespace

std::string printRehearsal(const json::Value& r) {
    std::ostringstream s;
    const auto* a = member(r, "assumptions");
    s << "rehearsal of " << str(r, "version") << ": max_parallel " << str(r, "max_parallel")
      << ", max_failures " << num(r, "max_failures")
      << (member(r, "auto_revert") && r["auto_revert"].IsBool() && r["auto_revert"].GetBool()
              ? ", auto-revert"
              : "")
      << " (simulated: no node is touched)\n";
    if (a != nullptr)
        s << "swap times: " << num(*a, "recorded_swaps")
          << " from the nodes' last swaps, otherwise " << clock(num(*a, "default_swap_ms"))
          << "; a failing swap " << clock(num(*a, "default_health_fail_ms"))
          << " unless recorded; staging " << clock(num(*a, "stage_ms")) << "\n";
    if (const auto* notes = member(r, "notes"); notes != nullptr && notes->IsArray())
        for (const auto& n : notes->GetArray())
            if (n.IsString()) s << "note: " << n.GetString() << "\n";
    printGates(s, r);
    std::map<std::string, const json::Value*> by_node;
    std::vector<std::string> pulls;
    std::int64_t waited = 0;
    if (const auto* nodes = member(r, "nodes"); nodes != nullptr && nodes->IsArray())
        for (const auto& n : nodes->GetArray()) {
            by_node[str(n, "node")] = &n;
            if (deploy_coordinator::parseNodeMode(str(n, "mode")) !=
                deploy_coordinator::NodeMode::pull)
                continue;
            pulls.push_back(str(n, "node") + " every " + span(num(n, "pull_interval_ms")) + " (" +
                            str(n, "pull_interval_source") + ")");
            waited += num(n, "waited_ms");
        }
    if (!pulls.empty())
        s << "pull nodes act only when they next ask (the first ask one interval after the "
             "start; an interval is measured by the coordinator, or the default "
          << span(a != nullptr ? num(*a, "default_pull_interval_ms") : 0)
          << "): " << strings::join(pulls, ", ") << "; their actions wait " << span(waited)
          << " in all for their asks\n";
    if (const auto* waves = member(r, "waves"); waves != nullptr && waves->IsArray()) {
        int i = 0;
        for (const auto& w : waves->GetArray()) {
            ++i;
            std::vector<std::string> ids;
            std::vector<std::string> failed;
            if (const auto* nodes = member(w, "nodes"); nodes != nullptr && nodes->IsArray())
                for (const auto& id : nodes->GetArray()) {
                    if (!id.IsString()) continue;
                    auto it = by_node.find(id.GetString());
                    bool pull = it != by_node.end() &&
                                deploy_coordinator::parseNodeMode(str(*it->second, "mode")) ==
                                    deploy_coordinator::NodeMode::pull;
                    ids.push_back(std::string(id.GetString()) + (pull ? " (pull)" : ""));
                    if (it == by_node.end()) continue;
                    auto step = deploy_coordinator::parseNodeStep(str(*it->second, "state"));
                    if (step == deploy_coordinator::NodeStep::failed ||
                        step == deploy_coordinator::NodeStep::revert_failed)
                        failed.push_back(std::string(id.GetString()) + " fails (" +
                                         str(*it->second, "message") + ")");
                }
            s << "wave " << i << "  " << str(w, "role") << "  " << strings::join(ids, " ") << "  ";
            if (isNull(w, "start_ms"))
                s << "not reached";
            else
                s << clock(num(w, "start_ms")) << " -> "
                  << (isNull(w, "end_ms") ? std::string("?") : clock(num(w, "end_ms")));
            for (const auto& f : failed) s << "; " << f;
            s << "\n";
        }
    }
    if (!isNull(r, "budget_stop_ms")) {
        s << "at " << clock(num(r, "budget_stop_ms")) << " the failure budget "
          << (isNull(r, "revert_start_ms") ? "stops the rollout (held)" : "starts the auto-revert")
          << ": " << str(r, "message") << "\n";
    }
    if (!isNull(r, "hold_bit_ms"))
        s << "at " << clock(num(r, "hold_bit_ms"))
          << " a hold stops the rollout: " << str(r, "message") << "\n";
    auto outcome = str(r, "outcome");
    s << "outcome: " << outcome;
    if (const auto* cut = member(r, "cut_short"); cut && cut->IsBool() && cut->GetBool())
        s << " (the simulation stopped before the rollout ended)";
    s << "; predicted total " << clock(num(r, "total_ms")) << "\n";
    return s.str();
}

}  // namespace hoist::cluster
