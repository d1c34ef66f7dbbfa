#pragma once

#include <sys/types.h>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace hoist::process {

struct Options {
    /// Variables set on top of this process's environment (or of an empty one).
    std::vector<std::pair<std::string, std::string>> env;
    bool inherit_env = true;
    std::filesystem::path cwd;
    /// Where stdout and stderr go; empty: captured (run) or /dev/null (start, spawn).
    std::filesystem::path stdout_file;
    std::filesystem::path stderr_file;
    /// Append instead of truncating the output files.
    bool append = true;
    /// Feeds this to stdin (run only); otherwise stdin is /dev/null.
    std::string stdin_data;
    /// run(): killed (the whole process group) when it runs longer; zero: no limit.
    std::chrono::milliseconds timeout{0};
    /// Start in a session of its own (setsid), so it outlives us and our signals.
    bool new_session = true;
    /// When set, the child takes a POSIX record lock (fcntl F_SETLK) on this file before it
    /// execs, through a descriptor it keeps: while the program runs, lockHolder() names it,
    /// even if whoever started it died before writing its pid down. start() fails when the
    /// lock is already held.
    std::filesystem::path hold_lock;
};

struct Outcome {
    int exit_code = -1;  ///< exit status, or -1 when killed by a signal
    int signal = 0;
    bool timed_out = false;
    std::string out;
    std::string err;
};

/// Runs argv[0] (a path, or a name looked up in PATH) to completion, capturing output.
/// NotFound when the program does not exist; a non-zero exit is an Outcome, not an error.
Result<Outcome> run(const std::vector<std::string>& argv, const Options& options = {});

/// A started process. The destructor does not stop it (call terminate()).
class Child {
public:
    static Result<Child> start(const std::vector<std::string>& argv, const Options& options = {});
    Child(Child&&) noexcept;
    Child& operator=(Child&&) noexcept;
    ~Child();

    pid_t pid() const { return pid_; }
    /// Polls without blocking; reaps the process when it has ended.
    bool running();
    /// Waits up to `timeout` (polling); Timeout when it is still running.
    Result<Outcome> wait(std::chrono::milliseconds timeout);
    /// SIGTERM to the process group, then SIGKILL after grace.
    void terminate(std::chrono::milliseconds grace = std::chrono::milliseconds(3000));
    /// Sends a signal to the process (group when it leads a session).
    void signal(int sig);

private:
    friend Result<Outcome> run(const std::vector<std::string>& argv, const Options& options);
    Child() = default;
    pid_t pid_ = -1;
    bool reaped_ = false;
    bool session_ = false;
    Outcome outcome_;
};

/// The pid of the process holding a POSIX record lock on `lock_file` (Options::hold_lock);
/// 0 when nobody does or the file is absent.
pid_t lockHolder(const std::filesystem::path& lock_file);
/// True while a process with this pid exists (and is not a zombie we could see).
bool alive(pid_t pid);
/// Resolves a program name through PATH; empty when not found.
std::filesystem::path findProgram(const std::string& name);
/// The absolute path of the running executable.
std::filesystem::path selfExe();

}  // namespace hoist::process
