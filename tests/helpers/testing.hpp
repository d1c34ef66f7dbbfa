#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.hpp"
#include "core/files.hpp"
#include "core/process.hpp"

/// Asserts that a Result holds a value, printing the error otherwise (stout's ASSERT_SOME).
#define ASSERT_OK(expr)                                                     \
    do {                                                                    \
        const auto& hoist_assert_ok_ = (expr);                              \
        ASSERT_TRUE(hoist_assert_ok_.has_value())                           \
            << #expr << " failed: " << hoist_assert_ok_.error().describe(); \
    } while (0)
#define EXPECT_OK(expr)                                                     \
    do {                                                                    \
        const auto& hoist_expect_ok_ = (expr);                              \
        EXPECT_TRUE(hoist_expect_ok_.has_value())                           \
            << #expr << " failed: " << hoist_expect_ok_.error().describe(); \
    } while (0)
/// Asserts that a Result holds an error of that code whose message contains `needle`.
#define ASSERT_ERROR(expr, errc, needle)                                                      \
    do {                                                                                      \
        const auto& hoist_assert_err_ = (expr);                                               \
        ASSERT_FALSE(hoist_assert_err_.has_value()) << #expr << " succeeded";                 \
        EXPECT_EQ(hoist_assert_err_.error().code, errc) << hoist_assert_err_.error().message; \
        EXPECT_NE(hoist_assert_err_.error().message.find(needle), std::string::npos)          \
            << "message: " << hoist_assert_err_.error().message;                              \
    } while (0)

/// Declares `var`, the SigV4 suite's folder, or skips the test with kSigV4SuiteMissing when the
/// suite is not here (an explicit HOIST_SIGV4_SUITE that names no folder fails instead).
#define HOIST_REQUIRE_SIGV4_SUITE(var)                                               \
    const auto var##_found_ = ::hoist::testing::sigv4Suite();                        \
    ASSERT_TRUE(var##_found_.has_value()) << var##_found_.error().message;           \
    if (var##_found_->empty()) GTEST_SKIP() << ::hoist::testing::kSigV4SuiteMissing; \
    const std::filesystem::path var = *var##_found_

namespace hoist::testing {

namespace fs = std::filesystem;

/// A fresh temporary folder for one test, removed afterwards.
class TempFolder {
public:
    TempFolder();
    const fs::path& path() const { return dir_.path(); }
    fs::path operator/(const std::string& name) const { return dir_.path() / name; }

private:
    files::TempDir dir_;
};

/// Writes a file (creating parent folders) or fails the test.
void writeFile(const fs::path& path, const std::string& content, fs::perms perms = fs::perms(0644));
std::string readFile(const fs::path& path);

/// The folder of AWS's SigV4 test suite: $HOIST_SIGV4_SUITE, else the build's HOIST_SIGV4_SUITE
/// (a CMake cache variable, by default ../shared/aws-sigv4-testsuite when that exists). Empty
/// when the suite is not here; an error when the environment names a folder that is not there.
Result<fs::path> sigv4Suite();

/// The one line a test prints when it is skipped for want of the SigV4 suite.
inline constexpr const char* kSigV4SuiteMissing =
    "AWS SigV4 test suite not found: set HOIST_SIGV4_SUITE (environment, or cmake "
    "-DHOIST_SIGV4_SUITE=) to a copy of the AWS Signature Version 4 test suite";

/// Calls `probe` until it returns true or `timeout` passes; true when it did.
bool waitFor(const std::function<bool()>& probe, std::chrono::milliseconds timeout,
             std::chrono::milliseconds step = std::chrono::milliseconds(20));

/// Runs a binary to completion (default 120 s limit) and returns its outcome.
process::Outcome run(const std::vector<std::string>& argv,
                     const std::vector<std::pair<std::string, std::string>>& env = {},
                     std::chrono::milliseconds timeout = std::chrono::seconds(120));

/// A raw loopback connection for requests the client library would not send (headers without
/// their body, a chunked gigabyte, a trickle); closed on destruction.
class RawConnection {
public:
    explicit RawConnection(int port, const char* source = nullptr);
    ~RawConnection();
    RawConnection(const RawConnection&) = delete;
    RawConnection& operator=(const RawConnection&) = delete;

    bool connected() const { return connected_; }
    int fd() const { return fd_; }
    bool send(std::string_view bytes);
    /// Reads until the peer closes or `timeout` passes.
    std::string readAll(std::chrono::milliseconds timeout);
    /// Appends what arrives to `got` until it holds `text` (true), or the deadline passes or
    /// the peer closes (false).
    bool readUntil(std::string& got, std::string_view text, std::chrono::milliseconds timeout);
    /// True when the server has closed its end (a read sees EOF or a reset), waiting up to
    /// `timeout`.
    bool closedByServer(std::chrono::milliseconds timeout);

private:
    /// One read of what has arrived, waiting until `deadline`; false on timeout, EOF or error.
    bool readSome(std::string& got, std::chrono::steady_clock::time_point deadline);

    int fd_ = -1;
    bool connected_ = false;
};

/// A loopback port free at the time of the call, for peers that cannot report the port they
/// bound (the caller starts them on it at once). Chosen at random below the kernel's
/// ephemeral range, so no outgoing connection or port-0 bind takes it in the meantime.
int freeLoopbackPort();

/// A started server process that wrote its port to a port file; stopped on destruction.
class ServerProcess {
public:
    /// Starts argv (which must include `--port-file <port_file>`) and waits for the port.
    ServerProcess(const std::vector<std::string>& argv, const fs::path& port_file,
                  const fs::path& log_file,
                  const std::vector<std::pair<std::string, std::string>>& env = {});
    /// Starts a peer that cannot write a port file (Alertmanager, Prometheus) on `port` and
    /// waits until GET `ready_path` answers 200.
    ServerProcess(const std::vector<std::string>& argv, int port, const std::string& ready_path,
                  const fs::path& log_file);
    ~ServerProcess();
    ServerProcess(const ServerProcess&) = delete;
    ServerProcess& operator=(const ServerProcess&) = delete;

    int port() const { return port_; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    pid_t pid() const { return child_ ? child_->pid() : -1; }
    bool started() const { return port_ > 0; }
    void kill(int sig);
    void stop();
    process::Child& child() { return *child_; }

private:
    /// Starts argv with its output to log_file; false (and a test failure) when it cannot.
    bool launch(const std::vector<std::string>& argv, const fs::path& log_file,
                const std::vector<std::pair<std::string, std::string>>& env);

    std::optional<process::Child> child_;
    int port_ = 0;
};

}  // namespace hoist::testing
