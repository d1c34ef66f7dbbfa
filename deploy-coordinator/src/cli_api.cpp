#include "cli_api.hpp"

#include <unistd.h>

#include <iostream>
#include <set>
#include <thread>

#include "cli_print.hpp"
#include "deploy_coordinator/states.hpp"

namespace hoist::deploy_coordinator::cli_api {

using namespace cli_print;

bool finished(const std::string& state) {
    auto s = parseDeploymentState(state);
    return !s || isFinished(*s) || *s == DeploymentState::held;
}

int finishCode(const std::string& state) {
    if (parseDeploymentState(state) == DeploymentState::done) return 0;
    return exitCode(Errc::Unhealthy);
}

int follow(Api& api, const std::string& id, bool json_out, std::ostream& out, std::ostream& err) {
    bool tty = &out == &std::cout && ::isatty(STDOUT_FILENO) != 0 && !json_out;
    std::string last_line;
    while (true) {
        auto text = api.call("GET", "/v1/deployments/" + id + "?nodes=0&events=0");
        if (!text) {
            err << "cluster: " << text.error().describe() << "\n";
            return exitCode(text.error().code);
        }
        auto doc = json::parseObject(*text, "deployment");
        if (!doc) {
            err << "cluster: " << doc.error().describe() << "\n";
            return exitCode(Errc::Internal);
        }
        std::string state = str(*doc, "state");
        std::string waiting = str(*doc, "waiting_on");
        bool halted = waiting.starts_with("hold:");
        if (!json_out) {
            std::string line = describeDeployment(*doc);
            if (tty) {
                const auto* c = member(*doc, "counts");
                std::int64_t total = c ? num(*c, "total") : 0;
                std::int64_t finished_nodes =
                    c ? num(*c, "done") + num(*c, "failed") + num(*c, "skipped") : 0;
                int width = 30;
                int filled = total > 0 ? static_cast<int>(finished_nodes * width / total) : 0;
                std::string bar = "[" + std::string(static_cast<size_t>(filled), '#') +
                                  std::string(static_cast<size_t>(width - filled), '-') + "]";
                out << "\r" << bar << " " << (total > 0 ? finished_nodes * 100 / total : 0) << "% "
                    << line << "\x1b[K" << std::flush;
            } else if (line != last_line) {
                out << line << "\n" << std::flush;
            }
            last_line = line;
        }
        if (finished(state) || halted) {
            if (tty) out << "\n";
            if (json_out) out << json::pretty(*text) << "\n";
            if (halted) {
                err << "cluster: deployment " << id << " is halted (" << waiting
                    << "); it continues when an admin runs 'cluster resume'\n";
                return exitCode(Errc::Halted);
            }
            if (finishCode(state) != 0)
                err << "cluster: deployment " << id << " ended " << state << "\n";
            return finishCode(state);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(tty ? 250 : 500));
    }
}

std::string latestDeployment(Api& api, Error& error, bool changed) {
    auto text = api.call("GET", changed ? "/v1/deployments?limit=100" : "/v1/deployments?limit=1");
    if (!text) {
        error = text.error();
        return "";
    }
    auto doc = json::parseObject(*text, "deployments");
    if (!doc) {
        error = doc.error();
        return "";
    }
    // The deployment acting on nodes comes first: it is what an admin acts on.
    if (auto acting = str(*doc, "acting"); !acting.empty()) return acting;
    const auto* list = member(*doc, "deployments");
    if (list == nullptr || !list->IsArray() || list->Empty()) {
        error = Error{Errc::NotFound, "no deployment yet", 0};
        return "";
    }
    if (changed) {
        std::set<std::string> undone;
        for (const auto& d : list->GetArray())
            if (!str(d, "undoes").empty()) undone.insert(str(d, "undoes"));
        for (const auto& d : list->GetArray()) {
            auto state = parseDeploymentState(str(d, "state"));
            if (state == DeploymentState::rolled_back || state == DeploymentState::reverted ||
                str(d, "kind") == "rollback" || undone.contains(str(d, "id")))
                continue;
            const auto* counts = member(d, "counts");
            if (counts != nullptr && num(*counts, "done") > 0) return str(d, "id");
        }
        error = Error{Errc::NotFound,
                      "no deployment changed any node (nothing to roll back; cluster history "
                      "lists them)",
                      0};
        return "";
    }
    return str((*list)[0], "id");
}

}  // namespace hoist::deploy_coordinator::cli_api
