#include "pkgmgr/fetch.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <mutex>
#include <optional>
#include <thread>

#include "core/crypto.hpp"
#include "core/fd.hpp"
#include "core/files.hpp"
#include "core/log.hpp"
#include "pkgmgr/repository.hpp"

namespace hoist::pkgmgr {

namespace {

constexpr std::uint64_t kProgressStep = 4u << 20;

bool transientStatus(long status) {
    return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
           status == 504;
}

using Clock = std::chrono::steady_clock;

bool transientError(const Error& error) {
    return error.code == Errc::Network || error.code == Errc::Timeout;
}

bool diskFull(const Error& error) {
    return error.sys_errno == ENOSPC || error.sys_errno == EDQUOT;
}

/// A partial download: the bytes in downloads/<sha256>.part and their running hash.
class PartFile {
public:
    static Result<PartFile> open(const fs::path& path) {
        UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
        if (!fd.valid()) return failErrno(Errc::Io, errno, "cannot open '", path.string(), "'");
        PartFile part(path, std::move(fd));
        // What an earlier, interrupted fetch left is hashed first, then resumed.
        std::vector<char> buffer(1u << 20);
        while (true) {
            ssize_t n = ::read(part.fd_.get(), buffer.data(), buffer.size());
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return failErrno(Errc::Io, errno, "cannot read '", path.string(), "'");
            if (n == 0) break;
            part.hash_.update(buffer.data(), static_cast<std::size_t>(n));
            part.size_ += static_cast<std::uint64_t>(n);
        }
        return part;
    }

    std::uint64_t size() const { return size_; }

    Result<void> append(std::string_view data) {
        std::uint64_t at = size_;
        while (!data.empty()) {
            ssize_t n = ::pwrite(fd_.get(), data.data(), data.size(), static_cast<off_t>(at));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return failErrno(Errc::Io, errno, "cannot write '", path_.string(), "'");
            hash_.update(data.data(), static_cast<std::size_t>(n));
            data.remove_prefix(static_cast<std::size_t>(n));
            at += static_cast<std::uint64_t>(n);
            size_ = at;
        }
        return ok();
    }

    Result<void> restart() {
        if (::ftruncate(fd_.get(), 0) != 0) {
            return failErrno(Errc::Io, errno, "cannot truncate '", path_.string(), "'");
        }
        hash_ = crypto::Sha256();
        size_ = 0;
        return ok();
    }

    std::string finishHex() { return hash_.finishHex(); }

