// repo-server and `pkgmgr publish`, end to end: the real binaries on loopback ports, libcurl
// (core http::Client) and the real `curl` command.
#include <atomic>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "core/crypto.hpp"
#include "core/http_client.hpp"
#include "testing.hpp"

namespace hoist::testing {
namespace {

const std::string kToken = "upload-token-123";

std::string randomBytes(std::size_t n) {
    std::string hex = crypto::randomHex(n / 2 + 1);
    std::string out;
    out.reserve(n);
    for (std::size_t i = 0; out.size() < n; ++i)
        out += static_cast<char>(hex[i % hex.size()] ^ static_cast<char>(i * 31));
    return out;
}

std::size_t countEntries(const fs::path& dir) {
    std::size_t n = 0;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) ++n;
    return n;
}

std::string releaseJson(const std::string& version, const std::string& sha, std::size_t size,
                        const std::string& extra = "") {
    return R"({"version": ")" + version +
           R"(", "upgrade_from": ["1.*"], "roles": {"master": {"packages": [)" +
           R"({"id": "mesos--)" + version + R"(", "sha256": ")" + sha + R"(", "size": )" +
           std::to_string(size) + "}]}}" + extra + "}";
}

class RepoServerTest : public ::testing::Test {
protected:
    void SetUp() override {
        root_ = tmp_ / "repo";
        writeFile(tmp_ / "token", kToken + "\n");
    }

    void start(std::vector<std::string> extra = {}) {
        std::vector<std::string> argv{REPO_SERVER_BIN,
                                      "--root",
                                      root_.string(),
                                      "--listen",
                                      "127.0.0.1:0",
                                      "--port-file",
                                      (tmp_ / "port").string(),
                                      "--token-file",
                                      (tmp_ / "token").string()};
        argv.insert(argv.end(), extra.begin(), extra.end());
        server_ = std::make_unique<ServerProcess>(argv, tmp_ / "port", tmp_ / "server.log");
        ASSERT_TRUE(server_->started());
        base_ = server_->url();
    }

    // Writes bytes to a file and returns its sha256.
    std::string makePackage(const std::string& name, const std::string& bytes) {
        writeFile(tmp_ / name, bytes);
        return crypto::sha256Hex(bytes);
    }

    Result<http::Response> put(const std::string& path, const std::string& body,
                               const std::string& token = kToken) {
        http::Request r{.method = "PUT", .url = base_ + path, .headers = {}, .body = body};
        if (!token.empty()) r.headers.push_back(http::bearer(token));
        return client_.send(r);
    }

    Result<http::Response> get(const std::string& path, std::vector<http::Header> headers = {},
                               const std::string& method = "GET") {
        return client_.send({.method = method, .url = base_ + path, .headers = std::move(headers)});
    }

    process::Outcome curl(std::vector<std::string> args) {
        args.insert(args.begin(), {"curl", "-sS"});
        return run(args);
    }

    TempFolder tmp_;
    fs::path root_;
    std::unique_ptr<ServerProcess> server_;
    std::string base_;
    http::Client client_;
};

TEST_F(RepoServerTest, UploadThenHeadGetAndConditionalGet) {
    start();
    std::string bytes = randomBytes(300000);
    std::string sha = makePackage("p.tar", bytes);
    auto created =
        client_.sendFile("PUT", base_ + "/packages/" + sha, {http::bearer(kToken)}, tmp_ / "p.tar");
    ASSERT_OK(created);
    EXPECT_EQ(created->status, 201) << created->body;
    EXPECT_NE(created->body.find("\"created\":true"), std::string::npos) << created->body;
    EXPECT_EQ(readFile(root_ / "packages" / sha), bytes);

    auto head = get("/packages/" + sha, {}, "HEAD");
    ASSERT_OK(head);
    EXPECT_EQ(head->status, 200);
    EXPECT_EQ(head->header("Content-Length"), std::to_string(bytes.size()));
    EXPECT_EQ(head->header("ETag"), "\"" + sha + "\"");
    EXPECT_EQ(head->header("Accept-Ranges"), "bytes");
    EXPECT_TRUE(head->body.empty());

    auto body = get("/packages/" + sha);
    ASSERT_OK(body);
    EXPECT_EQ(body->status, 200);
    EXPECT_EQ(body->header("Content-Type"), "application/octet-stream");
    EXPECT_TRUE(body->body == bytes);

    auto unchanged = get("/packages/" + sha, {{"If-None-Match", "\"" + sha + "\""}});
    ASSERT_OK(unchanged);
    EXPECT_EQ(unchanged->status, 304);
    EXPECT_TRUE(unchanged->body.empty());
    EXPECT_EQ(unchanged->header("ETag"), "\"" + sha + "\"");
    auto other = get("/packages/" + sha, {{"If-None-Match", "\"0000\", W/\"1111\""}});
    ASSERT_OK(other);
    EXPECT_EQ(other->status, 200);
    EXPECT_EQ(other->body.size(), bytes.size());

    auto missing = get("/packages/" + std::string(64, 'a'));
    ASSERT_OK(missing);
    EXPECT_EQ(missing->status, 404);
    EXPECT_EQ(missing->body,
              R"({"error":"package )" + std::string(64, 'a') + R"( is not in the repository"})");
}

TEST_F(RepoServerTest, ByteRanges) {
    start();
    std::string bytes = randomBytes(100000);
    std::string sha = makePackage("p.tar", bytes);
    ASSERT_OK(put("/packages/" + sha, bytes));
    auto part = get("/packages/" + sha, {{"Range", "bytes=10-19"}});
    ASSERT_OK(part);
    EXPECT_EQ(part->status, 206);
    EXPECT_EQ(part->body, bytes.substr(10, 10));
    EXPECT_EQ(part->header("Content-Range"), "bytes 10-19/100000");
    EXPECT_EQ(part->header("Content-Length"), "10");
    auto suffix = get("/packages/" + sha, {{"Range", "bytes=-5"}});
    ASSERT_OK(suffix);
    EXPECT_EQ(suffix->status, 206);
    EXPECT_EQ(suffix->body, bytes.substr(bytes.size() - 5));
    auto open_end = get("/packages/" + sha, {{"Range", "bytes=99990-200000"}});
    ASSERT_OK(open_end);
    EXPECT_EQ(open_end->status, 206);
    EXPECT_EQ(open_end->body, bytes.substr(99990));
    EXPECT_EQ(open_end->header("Content-Range"), "bytes 99990-99999/100000");
    auto past_end = get("/packages/" + sha, {{"Range", "bytes=100000-"}});
    ASSERT_OK(past_end);
    EXPECT_EQ(past_end->status, 416);
    EXPECT_EQ(past_end->header("Content-Range"), "bytes */100000");
    EXPECT_EQ(past_end->body,
              R"({"error":"range not satisfiable: 'bytes=100000-' for 100000 bytes"})");
    // Several ranges: the whole file (RFC 9110 lets a server ignore Range).
    auto several = get("/packages/" + sha, {{"Range", "bytes=0-1,5-9"}});
    ASSERT_OK(several);
    EXPECT_EQ(several->status, 200);
    EXPECT_EQ(several->body.size(), bytes.size());
    // If-Range with another entity tag: the whole file.
    auto stale = get("/packages/" + sha, {{"Range", "bytes=0-9"}, {"If-Range", "\"other\""}});
    ASSERT_OK(stale);
    EXPECT_EQ(stale->status, 200);
    auto fresh = get("/packages/" + sha, {{"Range", "bytes=0-9"}, {"If-Range", "\"" + sha + "\""}});
    ASSERT_OK(fresh);
    EXPECT_EQ(fresh->status, 206);
    // A Range header on a JSON error reply changes nothing.
    auto missing = get("/packages/" + std::string(64, 'b'), {{"Range", "bytes=5-"}});
    ASSERT_OK(missing);
    EXPECT_EQ(missing->status, 404);
    EXPECT_EQ(missing->body.front(), '{');
}

TEST_F(RepoServerTest, CurlCommandResumesHeadsAndRevalidates) {
    start();
    std::string bytes = randomBytes(2 << 20);
    std::string sha = makePackage("p.tar", bytes);
    auto upload =
        curl({"-f", "-o", "/dev/null", "-w", "%{http_code}", "-T", (tmp_ / "p.tar").string(), "-H",
              "Authorization: Bearer " + kToken, base_ + "/packages/" + sha});
    EXPECT_EQ(upload.exit_code, 0) << upload.err;
    EXPECT_EQ(upload.out, "201");

    // A partial download, then `curl -C -` finishes it with a Range request.
    writeFile(tmp_ / "out", bytes.substr(0, 700000));
    auto resumed = curl({"-f", "-C", "-", "-o", (tmp_ / "out").string(), "-w", "%{http_code}",
                         base_ + "/packages/" + sha});
    EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
    EXPECT_EQ(resumed.out, "206");
    EXPECT_TRUE(readFile(tmp_ / "out") == bytes);
    // Resuming a complete file: curl asks past the end, gets 416 and knows it is done.
    auto done = curl({"-C", "-", "-o", (tmp_ / "out").string(), "-w", "%{http_code}",
                      base_ + "/packages/" + sha});
    EXPECT_EQ(done.exit_code, 0) << done.err;
    EXPECT_EQ(done.out, "416");
    EXPECT_TRUE(readFile(tmp_ / "out") == bytes);

    auto head = curl({"-I", base_ + "/packages/" + sha});
    EXPECT_EQ(head.exit_code, 0) << head.err;
    EXPECT_NE(head.out.find("HTTP/1.1 200 OK"), std::string::npos) << head.out;
    EXPECT_NE(head.out.find("Content-Length: " + std::to_string(bytes.size())), std::string::npos)
        << head.out;
    EXPECT_NE(head.out.find("ETag: \"" + sha + "\""), std::string::npos) << head.out;

    auto conditional = curl({"-o", "/dev/null", "-w", "%{http_code} %{size_download}", "-H",
                             "If-None-Match: \"" + sha + "\"", base_ + "/packages/" + sha});
    EXPECT_EQ(conditional.out, "304 0");
    // curl's own etag round trip: save it, then revalidate with it.
    auto saved = curl(
        {"-o", "/dev/null", "--etag-save", (tmp_ / "etag").string(), base_ + "/packages/" + sha});
    EXPECT_EQ(saved.exit_code, 0) << saved.err;
    auto compared = curl({"-o", "/dev/null", "-w", "%{http_code}", "--etag-compare",
                          (tmp_ / "etag").string(), base_ + "/packages/" + sha});
    EXPECT_EQ(compared.out, "304");
}

TEST_F(RepoServerTest, WrongOrMissingTokenIsRefusedAndWritesNothing) {
    start();
    std::string bytes = randomBytes(200000);
    std::string sha = makePackage("p.tar", bytes);
    auto wrong = put("/packages/" + sha, bytes, "not-the-token");
    ASSERT_OK(wrong);
    EXPECT_EQ(wrong->status, 401);
    EXPECT_EQ(wrong->body, R"({"error":"wrong bearer token"})");
    auto missing = put("/packages/" + sha, bytes, "");
    ASSERT_OK(missing);
    EXPECT_EQ(missing->status, 401);
    EXPECT_EQ(missing->body, R"({"error":"missing bearer token"})");
    auto release = put("/releases/1.0.0.json", releaseJson("1.0.0", sha, bytes.size()), "nope");
    ASSERT_OK(release);
    EXPECT_EQ(release->status, 401);
    auto with_curl = curl({"-o", "/dev/null", "-w", "%{http_code}", "-T", (tmp_ / "p.tar").string(),
                           "-H", "Authorization: Bearer wrong", base_ + "/packages/" + sha});
    EXPECT_EQ(with_curl.out, "401");
    EXPECT_EQ(countEntries(root_ / "packages"), 0u);
    EXPECT_EQ(countEntries(root_ / "releases"), 0u);
    EXPECT_EQ(countEntries(root_ / ".tmp"), 0u);
    // The token never reaches the log.
    EXPECT_EQ(readFile(tmp_ / "server.log").find(kToken), std::string::npos);
    // The connection still works after a refused upload (the body was read, not left behind).
    auto health = get("/healthz");
    ASSERT_OK(health);
    EXPECT_EQ(health->status, 200);
}

TEST_F(RepoServerTest, ReadOnlyWithoutTokenFile) {
    std::vector<std::string> argv{
        REPO_SERVER_BIN, "--root",      root_.string(),          "--listen",
        "127.0.0.1:0",   "--port-file", (tmp_ / "port").string()};
    server_ = std::make_unique<ServerProcess>(argv, tmp_ / "port", tmp_ / "server.log");
    ASSERT_TRUE(server_->started());
    base_ = server_->url();
    auto refused = put("/packages/" + crypto::sha256Hex("x"), "x");
    ASSERT_OK(refused);
    EXPECT_EQ(refused->status, 401);
    EXPECT_EQ(refused->body,
              R"({"error":"uploads are disabled: repo-server was started without --token-file"})");
}

TEST_F(RepoServerTest, PathTraversalIsRefused) {
    writeFile(tmp_ / "secret", "do not serve");
    start();
    for (const std::string path :
         {"/packages/../secret", "/packages/../../secret", "/packages/%2e%2e%2fsecret",
          "/packages/%2e%2e%2f%2e%2e%2fsecret", "/releases/..%2f..%2fsecret",
          "/releases/%2e%2e%2f%2e%2e%2fsecret", "/releases/../../secret", "/releases/.tmp",
          "/packages/%2E%2E/%2E%2E/secret", "/../secret"}) {
        auto r = curl(
            {"--path-as-is", "-o", (tmp_ / "got").string(), "-w", "%{http_code}", base_ + path});
        EXPECT_EQ(r.out, "404") << path;
        EXPECT_EQ(readFile(tmp_ / "got").find("do not serve"), std::string::npos) << path;
    }
    std::string release = releaseJson("1.0.0", std::string(64, 'c'), 1);
    for (const std::string path : {"/releases/..%2f..%2fevil.json", "/releases/%2e%2e%2fevil.json",
                                   "/releases/.evil.json", "/releases/index.json"}) {
        auto r = put(path, release);
        ASSERT_OK(r);
        EXPECT_EQ(r->status, 400) << path << " " << r->body;
    }
    auto pkg = put("/packages/..%2f..%2fevil", "bytes");
    ASSERT_OK(pkg);
    EXPECT_EQ(pkg->status, 400);
    EXPECT_EQ(
        pkg->body,
        R"({"error":"'../../evil' is not a package name: upload to /packages/<sha256 of the bytes>"})");
    EXPECT_FALSE(fs::exists(tmp_ / "evil.json"));
    EXPECT_FALSE(fs::exists(tmp_ / "evil"));
    EXPECT_FALSE(fs::exists(root_ / "evil.json"));
    EXPECT_EQ(countEntries(root_ / "packages"), 0u);
    EXPECT_EQ(countEntries(root_ / "releases"), 0u);
}

TEST_F(RepoServerTest, WrongHashIsRefusedAndNothingKept) {
    start();
    std::string bytes = randomBytes(1 << 20);
    std::string wrong_name = crypto::sha256Hex("something else");
    auto r = put("/packages/" + wrong_name, bytes);
    ASSERT_OK(r);
    EXPECT_EQ(r->status, 422);
    EXPECT_EQ(r->body, R"({"error":"package upload: the body hashes to )" +
                           crypto::sha256Hex(bytes) + ", not to its name " + wrong_name +
                           R"(; nothing was stored"})");
    EXPECT_EQ(countEntries(root_ / "packages"), 0u);
    EXPECT_EQ(countEntries(root_ / ".tmp"), 0u);
    auto get_it = get("/packages/" + wrong_name);
    ASSERT_OK(get_it);
    EXPECT_EQ(get_it->status, 404);
}

