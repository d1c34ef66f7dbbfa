// Registration with the coordinator before any ping, and the reaper of launched helpers.
#include "node_server_impl.hpp"

namespace hoist::pkgmgr {

std::string NodeServer::Impl::address() const {
    if (!options.advertise_url.empty()) return options.advertise_url;
    std::string h = host;
    if (h == "0.0.0.0" || h.empty()) {
        char buf[256] = {};
        h = ::gethostname(buf, sizeof buf - 1) == 0 ? std::string(buf) : "127.0.0.1";
    }
    return (options.tls_cert.empty() ? "http://" : "https://") + h + ":" + std::to_string(port);
}

// Registers with the coordinator (retrying with backoff until it answers) before any status
// ping or pull ask goes out: the coordinator refuses both from a node it does not know. When
// it later answers a ping that way (its state was lost), registers again. Also reaps the
// helpers we launched.
void NodeServer::Impl::backgroundLoop() {
    // Done: accepted, refused for good, or not wanted.
    bool registered = !options.register_node || config.coordinator.empty();
    bool accepted = false;
    int attempt = 0;
    http::RetryPolicy backoff{.attempts = 0,
                              .base = std::chrono::milliseconds(200),
                              .cap = std::chrono::milliseconds(10000)};
    http::Client client;
    while (true) {
        (void)helperRunning();
        auto wait = std::chrono::milliseconds(1000);
        if (accepted && courier->parked()) {
            log::info(kComponent, "the coordinator no longer knows this node; registering again",
                      {{"coordinator", config.coordinator}});
            registered = accepted = false;
            attempt = 0;
        }
        if (!registered) {
            std::optional<long> cur;
            if (auto gens = generations()) {
                if (auto c = gens->current()) cur = *c;
            }
            auto fresh = NodeConfig::load(layout);
            Registration registration;
            registration.id = config.id;
            registration.role = config.role;
            registration.address = address();
            registration.release = fresh ? fresh->release : config.release;
            registration.generation = cur.value_or(0);
            if (options.pull_interval.count() > 0) registration.mode = "pull";
            http::Request req;
            req.method = "POST";
            req.url = http::joinUrl(config.coordinator, "/v1/nodes/register");
            req.body = registration.toJson();
            req.headers.push_back({"Content-Type", "application/json"});
            auto coordinator_token = config.coordinatorToken(layout);
            if (coordinator_token && !coordinator_token->empty())
                req.headers.push_back(http::bearer(*coordinator_token));
            // The secret the coordinator binds this node id to at its first registration.
            auto secret = nodeSecret(layout, true);
            if (secret)
                req.headers.push_back({std::string(kNodeSecretHeader), *secret});
            else
                log::error(kComponent, "cannot read or create the node secret",
                           {{"error", secret.error().describe()}});
            req.timeout = std::chrono::seconds(5);
            auto response = client.send(req);
            if (response && response->ok()) {
                registered = accepted = true;
                courier->resume();
                log::info(kComponent, "registered with the coordinator",
                          {{"coordinator", config.coordinator}});
            } else if (response && !http::isTransient(response)) {
                registered = true;  // refused for good: retrying would not change the answer
                log::warn(kComponent, "the coordinator refused the registration",
                          {{"status", static_cast<std::int64_t>(response->status)},
                           {"body", response->body.substr(0, 200)}});
            } else {
                wait = backoffDelay(backoff, attempt++);
                log::debug(kComponent, "registration failed; retrying",
                           {{"error", response ? "HTTP " + std::to_string(response->status)
                                               : response.error().describe()}});
            }
        }
        std::unique_lock lock(bg_mutex);
        if (registered && !registration_done) {
            registration_done = true;
            courier->start();
            bg_wake.notify_all();
        }
        if (bg_wake.wait_for(lock, wait, [this] { return stopping; })) return;
    }
}

}  // namespace hoist::pkgmgr
