// restart-helper bootstrap: an empty node root -> a running node.

#include <unistd.h>

#include "core/crypto.hpp"
#include "core/files.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"
#include "helper_impl.hpp"
#include "pkgmgr/fetch.hpp"
#include "pkgmgr/repository.hpp"

namespace hoist::restart_helper {

namespace {

std::string hostName() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0')
        return "node-" + crypto::randomHex(4);
    std::string name(buf);
    // A node id follows the package name rules (lowercase, digits, '-').
    for (auto& c : name) {
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            c = '-';
    }
    return name;
}

}  // namespace

Result<Journal> Helper::bootstrap(const BootstrapRequest& request) {
    auto& d = *impl_;
    const auto& layout = d.layout;
    if (request.repository.empty()) return fail(Errc::Invalid, "bootstrap: --repo is required");
    if (request.role.empty()) return fail(Errc::Invalid, "bootstrap: --role is required");
    if (!request.allow_unsigned && request.trusted_keys.empty())
        return fail(
            Errc::Invalid,
            "bootstrap: give --trusted-key FILE to verify the release, or --allow-unsigned");
    HOIST_TRY(d.openStore());
    HOIST_ASSIGN(auto cur, d.gens->current());
    std::error_code ec;
    if (cur && fs::exists(layout.nodeJson(), ec))
        return fail(Errc::Conflict, "node root ", layout.root.string(), " already runs generation ",
                    *cur, "; bootstrap needs an empty root (use swap, or recover)");

    // The node's configuration; the trusted keys are copied under <root>/keys/.
    pkgmgr::NodeConfig config;
    config.id = request.id.empty() ? hostName() : request.id;
    config.role = request.role;
    config.repository = request.repository;
    config.coordinator = request.coordinator;
    config.listen = request.listen;
    config.service_manager = request.service_manager;
    config.systemd_unit = request.systemd_unit;
    config.allow_unsigned = request.allow_unsigned;
    config.release = request.release;
    std::vector<std::string> pems;
    int key_index = 0;
    for (const auto& key : request.trusted_keys) {
        HOIST_ASSIGN(auto pem, files::readFile(key, 1u << 16));
        pems.push_back(pem);
        config.trusted_keys.push_back("keys/release-" + std::to_string(key_index++) + ".pub");
    }
    std::string coordinator_token;
    if (!request.coordinator_token_file.empty()) {
        HOIST_ASSIGN(coordinator_token,
                     files::readSecretFile(request.coordinator_token_file,
                                           "bootstrap: the coordinator token file"));
        config.coordinator_token_file = "coordinator.token";
    }
    d.config = config;
    HOIST_TRY(d.useConfig());

    // From here on the node is being changed: one transaction, under the node lock.
    HOIST_TRY(d.lockNode());
    d.gens->setCallerHoldsLock(true);
    log::info(kComponent, "bootstrapping",
              {{"repository", request.repository},
               {"release", request.release},
               {"role", request.role},
               {"id", config.id}});
    http::Client client;
    HOIST_ASSIGN(auto fetched, pkgmgr::fetchRelease(client, request.repository, request.release,
                                                    pems, request.allow_unsigned));
    HOIST_ASSIGN(auto refs, fetched.release.packagesFor(request.role));
    std::vector<std::string> shas;
    for (const auto& ref : refs) shas.push_back(ref.sha256);
    pkgmgr::FetchOptions fetch_options;
    fetch_options.parallel = std::max(1, request.parallel);
    HOIST_TRY(pkgmgr::fetchPackages(*d.store, request.repository, shas, fetch_options));

    HOIST_TRY(files::makeDirs(layout.keys()));
    for (size_t i = 0; i < pems.size(); ++i)
        HOIST_TRY(files::writeFileAtomic(layout.root / config.trusted_keys[i], pems[i]));
    auto token_path = layout.root / config.token_file;
    if (!fs::exists(token_path, ec))
        HOIST_TRY(files::writeFileAtomic(token_path, crypto::randomHex(32) + "\n", 0600));
    if (!coordinator_token.empty())
        HOIST_TRY(files::writeFileAtomic(layout.root / config.coordinator_token_file,
                                         coordinator_token + "\n", 0600));
    HOIST_TRY(pkgmgr::saveRelease(layout, fetched));
    // node.json goes first so that `recover` can finish an interrupted bootstrap.
    HOIST_TRY(config.save(layout));

    // Not registered yet: the pings are delivered by `pkgmgr serve`, which registers first.
    d.deliver_pings = false;
    Journal j;
    j.operation = "op-" + crypto::randomHex(8);
    j.kind = "bootstrap";
    j.report_to = config.coordinator;
    j.release = request.release;
    HOIST_TRY(d.step(j, "bootstrapping"));
    auto done = [&]() -> Result<Journal> {
        HOIST_ASSIGN(auto gen, d.gens->stage(fetched.release, *d.rules));
        j.to_generation = gen.number;
        HOIST_TRY(d.gens->activate(gen.number));
        crashPoint("helper.swapped");
        return d.forward(j);
    }();
    if (!done) {
        // Staging or activation refused the set: record it, the journal must not stay open.
        auto failed = d.finish(j, "failed", done.error().describe());
        d.stopCourier();
        if (!failed) return std::unexpected(failed.error());
        return std::unexpected(done.error());
    }
    d.stopCourier();
    return done;
}

}  // namespace hoist::restart_helper