TEST_F(RepoServerTest, ConcurrentUploadsOfOnePackage) {
    start();
    std::string bytes = randomBytes(4 << 20);
    std::string sha = makePackage("p.tar", bytes);
    constexpr int kUploads = 8;
    std::vector<long> statuses(kUploads, 0);
    std::vector<std::thread> threads;
    for (int i = 0; i < kUploads; ++i) {
        threads.emplace_back([&, i] {
            http::Client client;
            auto r = client.sendFile("PUT", base_ + "/packages/" + sha, {http::bearer(kToken)},
                                     tmp_ / "p.tar");
            statuses[static_cast<std::size_t>(i)] = r ? r->status : -1;
        });
    }
    for (auto& t : threads) t.join();
    int created = 0;
    for (long s : statuses) {
        EXPECT_TRUE(s == 200 || s == 201) << s;
        created += s == 201 ? 1 : 0;
    }
    EXPECT_GE(created, 1);
    EXPECT_TRUE(readFile(root_ / "packages" / sha) == bytes);
    EXPECT_EQ(countEntries(root_ / "packages"), 1u);
    EXPECT_EQ(countEntries(root_ / ".tmp"), 0u);
}

TEST_F(RepoServerTest, UploadLimit) {
    start({"--max-upload-bytes", "1000"});
    std::string bytes = randomBytes(5000);
    std::string sha = crypto::sha256Hex(bytes);
    auto r = put("/packages/" + sha, bytes);
    ASSERT_OK(r);
    EXPECT_EQ(r->status, 413);
    EXPECT_EQ(r->body, R"({"error":"the body of 5000 bytes exceeds the maximum of 1000 bytes"})");
    EXPECT_EQ(countEntries(root_ / "packages"), 0u);
    EXPECT_EQ(countEntries(root_ / ".tmp"), 0u);
}

