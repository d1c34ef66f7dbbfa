// Running the daemons as services: config files, the refusal to start without tokens,
// TLS and mutual TLS between the coordinator and nodes (certificates made by openssl at test
// time), and SIGHUP reloading token files and certificates without dropping the server.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

#include "core/http_client.hpp"
#include "testing.hpp"

namespace hoist {
namespace {

namespace fs = std::filesystem;
using testing::ServerProcess;

// A test CA and certificates it signs, made with the openssl command.
class TestCa {
public:
    TestCa(const fs::path& dir, const std::string& name) : dir_(dir / name) {
        fs::create_directories(dir_);
        openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-days", "2", "-subj", "/CN=" + name, "-keyout", key(name), "-out",
                 cert(name)});
    }
    std::string ca() const { return cert(name()); }
    /// A certificate for 127.0.0.1 (server) or a client, signed by this CA.
    void issue(const std::string& who, bool server) const {
        openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-subj", "/CN=" + who, "-keyout", key(who), "-out",
                 (dir_ / (who + ".csr")).string()});
        auto ext = dir_ / (who + ".ext");
        std::ofstream(ext) << (server ? "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
                                      : "extendedKeyUsage=clientAuth\n");
        openssl({"x509", "-req", "-in", (dir_ / (who + ".csr")).string(), "-CA", ca(), "-CAkey",
                 key(name()), "-CAcreateserial", "-days", "2", "-extfile", ext.string(), "-out",
                 cert(who)});
    }
    std::string cert(const std::string& who) const { return (dir_ / (who + ".pem")).string(); }
    std::string key(const std::string& who) const { return (dir_ / (who + ".key")).string(); }

private:
    std::string name() const { return dir_.filename().string(); }
    static void openssl(std::vector<std::string> args) {
        args.insert(args.begin(), "openssl");
        auto o = testing::run(args);
        ASSERT_EQ(o.exit_code, 0) << o.err;
    }
    fs::path dir_;
};

class Service : public ::testing::Test {
protected:
    void SetUp() override {
        if (testing::run({"openssl", "version"}).exit_code != 0) GTEST_SKIP() << "no openssl";
        testing::writeFile(dir_ / "admin.token", "admin-secret\n");
        testing::writeFile(dir_ / "halt.token", "halt-secret\n");
        testing::writeFile(dir_ / "node.token", "node-secret\n");
    }

    std::vector<std::string> coordinatorArgs() const {
        return {COORDINATOR_BIN,
                "--state",
                (dir_ / "state.db").string(),
                "--listen",
                "127.0.0.1:0",
                "--port-file",
                (dir_ / "coord.port").string(),
                "--allow-unsigned",
                "--admin-token-file",
                (dir_ / "admin.token").string(),
                "--halt-token-file",
                (dir_ / "halt.token").string(),
                "--node-token-file",
                (dir_ / "node.token").string()};
    }
    std::unique_ptr<ServerProcess> start(std::vector<std::string> args) {
        return std::make_unique<ServerProcess>(args, dir_ / "coord.port", dir_ / "coord.log");
    }

    Result<http::Response> call(const std::string& url, const std::string& token,
                                http::Request request = {}) {
        request.url = url;
        request.timeout = std::chrono::seconds(10);
        if (!token.empty()) request.headers.push_back(http::bearer(token));
        return client_.send(request);
    }
    static std::string registration(const std::string& id) {
        return R"({"id":")" + id +
               R"(","role":"agent","address":"https://127.0.0.1:1","mode":"pull"})";
    }

    testing::TempFolder dir_;
    http::Client client_;
};

