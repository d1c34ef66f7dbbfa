#include <unistd.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <map>
#include <thread>

#include "core/files.hpp"
#include "core/http_client.hpp"
#include "core/log.hpp"
#include "core/process.hpp"
#include "pkgmgr/layout.hpp"
#include "pkgmgr/node_config.hpp"
#include "pkgmgr/service.hpp"
#include "provisioner/backend.hpp"

namespace hoist::provisioner {

namespace {

constexpr std::string_view kComponent = "provisioner";

std::string lastLine(const std::filesystem::path& file) {
    std::ifstream in(file);
    std::string line;
    std::string last;
    while (std::getline(in, line))
        if (!line.empty()) last = line;
    return last;
}

int readPort(const std::filesystem::path& file) {
    std::ifstream in(file);
    int port = 0;
    if (in >> port && port > 0 && port < 65536) return port;
    return 0;
}

class LocalBackend final : public Backend {
public:
    LocalBackend(LocalSettings local, BootstrapSettings bootstrap)
        : local_(std::move(local)), bootstrap_(std::move(bootstrap)) {}

    ~LocalBackend() override = default;

    std::string name() const override { return "local"; }

    Result<std::vector<NodeRecord>> launch(const LaunchSpec& spec) override {
        HOIST_TRY(files::makeDirs(local_.nodes_dir));
        // Node ids come from the client token, so a repeated launch finds the same nodes.
        std::string tag = spec.client_token.substr(spec.client_token.size() >= 14 ? 6 : 0, 8);
        std::vector<NodeRecord> out;
        for (int i = 1; i <= spec.count; ++i) {
            NodeRecord node;
            node.id = spec.role + "-" + tag + "-" + std::to_string(i);
            auto running = children_.find(node.id);
            if (running != children_.end() && running->second.running()) {
                node.pid = running->second.pid();
                node.state = "pending";
                out.push_back(std::move(node));
                continue;
            }
            // A root left by a launch that was cut short starts again from empty.
            HOIST_TRY(files::removeTree(rootOf(node.id)));
            std::error_code ec;
            std::filesystem::remove(portFileOf(node.id), ec);
            std::vector<std::string> argv = {local_.provisioner.string(),
                                             "local-boot",
                                             "--restart-helper",
                                             local_.restart_helper.string(),
                                             "--pkgmgr",
                                             local_.pkgmgr.string(),
                                             "--root",
                                             rootOf(node.id).string(),
                                             "--repo",
                                             bootstrap_.repo_url,
                                             "--release",
                                             spec.release,
                                             "--role",
                                             spec.role,
                                             "--coordinator",
                                             bootstrap_.coordinator_url,
                                             "--id",
                                             node.id,
                                             "--port-file",
                                             portFileOf(node.id).string()};
            if (!local_.serve_token_file.empty()) {
                argv.push_back("--serve-token-file");
                argv.push_back(local_.serve_token_file.string());
            }
            if (!local_.coordinator_token_file.empty()) {
                argv.push_back("--coordinator-token-file");
                argv.push_back(local_.coordinator_token_file.string());
            }
            for (const auto& key : local_.trusted_keys) {
                argv.push_back("--trusted-key");
                argv.push_back(key.string());
            }
            if (local_.allow_unsigned) argv.push_back("--allow-unsigned");
            process::Options options;
            options.stdout_file = logOf(node.id);
            options.stderr_file = logOf(node.id);
            options.new_session = true;
            auto child = process::Child::start(argv, options);
            if (!child)
                return std::unexpected(withContext(child.error(), "starting node " + node.id));
            node.pid = child->pid();
            node.state = "pending";
            node.message = "booting; log " + logOf(node.id).string();
            log::info(kComponent, "local node booting",
                      {{"node", node.id}, {"pid", static_cast<std::int64_t>(node.pid)}});
            children_.insert_or_assign(node.id, std::move(*child));
            out.push_back(std::move(node));
        }
        return out;
    }

    Result<void> refresh(std::vector<NodeRecord>& nodes) override {
        for (auto& node : nodes) {
            if (node.state == "terminated" || node.state == "failed") continue;
            if (!bootAlive(node)) {
                node.state = "failed";
                node.message = "boot process exited: " + lastLine(logOf(node.id)) + " (log " +
                               logOf(node.id).string() + ")";
                continue;
            }
            int port = readPort(portFileOf(node.id));
            if (port == 0) continue;
            std::string address = "127.0.0.1:" + std::to_string(port);
            http::Request probe;
            probe.url = "http://" + address + "/healthz";
            probe.connect_timeout = std::chrono::milliseconds(500);
            probe.timeout = std::chrono::milliseconds(1000);
            auto reply = http_.send(probe);
            if (reply && reply->ok()) {
                node.state = "running";
                node.address = address;
                node.message.clear();
            }
        }
        return ok();
    }