TEST_F(RepoServerTest, LargeBodiesGoOnlyToUploadRoutes) {
    start();
    // Only the PUT routes stream their bodies; elsewhere a large body is refused unread.
    auto r = client_.send(
        {.method = "POST", .url = base_ + "/healthz", .body = std::string(200000, 'x')});
    ASSERT_OK(r);
    EXPECT_EQ(r->status, 413);
    EXPECT_EQ(r->body,
              R"({"error":"request body of 200000 bytes exceeds the limit of 65536 bytes"})");
}

TEST_F(RepoServerTest, InvalidReleasesAreRefused) {
    start();
    std::string bytes = randomBytes(1000);
    std::string sha = makePackage("p.tar", bytes);
    ASSERT_OK(put("/packages/" + sha, bytes));
    struct Case {
        std::string path;
        std::string body;
        long status;
        std::string error;
    };
    std::vector<Case> cases{
        {"/releases/2.0.0.json", "{not json", 400, "release: invalid JSON at offset 1"},
        {"/releases/2.0.0.json", R"({"version": "2.0.0"})", 400,
         "release 2.0.0: field 'roles' is required"},
        {"/releases/2.0.1.json", releaseJson("2.0.0", sha, bytes.size()), 400,
         "release file '2.0.1.json' holds release 2.0.0: the file name must be the release's "
         "version"},
        {"/releases/2.0.0.json", releaseJson("2.0.0", std::string(64, 'd'), 10), 400,
         "release 2.0.0, role 'master': package 'mesos--2.0.0' (" + std::string(64, 'd') +
             ") is not in the repository; publish the package first"},
        {"/releases/2.0.0.json", releaseJson("2.0.0", sha, 999), 400,
         "release 2.0.0, role 'master': package 'mesos--2.0.0' is 1000 bytes in the repository, "
         "not 999"},
        {"/releases/2.0.0.json.sig", crypto::base64Encode(std::string(64, 'x')), 409,
         "release 2.0.0 is not published: upload 2.0.0.json before its signature"},
    };
    for (const auto& c : cases) {
        auto r = put(c.path, c.body);
        ASSERT_OK(r);
        EXPECT_EQ(r->status, c.status) << c.path << " " << r->body;
        EXPECT_NE(r->body.find(c.error), std::string::npos) << r->body;
    }
    EXPECT_EQ(countEntries(root_ / "releases"), 0u);
}