TEST_F(Service, TheCoordinatorRefusesToStartWithoutItsTokensUnlessToldAloud) {
    auto args = coordinatorArgs();
    args.resize(args.size() - 4);  // no halt or node token
    auto refused = testing::run(args);
    EXPECT_EQ(refused.exit_code, exitCode(Errc::Invalid)) << refused.err;
    EXPECT_NE(refused.err.find("--node-token-file, --halt-token-file"), std::string::npos)
        << refused.err;
    EXPECT_NE(refused.err.find("--insecure-no-auth"), std::string::npos) << refused.err;
    EXPECT_FALSE(fs::exists(dir_ / "coord.port"));

    args.push_back("--insecure-no-auth");
    auto open = start(args);
    ASSERT_TRUE(open->started());
    EXPECT_NE(testing::readFile(dir_ / "coord.log").find("INSECURE"), std::string::npos);
    auto metrics = call(open->url() + "/metrics", "");
    ASSERT_OK(metrics);
    EXPECT_NE(metrics->body.find("hoist_insecure_no_auth{component=\"deploy-coordinator\","
                                 "missing=\"node-token-file,halt-token-file\"} 1"),
              std::string::npos)
        << metrics->body;
}

TEST_F(Service, TheCoordinatorWithoutAStateFileNeverWritesTheWorkingFolder) {
    if (fs::exists("/var/lib/hoist/coordinator"))
        GTEST_SKIP() << "/var/lib/hoist/coordinator exists on this machine";
    auto args = coordinatorArgs();
    args.erase(args.begin() + 1, args.begin() + 3);  // no --state
    auto refused = testing::run(args);
    EXPECT_EQ(refused.exit_code, exitCode(Errc::NotFound)) << refused.err;
    EXPECT_NE(refused.err.find("/var/lib/hoist/coordinator does not exist"), std::string::npos)
        << refused.err;
    EXPECT_FALSE(fs::exists("coordinator.db"));
}

TEST_F(Service, TheCoordinatorRunsFromItsConfigFileAndRefusesAnUnknownKey) {
    auto config = dir_ / "coordinator.toml";
    testing::writeFile(config,
                       "state = \"" + (dir_ / "state.db").string() + "\"\n" +
                           "listen = \"127.0.0.1:0\"\n" + "admin-token-file = \"" +
                           (dir_ / "admin.token").string() + "\"\n" + "halt-token-file = \"" +
                           (dir_ / "halt.token").string() + "\"\n" + "node-token-file = \"" +
                           (dir_ / "node.token").string() + "\"\n" + "allow-unsigned = true\n");
    auto coordinator = start({COORDINATOR_BIN, "--config", config.string(), "--port-file",
                              (dir_ / "coord.port").string()});
    ASSERT_TRUE(coordinator->started());
    auto nodes = call(coordinator->url() + "/v1/nodes", "admin-secret");
    ASSERT_OK(nodes);
    EXPECT_EQ(nodes->status, 200);
    coordinator->stop();

    std::ofstream(config, std::ios::app) << "node_token_file = \"x\"\n";
    auto refused = testing::run({COORDINATOR_BIN, "--config", config.string()});
    EXPECT_EQ(refused.exit_code, exitCode(Errc::Invalid));
    EXPECT_NE(refused.err.find("config file " + config.string() +
                               ":7: key 'node_token_file' is unknown: did you mean "
                               "'node-token-file'?"),
              std::string::npos)
        << refused.err;
}

