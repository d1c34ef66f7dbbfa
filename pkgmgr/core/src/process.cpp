#include "core/process.hpp"

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <thread>

#include <boost/process.hpp>
#include <boost/process/extend.hpp>

#include "core/files.hpp"

namespace bp = boost::process;

namespace hoist::process {

namespace {
// Runs in the child between fork and exec.
struct SessionHandler : bp::extend::handler {
    bool enabled = true;
    const char* lock_path = nullptr;
    template <class Executor>
    void on_exec_setup(Executor& exec) const {
        if (enabled) ::setsid();
        // A parent that waits for signals in a thread (http::SignalWaiter) has SIGTERM and
        // SIGINT blocked; the mask survives exec, and a child must not start deaf to them.
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        // Nothing but stdin, stdout and stderr crosses exec: an inherited socket (a listening
        // port, a keep-alive connection) would otherwise live as long as the child does.
        closeOnExecAbove2();
        // Opened after the sweep above, without O_CLOEXEC: the lock lives as long as the
        // program this child becomes. Only async-signal-safe calls between fork and exec.
        if (lock_path != nullptr) {
            int fd = ::open(lock_path, O_RDWR | O_CREAT, 0644);
            struct flock lock {};
            lock.l_type = F_WRLCK;
            lock.l_whence = SEEK_SET;
            if (fd < 0 || ::fcntl(fd, F_SETLK, &lock) != 0) {
                exec.set_error(std::error_code(errno, std::system_category()),
                               "cannot take the lock on the service lock file");
                ::_exit(EXIT_FAILURE);
            }
        }
    }