TEST_F(RepoServerTest, ReleasesAreStoredSignedAndIndexed) {
    start();
    std::string bytes = randomBytes(1000);
    std::string sha = makePackage("p.tar", bytes);
    ASSERT_OK(put("/packages/" + sha, bytes));
    for (const std::string v : {"1.10.0", "1.2.0", "1.10.0-rc.1", "0.9"}) {
        auto r = put("/releases/" + v + ".json", releaseJson(v, sha, bytes.size()));
        ASSERT_OK(r);
        EXPECT_EQ(r->status, 201) << r->body;
    }
    auto index = get("/releases/index.json");
    ASSERT_OK(index);
    EXPECT_EQ(index->status, 200);
    EXPECT_EQ(index->body, "{\"versions\":[\"0.9\",\"1.2.0\",\"1.10.0-rc.1\",\"1.10.0\"]}\n");
    EXPECT_EQ(index->header("Content-Type"), "application/json");

    std::string manifest = releaseJson("1.2.0", sha, bytes.size());
    auto again = put("/releases/1.2.0.json", manifest);
    ASSERT_OK(again);
    EXPECT_EQ(again->status, 200);
    auto changed =
        put("/releases/1.2.0.json", releaseJson("1.2.0", sha, bytes.size(), R"(, "notes": "x")"));
    ASSERT_OK(changed);
    EXPECT_EQ(changed->status, 409);
    EXPECT_EQ(
        changed->body,
        R"({"error":"release 1.2.0 is already published with other content; releases are immutable, publish a new version"})");
    EXPECT_EQ(readFile(root_ / "releases" / "1.2.0.json"), manifest);

    std::string sig = crypto::base64Encode(std::string(64, 's'));
    auto signed_ = put("/releases/1.2.0.json.sig", sig);
    ASSERT_OK(signed_);
    EXPECT_EQ(signed_->status, 201);
    auto bad_sig = put("/releases/1.2.0.json.sig", "bm90IGEgc2lnbmF0dXJl");
    ASSERT_OK(bad_sig);
    EXPECT_EQ(bad_sig->status, 400);
    EXPECT_EQ(
        bad_sig->body,
        R"({"error":"release 1.2.0: a signature must be the base64 of a 64-byte Ed25519 signature"})");
    auto served = get("/releases/1.2.0.json.sig");
    ASSERT_OK(served);
    EXPECT_EQ(served->body, sig);
    auto manifest_get = get("/releases/1.2.0.json");
    ASSERT_OK(manifest_get);
    EXPECT_EQ(manifest_get->body, manifest);
    std::string etag = "\"" + crypto::sha256Hex(manifest) + "\"";
    EXPECT_EQ(manifest_get->header("ETag"), etag);
    auto not_modified = get("/releases/1.2.0.json", {{"If-None-Match", etag}});
    ASSERT_OK(not_modified);
    EXPECT_EQ(not_modified->status, 304);
}

