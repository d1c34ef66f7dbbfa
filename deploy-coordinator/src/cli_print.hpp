#pragma once

#include <cstdint>
#include <string>

#include "core/json.hpp"

namespace hoist::deploy_coordinator::cli_print {

// How the `cluster` CLI shows the coordinator's JSON answers to a person.

std::string str(const json::Value& obj, const char* key);
std::int64_t num(const json::Value& obj, const char* key);
const json::Value* member(const json::Value& obj, const char* key);
/// "master 3/3  agent 40/100" from a deployment's roles counts.
std::string roleCounts(const json::Value& d);
/// One line: id, version, state, counts, waiting_on and the message (once).
std::string describeDeployment(const json::Value& d);
/// GET /v1/plan's answer.
std::string printPlan(const json::Value& plan);
/// POST /v1/rehearsals' answer: waves with predicted times, failures, where the budget stops
/// or auto-revert starts, the total.
std::string printRehearsal(const json::Value& r);

}  // namespace hoist::deploy_coordinator::cli_print
