#pragma once

#include <cstdint>
#include <string>

#include "core/json.hpp"

namespace hoist::cluster {

// How `cluster` shows the coordinator's plan and rehearsal answers to a person (the other
// answers are typed: cluster/api_types.hpp).

std::string str(const json::Value& obj, const char* key);
std::int64_t num(const json::Value& obj, const char* key);
const json::Value* member(const json::Value& obj, const char* key);
/// GET /v1/plan's answer.
std::string printPlan(const json::Value& plan);
/// POST /v1/rehearsals' answer: waves with predicted times, failures, where the budget stops
/// or auto-revert starts, the total.
std::string printRehearsal(const json::Value& r);

}  // namespace hoist::cluster