TEST_F(RepoServerTest, MetricsAndHealth) {
    start();
    std::string bytes = randomBytes(1000);
    std::string sha = makePackage("p.tar", bytes);
    ASSERT_OK(put("/packages/" + sha, bytes));
    ASSERT_OK(get("/packages/" + sha));
    ASSERT_OK(get("/packages/" + std::string(64, 'e')));
    auto health = get("/healthz");
    ASSERT_OK(health);
    EXPECT_EQ(health->status, 200);
    auto metrics = get("/metrics");
    ASSERT_OK(metrics);
    for (const std::string line :
         {"hoist_http_requests_total{route=\"/packages/{path}\",method=\"GET\",status=\"200\"} 1",
          "hoist_http_requests_total{route=\"/packages/{path}\",method=\"GET\",status=\"404\"} 1",
          "hoist_http_requests_total{route=\"/packages/{path}\",method=\"PUT\",status=\"201\"} 1",
          "hoist_repo_uploads_total{kind=\"package\",outcome=\"created\"} 1",
          "hoist_repo_upload_bytes_total{kind=\"package\"} 1000", "hoist_repo_packages 1"})
        EXPECT_NE(metrics->body.find(line), std::string::npos) << line << "\n" << metrics->body;
    // One access log line per request.
    EXPECT_TRUE(waitFor(
        [&] {
            return readFile(tmp_ / "server.log").find("method=GET path=/metrics status=200") !=
                   std::string::npos;
        },
        std::chrono::seconds(5)));
    EXPECT_NE(readFile(tmp_ / "server.log")
                  .find("method=GET path=/packages/" + sha + " status=200 bytes=1000"),
              std::string::npos);
}

