// Stage and restart: the set built into a generation, the restart helper launched.
#include "node_server_impl.hpp"

namespace hoist::pkgmgr {

// What POST /v1/stage does once its body is read; a pull node's stage runs it too.
Result<Generation> NodeServer::Impl::stageSet(const std::optional<std::string>& version,
                                              std::vector<PackageRef> refs) {
    auto& m = server->metrics();
    auto staged = [&]() -> Result<Generation> {
        if (!rules) return fail(Errc::Invalid, "node.json names no role");
        if (config.repository.empty())
            return fail(Errc::Invalid, "node.json names no repository to fetch from");
        std::optional<FetchedRelease> fetched;
        if (version) {
            HOIST_ASSIGN(auto pems, config.trustedKeyPems(layout));
            http::Client client;
            HOIST_ASSIGN(auto got, fetchRelease(client, config.repository, *version, pems,
                                                config.allow_unsigned));
            HOIST_ASSIGN(refs, got.release.packagesFor(config.role));
            fetched = std::move(got);
        }
        std::vector<std::string> shas;
        for (const auto& ref : refs) shas.push_back(ref.sha256);

        // One stage at a time; the node lock keeps gc and a swap out while it fetches and builds.
        std::lock_guard change(change_mutex);
        HOIST_ASSIGN(auto held,
                     files::FileLock::acquire(layout.lock(), options.lock_wait, "stage"));
        HOIST_ASSIGN(auto s, storeForChange());
        FetchOptions fetch_options;
        fetch_options.parallel = options.fetch_parallel;
        fetch_options.retry_for = options.fetch_retry_for;
        HOIST_TRY(fetchPackages(s, config.repository, shas, fetch_options));
        for (const auto& ref : refs) {
            HOIST_ASSIGN(auto stored, s.get(ref.sha256));
            if (stored.ref.id != ref.id)
                return fail(Errc::Corrupt, "package ", ref.sha256, " is '", stored.ref.id,
                            "', not '", ref.id, "'");
        }
        HOIST_ASSIGN(auto gens, generations());
        gens.setCallerHoldsLock(true);
        HOIST_ASSIGN(auto generation,
                     fetched ? gens.stage(fetched->release, *rules) : gens.stage(shas, *rules, ""));
        if (fetched) {
            if (auto saved = saveRelease(layout, *fetched); !saved)
                log::warn(kComponent, "cannot keep the release manifest",
                          {{"error", saved.error().describe()}});
        }
        return generation;
    }();
    m.add("hoist_node_stages_total", staged ? "result=\"ok\"" : "result=\"refused\"");
    return staged;
}

bool NodeServer::Impl::helperRunning() {
    std::lock_guard lock(helpers_mutex);
    bool any = false;
    for (auto it = helpers.begin(); it != helpers.end();) {
        if (it->running()) {
            any = true;
            ++it;
        } else {
            it = helpers.erase(it);
        }
    }
    return any;
}

Result<std::string> NodeServer::Impl::launchHelper(long generation, const std::string& deployment,
                                                   const std::string& report_to,
                                                   std::int64_t epoch) {
    if (helper.empty() || !fs::exists(helper))
        return fail(Errc::Internal,
                    "the restart-helper binary was not found (pass --restart-helper)");
    // Another transaction: a journal on disk, or a helper we started that has not written one yet.
    auto txn = Journal::load(layout);
    if (!txn) return fail(Errc::Corrupt, damageAdvice(txn.error()));
    if (*txn)
        return fail(Errc::Conflict, "a transaction is under way (operation ", (*txn)->operation,
                    ", state ", (*txn)->state, ")");
    if (helperRunning()) return fail(Errc::Conflict, "a restart helper is still running");
    auto op = "op-" + crypto::randomHex(8);
    std::vector<std::string> argv = {helper.string(), "--root", layout.root.string()};
    if (!options.layouts_dir.empty()) {
        argv.push_back("--layouts");
        argv.push_back(options.layouts_dir.string());
    }
    argv.insert(argv.end(), {"swap", "--to", std::to_string(generation), "--operation", op});
    if (!deployment.empty()) argv.insert(argv.end(), {"--deployment", deployment});
    if (!report_to.empty()) argv.insert(argv.end(), {"--report-to", report_to});
    // The helper checks the epoch again under its own lock: a newer coordinator's command
    // may have come in between.
    if (epoch > 0) argv.insert(argv.end(), {"--epoch", std::to_string(epoch)});
    process::Options popts;
    // A session of its own: the helper must outlive this endpoint (it may even restart it).
    popts.new_session = true;
    popts.stdout_file = layout.run() / "helper.log";
    popts.stderr_file = layout.run() / "helper.log";
    HOIST_TRY(files::makeDirs(layout.run()));
    HOIST_ASSIGN(auto child, process::Child::start(argv, popts));
    log::info(kComponent, "restart helper started",
              {{"operation", op},
               {"generation", static_cast<std::int64_t>(generation)},
               {"pid", static_cast<std::int64_t>(child.pid())}});
    server->metrics().add("hoist_node_restarts_total");
    std::lock_guard lock(helpers_mutex);
    helpers.push_back(std::move(child));
    return op;
}

// What POST /v1/restart does once its body is read; a pull node's restart runs it too.
Result<std::string> NodeServer::Impl::restartTo(long generation, const std::string& deployment,
                                                const std::string& report_to, std::int64_t epoch) {
    std::lock_guard change(change_mutex);
    HOIST_ASSIGN(auto gens, generations());
    HOIST_TRY(gens.load(generation));
    return launchHelper(generation, deployment, report_to, epoch);
}

}  // namespace hoist::pkgmgr
