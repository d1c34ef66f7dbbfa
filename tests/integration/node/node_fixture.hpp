#pragma once

// A node root with the stand-in mesos packaged and staged, for the restart helper and
// `pkgmgr serve` integration tests.

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/http_client.hpp"
#include "core/http_server.hpp"
#include "pkgmgr/layout.hpp"
#include "pkgmgr/package.hpp"
#include "testing.hpp"

namespace hoist::testing {

/// How the stand-in behaves (its config package's etc/mesos/standin.json).
struct Behaviour {
    std::string health = "ok";
    bool crash_at_start = false;
    int start_delay_ms = 0;
    int unhealthy_after_ms = 0;
    bool ignore_sigterm = false;
    int errors_per_second = 0;
};

/// The health check the mesos package declares.
struct HealthSpec {
    int interval_ms = 20;
    int timeout_ms = 500;
    int healthy_after_ms = 300;
    int deadline_ms = 4000;
    int stop_timeout_ms = 2000;
};

/// A built package: its tarball and reference.
struct BuiltPackage {
    fs::path tarball;
    pkgmgr::PackageRef ref;
};

class NodeFixture : public ::testing::Test {
protected:
    void SetUp() override;
    void TearDown() override;

    /// mesos--<version> running the stand-in, reporting <version>.
    BuiltPackage mesosPackage(const std::string& version, const HealthSpec& health = {});
    /// mesos-config--<version> telling the stand-in how to behave.
    BuiltPackage configPackage(const std::string& version, const Behaviour& behaviour);
    /// Adds the packages to the node's store and stages them; returns the generation.
    long stage(const std::vector<BuiltPackage>& packages, const std::string& release = "");
    /// Stages mesos--<version> + mesos-config--<version> behaving so.
    long stageVersion(const std::string& version, const Behaviour& behaviour = {},
                      const HealthSpec& health = {});

    /// Copies the tarballs into the file repository (tmp/repo/packages/<sha256>).
    void publish(const std::vector<BuiltPackage>& packages);
    /// Writes tmp/repo/releases/<version>.json for role "agent" (and .sig, signed with the
    /// fixture's key unless `sign` is false); publishes the packages too.
    void publishRelease(const std::string& version, const std::vector<std::string>& upgrade_from,
                        const std::vector<BuiltPackage>& packages, bool sign = true);
    std::string repoUrl() const { return "file://" + (tmp_ / "repo").string(); }
    /// The public key releases are signed with (PEM file).
    fs::path publicKeyFile();
    /// Points node.json at the coordinator at `url`, with the token file coordinator.token
    /// (holding "coord-secret").
    void reportTo(const std::string& url);

    /// Runs restart-helper --root <root> <args...>.
    process::Outcome helper(const std::vector<std::string>& args,
                            const std::vector<std::pair<std::string, std::string>>& env = {});
    /// The version the running stand-in reports; nullopt when it does not answer.
    std::optional<std::string> runningVersion();
    /// GET /health of the running stand-in answers 200.
    bool serviceHealthy();
    /// The current generation (0: none).
    long currentGeneration();
    /// run/last-txn.json's "state" (empty when absent).
    std::string lastState();
    std::string lastMessage();
    std::string lastOperation();
    std::vector<std::string> lastSteps();
    /// Stops the service through its pidfile (what TearDown does).
    void stopService();
    /// The pid in run/service.pid (0 when none).
    pid_t servicePid();

    TempFolder tmp_;
    fs::path root_;
    pkgmgr::NodeLayout layout_;
    std::string token_ = "node-token-123";
    int package_counter_ = 0;
};

/// Stands in for the coordinator: records status pings and registrations; it can be stopped and
/// restarted on the same port (a coordinator that is unreachable). With refuseUnregistered()
/// it refuses a ping from a node it has no registration of, as the real one does.
class RecordingCoordinator {
public:
    explicit RecordingCoordinator(int port = 0);
    ~RecordingCoordinator();
    /// Stops listening (connections are refused until start()).
    void stop();
    /// Listens again on the same port.
    bool start();
    int port() const { return port_; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

    struct Record {
        std::string path;
        std::string body;
        std::string authorization;
        long status = 200;
    };
    /// Answers a ping from a node not registered (since the last forget()) with the real
    /// coordinator's 404.
    void refuseUnregistered();
    /// Answers the next `count` registrations 503.
    void failRegistrations(int count);
    /// Drops every registration (a coordinator that lost its state).
    void forget();
    std::vector<Record> records();
    std::vector<Record> pings();
    std::vector<Record> registrations();

private:
    int port_;
    std::unique_ptr<http::Server> server_;
    std::thread thread_;
    std::mutex mutex_;
    std::vector<Record> records_;
    bool refuse_unregistered_ = false;
    int failing_registrations_ = 0;
    std::set<std::string> registered_;
};

/// GET with a short timeout.
std::optional<http::Response> httpGet(const std::string& url,
                                      const std::vector<http::Header>& headers = {});
/// A request with a JSON body.
std::optional<http::Response> httpSend(const std::string& method, const std::string& url,
                                       const std::string& body, const std::string& token);

}  // namespace hoist::testing
