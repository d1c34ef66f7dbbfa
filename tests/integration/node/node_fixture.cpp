#include "node_fixture.hpp"

#include <fstream>
#include <thread>

#include "core/crypto.hpp"
#include "core/files.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"
#include "pkgmgr/generations.hpp"
#include "pkgmgr/node_config.hpp"
#include "pkgmgr/pack.hpp"
#include "pkgmgr/release.hpp"
#include "pkgmgr/service.hpp"
#include "pkgmgr/sets.hpp"
#include "pkgmgr/store.hpp"
#include "pkgmgr/wire.hpp"

namespace hoist::testing {

namespace {

std::string healthJson(const HealthSpec& h) {
    json::Writer w;
    w.beginObject()
        .field("http", "http://127.0.0.1:${PORT}/health")
        .field("interval_ms", h.interval_ms)
        .field("timeout_ms", h.timeout_ms)
        .field("healthy_after_ms", h.healthy_after_ms)
        .field("deadline_ms", h.deadline_ms)
        .endObject();
    return w.str();
}

}  // namespace

void NodeFixture::SetUp() {
    root_ = tmp_ / "node";
    layout_ = pkgmgr::NodeLayout::at(root_);
    ASSERT_OK(layout_.ensure());
    pkgmgr::NodeConfig config;
    config.id = "node-1";
    config.role = "agent";
    config.repository = "file://" + (tmp_ / "repo").string();
    ASSERT_OK(config.save(layout_));
    writeFile(root_ / "node.token", token_ + "\n", fs::perms(0600));
}

void NodeFixture::TearDown() {
    stopService();
}

void NodeFixture::stopService() {
    auto manager = pkgmgr::makeProcessManager(layout_);
    EXPECT_OK(manager->stop(std::chrono::seconds(5)));
}

pid_t NodeFixture::servicePid() {
    auto text = files::readFile(layout_.run() / "service.pid");
    if (!text) return 0;
    auto doc = json::parseObject(*text, "service.pid");
    if (!doc) return 0;
    auto pid = json::getInt(*doc, "pid", "service.pid");
    return pid ? static_cast<pid_t>(*pid) : 0;
}

BuiltPackage NodeFixture::mesosPackage(const std::string& version, const HealthSpec& health) {
    auto dir = tmp_ / ("src-" + std::to_string(++package_counter_));
    json::Writer w;
    w.beginObject()
        .field("name", "mesos")
        .field("version", version)
        .field("kind", "mesos")
        .key("service")
        .beginObject()
        .key("exec")
        .beginArray()
        .value("bin/standin-mesos")
        .value("--version-file")
        .value("${PKG}/share/version")
        .value("--config")
        .value("${GEN}/etc/mesos/standin.json")
        .value("--port-file")
        .value("${PORT_FILE}")
        .endArray()
        .key("health")
        .raw(healthJson(health))
        .field("stop_timeout_ms", health.stop_timeout_ms)
        .endObject()
        .endObject();
    writeFile(dir / "pkginfo.json", w.str());
    writeFile(dir / "bin/standin-mesos",
              std::string("#!/bin/sh\nexec ") + STANDIN_MESOS_BIN + " \"$@\"\n", fs::perms(0755));
    writeFile(dir / "share/version", version + "\n");
    auto out = tmp_ / ("pkg-" + std::to_string(package_counter_) + ".tar.zst");
    auto packed = pkgmgr::packDirectory(dir, out);
    EXPECT_OK(packed);
    if (!packed) return {};
    return {packed->file, packed->ref};
}

BuiltPackage NodeFixture::configPackage(const std::string& version, const Behaviour& b) {
    auto dir = tmp_ / ("src-" + std::to_string(++package_counter_));
    writeFile(dir / "pkginfo.json", "{\"name\":\"mesos-config\",\"version\":\"" + version +
                                        "\",\"kind\":\"mesos-config\"}");
    json::Writer w;
    w.beginObject()
        .field("health", b.health)
        .field("crash_at_start", b.crash_at_start)
        .field("start_delay_ms", b.start_delay_ms)
        .field("unhealthy_after_ms", b.unhealthy_after_ms)
        .field("ignore_sigterm", b.ignore_sigterm)
        .field("errors_per_second", b.errors_per_second)
        .endObject();
    writeFile(dir / "etc/mesos/standin.json", w.str());
    auto out = tmp_ / ("pkg-" + std::to_string(package_counter_) + ".tar.zst");
    auto packed = pkgmgr::packDirectory(dir, out);
    EXPECT_OK(packed);
    if (!packed) return {};
    return {packed->file, packed->ref};
}

long NodeFixture::stage(const std::vector<BuiltPackage>& packages, const std::string& release) {
    auto store = pkgmgr::Store::open(layout_);
    EXPECT_OK(store);
    if (!store) return 0;
    std::vector<std::string> shas;
    for (const auto& p : packages) {
        auto added = store->add(p.tarball);
        EXPECT_OK(added);
        if (!added) return 0;
        shas.push_back(added->ref.sha256);
    }
    auto rules = pkgmgr::RoleRules::load("agent");
    EXPECT_OK(rules);
    auto gens = pkgmgr::Generations::open(layout_);
    EXPECT_OK(gens);
    if (!rules || !gens) return 0;
    gens->setLockWait(std::chrono::seconds(10));
    auto gen = gens->stage(shas, *rules, release);
    EXPECT_OK(gen);
    return gen ? gen->number : 0;
}

long NodeFixture::stageVersion(const std::string& version, const Behaviour& behaviour,
                               const HealthSpec& health) {
    return stage({mesosPackage(version, health), configPackage(version, behaviour)});
}

void NodeFixture::publish(const std::vector<BuiltPackage>& packages) {
    fs::create_directories(tmp_ / "repo/packages");
    for (const auto& p : packages)
        fs::copy_file(p.tarball, tmp_ / "repo/packages" / p.ref.sha256,
                      fs::copy_options::overwrite_existing);
}

void NodeFixture::reportTo(const std::string& url) {
    auto config = pkgmgr::NodeConfig::load(layout_);
    ASSERT_OK(config);
    config->coordinator = url;
    config->coordinator_token_file = "coordinator.token";
    ASSERT_OK(config->save(layout_));
    writeFile(root_ / "coordinator.token", "coord-secret\n", fs::perms(0600));
}

fs::path NodeFixture::publicKeyFile() {
    auto path = tmp_ / "release.pub";
    if (!fs::exists(path)) {
        auto keys = crypto::ed25519Generate();
        EXPECT_OK(keys);
        writeFile(tmp_ / "release.key", keys->private_pem, fs::perms(0600));
        writeFile(path, keys->public_pem);
    }
    return path;
}

void NodeFixture::publishRelease(const std::string& version,
                                 const std::vector<std::string>& upgrade_from,
                                 const std::vector<BuiltPackage>& packages, bool sign) {
    publish(packages);
    pkgmgr::Release release;
    release.version = version;
    release.upgrade_from = upgrade_from;
    for (const auto& p : packages) release.roles["agent"].push_back(p.ref);
    auto text = release.toJson();
    writeFile(tmp_ / "repo/releases" / (version + ".json"), text);
    if (sign) {
        publicKeyFile();
        auto signature = pkgmgr::signRelease(text, readFile(tmp_ / "release.key"));
        EXPECT_OK(signature);
        writeFile(tmp_ / "repo/releases" / (version + ".json.sig"), *signature + "\n");
    }
}

process::Outcome NodeFixture::helper(const std::vector<std::string>& args,
                                     const std::vector<std::pair<std::string, std::string>>& env) {
    std::vector<std::string> argv = {RESTART_HELPER_BIN, "--root", root_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, env);
}

std::optional<std::string> NodeFixture::runningVersion() {
    auto port = files::readFile(layout_.run() / "service.port");
    if (!port) return std::nullopt;
    auto response = httpGet("http://127.0.0.1:" + std::string(strings::trim(*port)) + "/version");
    if (!response || response->status != 200) return std::nullopt;
    auto doc = json::parseObject(response->body, "version");
    if (!doc) return std::nullopt;
    auto version = json::getString(*doc, "version", "version");
    if (!version) return std::nullopt;
    return *version;
}

bool NodeFixture::serviceHealthy() {
    auto port = files::readFile(layout_.run() / "service.port");
    if (!port) return false;
    auto response = httpGet("http://127.0.0.1:" + std::string(strings::trim(*port)) + "/health");
    return response && response->status == 200;
}

long NodeFixture::currentGeneration() {
    auto gens = pkgmgr::Generations::open(layout_);
    if (!gens) return -1;
    auto cur = gens->current();
    if (!cur) return -1;
    return cur->value_or(0);
}

namespace {
std::optional<json::Document> lastJournal(const pkgmgr::NodeLayout& layout) {
    auto text = files::readFile(layout.run() / "last-txn.json");
    if (!text) return std::nullopt;
    auto doc = json::parseObject(*text, "last-txn.json");
    if (!doc) return std::nullopt;
    return std::move(*doc);
}
}  // namespace

std::string NodeFixture::lastState() {
    auto doc = lastJournal(layout_);
    if (!doc) return "";
    auto state = json::getString(*doc, "state", "last-txn.json");
    return state ? *state : "";
}

std::string NodeFixture::lastOperation() {
    auto doc = lastJournal(layout_);
    if (!doc) return "";
    auto op = json::getString(*doc, "operation", "last-txn.json");
    return op ? *op : "";
}

std::string NodeFixture::lastMessage() {
    auto doc = lastJournal(layout_);
    if (!doc) return "";
    auto message = json::getString(*doc, "message", "last-txn.json");
    return message ? *message : "";
}

std::vector<std::string> NodeFixture::lastSteps() {
    std::vector<std::string> out;
    auto doc = lastJournal(layout_);
    if (!doc) return out;
    auto steps = json::getArray(*doc, "steps", "last-txn.json");
    if (!steps) return out;
    for (const auto& s : (*steps)->GetArray()) {
        auto state = json::getString(s, "state", "step");
        if (state) out.push_back(*state);
    }
    return out;
}

// ---- RecordingCoordinator

RecordingCoordinator::RecordingCoordinator(int port) : port_(port) {
    start();
}

RecordingCoordinator::~RecordingCoordinator() {
    stop();
}

bool RecordingCoordinator::start() {
    if (server_) return true;
    http::ServerOptions options;
    options.component = "recording-coordinator";
    options.port = port_;
    options.threads = 2;
    options.access_log = false;
    auto created = http::Server::create(options);
    if (!created) return false;
    server_ = std::move(*created);
    auto record = [this](const http::ServerRequest& request) {
        std::lock_guard lock(mutex_);
        auto reply = http::ServerReply::json(200, "{}");
        if (request.path == "/v1/nodes/register") {
            auto registration = pkgmgr::Registration::fromJson(request.body);
            if (failing_registrations_ > 0) {
                --failing_registrations_;
                reply = http::ServerReply::error(503, "starting up");
            } else if (registration) {
                registered_.insert(registration->id);
            }
        } else if (refuse_unregistered_ && !registered_.contains(request.matches.at(1))) {
            reply = http::ServerReply::error(pkgmgr::notRegistered(request.matches.at(1)));
        }
        records_.push_back({request.path, request.body,
                            request.header("Authorization").value_or(""), reply.status});
        // No keep-alive: stop() must not wait for an idle client connection to time out.
        reply.headers.push_back({"Connection", "close"});
        return reply;
    };
    server_->route("POST", "/v1/nodes/register", record);
    server_->route("POST", "/v1/nodes/([^/]+)/status", record);
    auto bound = server_->bind();
    if (!bound) {
        server_.reset();
        return false;
    }
    port_ = *bound;
    thread_ = std::thread([this] { server_->run(); });
    // Listening once the run loop started: probe it.
    waitFor([this] { return httpGet(url() + "/healthz").has_value(); }, std::chrono::seconds(5));
    return true;
}

void RecordingCoordinator::refuseUnregistered() {
    std::lock_guard lock(mutex_);
    refuse_unregistered_ = true;
}

void RecordingCoordinator::failRegistrations(int count) {
    std::lock_guard lock(mutex_);
    failing_registrations_ = count;
}

void RecordingCoordinator::forget() {
    std::lock_guard lock(mutex_);
    registered_.clear();
}

void RecordingCoordinator::stop() {
    if (!server_) return;
    server_->stop();
    if (thread_.joinable()) thread_.join();
    server_.reset();
}

std::vector<RecordingCoordinator::Record> RecordingCoordinator::records() {
    std::lock_guard lock(mutex_);
    return records_;
}

std::vector<RecordingCoordinator::Record> RecordingCoordinator::pings() {
    std::vector<Record> out;
    for (auto& r : records())
        if (r.path.ends_with("/status")) out.push_back(r);
    return out;
}

std::vector<RecordingCoordinator::Record> RecordingCoordinator::registrations() {
    std::vector<Record> out;
    for (auto& r : records())
        if (r.path == "/v1/nodes/register") out.push_back(r);
    return out;
}

std::optional<http::Response> httpGet(const std::string& url,
                                      const std::vector<http::Header>& headers) {
    http::Client client;
    http::Request request;
    request.url = url;
    request.headers = headers;
    request.connect_timeout = std::chrono::seconds(2);
    request.timeout = std::chrono::seconds(10);
    auto response = client.send(request);
    if (!response) return std::nullopt;
    return *response;
}

std::optional<http::Response> httpSend(const std::string& method, const std::string& url,
                                       const std::string& body, const std::string& token) {
    http::Client client;
    http::Request request;
    request.method = method;
    request.url = url;
    request.body = body;
    request.headers.push_back({"Content-Type", "application/json"});
    if (!token.empty()) request.headers.push_back(http::bearer(token));
    request.connect_timeout = std::chrono::seconds(2);
    request.timeout = std::chrono::seconds(60);
    auto response = client.send(request);
    if (!response) return std::nullopt;
    return *response;
}

}  // namespace hoist::testing