TEST_F(RepoServerTest, ServesHttps) {
    if (process::findProgram("openssl").empty()) GTEST_SKIP() << "no openssl command";
    auto made = run({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                     (tmp_ / "key.pem").string(), "-out", (tmp_ / "cert.pem").string(), "-days",
                     "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"});
    ASSERT_EQ(made.exit_code, 0) << made.err;
    start({"--tls-cert", (tmp_ / "cert.pem").string(), "--tls-key", (tmp_ / "key.pem").string()});
    std::string https = "https://127.0.0.1:" + std::to_string(server_->port());
    std::string bytes = randomBytes(50000);
    std::string sha = makePackage("p.tar", bytes);
    auto up = curl({"--cacert", (tmp_ / "cert.pem").string(), "-o", "/dev/null", "-w",
                    "%{http_code}", "-T", (tmp_ / "p.tar").string(), "-H",
                    "Authorization: Bearer " + kToken, https + "/packages/" + sha});
    EXPECT_EQ(up.out, "201") << up.err;
    auto down = curl({"--cacert", (tmp_ / "cert.pem").string(), "-r", "100-199", "-o",
                      (tmp_ / "part").string(), "-w", "%{http_code}", https + "/packages/" + sha});
    EXPECT_EQ(down.out, "206") << down.err;
    EXPECT_EQ(readFile(tmp_ / "part"), bytes.substr(100, 100));
    auto plain = curl({"-o", "/dev/null", "-w", "%{http_code}", base_ + "/healthz"});
    EXPECT_NE(plain.out, "200");
}

