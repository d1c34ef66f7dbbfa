// The node area of hoist_pkgmgr: variable expansion, the ping outbox, the service managers and
// the health checker.

#include <cstdlib>
#include <thread>

#include "core/http_server.hpp"
#include "core/process.hpp"
#include "core/strings.hpp"
#include "pkgmgr/generations.hpp"
#include "pkgmgr/outbox.hpp"
#include "pkgmgr/service.hpp"
#include "testing.hpp"

namespace hoist::pkgmgr {
namespace {

using hoist::testing::TempFolder;
using hoist::testing::waitFor;
using hoist::testing::writeFile;

TEST(ExpandVars, ReplacesKnownNamesAndKeepsOthers) {
    std::map<std::string, std::string> vars = {{"PKG", "/s/abc"}, {"PORT", "8080"}};
    EXPECT_EQ(expandVars("${PKG}/bin/x", vars), "/s/abc/bin/x");
    EXPECT_EQ(expandVars("http://h:${PORT}/health?p=${PORT}", vars), "http://h:8080/health?p=8080");
    EXPECT_EQ(expandVars("${NOPE} ${PKG", vars), "${NOPE} ${PKG");
    EXPECT_EQ(expandVars("$PKG", vars), "$PKG");
}

// A coordinator in this process: answers `status` (settable), or refuses the node as not
// registered, and records the pings it took and how many it was sent.
class FakeCoordinator {
public:
    FakeCoordinator() {
        auto created = http::Server::create(
            {.component = "fake-coordinator", .threads = 2, .access_log = false});
        server_ = std::move(*created);
        server_->route("POST", "/v1/nodes/([^/]+)/status", [this](const http::ServerRequest& r) {
            std::lock_guard lock(mutex_);
            ++sent_;
            auto reply = registered_ ? http::ServerReply::json(status_, "{}")
                                     : http::ServerReply::error(notRegistered(r.matches.at(1)));
            if (registered_ && status_ == 200) bodies_.push_back(r.body);
            reply.headers.push_back({"Connection", "close"});
            return reply;
        });
        port_ = *server_->bind();
        thread_ = std::thread([this] { server_->run(); });
        waitFor(
            [this] {
                http::Client c;
                return c.send({.url = url() + "/healthz"}).has_value();
            },
            std::chrono::seconds(5));
    }
    ~FakeCoordinator() {
        server_->stop();
        thread_.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    void answer(int status) {
        std::lock_guard lock(mutex_);
        status_ = status;
    }
    void knowsTheNode(bool registered) {
        std::lock_guard lock(mutex_);
        registered_ = registered;
    }
    int sent() {
        std::lock_guard lock(mutex_);
        return sent_;
    }
    std::vector<std::string> bodies() {
        std::lock_guard lock(mutex_);
        return bodies_;
    }

private:
    std::unique_ptr<http::Server> server_;
    std::thread thread_;
    int port_ = 0;
    std::mutex mutex_;
    int status_ = 200;
    bool registered_ = true;
    int sent_ = 0;
    std::vector<std::string> bodies_;
};

StatusPing ping(std::string state) {
    StatusPing p;
    p.node = "n1";
    p.state = std::move(state);
    return p;
}

TEST(Outbox, SeqGrowsAcrossOpensAndPendingIsInOrder) {
    TempFolder tmp;
    auto layout = NodeLayout::at(tmp.path());
    {
        auto outbox = Outbox::open(layout);
        ASSERT_OK(outbox);
        for (auto state : {"stopping", "swapping"})
            ASSERT_OK(outbox->enqueue(ping(state), "http://x/"));
    }
    auto outbox = Outbox::open(layout);
    ASSERT_OK(outbox);
    auto third = outbox->enqueue(ping("starting"), "http://x/");
    ASSERT_OK(third);
    EXPECT_EQ(third->seq, 3);
    EXPECT_FALSE(third->time.empty());
    auto pending = outbox->pending();
    ASSERT_OK(pending);
    ASSERT_EQ(pending->size(), 3u);
    EXPECT_EQ((*pending)[0].ping.state, "stopping");
    EXPECT_EQ((*pending)[2].ping.seq, 3);
    EXPECT_TRUE(fs::exists(tmp.path() / "outbox/000000000003.json"));
}

TEST(Outbox, DrainStopsAtAnUnavailableCoordinatorAndResumesInOrder) {
    TempFolder tmp;
    auto layout = NodeLayout::at(tmp.path());
    FakeCoordinator coordinator;
    auto outbox = Outbox::open(layout);
    ASSERT_OK(outbox);
    auto url = Outbox::statusUrl(coordinator.url(), "n1");
    EXPECT_EQ(url, coordinator.url() + "/v1/nodes/n1/status");
    for (auto state : {"stopping", "swapping", "starting"})
        ASSERT_OK(outbox->enqueue(ping(state), url));

    coordinator.answer(503);
    http::Client client;
    auto first = outbox->drain(client, "", std::chrono::seconds(2));
    ASSERT_OK(first);
    EXPECT_EQ(first->delivered, 0);
    EXPECT_EQ(first->left, 3u);
    EXPECT_EQ(first->last_error, "HTTP 503");

    coordinator.answer(200);
    auto second = outbox->drain(client, "", std::chrono::seconds(2));
    ASSERT_OK(second);
    EXPECT_EQ(second->delivered, 3);
    EXPECT_EQ(second->left, 0u);
    auto bodies = coordinator.bodies();
    ASSERT_EQ(bodies.size(), 3u);
    EXPECT_NE(bodies[0].find("\"seq\":1,\"state\":\"stopping\""), std::string::npos) << bodies[0];
    EXPECT_NE(bodies[2].find("\"seq\":3,\"state\":\"starting\""), std::string::npos) << bodies[2];
    EXPECT_TRUE(outbox->pending()->empty());
}

TEST(Outbox, APingRefusedForGoodIsDropped) {
    TempFolder tmp;
    FakeCoordinator coordinator;
    auto outbox = Outbox::open(NodeLayout::at(tmp.path()));
    ASSERT_OK(outbox);
    ASSERT_OK(outbox->enqueue(ping("healthy"), Outbox::statusUrl(coordinator.url(), "n1")));
    coordinator.answer(404);
    http::Client client;
    auto drained = outbox->drain(client, "", std::chrono::seconds(2));
    ASSERT_OK(drained);
    EXPECT_EQ(drained->dropped, 1);
    EXPECT_TRUE(outbox->pending()->empty());
}

TEST(Outbox, APingFromANodeTheCoordinatorDoesNotKnowIsKeptUntilItRegisters) {
    TempFolder tmp;
    FakeCoordinator coordinator;
    auto outbox = Outbox::open(NodeLayout::at(tmp.path()));
    ASSERT_OK(outbox);
    auto url = Outbox::statusUrl(coordinator.url(), "n1");
    for (auto state : {"bootstrapping", "healthy"}) ASSERT_OK(outbox->enqueue(ping(state), url));
    coordinator.knowsTheNode(false);
    http::Client client;
    auto refused = outbox->drain(client, "", std::chrono::seconds(2));
    ASSERT_OK(refused);
    EXPECT_TRUE(refused->unregistered);
    EXPECT_EQ(refused->dropped, 0);
    EXPECT_EQ(refused->left, 2u);
    EXPECT_EQ(coordinator.sent(), 1) << "the pings behind the refused one were sent too";
    EXPECT_EQ(outbox->pending()->size(), 2u);

    coordinator.knowsTheNode(true);
    auto delivered = outbox->drain(client, "", std::chrono::seconds(2));
    ASSERT_OK(delivered);
    EXPECT_EQ(delivered->delivered, 2);
    auto bodies = coordinator.bodies();
    ASSERT_EQ(bodies.size(), 2u);
    EXPECT_NE(bodies[0].find("\"state\":\"bootstrapping\""), std::string::npos) << bodies[0];
    EXPECT_TRUE(outbox->pending()->empty());
}

// A node with one ping queued for a coordinator that does not know it yet.
class UnregisteredNode : public ::testing::Test {
protected:
    void SetUp() override {
        coordinator.knowsTheNode(false);
        url = Outbox::statusUrl(coordinator.url(), "n1");
        ASSERT_OK(outbox);
        ASSERT_OK(outbox->enqueue(ping("starting"), url));
    }
    // Starts the courier and waits for the coordinator's refusal to park it.
    void parkCourier(PingCourier& courier) {
        courier.start();
        courier.notify();
        ASSERT_TRUE(waitFor([&] { return courier.parked(); }, std::chrono::seconds(5)));
    }
    TempFolder tmp;
    NodeLayout layout = NodeLayout::at(tmp.path());
    FakeCoordinator coordinator;
    std::string url;
    Result<Outbox> outbox = Outbox::open(layout);
};

TEST_F(UnregisteredNode, TheCourierParksAndDeliversOnResume) {
    PingCourier courier(layout, [] { return std::string(); },
                        {.attempts = 0,
                         .base = std::chrono::milliseconds(5),
                         .cap = std::chrono::milliseconds(20)});
    parkCourier(courier);
    // Parked: a new ping queues behind the refused one, and nothing is sent again (the
    // backoff would have retried about ten times in this while).
    ASSERT_OK(outbox->enqueue(ping("healthy"), url));
    courier.notify();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_EQ(coordinator.sent(), 1);
    EXPECT_EQ(outbox->pending()->size(), 2u);

    coordinator.knowsTheNode(true);
    courier.resume();
    EXPECT_TRUE(waitFor([&] { return coordinator.bodies().size() == 2; }, std::chrono::seconds(5)));
    EXPECT_FALSE(courier.parked());
    EXPECT_EQ(courier.stop(std::chrono::seconds(1)), 0u);
    EXPECT_TRUE(outbox->pending()->empty());
}

TEST_F(UnregisteredNode, StoppingAParkedCourierDoesNotWaitForDelivery) {
    PingCourier courier(layout, [] { return std::string(); });
    parkCourier(courier);
    auto before = std::chrono::steady_clock::now();
    EXPECT_EQ(courier.stop(std::chrono::seconds(30)), 1u);
    EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::seconds(10));
    EXPECT_EQ(outbox->pending()->size(), 1u);
}

TEST(Outbox, OnlyOneDrainerAtATime) {
    TempFolder tmp;
    auto outbox = Outbox::open(NodeLayout::at(tmp.path()));
    ASSERT_OK(outbox);
    auto held = files::FileLock::acquire(tmp.path() / "outbox/.drain.lock",
                                         std::chrono::milliseconds(0), "test");
    ASSERT_OK(held);
    http::Client client;
    ASSERT_ERROR(outbox->drain(client, "", std::chrono::seconds(1)), Errc::Busy, "outbox drain");
}

TEST(PingCourier, DeliversInTheBackgroundOnceTheCoordinatorAnswers) {
    TempFolder tmp;
    auto layout = NodeLayout::at(tmp.path());
    FakeCoordinator coordinator;
    coordinator.answer(503);
    auto outbox = Outbox::open(layout);
    ASSERT_OK(outbox);
    ASSERT_OK(outbox->enqueue(ping("checking"), Outbox::statusUrl(coordinator.url(), "n1")));
    PingCourier courier(layout, [] { return std::string(); },
                        {.attempts = 0,
                         .base = std::chrono::milliseconds(20),
                         .cap = std::chrono::milliseconds(100)});
    courier.start();
    courier.notify();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_TRUE(coordinator.bodies().empty());
    coordinator.answer(200);
    EXPECT_TRUE(waitFor([&] { return coordinator.bodies().size() == 1; }, std::chrono::seconds(5)));
    EXPECT_EQ(courier.stop(std::chrono::seconds(1)), 0u);
    EXPECT_TRUE(outbox->pending()->empty());
}

class ServiceTest : public ::testing::Test {
protected:
    void SetUp() override {
        layout_ = NodeLayout::at(tmp_.path());
        ASSERT_OK(layout_.ensure());
    }
    ServiceLaunch sleeper(std::string script) {
        writeFile(tmp_ / "svc.sh", "#!/bin/sh\n" + script, fs::perms(0755));
        ServiceLaunch launch;
        launch.generation = 4;
        launch.argv = {(tmp_ / "svc.sh").string()};
        launch.cwd = tmp_.path();
        return launch;
    }
    TempFolder tmp_;
    NodeLayout layout_;
};

TEST_F(ServiceTest, ProcessManagerStartsInItsOwnSessionAndStops) {
    auto manager = makeProcessManager(layout_);
    ASSERT_OK(manager->start(sleeper("exec sleep 30\n")));
    auto st = manager->status();
    ASSERT_OK(st);
    EXPECT_TRUE(st->running);
    EXPECT_EQ(st->generation, 4);
    EXPECT_EQ(::getsid(st->pid), st->pid);
    ASSERT_ERROR(manager->start(sleeper("exec sleep 30\n")), Errc::Conflict,
                 "the service already runs");
    // Another manager (another helper process) finds it through the pidfile.
    auto other = makeProcessManager(layout_);
    ASSERT_OK(other->stop(std::chrono::seconds(2)));
    EXPECT_FALSE(process::alive(st->pid));
    EXPECT_FALSE(fs::exists(layout_.run() / "service.pid"));
    ASSERT_OK(other->stop(std::chrono::seconds(2)));  // stopping a stopped service is fine
}

// A helper killed just after starting the service leaves it writing its port file while the
// next `restart-helper recover` sweeps the temporary files of killed writes: the sweep must
// leave the live service's temporary port file alone, or its rename fails and it exits.
TEST_F(ServiceTest, NodeRecoveryLeavesTheStartingServicesPortFileAlone) {
    auto temp = layout_.run() / ".tmp-service.port-0a1b2c";
    auto go = tmp_ / "go";
    auto manager = makeProcessManager(layout_);
    // Writes its port file as writeFileAtomic does, pausing between the write and the rename.
    ASSERT_OK(manager->start(
        sleeper("echo 4242 > '" + temp.string() + "'\n" + "while [ ! -e '" + go.string() +
                "' ]; do sleep 0.01; done\n" + "mv '" + temp.string() + "' '" +
                (layout_.run() / "service.port").string() + "' || exit 3\nexec sleep 30\n")));
    ASSERT_TRUE(waitFor([&] { return fs::exists(temp); }, std::chrono::seconds(10)));
    auto gens = Generations::open(layout_);
    ASSERT_OK(gens);
    auto report = gens->recover();
    ASSERT_OK(report);
    EXPECT_TRUE(report->actions.empty()) << strings::join(report->actions, ", ");
    writeFile(go, "");
    EXPECT_TRUE(waitFor([&] { return fs::exists(layout_.run() / "service.port"); },
                        std::chrono::seconds(10)));
    auto st = manager->status();
    ASSERT_OK(st);
    EXPECT_TRUE(st->running) << st->detail;
    ASSERT_OK(manager->stop(std::chrono::seconds(2)));
}

// What recovery leaves alone, the manager removes once no service runs to write it.
TEST_F(ServiceTest, ProcessManagerRemovesAKilledServicesTemporaryPortFile) {
    auto leftover = layout_.run() / ".tmp-service.port-777777";
    writeFile(leftover, "4242\n");
    writeFile(layout_.run() / ".tmp-other-777777", "x");
    auto manager = makeProcessManager(layout_);
    ASSERT_OK(manager->start(sleeper("exec sleep 30\n")));
    EXPECT_FALSE(fs::exists(leftover));
    writeFile(leftover, "4242\n");  // as if the service were killed inside the write
    ASSERT_OK(manager->stop(std::chrono::seconds(2)));
    EXPECT_FALSE(fs::exists(leftover));
    EXPECT_TRUE(fs::exists(layout_.run() / ".tmp-other-777777"));
}

TEST_F(ServiceTest, ProcessManagerKillsAServiceIgnoringSigterm) {
    auto manager = makeProcessManager(layout_);
    ASSERT_OK(manager->start(sleeper("trap '' TERM\nwhile true; do sleep 0.05; done\n")));
    auto pid = manager->status()->pid;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let the shell set its trap
    auto started = std::chrono::steady_clock::now();
    ASSERT_OK(manager->stop(std::chrono::milliseconds(200)));
    EXPECT_FALSE(process::alive(pid));
    EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(200));
}

TEST_F(ServiceTest, AReusedPidIsNotSignalled) {
    // A pidfile naming this very process, with another start time: not "our" service.
    writeFile(layout_.run() / "service.pid",
              "{\"pid\":" + std::to_string(::getpid()) + ",\"start_time\":\"1\",\"generation\":1}");
    auto manager = makeProcessManager(layout_);
    auto st = manager->status();
    ASSERT_OK(st);
    EXPECT_FALSE(st->running);
    ASSERT_OK(manager->stop(std::chrono::milliseconds(100)));  // and we are still here
}

TEST_F(ServiceTest, SystemdManagerRunsSystemctl) {
    auto bin = tmp_ / "bin";
    writeFile(bin / "systemctl",
              "#!/bin/sh\necho \"$@\" >> " + (tmp_ / "calls").string() +
                  "\nif [ \"$1\" = is-active ]; then cat " + (tmp_ / "unit-state").string() +
                  "; [ \"$(cat " + (tmp_ / "unit-state").string() + ")\" = active ]; fi\n",
              fs::perms(0755));
    writeFile(tmp_ / "unit-state", "inactive\n");
    auto manager = makeSystemdManager(layout_, "mesos.service", (bin / "systemctl").string());
    auto launch = sleeper("true\n");
    launch.env = {{"A", "1"}};
    ASSERT_OK(manager->start(launch));
    EXPECT_EQ(testing::readFile(layout_.run() / "service.env"), "A=1\n");
    auto st = manager->status();
    ASSERT_OK(st);
    EXPECT_FALSE(st->running);
    EXPECT_EQ(st->detail, "systemctl: inactive");
    writeFile(tmp_ / "unit-state", "active\n");
    EXPECT_TRUE(manager->status()->running);
    ASSERT_OK(manager->stop(std::chrono::seconds(1)));
    EXPECT_EQ(testing::readFile(tmp_ / "calls"),
              "start mesos.service\nis-active mesos.service\nis-active mesos.service\nstop "
              "mesos.service\n");
}

TEST_F(ServiceTest, HealthCommandMustPassForHealthyAfter) {
    HealthCheck check;
    check.command = {"sh", "-c", "test -f " + (tmp_ / "ok").string()};
    check.interval_ms = 10;
    check.healthy_after_ms = 100;
    check.deadline_ms = 300;
    HealthContext context{layout_, {}};
    ASSERT_ERROR(waitHealthy(check, context), Errc::Unhealthy, "not healthy within 300 ms");
    writeFile(tmp_ / "ok", "");
    auto started = std::chrono::steady_clock::now();
    ASSERT_OK(waitHealthy(check, context));
    EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(100));
}

