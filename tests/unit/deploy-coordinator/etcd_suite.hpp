#pragma once
// The fixture of the tests against a real etcd member (Debian's etcd-server): one member per
// test suite, started once; each test gets a client and a prefix of its own. The tests skip
// when etcd is not installed.
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "core/crypto.hpp"
#include "core/http_client.hpp"
#include "etcd_client.hpp"
#include "etcd_cluster.hpp"
#include "testing.hpp"

namespace hoist::deploy_coordinator {

class EtcdSuite : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        if (hoist::testing::EtcdCluster::binary().empty()) return;
        folder_ = new hoist::testing::TempFolder();
        cluster_ = new hoist::testing::EtcdCluster(
            folder_->path(), 1, std::chrono::milliseconds(100), std::chrono::milliseconds(1000));
        ASSERT_TRUE(cluster_->waitHealthy()) << cluster_->logTails();
    }
    static void TearDownTestSuite() {
        delete cluster_;
        delete folder_;
        cluster_ = nullptr;
        folder_ = nullptr;
    }
    void SetUp() override {
        if (cluster_ == nullptr)
            GTEST_SKIP() << "etcd is not installed (apt-get install etcd-server)";
        etcd::ClientOptions o;
        o.endpoints = cluster_->endpoints();
        auto c = etcd::Client::create(o);
        ASSERT_TRUE(c.has_value()) << c.error().describe();
        client_ = std::move(*c);
        prefix_ = "/t" + crypto::randomHex(6) + "/";
    }

    /// Compacts the member's history up to `revision` (what a watch from before it then meets).
    static void compact(std::int64_t revision) {
        http::Client raw;
        http::Request request;
        request.method = "POST";
        request.url = cluster_->endpoints()[0] + "/v3/kv/compaction";
        request.body = "{\"revision\":\"" + std::to_string(revision) + "\"}";
        auto answer = raw.send(request);
        ASSERT_TRUE(answer.has_value()) << answer.error().describe();
        ASSERT_EQ(answer->status, 200) << answer->body;
    }

    static inline hoist::testing::TempFolder* folder_ = nullptr;
    static inline hoist::testing::EtcdCluster* cluster_ = nullptr;
    std::unique_ptr<etcd::Client> client_;
    std::string prefix_;
};

}  // namespace hoist::deploy_coordinator
