// The node endpoint's HTTP routes: each parses, calls the operation, serializes.
#include "node_server_impl.hpp"

namespace hoist::pkgmgr {

// ---- routes

void NodeServer::Impl::routes() {
    auto& s = *server;
    // Every route with a body needs the token: checked before the body is read.
    s.beforeBody([this](const ServerRequest& r) { return authorize(r); });
    s.route("GET", "/v1/node", [this](const ServerRequest& r) { return getNode(r); });
    s.route("GET", "/v1/packages", [this](const ServerRequest& r) { return getPackages(r); });
    s.route("PUT", "/v1/packages/" + std::string(kSha),
            [this](const ServerRequest& r) { return putPackage(r); });
    s.route("DELETE", "/v1/packages/" + std::string(kSha),
            [this](const ServerRequest& r) { return deletePackage(r); });
    s.route("GET", "/v1/active", [this](const ServerRequest& r) { return getActive(r); });
    s.route("POST", "/v1/stage", [this](const ServerRequest& r) { return postStage(r); });
    s.route("POST", "/v1/restart", [this](const ServerRequest& r) { return postRestart(r); });
    s.route("POST", "/v1/rollback", [this](const ServerRequest& r) { return postRollback(r); });
    s.route("GET", "/v1/transaction", [this](const ServerRequest& r) { return getTransaction(r); });
    s.onMetrics([this](metrics::Registry& registry) { collectMetrics(registry); });
    auto& m = s.metrics();
    m.describe("hoist_node_generation", "gauge", "the current generation (0: none)");
    m.describe("hoist_node_service_running", "gauge", "1 while the service runs");
    m.describe("hoist_node_transaction_active", "gauge", "1 while the restart helper swaps");
    m.describe("hoist_node_pings_queued", "gauge", "status pings waiting in the outbox");
    m.describe("hoist_node_pings_damaged", "gauge",
               "unreadable status pings set aside in the outbox (outbox/*.damaged), never sent");
    m.describe("hoist_node_packages", "gauge", "packages in the store");
    m.describe("hoist_node_stages_total", "counter", "stage requests by result");
    m.describe("hoist_node_restarts_total", "counter", "restart helpers launched");
    m.describe("hoist_node_release_info", "gauge",
               "1, labelled with the node's id, role and release");
    m.declare("hoist_node_stages_total", "result=\"ok\"");
    m.declare("hoist_node_stages_total", "result=\"refused\"");
    m.declare("hoist_node_restarts_total");
}

ServerReply NodeServer::Impl::getNode(const ServerRequest&) {
    auto gens = generations();
    if (!gens) return errorReply(gens.error());
    auto cur = gens->current();
    if (!cur) return errorReply(cur.error());
    ServiceStatus st;
    bool healthy = false;
    {
        std::lock_guard lock(service_mutex);
        auto status = manager->status();
        if (status)
            st = *status;
        else
            st.detail = status.error().describe();
    }
    if (st.running && *cur && rules) {
        // One probe, not the whole healthy_after_ms check: this says how it is right now.
        auto store_opened = store();
        auto gen = gens->load(**cur);
        if (store_opened && gen) {
            auto launch = prepareLaunch(layout, *store_opened, *gen, *rules);
            if (launch && launch->spec.health) {
                http::Client client;
                auto probe = launch->spec.health;
                probe->timeout_ms = std::min<std::int64_t>(probe->timeout_ms, 2000);
                healthy = probeHealth(*probe, HealthContext{layout, {}}, client).has_value();
            } else if (launch) {
                healthy = true;
            }
        }
    }
    // A journal that does not read is reported as damaged: restarts wait for recover.
    auto txn = Journal::load(layout);
    // The helper updates node.json's release after each swap.
    auto fresh = NodeConfig::load(layout);
    NodeView view;
    view.id = config.id;
    view.role = config.role;
    view.address = address();
    view.release = fresh ? fresh->release : config.release;
    view.generation = cur->value_or(0);
    view.service = {std::string(manager->name()), st.running, static_cast<std::int64_t>(st.pid),
                    st.detail};
    view.healthy = healthy;
    if (auto epoch = seenEpoch(layout)) view.epoch = *epoch;
    if (!txn)
        view.transaction = TransactionSummary{"", "", damageAdvice(txn.error())};
    else if (*txn)
        view.transaction = TransactionSummary{(*txn)->operation, (*txn)->state, ""};
    return ServerReply::json(200, view.toJson());
}

ServerReply NodeServer::Impl::getPackages(const ServerRequest&) {
    auto s = store();
    if (!s) return errorReply(s.error());
    auto list = s->list();
    if (!list) return errorReply(list.error());
    std::set<std::string> in_use;
    if (auto gens = generations()) {
        if (auto used = gens->packagesInUse(options.keep))
            in_use.insert(used->begin(), used->end());
    }
    json::Writer w;
    w.beginObject().key("packages").beginArray();
    for (const auto& p : *list) {
        w.beginObject()
            .field("id", p.ref.id)
            .field("sha256", p.ref.sha256)
            .field("size", p.ref.size)
            .field("kind", p.info.kind)
            .field("in_use", in_use.count(p.ref.sha256) > 0)
            .endObject();
    }
    w.endArray().endObject();
    return ServerReply::json(200, w.str());
}

ServerReply NodeServer::Impl::putPackage(const ServerRequest& request) {
    if (auto auth = authorize(request); !auth) return errorReply(auth.error());
    const auto& sha = request.matches.at(1);
    std::optional<std::string> id;
    if (!strings::trim(request.body).empty()) {
        auto doc = json::parseObject(request.body, "request body");
        if (!doc) return errorReply(doc.error());
        if (auto unknown = json::rejectUnknown(*doc, {"id"}, "request body"); !unknown)
            return errorReply(unknown.error());
        auto given = json::optString(*doc, "id", "request body");
        if (!given) return errorReply(given.error());
        if (*given) {
            if (auto parsed = PackageId::parse(**given); !parsed) return errorReply(parsed.error());
            id = **given;
        }
    }
    if (config.repository.empty())
        return errorReply(Error{Errc::Invalid, "node.json names no repository to fetch from", 0});
    auto held = files::FileLock::acquire(layout.lock(), options.lock_wait, "fetch package");
    if (!held) return errorReply(held.error());
    auto s = storeForChange();
    if (!s) return errorReply(s.error());
    bool had = s->has(sha);
    FetchOptions fetch_options;
    fetch_options.retry_for = options.fetch_retry_for;
    auto fetched = fetchPackage(*s, config.repository, sha, fetch_options);
    if (!fetched) return errorReply(fetched.error());
    if (id && fetched->ref.id != *id)
        return errorReply(
            Error{Errc::Corrupt,
                  "package " + sha + " is '" + fetched->ref.id + "', not '" + *id + "'", 0});
    json::Writer w;
    w.beginObject().field("fetched", !had).key("package");
    writeRef(w, fetched->ref);
    w.field("kind", fetched->info.kind).endObject();
    return ServerReply::json(had ? 200 : 201, w.str());
}

ServerReply NodeServer::Impl::deletePackage(const ServerRequest& request) {
    if (auto auth = authorize(request); !auth) return errorReply(auth.error());
    const auto& sha = request.matches.at(1);
    std::lock_guard change(change_mutex);
    auto held = files::FileLock::acquire(layout.lock(), options.lock_wait, "delete package");
    if (!held) return errorReply(held.error());
    auto s = store();
    if (!s) return errorReply(s.error());
    if (!s->has(sha))
        return errorReply(Error{Errc::NotFound, "package " + sha + " is not in the store", 0});
    auto gens = generations();
    if (!gens) return errorReply(gens.error());
    auto used = gens->packagesInUse(options.keep);
    if (!used) return errorReply(used.error());
    if (std::find(used->begin(), used->end(), sha) != used->end())
        return errorReply(Error{Errc::Conflict,
                                "package " + sha +
                                    " is used by a generation that is kept; "
                                    "it can go once gc no longer keeps that generation",
                                0});
    if (auto removed = s->remove(sha); !removed) return errorReply(removed.error());
    return ServerReply::json(200, "{\"removed\":\"" + sha + "\"}");
}

ServerReply NodeServer::Impl::getActive(const ServerRequest&) {
    auto gens = generations();
    if (!gens) return errorReply(gens.error());
    auto cur = gens->current();
    if (!cur) return errorReply(cur.error());
    if (!*cur) return errorReply(Error{Errc::NotFound, "no generation is active on this node", 0});
    auto gen = gens->load(**cur);
    if (!gen) return errorReply(gen.error());
    json::Writer w;
    w.beginObject()
        .field("generation", static_cast<std::int64_t>(gen->number))
        .field("role", gen->role)
        .field("release", gen->release)
        .field("created", gen->created)
        .key("packages")
        .beginArray();
    for (const auto& ref : gen->packages) writeRef(w, ref);
    w.endArray().endObject();
    return ServerReply::json(200, w.str());
}

ServerReply NodeServer::Impl::postStage(const ServerRequest& request) {
    if (auto auth = authorize(request); !auth) return errorReply(auth.error());
    auto refuse = [this](const Error& e) {
        server->metrics().add("hoist_node_stages_total", "result=\"refused\"");
        return errorReply(withContext(e, "stage"));
    };
    auto body = StageRequest::fromJson(request.body);
    if (!body) return refuse(body.error());
    if (auto admitted = admitEpoch(layout, body->epoch, "stage"); !admitted) {
        server->metrics().add("hoist_node_stages_total", "result=\"refused\"");
        return errorReply(admitted.error());
    }
    auto staged = stageSet(body->release, body->packages.value_or(std::vector<PackageRef>{}));
    if (!staged) return errorReply(withContext(staged.error(), "stage"));
    StageReply reply{staged->number, staged->release, staged->packages};
    return ServerReply::json(200, reply.toJson());
}

ServerReply NodeServer::Impl::postRestart(const ServerRequest& request) {
    if (auto auth = authorize(request); !auth) return errorReply(auth.error());
    auto body = RestartRequest::fromJson(request.body);
    if (!body) return errorReply(body.error());
    if (auto admitted = admitEpoch(layout, body->epoch, "restart"); !admitted)
        return errorReply(admitted.error());
    auto op = restartTo(static_cast<long>(body->generation), body->deployment, body->report_to,
                        body->epoch);
    if (!op) return errorReply(op.error());
    return ServerReply::json(202, RestartReply{*op, body->generation}.toJson());
}

ServerReply NodeServer::Impl::postRollback(const ServerRequest& request) {
    if (auto auth = authorize(request); !auth) return errorReply(auth.error());
    auto body = RollbackRequest::fromJson(request.body);
    if (!body) return errorReply(body.error());
    if (auto admitted = admitEpoch(layout, body->epoch, "rollback"); !admitted)
        return errorReply(admitted.error());
    std::lock_guard change(change_mutex);
    auto gens = generations();
    if (!gens) return errorReply(gens.error());
    auto prev = gens->previous();
    if (!prev) return errorReply(prev.error());
    if (!*prev)
        return errorReply(
            Error{Errc::NotFound, "rollback: no previous generation to go back to", 0});
    auto op = launchHelper(**prev, body->deployment, body->report_to, body->epoch);
    if (!op) return errorReply(op.error());
    return ServerReply::json(202, RestartReply{*op, **prev}.toJson());
}

ServerReply NodeServer::Impl::getTransaction(const ServerRequest& request) {
    auto wanted = request.queryParam("operation");
    auto matches = [&wanted](const std::optional<Journal>& journal) {
        return journal && (!wanted || journal->operation == *wanted);
    };
    auto txn = Journal::load(layout);
    if (!txn) {
        TransactionView damaged{true, {}};
        damaged.damaged = damageAdvice(txn.error());
        return ServerReply::json(200, damaged.toJson());
    }
    if (matches(*txn)) return ServerReply::json(200, TransactionView{true, *txn}.toJson());
    auto last = Journal::loadLast(layout);
    if (!last) return errorReply(last.error());
    if (matches(*last)) return ServerReply::json(200, TransactionView{false, *last}.toJson());
    if (wanted) {
        // Launched but not journaled yet: the helper is still starting.
        if (helperRunning()) return ServerReply::json(200, TransactionView{true, {}}.toJson());
        return errorReply(
            Error{Errc::NotFound, "no transaction with operation id '" + *wanted + "'", 0});
    }
    return ServerReply::json(200, TransactionView{}.toJson());
}

void NodeServer::Impl::collectMetrics(metrics::Registry& registry) {
    // The helper updates node.json's release after each swap.
    auto fresh = NodeConfig::load(layout);
    registry.replace(
        "hoist_node_release_info",
        {{metrics::label("node", config.id) + "," + metrics::label("role", config.role) + "," +
              metrics::label("release", fresh ? fresh->release : config.release),
          1.0}});
    if (auto gens = generations()) {
        if (auto cur = gens->current())
            registry.set("hoist_node_generation", {}, static_cast<double>(cur->value_or(0)));
    }
    {
        std::lock_guard lock(service_mutex);
        auto st = manager->status();
        registry.set("hoist_node_service_running", {}, st && st->running ? 1.0 : 0.0);
    }
    std::error_code ec;
    registry.set("hoist_node_transaction_active", {}, fs::exists(layout.txn(), ec) ? 1.0 : 0.0);
    if (auto outbox = Outbox::open(layout)) {
        if (auto queued = outbox->pending())
            registry.set("hoist_node_pings_queued", {}, static_cast<double>(queued->size()));
        registry.set("hoist_node_pings_damaged", {}, static_cast<double>(outbox->damaged().size()));
    }
    if (auto s = store()) {
        if (auto list = s->list())
            registry.set("hoist_node_packages", {}, static_cast<double>(list->size()));
    }
}

}  // namespace hoist::pkgmgr
