#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "core/daemon.hpp"
#include "core/error.hpp"
#include "core/http_server.hpp"
#include "repo_server/repository.hpp"

namespace hoist::repo_server {

struct Options {
    fs::path root;
    std::string host = "127.0.0.1";
    int port = 8070;
    /// Holds the bearer token for uploads; empty: uploads are refused (read-only server).
    fs::path token_file;
    /// Both set: HTTPS.
    std::string tls_cert;
    std::string tls_key;
    /// Mutual TLS: every client presents a certificate signed by this CA (PEM).
    std::string tls_client_ca;
    /// Largest package body accepted by PUT /packages/<sha256>.
    std::uint64_t max_upload_bytes = 8ull << 30;
    /// Connections served at once (each keep-alive connection holds a thread).
    std::size_t threads = 64;
    bool access_log = true;
};

/// Largest release manifest or signature body.
inline constexpr std::size_t kMaxReleaseBytes = 4u << 20;

/// Builds the HTTP server over a repository: GET/HEAD /packages/<sha256> and
/// /releases/<file> (single byte ranges, ETag, If-None-Match), PUT of both with the bearer
/// token, /healthz and /metrics. The token is read from options.token_file here (Invalid
/// when the file is empty, NotFound when absent); `token_out`, when given, receives it as a
/// secret whose reload() (SIGHUP) the routes see. Call bind() and run() on the result.
Result<std::unique_ptr<http::Server>> makeServer(const Options& options,
                                                 std::shared_ptr<Repository> repository,
                                                 daemon::Secret* token_out = nullptr);

/// `repo-server --root DIR --listen ADDR ...`: serves until SIGTERM or SIGINT. Returns the
/// exit code (hoist::exitCode of the failure, 0 after a signal).
int runCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace hoist::repo_server