    Result<void> terminate(NodeRecord& node) override {
        stopBoot(node);
        // The node's service runs in a session of its own (the restart helper started it);
        // the node's own service manager knows its pidfile and stops it.
        if (auto stopped = stopService(node.id); !stopped)
            log::warn(kComponent, "cannot stop the node's service",
                      {{"node", node.id}, {"error", stopped.error().message}});
        HOIST_TRY(files::removeTree(rootOf(node.id)));
        std::error_code ec;
        std::filesystem::remove(portFileOf(node.id), ec);
        node.state = "terminated";
        node.address.clear();
        node.message = "decommissioned; log " + logOf(node.id).string();
        return ok();
    }

private:
    std::filesystem::path rootOf(const std::string& id) const { return local_.nodes_dir / id; }
    std::filesystem::path portFileOf(const std::string& id) const {
        return local_.nodes_dir / (id + ".port");
    }
    std::filesystem::path logOf(const std::string& id) const {
        return local_.nodes_dir / (id + ".log");
    }

    Result<void> stopService(const std::string& id) {
        auto layout = pkgmgr::NodeLayout::at(rootOf(id));
        if (!std::filesystem::exists(layout.nodeJson())) return ok();  // never bootstrapped
        HOIST_ASSIGN(auto config, pkgmgr::NodeConfig::load(layout));
        HOIST_ASSIGN(auto manager, pkgmgr::makeServiceManager(layout, config));
        return manager->stop(local_.stop_grace);
    }

    bool bootAlive(const NodeRecord& node) {
        auto it = children_.find(node.id);
        if (it != children_.end()) return it->second.running();
        // Started by an earlier provisioner process: not our child, but still its session.
        return node.pid > 0 && process::alive(static_cast<pid_t>(node.pid));
    }

    void stopBoot(const NodeRecord& node) {
        auto it = children_.find(node.id);
        if (it != children_.end()) {
            it->second.terminate(local_.stop_grace);
            children_.erase(it);
            return;
        }
        if (node.pid <= 0 || !process::alive(static_cast<pid_t>(node.pid))) return;
        auto pid = static_cast<pid_t>(node.pid);
        ::kill(-pid, SIGTERM);
        auto deadline = std::chrono::steady_clock::now() + local_.stop_grace;
        while (process::alive(pid) && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (process::alive(pid)) ::kill(-pid, SIGKILL);
    }

    LocalSettings local_;
    BootstrapSettings bootstrap_;
    std::map<std::string, process::Child> children_;
    http::Client http_;
};

}  // namespace

int localBoot(const LocalBootArgs& a, std::ostream& err) {
    std::vector<std::string> bootstrap = {a.restart_helper, "--root", a.root,      "bootstrap",
                                          "--repo",         a.repo,   "--release", a.release,
                                          "--role",         a.role,   "--id",      a.id};
    if (!a.coordinator.empty()) {
        bootstrap.push_back("--coordinator");
        bootstrap.push_back(a.coordinator);
    }
    for (const auto& key : a.trusted_keys) {
        bootstrap.push_back("--trusted-key");
        bootstrap.push_back(key);
    }
    if (a.allow_unsigned) bootstrap.push_back("--allow-unsigned");
    if (!a.coordinator_token_file.empty()) {
        bootstrap.push_back("--coordinator-token-file");
        bootstrap.push_back(a.coordinator_token_file);
    }
    log::info(kComponent, "local boot: bootstrapping", {{"node", a.id}, {"release", a.release}});
    process::Options options;
    options.new_session = false;
    options.timeout = std::chrono::minutes(10);
    auto outcome = process::run(bootstrap, options);
    if (!outcome) {
        err << "provisioner local-boot: " << outcome.error().describe() << "\n";
        return exitCode(outcome.error().code);
    }
    err << outcome->out << outcome->err;
    if (outcome->exit_code != 0) {
        err << "provisioner local-boot: restart-helper bootstrap of " << a.id << " exited with "
            << outcome->exit_code << "\n";
        return outcome->exit_code > 0 ? outcome->exit_code : exitCode(Errc::Internal);
    }
    std::vector<std::string> serve = {a.pkgmgr,        "--root",    a.root,
                                      "serve",         "--listen",  "127.0.0.1:0",
                                      "--port-file",   a.port_file, "--restart-helper",
                                      a.restart_helper};
    if (!a.serve_token_file.empty()) {
        serve.push_back("--token-file");
        serve.push_back(a.serve_token_file);
    }
    log::info(kComponent, "local boot: starting pkgmgr serve", {{"node", a.id}});
    err.flush();
    std::vector<char*> argv;
    for (auto& arg : serve) argv.push_back(arg.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    int saved = errno;
    err << "provisioner local-boot: cannot run " << a.pkgmgr << ": " << std::strerror(saved)
        << "\n";
    return exitCode(Errc::NotFound);
}

std::unique_ptr<Backend> makeLocalBackend(LocalSettings local, BootstrapSettings bootstrap) {
    return std::make_unique<LocalBackend>(std::move(local), std::move(bootstrap));
}

}  // namespace hoist::provisioner
