#include "core/daemon.hpp"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>

#include <cstdlib>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#if HOIST_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "core/files.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "core/strings.hpp"

namespace hoist::daemon {

struct Secret::Shared {
    std::filesystem::path file;
    std::string what;
    mutable std::mutex mutex;
    std::string value;
};

Secret::Secret(std::string token) : shared_(std::make_shared<Shared>()) {
    shared_->value = std::move(token);
}

namespace {
Result<std::string> readSecret(const std::filesystem::path& file, std::string_view what) {
    return files::readSecretFile(file, std::string(what) + " file");
}
}  // namespace

Result<Secret> Secret::fromFile(const std::filesystem::path& file, std::string what) {
    Secret secret;
    secret.shared_ = std::make_shared<Shared>();
    secret.shared_->file = file;
    secret.shared_->what = std::move(what);
    if (file.empty()) return secret;
    HOIST_ASSIGN(secret.shared_->value, readSecret(file, secret.shared_->what));
    return secret;
}

std::string Secret::value() const {
    if (!shared_) return {};
    std::lock_guard lock(shared_->mutex);
    return shared_->value;
}

bool Secret::empty() const {
    if (!shared_) return true;
    std::lock_guard lock(shared_->mutex);
    return shared_->value.empty();
}

const std::filesystem::path& Secret::file() const {
    static const std::filesystem::path kNone;
    return shared_ ? shared_->file : kNone;
}

Result<void> Secret::reload() {
    if (!shared_ || shared_->file.empty()) return ok();
    HOIST_ASSIGN(auto token, readSecret(shared_->file, shared_->what));
    std::lock_guard lock(shared_->mutex);
    shared_->value = std::move(token);
    return ok();
}

struct ReloadWaiter::Impl {
    std::thread thread;
    sigset_t set{};
    std::atomic<bool> done{false};
};

ReloadWaiter::ReloadWaiter(std::function<void()> on_reload) : impl_(std::make_unique<Impl>()) {
    sigemptyset(&impl_->set);
    sigaddset(&impl_->set, SIGHUP);
    sigaddset(&impl_->set, SIGUSR2);  // our own wake-up, from the destructor
    pthread_sigmask(SIG_BLOCK, &impl_->set, nullptr);
    // Our thread must never take SIGINT or SIGTERM (their default action would end the
    // process before SignalWaiter sees them): it starts with them blocked as well.
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    sigset_t before;
    pthread_sigmask(SIG_BLOCK, &stops, &before);
    impl_->thread = std::thread([impl = impl_.get(), on_reload = std::move(on_reload)] {
        while (!impl->done.load()) {
            int sig = 0;
            if (sigwait(&impl->set, &sig) != 0) continue;
            if (impl->done.load()) break;
            if (sig == SIGHUP) on_reload();
        }
    });
    pthread_sigmask(SIG_SETMASK, &before, nullptr);
}

ReloadWaiter::~ReloadWaiter() {
    impl_->done = true;
    pthread_kill(impl_->thread.native_handle(), SIGUSR2);
    impl_->thread.join();
}

void warnInsecure(std::string_view component, metrics::Registry& registry,
                  std::string_view missing) {
    log::warn(component,
              "INSECURE: started with --insecure-no-auth; anyone who reaches this address can "
              "call what the missing tokens would protect",
              {{"missing", std::string(missing)}});
    registry.describe("hoist_insecure_no_auth", "gauge",
                      "1 when the daemon runs with --insecure-no-auth (routes without a token)");
    registry.set("hoist_insecure_no_auth",
                 "component=\"" + metrics::labelValue(component) + "\",missing=\"" +
                     metrics::labelValue(missing) + "\"",
                 1);
}

Error missingCredential(std::string_view component, std::string_view what, std::string_view flag) {
    return Error{Errc::Invalid,
                 std::string(component) + " needs " + std::string(what) + " (" + std::string(flag) +
                     "); refusing to start without it (--insecure-no-auth runs open, for "
                     "development only)",
                 0};
}

namespace {
#if HOIST_HAVE_SYSTEMD
// libsystemd is opened on first use, and only under systemd (NOTIFY_SOCKET set): with the four
// libraries it needs it costs ~900 symbol relocations at every start of every binary, and
// sd_notify does nothing without NOTIFY_SOCKET anyway.
struct SystemdApi {
    decltype(&::sd_notify) notify = nullptr;
    decltype(&::sd_watchdog_enabled) watchdog_enabled = nullptr;
};

const SystemdApi& libsystemd() {
    static const SystemdApi api = [] {
        SystemdApi s;
        if (std::getenv("NOTIFY_SOCKET") == nullptr) return s;
        constexpr const char* kLibrary = "libsystemd.so.0";
        void* lib = ::dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
        if (lib == nullptr) {
            const char* why = ::dlerror();
            log::warn("daemon", "cannot load libsystemd: systemd is not notified",
                      {{"library", kLibrary}, {"error", why ? why : "unknown error"}});
            return s;
        }
        s.notify = reinterpret_cast<decltype(s.notify)>(::dlsym(lib, "sd_notify"));
        s.watchdog_enabled =
            reinterpret_cast<decltype(s.watchdog_enabled)>(::dlsym(lib, "sd_watchdog_enabled"));
        if (s.notify == nullptr || s.watchdog_enabled == nullptr) {
            log::warn("daemon", "libsystemd lacks sd_notify: systemd is not notified",
                      {{"library", kLibrary}});
            s = SystemdApi{};
        }
        return s;
    }();
    return api;
}
#endif

void notify(const std::string& state) {
#if HOIST_HAVE_SYSTEMD
    if (auto fn = libsystemd().notify) fn(0, state.c_str());
#else
    (void)state;
#endif
}
}  // namespace

void notifyReady(std::string_view status) {
    notify("READY=1\nSTATUS=" + std::string(status));
}
void notifyReloading() {
    notify("RELOADING=1");
}
void notifyStopping() {
    notify("STOPPING=1");
}

bool haveSystemd() {
    return HOIST_HAVE_SYSTEMD != 0;
}

struct Watchdog::Impl {
    std::thread thread;
    std::mutex mutex;
    std::condition_variable wake;
    bool done = false;
};

Watchdog::Watchdog(std::function<bool()> alive) : impl_(std::make_unique<Impl>()) {
#if HOIST_HAVE_SYSTEMD
    uint64_t usec = 0;
    const auto& sd = libsystemd();
    if (sd.watchdog_enabled == nullptr || sd.watchdog_enabled(0, &usec) <= 0 || usec == 0) return;
    auto interval = std::chrono::microseconds(usec / 2);
    impl_->thread = std::thread(
        [impl = impl_.get(), interval, alive = std::move(alive), notify_fn = sd.notify] {
            std::unique_lock lock(impl->mutex);
            while (!impl->done) {
                lock.unlock();
                if (!alive || alive()) notify_fn(0, "WATCHDOG=1");
                lock.lock();
                impl->wake.wait_for(lock, interval, [impl] { return impl->done; });
            }
        });
#else
    (void)alive;
#endif
}

Watchdog::~Watchdog() {
    {
        std::lock_guard lock(impl_->mutex);
        impl_->done = true;
    }
    impl_->wake.notify_all();
    if (impl_->thread.joinable()) impl_->thread.join();
}

void reloadSecrets(std::string_view component, std::vector<Secret> secrets,
                   const std::function<Result<void>()>& reload_tls) {
    notifyReloading();
    bool all = true;
    for (auto& secret : secrets) {
        if (auto r = secret.reload(); !r) {
            all = false;
            log::warn(component, "reload: kept the old token", {{"error", r.error().describe()}});
        }
    }
    if (reload_tls) {
        if (auto r = reload_tls(); !r) {
            all = false;
            log::warn(component, "reload: kept the old TLS files",
                      {{"error", r.error().describe()}});
        }
    }
    log::info(component, all ? "reloaded" : "reloaded with errors");
    notifyReady("reloaded");
}

}  // namespace hoist::daemon