TEST_F(ServiceTest, HealthEndsAtOnceWhenTheServiceIsGone) {
    HealthCheck check;
    check.command = {"false"};
    check.interval_ms = 10;
    check.deadline_ms = 60000;
    HealthContext context{layout_, [] { return std::optional<std::string>("exited with code 3"); }};
    auto started = std::chrono::steady_clock::now();
    ASSERT_ERROR(waitHealthy(check, context), Errc::Unhealthy,
                 "the service stopped during the health check (exited with code 3)");
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));
}

TEST_F(ServiceTest, HealthUrlReadsThePortFile) {
    HealthCheck check;
    check.http = "http://127.0.0.1:${PORT}/healthz";
    HealthContext context{layout_, {}};
    http::Client client;
    ASSERT_ERROR(probeHealth(check, context, client), Errc::Unhealthy,
                 "the service has not written its port file");
    auto server = http::Server::create({.component = "svc", .access_log = false});
    ASSERT_OK(server);
    auto port = (*server)->bind();
    ASSERT_OK(port);
    std::thread t([&] { (*server)->run(); });
    ASSERT_OK((*server)->writePortFile(layout_.run() / "service.port"));
    EXPECT_TRUE(waitFor([&] { return probeHealth(check, context, client).has_value(); },
                        std::chrono::seconds(5)));
    (*server)->stop();
    t.join();
}

}  // namespace
}  // namespace hoist::pkgmgr