    /// Deletes the bytes (after a hash mismatch or a refused package).
    void discard() {
        fd_.reset();
        ::unlink(path_.c_str());
    }

private:
    PartFile(fs::path path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
    fs::path path_;
    UniqueFd fd_;
    crypto::Sha256 hash_;
    std::uint64_t size_ = 0;
};

/// One package with a client the calling thread owns.
Result<StoredPackage> fetchWith(http::Client& client, Store& store, const std::string& repo_url,
                                const std::string& sha256, const FetchOptions& options) {
    if (!crypto::isSha256Hex(sha256)) {
        return fail(Errc::Invalid, "'", sha256, "' is not a sha256 (64 lowercase hex digits)");
    }
    if (store.has(sha256)) return store.get(sha256);
    const auto& layout = store.layout();
    HOIST_TRY(files::makeDirs(layout.downloads()));
    auto part_path = layout.downloads() / (sha256 + ".part");
    HOIST_ASSIGN(auto part, PartFile::open(part_path));
    auto url = http::joinUrl(repo_url, repo_layout::package(sha256));
    if (part.size() > 0) {
        log::info("fetch", "resuming a partial download",
                  {{"sha256", sha256}, {"offset", part.size()}});
    }

    FetchProgress progress{.sha256 = sha256, .bytes = part.size(), .total = 0, .done = false};
    std::uint64_t last_report = 0;
    // The retry budget runs from the last attempt that brought bytes: a long download over a
    // flaky link keeps going, an outage longer than retry_for ends it.
    auto give_up_at = Clock::now() + options.retry_for;
    int failures = 0;
    while (true) {
        std::uint64_t start = part.size();
        http::StreamRequest request{
            .url = url,
            .headers = {},
            .offset = start,
            .connect_timeout = options.connect_timeout,
            .timeout = std::chrono::milliseconds(0),
            .low_speed_time = options.low_speed_time,
            .on_data = [&](std::string_view data) -> Result<void> {
                HOIST_TRY(part.append(data));
                progress.bytes = part.size();
                if (options.progress && progress.bytes - last_report >= kProgressStep) {
                    last_report = progress.bytes;
                    options.progress(progress);
                }
                return ok();
            }};
        auto result = client.stream(request);
        std::optional<Error> retryable;
        if (!result) {
            if (diskFull(result.error())) {
                // What it wrote would keep the disk full for every later operation.
                part.discard();
                return std::unexpected(withContext(
                    result.error(), detail::concat("fetching package ", sha256,
                                                   " (the partial download was removed)")));
            }
            if (!transientError(result.error())) return std::unexpected(result.error());
            retryable = result.error();
        } else if (result->range_ignored) {
            // The server sends whole files only: start over from the first byte, at once.
            log::warn("fetch", "the repository ignored the Range request; starting over",
                      {{"sha256", sha256}, {"offset", start}});
            HOIST_TRY(part.restart());
            continue;
        } else if (result->status == 416 && start > 0) {
            // The part already holds every byte; the hash below decides.
            break;
        } else if (result->status == 404) {
            part.discard();
            return fail(Errc::NotFound, "package ", sha256, " is not in the repository ", repo_url);
        } else if (result->status < 200 || result->status >= 300) {
            auto code =
                result->status == 401 || result->status == 403 ? Errc::Unauthorized : Errc::Network;
            auto error = Error{code,
                               detail::concat("fetching package ", sha256, " from ", repo_url,
                                              ": the repository answered ", result->status),
                               0};
            if (!transientStatus(result->status)) return std::unexpected(std::move(error));
            retryable = std::move(error);
        } else if (result->content_length && part.size() < start + *result->content_length) {
            retryable =
                Error{Errc::Network,
                      detail::concat("fetching package ", sha256, ": the transfer ended early"), 0};
        } else {
            break;
        }
        auto now = Clock::now();
        if (part.size() > start) {
            failures = 0;
            give_up_at = now + options.retry_for;
        }
        if (now >= give_up_at) {
            return std::unexpected(withContext(
                *retryable,
                detail::concat(
                    "fetching package ", sha256, " (gave up after retrying for ",
                    std::chrono::duration_cast<std::chrono::seconds>(options.retry_for).count(),
                    " s; the ", part.size(), " bytes received are kept in ",
                    part_path.filename().string(), " and the next fetch resumes)")));
        }
        log::warn("fetch", "retrying",
                  {{"sha256", sha256},
                   {"attempt", failures + 1},
                   {"offset", part.size()},
                   {"error", retryable->describe()}});
        auto pause = std::min<Clock::duration>(http::backoffDelay(options.retry, failures++),
                                               give_up_at - now);
        std::this_thread::sleep_for(pause);
    }

    auto got = part.finishHex();
    if (got != sha256) {
        part.discard();
        return fail(Errc::Corrupt, "package ", sha256,
                    ": the repository sent bytes whose sha256 is ", got);
    }
    auto stored = store.add(part_path, options.limits, sha256);
    // Verified bytes that are not an acceptable package are not kept either.
    part.discard();
    if (!stored) return std::unexpected(stored.error());
    if (options.progress) {
        progress.done = true;
        progress.total = progress.bytes;
        options.progress(progress);
    }
    return stored;
}

}  // namespace

Result<StoredPackage> fetchPackage(Store& store, const std::string& repo_url,
                                   const std::string& sha256, const FetchOptions& options) {
    http::Client client;
    auto fetched = fetchWith(client, store, repo_url, sha256, options);
    store.stampDeferred();
    return fetched;
}

Result<std::vector<StoredPackage>> fetchPackages(Store& store, const std::string& repo_url,
                                                 const std::vector<std::string>& sha256s,
                                                 const FetchOptions& options) {
    for (const auto& sha : sha256s) {
        if (!crypto::isSha256Hex(sha)) {
            return fail(Errc::Invalid, "'", sha, "' is not a sha256 (64 lowercase hex digits)");
        }
    }
    // Each distinct package once: two workers must never share a .part file.
    std::vector<std::string> unique;
    for (const auto& sha : sha256s) {
        if (std::find(unique.begin(), unique.end(), sha) == unique.end()) unique.push_back(sha);
    }
    std::vector<std::optional<StoredPackage>> results(unique.size());
    std::atomic<std::size_t> next{0};
    std::atomic<bool> stop{false};
    std::mutex mutex;
    std::optional<std::pair<std::size_t, Error>> first_error;

    auto worker = [&]() {
        http::Client client;
        while (!stop.load()) {
            std::size_t index = next.fetch_add(1);
            if (index >= unique.size()) return;
            auto r = fetchWith(client, store, repo_url, unique[index], options);
            if (r) {
                results[index] = std::move(*r);
                continue;
            }
            std::lock_guard lock(mutex);
            if (!first_error || index < first_error->first) first_error.emplace(index, r.error());
            stop.store(true);
        }
    };
    auto workers = std::clamp<std::size_t>(static_cast<std::size_t>(std::max(options.parallel, 1)),
                                           1, std::max<std::size_t>(unique.size(), 1));
    std::vector<std::thread> threads;
    threads.reserve(workers);
    for (std::size_t i = 0; i < workers; ++i) threads.emplace_back(worker);
    for (auto& t : threads) t.join();
    store.stampDeferred();  // what was fetched stays, whatever failed
    if (first_error) return std::unexpected(std::move(first_error->second));

    std::vector<StoredPackage> out;
    out.reserve(sha256s.size());
    for (const auto& sha : sha256s) {
        auto pos =
            static_cast<std::size_t>(std::find(unique.begin(), unique.end(), sha) - unique.begin());
        out.push_back(*results[pos]);
    }
    return out;
}

}  // namespace hoist::pkgmgr