TEST_F(Service, ACoordinatorWithMutualTlsRefusesANodeWithoutAClientCertificate) {
    TestCa ca(dir_.path(), "fleet-ca");
    ca.issue("coordinator", true);
    ca.issue("agent-1", false);
    TestCa rogue(dir_.path(), "rogue-ca");
    rogue.issue("thief", false);
    auto args = coordinatorArgs();
    args.insert(args.end(), {"--tls-cert", ca.cert("coordinator"), "--tls-key",
                             ca.key("coordinator"), "--node-client-ca", ca.ca()});
    auto coordinator = start(args);
    ASSERT_TRUE(coordinator->started());
    auto https = "https://127.0.0.1:" + std::to_string(coordinator->port());

    http::Request post;
    post.method = "POST";
    post.body = registration("agent-1");
    post.headers = {{"Content-Type", "application/json"}};

    // Servers are verified by default: the system's CAs do not know the test CA.
    auto unverified = call(https + "/v1/nodes/register", "node-secret", post);
    ASSERT_FALSE(unverified.has_value());
    // Plain HTTP to the TLS port gets no answer a client could take for one.
    auto plain = call(coordinator->url() + "/healthz", "");
    EXPECT_TRUE(!plain.has_value() || plain->status >= 400);

    post.ca_file = ca.ca();
    // The node token alone is not enough.
    auto no_cert = call(https + "/v1/nodes/register", "node-secret", post);
    ASSERT_OK(no_cert);
    EXPECT_EQ(no_cert->status, 401);
    EXPECT_NE(no_cert->body.find("client certificate"), std::string::npos) << no_cert->body;
    // A certificate from another CA fails the handshake.
    auto stolen = post;
    stolen.client_cert = rogue.cert("thief");
    stolen.client_key = rogue.key("thief");
    EXPECT_FALSE(call(https + "/v1/nodes/register", "node-secret", stolen).has_value());
    // A certificate without the token is not enough either.
    auto cert_only = post;
    cert_only.client_cert = ca.cert("agent-1");
    cert_only.client_key = ca.key("agent-1");
    auto tokenless = call(https + "/v1/nodes/register", "", cert_only);
    ASSERT_OK(tokenless);
    EXPECT_EQ(tokenless->status, 401);
    // Both: registered.
    auto registered = call(https + "/v1/nodes/register", "node-secret", cert_only);
    ASSERT_OK(registered);
    EXPECT_EQ(registered->status, 200) << registered->body;
    // Admin routes need no client certificate.
    http::Request admin;
    admin.ca_file = ca.ca();
    auto nodes = call(https + "/v1/nodes", "admin-secret", admin);
    ASSERT_OK(nodes);
    EXPECT_EQ(nodes->status, 200);
    EXPECT_NE(nodes->body.find("agent-1"), std::string::npos);
}

TEST_F(Service, ANodeServingTlsRefusesAPlainHttpCoordinatorAndCallersWithoutACertificate) {
    TestCa ca(dir_.path(), "fleet-ca");
    ca.issue("node", true);
    ca.issue("coordinator", false);
    auto root = dir_ / "node";
    testing::writeFile(root / "node.token", "node-secret\n", fs::perms(0600));
    auto node_json = [&](const std::string& coordinator) {
        testing::writeFile(root / "node.json",
                           R"({"id":"agent-1","role":"agent","listen":"127.0.0.1:0",)"
                           R"("coordinator":")" +
                               coordinator + R"(","token_file":"node.token"})");
    };
    std::vector<std::string> serve = {
        PKGMGR_BIN,      "--root",       root.string(),
        "serve",         "--port-file",  (dir_ / "node.port").string(),
        "--no-register", "--tls-cert",   ca.cert("node"),
        "--tls-key",     ca.key("node"), "--tls-client-ca",
        ca.ca()};
    node_json("http://127.0.0.1:9");
    auto refused = testing::run(serve);
    EXPECT_EQ(refused.exit_code, exitCode(Errc::Invalid));
    EXPECT_NE(refused.err.find("is plain HTTP"), std::string::npos) << refused.err;

    node_json("https://127.0.0.1:9");
    ServerProcess node(serve, dir_ / "node.port", dir_ / "node.log");
    ASSERT_TRUE(node.started());
    auto https = "https://127.0.0.1:" + std::to_string(node.port()) + "/v1/node";
    http::Request request;
    request.ca_file = ca.ca();
    // Mutual TLS required: no certificate, no handshake.
    EXPECT_FALSE(call(https, "node-secret", request).has_value());
    EXPECT_FALSE(call(node.url() + "/v1/node", "node-secret").has_value() &&
                 call(node.url() + "/v1/node", "node-secret")->status == 200);
    request.client_cert = ca.cert("coordinator");
    request.client_key = ca.key("coordinator");
    auto answered = call(https, "node-secret", request);
    ASSERT_OK(answered);
    EXPECT_EQ(answered->status, 200) << answered->body;
}

