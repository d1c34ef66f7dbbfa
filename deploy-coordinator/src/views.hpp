#pragma once

#include "core/json.hpp"
#include "deploy_coordinator/state.hpp"
#include "engine.hpp"
#include "rehearsal.hpp"

namespace hoist::deploy_coordinator {

/// One registry entry as GET /v1/nodes shows it.
void writeNode(json::Writer& w, const NodeRecord& n);
/// One audit event as GET /v1/events shows it.
void writeEvent(json::Writer& w, const Event& e);

/// POST /v1/rehearsals' answer (README "Rehearsal").
std::string rehearsalJson(const Rehearsal& r, const StartRequest& request,
                          const RehearsalSettings& settings, const std::vector<std::string>& notes);

}  // namespace hoist::deploy_coordinator