TEST_F(RepoServerTest, PublishEndToEnd) {
    start();
    std::string a = randomBytes(150000);
    std::string b = randomBytes(2 << 20);
    std::string sha_a = makePackage("a.tar.zst", a);
    std::string sha_b = makePackage("b.tar", b);
    writeFile(tmp_ / "rel" / "3.0.0.json",
              R"({"version": "3.0.0", "upgrade_from": ["2.*"], "roles": {)"
              R"("master": {"packages": [{"id": "mesos--3.0.0", "sha256": ")" +
                  sha_a +
                  R"(", "size": 150000}]}, "agent": {"packages": [{"id": "mesos--3.0.0", )"
                  R"("sha256": ")" +
                  sha_b + R"(", "size": )" + std::to_string(b.size()) + "}]}}}");
    std::string sig = crypto::base64Encode(std::string(64, 'q'));
    writeFile(tmp_ / "rel" / "3.0.0.json.sig", sig);
    // One package is there already: publish skips it after a HEAD.
    ASSERT_OK(put("/packages/" + sha_a, a));

    auto first = run({PKGMGR_BIN, "publish", "--repo", base_, "--token-file",
                      (tmp_ / "token").string(), (tmp_ / "a.tar.zst").string(),
                      (tmp_ / "b.tar").string(), (tmp_ / "rel" / "3.0.0.json").string()});
    EXPECT_EQ(first.exit_code, 0) << first.err;
    EXPECT_NE(first.out.find("present  package " + sha_a), std::string::npos) << first.out;
    EXPECT_NE(first.out.find("uploaded package " + sha_b), std::string::npos) << first.out;
    EXPECT_NE(first.out.find("uploaded release 3.0.0"), std::string::npos) << first.out;
    EXPECT_NE(first.out.find("uploaded signature 3.0.0"), std::string::npos) << first.out;
    EXPECT_TRUE(readFile(root_ / "packages" / sha_b) == b);
    EXPECT_EQ(readFile(root_ / "releases" / "3.0.0.json"), readFile(tmp_ / "rel" / "3.0.0.json"));
    EXPECT_EQ(readFile(root_ / "releases" / "3.0.0.json.sig"), sig);
    EXPECT_EQ(readFile(root_ / "releases" / "index.json"), "{\"versions\":[\"3.0.0\"]}\n");
    // The server saw a HEAD for each package and one PUT for the missing one only.
    auto metrics = get("/metrics");
    ASSERT_OK(metrics);
    EXPECT_NE(metrics->body.find("hoist_http_requests_total{route=\"/packages/"
                                 "{path}\",method=\"HEAD\",status=\"200\"} 1"),
              std::string::npos)
        << metrics->body;
    EXPECT_NE(metrics->body.find("hoist_http_requests_total{route=\"/packages/"
                                 "{path}\",method=\"PUT\",status=\"201\"} 2"),
              std::string::npos)
        << metrics->body;

    auto again = run({PKGMGR_BIN, "publish", "--json", "--repo", base_, "--token-file",
                      (tmp_ / "token").string(), (tmp_ / "a.tar.zst").string(),
                      (tmp_ / "b.tar").string(), (tmp_ / "rel" / "3.0.0.json").string()});
    EXPECT_EQ(again.exit_code, 0) << again.err;
    EXPECT_EQ(again.out.find("\"uploaded\":true"), std::string::npos) << again.out;
    EXPECT_NE(again.out.find("\"kind\":\"signature\""), std::string::npos) << again.out;

    writeFile(tmp_ / "bad-token", "wrong\n");
    std::string c = randomBytes(1000);
    std::string sha_c = makePackage("c.tar", c);
    auto refused = run({PKGMGR_BIN, "publish", "--repo", base_, "--token-file",
                        (tmp_ / "bad-token").string(), (tmp_ / "c.tar").string()});
    EXPECT_EQ(refused.exit_code, exitCode(Errc::Unauthorized));
    EXPECT_EQ(refused.err, "pkgmgr: publishing '" + (tmp_ / "c.tar").string() + "': PUT " + base_ +
                               "/packages/" + sha_c + ": HTTP 401: wrong bearer token\n");
    EXPECT_FALSE(fs::exists(root_ / "packages" / sha_c));

    writeFile(tmp_ / "broken.json", R"({"version": "4.0.0"})");
    auto broken =
        run({PKGMGR_BIN, "publish", "--repo", base_, "--token-file", (tmp_ / "token").string(),
             (tmp_ / "c.tar").string(), (tmp_ / "broken.json").string()});
    EXPECT_EQ(broken.exit_code, exitCode(Errc::Invalid));
    EXPECT_EQ(broken.err, "pkgmgr: " + (tmp_ / "broken.json").string() +
                              ": release 4.0.0: field 'roles' is required\n");
    // Nothing was uploaded: the files are checked before the first request.
    EXPECT_FALSE(fs::exists(root_ / "packages" / sha_c));
}