TEST_F(Service, SighupReloadsTokensAndCertificatesOnTheSameSocket) {
    TestCa first(dir_.path(), "first-ca");
    first.issue("coordinator", true);
    auto cert = dir_ / "tls.pem";
    auto key = dir_ / "tls.key";
    fs::copy_file(first.cert("coordinator"), cert);
    fs::copy_file(first.key("coordinator"), key);
    auto args = coordinatorArgs();
    args.insert(args.end(), {"--tls-cert", cert.string(), "--tls-key", key.string()});
    auto coordinator = start(args);
    ASSERT_TRUE(coordinator->started());
    auto url = "https://127.0.0.1:" + std::to_string(coordinator->port()) + "/v1/nodes";
    http::Request trusting_first;
    trusting_first.ca_file = first.ca();
    auto before = call(url, "admin-secret", trusting_first);
    ASSERT_OK(before);
    EXPECT_EQ(before->status, 200);

    // Rotate the admin token and the certificate (now from another CA), then SIGHUP.
    TestCa second(dir_.path(), "second-ca");
    second.issue("coordinator", true);
    testing::writeFile(dir_ / "admin.token", "admin-rotated\n");
    fs::copy_file(second.cert("coordinator"), cert, fs::copy_options::overwrite_existing);
    fs::copy_file(second.key("coordinator"), key, fs::copy_options::overwrite_existing);
    // Kept open across the reload: the server is not restarted.
    http::Client kept;
    http::Request keep = trusting_first;
    keep.url = url;
    keep.headers = {http::bearer("admin-secret")};
    ASSERT_OK(kept.send(keep));
    coordinator->kill(SIGHUP);

    http::Request trusting_second;
    trusting_second.ca_file = second.ca();
    ASSERT_TRUE(testing::waitFor(
        [&] {
            http::Client fresh;
            auto request = trusting_second;
            request.url = url;
            request.headers = {http::bearer("admin-rotated")};
            auto r = fresh.send(request);
            return r && r->status == 200;
        },
        std::chrono::seconds(10)))
        << testing::readFile(dir_ / "coord.log");
    auto old_token = call(url, "admin-secret", trusting_second);
    ASSERT_OK(old_token);
    EXPECT_EQ(old_token->status, 401);
    // New connections no longer get the old certificate.
    http::Client fresh;
    trusting_first.url = url;
    EXPECT_FALSE(fresh.send(trusting_first).has_value());
    // Same process, same port; the connection opened before the reload still answers.
    EXPECT_EQ(testing::readFile(dir_ / "coord.port"), std::to_string(coordinator->port()) + "\n");
    EXPECT_TRUE(coordinator->child().running());
    auto on_kept = kept.send(keep);
    ASSERT_OK(on_kept);
    EXPECT_EQ(on_kept->status, 401);  // the old token, on the old connection: refused now
    EXPECT_NE(testing::readFile(dir_ / "coord.log").find("reloaded"), std::string::npos);

    // A broken file on reload keeps what works and says so.
    testing::writeFile(dir_ / "admin.token", "\n");
    coordinator->kill(SIGHUP);
    ASSERT_TRUE(testing::waitFor(
        [&] {
            return testing::readFile(dir_ / "coord.log").find("kept the old token") !=
                   std::string::npos;
        },
        std::chrono::seconds(10)));
    auto still = call(url, "admin-rotated", trusting_second);
    ASSERT_OK(still);
    EXPECT_EQ(still->status, 200);
}

// systemd's side of sd_notify: a datagram socket named by $NOTIFY_SOCKET.
class NotifySocket {
public:
    explicit NotifySocket(const fs::path& path) : path_(path) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
        bound_ = ::bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
    }
    ~NotifySocket() { ::close(fd_); }
    bool bound() const { return bound_; }
    /// The messages received until one holds `needle` (or `timeout` passes), joined.
    std::string waitFor(const std::string& needle, std::chrono::milliseconds timeout) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (received_.find(needle) == std::string::npos &&
               std::chrono::steady_clock::now() < deadline) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 100) <= 0) continue;
            char buffer[4096];
            auto n = ::recv(fd_, buffer, sizeof buffer, 0);
            if (n > 0) received_.append(buffer, static_cast<std::size_t>(n)).append("\n");
        }
        return received_;
    }