    static void closeOnExecAbove2() {
        constexpr unsigned kCloseRangeCloexec = 1u << 2;  // CLOSE_RANGE_CLOEXEC, Linux 5.11
        if (::syscall(SYS_close_range, 3u, ~0u, kCloseRangeCloexec) == 0) return;
        long max = ::sysconf(_SC_OPEN_MAX);
        if (max < 0 || max > 65536) max = 65536;
        for (int fd = 3; fd < max; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
};

// The child's environment as "KEY=VALUE" strings. Built by hand rather than with
// bp::environment, whose lookup in Boost 1.74 reads past the end of shorter entries.
struct EnvBlock {
    std::vector<std::string> entries;
    std::vector<char*> pointers;

    explicit EnvBlock(const Options& options) {
        if (options.inherit_env) {
            for (char** e = ::environ; e != nullptr && *e != nullptr; ++e) {
                std::string_view entry(*e);
                auto eq = entry.find('=');
                std::string_view name = entry.substr(0, eq);
                bool overridden = false;
                for (const auto& kv : options.env) overridden = overridden || kv.first == name;
                if (!overridden) entries.emplace_back(entry);
            }
        }
        for (const auto& [k, v] : options.env) entries.push_back(k + "=" + v);
        for (auto& entry : entries) pointers.push_back(entry.data());
        pointers.push_back(nullptr);
    }
};

// Hands our environment block to execve (the executor's `env`, set before fork).
struct EnvHandler : bp::extend::handler {
    char** envp = nullptr;
    template <class Executor>
    void on_setup(Executor& exec) const {
        exec.env = envp;
    }
};

Result<boost::filesystem::path> resolve(const std::string& program) {
    if (program.find('/') != std::string::npos) {
        if (::access(program.c_str(), X_OK) != 0)
            return failErrno(Errc::NotFound, errno, "cannot run '", program, "'");
        return boost::filesystem::path(program);
    }
    auto found = bp::search_path(program);
    if (found.empty()) return fail(Errc::NotFound, "program '", program, "' is not on PATH");
    return found;
}

void decode(int status, Outcome& out) {
    if (WIFEXITED(status)) {
        out.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        out.exit_code = -1;
        out.signal = WTERMSIG(status);
    }
}

Result<void> startImpl(const std::vector<std::string>& argv, const Options& options,
                       const std::filesystem::path& out_path, const std::filesystem::path& err_path,
                       const std::filesystem::path& in_path, pid_t& pid, bool& session) {
    if (argv.empty()) return fail(Errc::Invalid, "empty command");
    HOIST_ASSIGN(auto exe, resolve(argv[0]));
    std::vector<std::string> args(argv.begin() + 1, argv.end());
    std::error_code ec;
    SessionHandler handler;
    handler.enabled = options.new_session;
    std::string lock_str = options.hold_lock.string();
    if (!lock_str.empty()) handler.lock_path = lock_str.c_str();
    EnvBlock env_block(options);
    EnvHandler env_handler;
    env_handler.envp = env_block.pointers.data();
    std::string out_str = out_path.empty() ? "/dev/null" : out_path.string();
    std::string err_str = err_path.empty() ? "/dev/null" : err_path.string();
    std::string in_str = in_path.empty() ? "/dev/null" : in_path.string();
    // Output files are opened by us (append or truncate) and handed over as descriptors.
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (options.append ? O_APPEND : O_TRUNC);
    int out_fd = ::open(out_str.c_str(), flags, 0644);
    int err_fd = err_str == out_str ? ::dup(out_fd) : ::open(err_str.c_str(), flags, 0644);
    FILE* out_file = out_fd >= 0 ? ::fdopen(out_fd, "w") : nullptr;
    FILE* err_file = err_fd >= 0 ? ::fdopen(err_fd, "w") : nullptr;
    if (out_file == nullptr || err_file == nullptr) {
        if (out_file)
            std::fclose(out_file);
        else if (out_fd >= 0)
            ::close(out_fd);
        if (err_file)
            std::fclose(err_file);
        else if (err_fd >= 0)
            ::close(err_fd);
        return fail(Errc::Io, "cannot open the output files of '", argv[0], "'");
    }
    boost::filesystem::path cwd = options.cwd.empty()
                                      ? boost::filesystem::current_path()
                                      : boost::filesystem::path(options.cwd.string());
    bp::child child(exe, bp::args = args, bp::std_out > out_file, bp::std_err > err_file,
                    bp::std_in < in_str, env_handler, bp::start_dir = cwd, handler, ec);
    std::fclose(out_file);
    std::fclose(err_file);
    if (ec) return fail(Errc::Io, "cannot start '", argv[0], "': ", ec.message());
    pid = child.id();
    session = options.new_session;
    // We reap it ourselves with waitpid; Boost must not.
    child.detach();
    return ok();
}
}  // namespace

Result<Child> Child::start(const std::vector<std::string>& argv, const Options& options) {
    Child c;
    HOIST_TRY(
        startImpl(argv, options, options.stdout_file, options.stderr_file, {}, c.pid_, c.session_));
    return c;
}

Child::Child(Child&& other) noexcept
    : pid_(other.pid_), reaped_(other.reaped_), session_(other.session_), outcome_(other.outcome_) {
    other.pid_ = -1;
}

Child& Child::operator=(Child&& other) noexcept {
    if (this != &other) {
        pid_ = other.pid_;
        reaped_ = other.reaped_;
        session_ = other.session_;
        outcome_ = other.outcome_;
        other.pid_ = -1;
    }
    return *this;
}

Child::~Child() = default;

bool Child::running() {
    if (pid_ < 0 || reaped_) return false;
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        decode(status, outcome_);
        reaped_ = true;
        return false;
    }
    if (r < 0 && errno == ECHILD) {
        reaped_ = true;
        return false;
    }
    return true;
}

Result<Outcome> Child::wait(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto pause = std::chrono::milliseconds(1);
    while (running()) {
        if (std::chrono::steady_clock::now() >= deadline)
            return fail(Errc::Timeout, "process ", pid_, " still runs after ", timeout.count(),
                        " ms");
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::milliseconds(20));
    }
    return outcome_;
}

void Child::signal(int sig) {
    if (pid_ < 0 || reaped_) return;
    if (session_) ::kill(-pid_, sig);
    ::kill(pid_, sig);
}

void Child::terminate(std::chrono::milliseconds grace) {
    if (!running()) return;
    signal(SIGTERM);
    if (!wait(grace)) {
        signal(SIGKILL);
        (void)wait(std::chrono::seconds(10));
    }
}

Result<Outcome> run(const std::vector<std::string>& argv, const Options& options) {
    HOIST_ASSIGN(auto tmp, files::TempDir::createSystem("hoist-run-"));
    auto out_path = options.stdout_file.empty() ? tmp.path() / "out" : options.stdout_file;
    auto err_path = options.stderr_file.empty() ? tmp.path() / "err" : options.stderr_file;
    std::filesystem::path in_path;
    if (!options.stdin_data.empty()) {
        in_path = tmp.path() / "in";
        HOIST_TRY(files::writeFileAtomic(in_path, options.stdin_data, 0600));
    }
    Child c;
    HOIST_TRY(startImpl(argv, options, out_path, err_path, in_path, c.pid_, c.session_));
    Outcome outcome;
    if (options.timeout.count() > 0) {
        auto waited = c.wait(options.timeout);
        if (!waited) {
            c.signal(SIGKILL);
            auto killed = c.wait(std::chrono::seconds(10));
            if (killed) outcome = *killed;
            outcome.timed_out = true;
        } else {
            outcome = *waited;
        }
    } else {
        auto waited = c.wait(std::chrono::hours(24 * 365));
        if (waited) outcome = *waited;
    }
    if (options.stdout_file.empty()) {
        auto text = files::readFile(out_path);
        if (text) outcome.out = std::move(*text);
    }
    if (options.stderr_file.empty()) {
        auto text = files::readFile(err_path);
        if (text) outcome.err = std::move(*text);
    }
    return outcome;
}

pid_t lockHolder(const std::filesystem::path& lock_file) {
    int fd = ::open(lock_file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    struct flock probe {};
    probe.l_type = F_WRLCK;
    probe.l_whence = SEEK_SET;
    pid_t holder = 0;
    if (::fcntl(fd, F_GETLK, &probe) == 0 && probe.l_type != F_UNLCK) holder = probe.l_pid;
    ::close(fd);
    return holder;
}

bool alive(pid_t pid) {
    if (pid <= 0) return false;
    if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
    // A zombie still answers kill(0); read its state.
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return false;
    auto close = line.rfind(')');
    return close == std::string::npos || close + 2 >= line.size() || line[close + 2] != 'Z';
}

std::filesystem::path findProgram(const std::string& name) {
    auto found = bp::search_path(name);
    return found.empty() ? std::filesystem::path() : std::filesystem::path(found.string());
}

std::filesystem::path selfExe() {
    std::error_code ec;
    auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::filesystem::path() : p;
}

}  // namespace hoist::process
