// Package downloads against real repo-server processes: an outage in the middle of a fetch
// (the server killed, then back on the same port), and a disk that fills up.

#include <atomic>
#include <csignal>
#include <cstring>
#include <random>
#include <thread>

#include "core/crypto.hpp"
#include "core/strings.hpp"
#include "pkgmgr/fetch.hpp"
#include "pkgmgr/pack.hpp"
#include "pkgmgr/store.hpp"
#include "testing.hpp"

namespace hoist::testing {
namespace {

/// A module package holding `noise_bytes` incompressible bytes; returns the tarball.
fs::path noisyPackage(const fs::path& work, std::size_t noise_bytes) {
    auto dir = work / "src";
    writeFile(dir / "pkginfo.json", R"({"name":"noise","version":"1.0.0","kind":"module"})");
    std::mt19937_64 rng(42);
    std::string noise(noise_bytes, '\0');
    for (std::size_t i = 0; i + 8 <= noise.size(); i += 8) {
        auto word = rng();
        std::memcpy(noise.data() + i, &word, 8);
    }
    writeFile(dir / "share/noise", noise);
    auto packed = pkgmgr::packDirectory(dir, work / "noise.tar.zst");
    EXPECT_OK(packed);
    return packed ? packed->file : fs::path();
}

/// noisyPackage, published in <tmp>/repo/packages/<sha256>; returns the sha256.
std::string publishNoisyPackage(const fs::path& tmp, std::size_t noise_bytes) {
    auto tarball = noisyPackage(tmp, noise_bytes);
    if (tarball.empty()) return {};
    auto sha = crypto::sha256Hex(readFile(tarball));
    fs::create_directories(tmp / "repo/packages");
    fs::copy_file(tarball, tmp / "repo/packages" / sha);
    return sha;
}

std::unique_ptr<ServerProcess> startRepo(const fs::path& tmp, const std::string& listen,
                                         const std::string& name) {
    auto port_file = tmp / (name + ".port");
    return std::make_unique<ServerProcess>(
        std::vector<std::string>{REPO_SERVER_BIN, "--root", (tmp / "repo").string(), "--listen",
                                 listen, "--port-file", port_file.string()},
        port_file, tmp / (name + ".log"));
}

// The repository goes away after some of the bytes arrived and comes back 3 s later on the
// same port: the fetch waits for it and resumes from the bytes it has, never from 0.
TEST(FetchOutage, ResumesAfterTheRepositoryIsKilledAndRestarted) {
    TempFolder tmp;
    auto sha = publishNoisyPackage(tmp.path(), 48u << 20);
    ASSERT_FALSE(sha.empty());
    auto repo = startRepo(tmp.path(), "127.0.0.1:0", "first");
    ASSERT_TRUE(repo->started());
    int port = repo->port();
    auto layout = pkgmgr::NodeLayout::at(tmp / "node");
    ASSERT_OK(layout.ensure());
    auto store = pkgmgr::Store::open(layout);
    ASSERT_OK(store);
    auto part = layout.downloads() / (sha + ".part");

    std::atomic<std::uint64_t> killed_at{0};
    std::atomic<std::uint64_t> part_before_restart{0};
    std::thread restarter;
    pkgmgr::FetchOptions options;
    options.retry = {.attempts = 0,
                     .base = std::chrono::milliseconds(50),
                     .cap = std::chrono::milliseconds(500)};
    options.retry_for = std::chrono::seconds(60);
    options.progress = [&](const pkgmgr::FetchProgress& p) {
        if (killed_at.load() != 0 || p.done || p.bytes < (8u << 20)) return;
        killed_at = p.bytes;
        repo->kill(SIGKILL);
        restarter = std::thread([&] {
            // The outage itself: the fetch keeps retrying (refused connections) meanwhile.
            std::this_thread::sleep_for(std::chrono::seconds(3));
            std::error_code ec;
            part_before_restart = fs::file_size(part, ec);
            repo = startRepo(tmp.path(), "127.0.0.1:" + std::to_string(port), "second");
        });
    };
    auto fetched =
        pkgmgr::fetchPackage(*store, "http://127.0.0.1:" + std::to_string(port), sha, options);
    if (restarter.joinable()) restarter.join();
    ASSERT_OK(fetched);
    ASSERT_GT(killed_at.load(), 0u) << "the repository was never killed";
    // The failed retries during the outage kept every byte received before it.
    EXPECT_GE(part_before_restart.load(), killed_at.load());
    ASSERT_TRUE(repo->started());
    auto report = store->verify(sha);
    ASSERT_OK(report);
    EXPECT_TRUE(report->ok());
    EXPECT_FALSE(fs::exists(part));
    // The second server was asked for the rest only (206), never for the whole file (200).
    repo.reset();
    auto log = readFile(tmp / "second.log");
    EXPECT_NE(log.find("status=206"), std::string::npos) << log;
    EXPECT_EQ(log.find("status=200"), std::string::npos) << log;
}

// A 404 leaves no .part behind.
TEST(FetchOutage, AMissingPackageLeavesNothing) {
    TempFolder tmp;
    fs::create_directories(tmp / "repo/packages");
    auto repo = startRepo(tmp.path(), "127.0.0.1:0", "repo");
    ASSERT_TRUE(repo->started());
    auto layout = pkgmgr::NodeLayout::at(tmp / "node");
    ASSERT_OK(layout.ensure());
    auto store = pkgmgr::Store::open(layout);
    ASSERT_OK(store);
    std::string sha(64, 'e');
    ASSERT_ERROR(pkgmgr::fetchPackage(*store, repo->url(), sha), Errc::NotFound,
                 "is not in the repository");
    EXPECT_TRUE(fs::is_empty(layout.downloads()));
}

// A disk that fills up during the download: the .part it was writing is removed, so the disk
// is not left full. The node root is a 4 MiB tmpfs in a private mount namespace.
TEST(FetchOutage, AFullDiskRemovesThePartItWasWriting) {
    TempFolder tmp;
    auto probe = run(
        {"unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs " + tmp.path().string()});
    if (probe.exit_code != 0)
        GTEST_SKIP() << "cannot mount a small tmpfs here (unshare -rm + mount -t tmpfs failed: "
                     << strings::trim(probe.err) << "); the full-disk case is not exercised";
    auto sha = publishNoisyPackage(tmp.path(), 12u << 20);
    ASSERT_FALSE(sha.empty());
    auto repo = startRepo(tmp.path(), "127.0.0.1:0", "repo");
    ASSERT_TRUE(repo->started());

    auto small = tmp / "small";
    fs::create_directories(small);
    auto root = (small / "node").string();
    // pkgmgr runs inside the namespace; the listing after it shows what it left.
    std::string script = "mount -t tmpfs -o size=4m tmpfs " + small.string() + " && mkdir " + root +
                         " && " + PKGMGR_BIN + " --root " + root + " fetch --retry-for 5 --repo " +
                         repo->url() + " " + sha + "; echo \"exit=$?\"; ls -A " + root +
                         "/downloads; echo end";
    auto outcome = run({"unshare", "-rm", "sh", "-c", script});
    EXPECT_NE(outcome.out.find("exit=" + std::to_string(exitCode(Errc::Io))), std::string::npos)
        << outcome.out << outcome.err;
    EXPECT_NE(outcome.err.find("No space left on device"), std::string::npos) << outcome.err;
    EXPECT_NE(outcome.out.find("exit="), std::string::npos);
    // Nothing is listed between the exit line and "end": downloads/ is empty.
    auto after_exit = outcome.out.substr(outcome.out.find('\n', outcome.out.find("exit=")) + 1);
    EXPECT_EQ(after_exit, "end\n") << outcome.out;
}

}  // namespace
}  // namespace hoist::testing