private:
    fs::path path_;
    int fd_ = -1;
    bool bound_ = false;
    std::string received_;
};

TEST_F(Service, DaemonsTellSystemdWhenReadyReloadingAndStopping) {
    // A short path: sun_path holds 108 bytes.
    testing::TempFolder short_dir;
    NotifySocket systemd(short_dir / "notify");
    ASSERT_TRUE(systemd.bound());
    ServerProcess coordinator(coordinatorArgs(), dir_ / "coord.port", dir_ / "coord.log",
                              {{"NOTIFY_SOCKET", (short_dir / "notify").string()}});
    ASSERT_TRUE(coordinator.started());
    auto seen = systemd.waitFor("READY=1", std::chrono::seconds(10));
    EXPECT_NE(
        seen.find("READY=1\nSTATUS=listening on 127.0.0.1:" + std::to_string(coordinator.port())),
        std::string::npos)
        << seen;
    coordinator.kill(SIGHUP);
    seen = systemd.waitFor("STATUS=reloaded", std::chrono::seconds(10));
    EXPECT_NE(seen.find("RELOADING=1"), std::string::npos) << seen;
    EXPECT_NE(seen.find("STATUS=reloaded"), std::string::npos) << seen;
    coordinator.kill(SIGTERM);
    seen = systemd.waitFor("STOPPING=1", std::chrono::seconds(10));
    EXPECT_NE(seen.find("STOPPING=1"), std::string::npos) << seen;
}

TEST_F(Service, SighupReloadsTheNodeTokenOfPkgmgrServe) {
    auto root = dir_ / "node";
    testing::writeFile(root / "node.token", "node-secret\n", fs::perms(0600));
    testing::writeFile(
        root / "node.json",
        R"({"id":"agent-1","role":"agent","listen":"127.0.0.1:0","token_file":"node.token"})");
    auto config = dir_ / "node.toml";
    testing::writeFile(config, "root = \"" + root.string() + "\"\nno-register = true\n");
    ServerProcess node({PKGMGR_BIN, "serve", "--config", config.string(), "--port-file",
                        (dir_ / "node.port").string()},
                       dir_ / "node.port", dir_ / "node.log");
    ASSERT_TRUE(node.started());
    auto missing = node.url() + "/v1/packages/" + std::string(64, 'a');
    http::Request del;
    del.method = "DELETE";
    auto before = call(missing, "node-secret", del);
    ASSERT_OK(before);
    EXPECT_NE(before->status, 401) << before->body;

    testing::writeFile(root / "node.token", "node-rotated\n", fs::perms(0600));
    node.kill(SIGHUP);
    ASSERT_TRUE(testing::waitFor(
        [&] {
            auto r = call(missing, "node-rotated", del);
            return r && r->status != 401;
        },
        std::chrono::seconds(10)))
        << testing::readFile(dir_ / "node.log");
    auto old_token = call(missing, "node-secret", del);
    ASSERT_OK(old_token);
    EXPECT_EQ(old_token->status, 401);
    EXPECT_TRUE(node.child().running());
}

