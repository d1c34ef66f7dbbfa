#include "testing.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "core/http_client.hpp"

namespace hoist::testing {

TempFolder::TempFolder()
    : dir_([] {
          auto made = files::TempDir::createSystem("hoist-test-");
          if (!made) throw std::runtime_error(made.error().describe());
          return std::move(*made);
      }()) {}

void writeFile(const fs::path& path, const std::string& content, fs::perms perms) {
    fs::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
    out.close();
    fs::permissions(path, perms);
}

std::string readFile(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

Result<fs::path> sigv4Suite() {
    if (const char* env = std::getenv("HOIST_SIGV4_SUITE"); env != nullptr && *env != '\0') {
        if (!fs::is_directory(env))
            return fail(Errc::NotFound, "HOIST_SIGV4_SUITE='", env, "' is not a folder");
        return fs::path(env);
    }
    fs::path built = HOIST_SIGV4_SUITE_DEFAULT;
    if (built.empty() || !fs::is_directory(built)) return fs::path();
    return built;
}

bool waitFor(const std::function<bool()>& probe, std::chrono::milliseconds timeout,
             std::chrono::milliseconds step) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        if (probe()) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(step);
    }
}

process::Outcome run(const std::vector<std::string>& argv,
                     const std::vector<std::pair<std::string, std::string>>& env,
                     std::chrono::milliseconds timeout) {
    process::Options options;
    options.env = env;
    options.timeout = timeout;
    options.new_session = false;
    auto outcome = process::run(argv, options);
    if (!outcome) {
        ADD_FAILURE() << "cannot run " << argv.at(0) << ": " << outcome.error().describe();
        return {};
    }
    return *outcome;
}

bool ServerProcess::launch(const std::vector<std::string>& argv, const fs::path& log_file,
                           const std::vector<std::pair<std::string, std::string>>& env) {
    process::Options options;
    options.env = env;
    options.stdout_file = log_file;
    options.stderr_file = log_file;
    auto child = process::Child::start(argv, options);
    if (!child) {
        ADD_FAILURE() << "cannot start " << argv.at(0) << ": " << child.error().describe();
        return false;
    }
    child_.emplace(std::move(*child));
    return true;
}

ServerProcess::ServerProcess(const std::vector<std::string>& argv, const fs::path& port_file,
                             const fs::path& log_file,
                             const std::vector<std::pair<std::string, std::string>>& env) {
    std::error_code ec;
    fs::remove(port_file, ec);
    if (!launch(argv, log_file, env)) return;
    bool up = waitFor(
        [&] {
            std::ifstream in(port_file);
            int port = 0;
            if (in >> port && port > 0) {
                port_ = port;
                return true;
            }
            return !child_->running();
        },
        std::chrono::seconds(30));
    if (!up || port_ == 0)
        ADD_FAILURE() << argv.at(0) << " did not write its port file; log:\n" << readFile(log_file);
}

ServerProcess::ServerProcess(const std::vector<std::string>& argv, int port,
                             const std::string& ready_path, const fs::path& log_file) {
    if (!launch(argv, log_file, {})) return;
    http::Client client;
    http::Request ready;
    ready.url = "http://127.0.0.1:" + std::to_string(port) + ready_path;
    ready.timeout = std::chrono::seconds(2);
    bool up = waitFor(
        [&] {
            auto r = client.send(ready);
            return (r && r->status == 200) || !child_->running();
        },
        std::chrono::seconds(60), std::chrono::milliseconds(100));
    if (up && child_->running())
        port_ = port;
    else
        ADD_FAILURE() << argv.at(0) << " did not answer " << ready_path << " on port " << port
                      << "; log:\n"
                      << readFile(log_file);
}

RawConnection::RawConnection(int port, const char* source) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (source != nullptr) {
        sockaddr_in local{};
        local.sin_family = AF_INET;
        ::inet_pton(AF_INET, source, &local.sin_addr);
        ::bind(fd_, reinterpret_cast<const sockaddr*>(&local), sizeof local);
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
}

RawConnection::~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
}

bool RawConnection::send(std::string_view bytes) {
    while (!bytes.empty()) {
        auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n <= 0) return false;
        bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

bool RawConnection::readSome(std::string& got, std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char buffer[8192];
    auto n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n <= 0) return false;
    got.append(buffer, static_cast<size_t>(n));
    return true;
}

std::string RawConnection::readAll(std::chrono::milliseconds timeout) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (readSome(out, deadline)) {
    }
    return out;
}

bool RawConnection::readUntil(std::string& got, std::string_view text,
                              std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (got.find(text) == std::string::npos)
        if (!readSome(got, deadline)) return false;
    return true;
}

bool RawConnection::closedByServer(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
    char byte = 0;
    return ::recv(fd_, &byte, 1, MSG_DONTWAIT | MSG_PEEK) <= 0;
}

namespace {
// Binds a loopback TCP socket to `port` (0: the kernel picks) and returns the port bound, or
// 0 when it is taken.
int bindLoopback(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    socklen_t len = sizeof addr;
    int bound = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
        bound = ntohs(addr.sin_port);
    ::close(fd);
    return bound;
}

// The first port of the kernel's ephemeral range (what bind to port 0 and outgoing
// connections take).
int ephemeralStart() {
    std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
    int first = 0;
    if (!(in >> first)) first = 32768;
    return first;
}
}  // namespace

int freeLoopbackPort() {
    // Below the ephemeral range: between this call and the peer's bind, no outgoing connection
    // and no server binding port 0 (tests run side by side) can be handed this port.
    static const int first = ephemeralStart();
    if (first > 12000) {
        static thread_local std::mt19937 pick(std::random_device{}());
        std::uniform_int_distribution<int> ports(10000, first - 1);
        for (int attempt = 0; attempt < 64; ++attempt)
            if (int port = bindLoopback(ports(pick)); port > 0) return port;
    }
    int port = bindLoopback(0);
    EXPECT_GT(port, 0) << "no free loopback port";
    return port;
}

ServerProcess::~ServerProcess() {
    stop();
}

void ServerProcess::kill(int sig) {
    if (child_) child_->signal(sig);
}

void ServerProcess::stop() {
    if (child_) child_->terminate(std::chrono::seconds(5));
}

}  // namespace hoist::testing