TEST(RepoServerCli, HelpAndBadArguments) {
    auto help = run({REPO_SERVER_BIN, "--help"});
    EXPECT_EQ(help.exit_code, 0);
    EXPECT_NE(help.out.find("--max-upload-bytes"), std::string::npos);
    auto no_root = run({REPO_SERVER_BIN, "--listen", "127.0.0.1:0"});
    EXPECT_EQ(no_root.exit_code, exitCode(Errc::Invalid));
    EXPECT_NE(no_root.err.find("--root is required"), std::string::npos) << no_root.err;
    TempFolder tmp;
    auto bad_listen =
        run({REPO_SERVER_BIN, "--root", tmp.path().string(), "--listen", "localhost"});
    EXPECT_EQ(bad_listen.exit_code, exitCode(Errc::Invalid));
    EXPECT_EQ(bad_listen.err,
              "repo-server: --listen 'localhost' must be HOST:PORT (for example 127.0.0.1:8070; "
              "port 0 picks a free one)\n");
    writeFile(tmp / "empty-token", "\n");
    auto empty_token = run({REPO_SERVER_BIN, "--root", tmp.path().string(), "--listen",
                            "127.0.0.1:0", "--token-file", (tmp / "empty-token").string()});
    EXPECT_EQ(empty_token.exit_code, exitCode(Errc::Invalid));
    EXPECT_EQ(empty_token.err,
              "repo-server: token file '" + (tmp / "empty-token").string() + "' is empty\n");
}

}  // namespace
}  // namespace hoist::testing