TEST_F(Service, RepoServerAndProvisionerRunFromConfigFilesAndReloadTheirTokens) {
    TestCa ca(dir_.path(), "fleet-ca");
    ca.issue("repo", true);
    ca.issue("publisher", false);
    testing::writeFile(dir_ / "upload.token", "upload-secret\n");
    auto repo_config = dir_ / "repo-server.toml";
    testing::writeFile(repo_config,
                       "root = \"" + (dir_ / "repo").string() + "\"\nlisten = \"127.0.0.1:0\"\n" +
                           "token-file = \"" + (dir_ / "upload.token").string() + "\"\n" +
                           "tls-cert = \"" + ca.cert("repo") + "\"\ntls-key = \"" + ca.key("repo") +
                           "\"\ntls-client-ca = \"" + ca.ca() + "\"\n");
    ServerProcess repo({REPO_SERVER_BIN, "--config", repo_config.string(), "--port-file",
                        (dir_ / "repo.port").string()},
                       dir_ / "repo.port", dir_ / "repo.log");
    ASSERT_TRUE(repo.started());
    auto url = "https://127.0.0.1:" + std::to_string(repo.port()) + "/releases/9.9.9.json";
    http::Request put;
    put.method = "PUT";
    put.body = "{}";
    put.ca_file = ca.ca();
    // Mutual TLS: no certificate, no handshake.
    EXPECT_FALSE(call(url, "upload-secret", put).has_value());
    put.client_cert = ca.cert("publisher");
    put.client_key = ca.key("publisher");
    auto with_cert = call(url, "wrong", put);
    ASSERT_OK(with_cert);
    EXPECT_EQ(with_cert->status, 401);
    testing::writeFile(dir_ / "upload.token", "upload-rotated\n");
    repo.kill(SIGHUP);
    ASSERT_TRUE(testing::waitFor(
        [&] {
            auto r = call(url, "upload-rotated", put);
            return r && r->status != 401;
        },
        std::chrono::seconds(10)))
        << testing::readFile(dir_ / "repo.log");
    auto old_token = call(url, "upload-secret", put);
    ASSERT_OK(old_token);
    EXPECT_EQ(old_token->status, 401);

    // The provisioner's required options may come from its file.
    testing::writeFile(dir_ / "provisioner.token", "prov-secret\n");
    auto prov_config = dir_ / "provisioner.toml";
    std::string settings = "state = \"" + (dir_ / "prov.db").string() + "\"\n" +
                           "listen = \"127.0.0.1:0\"\n" + "token-file = \"" +
                           (dir_ / "provisioner.token").string() + "\"\n" +
                           "repo-url = \"http://127.0.0.1:9\"\n" +
                           "coordinator-url = \"http://127.0.0.1:9\"\nallow-unsigned = true\n" +
                           "nodes-dir = \"" + (dir_ / "nodes").string() + "\"\n" + "pkgmgr = \"" +
                           PKGMGR_BIN + "\"\nrestart-helper = \"" + PKGMGR_BIN + "\"\n";
    testing::writeFile(prov_config, settings);
    auto refused = testing::run({PROVISIONER_BIN, "serve", "--config", prov_config.string()});
    EXPECT_EQ(refused.exit_code, exitCode(Errc::Invalid));
    EXPECT_NE(refused.err.find("--backend is required"), std::string::npos) << refused.err;
    testing::writeFile(prov_config, settings + "backend = \"local\"\n");
    ServerProcess provisioner({PROVISIONER_BIN, "serve", "--config", prov_config.string(),
                               "--port-file", (dir_ / "prov.port").string()},
                              dir_ / "prov.port", dir_ / "prov.log");
    ASSERT_TRUE(provisioner.started());
    http::Request add;
    add.method = "POST";
    add.body = "{}";
    auto nodes = provisioner.url() + "/v1/nodes";
    auto before = call(nodes, "wrong", add);
    ASSERT_OK(before);
    EXPECT_EQ(before->status, 401);
    testing::writeFile(dir_ / "provisioner.token", "prov-rotated\n");
    provisioner.kill(SIGHUP);
    ASSERT_TRUE(testing::waitFor(
        [&] {
            auto r = call(nodes, "prov-rotated", add);
            return r && r->status != 401;
        },
        std::chrono::seconds(10)))
        << testing::readFile(dir_ / "prov.log");
    auto stale = call(nodes, "prov-secret", add);
    ASSERT_OK(stale);
    EXPECT_EQ(stale->status, 401);
}

}  // namespace
}  // namespace hoist
