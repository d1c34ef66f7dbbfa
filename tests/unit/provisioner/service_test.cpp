#include "provisioner/service.hpp"

#include "testing.hpp"

namespace hoist::provisioner {
namespace {

using hoist::testing::TempFolder;

// Records what the service asks; fails launches on demand.
class FakeBackend final : public Backend {
public:
    std::string name() const override { return "fake"; }
    Result<std::vector<NodeRecord>> launch(const LaunchSpec& spec) override {
        launches.push_back(spec);
        if (fail_next) {
            fail_next = false;
            return fail(Errc::Busy, "ec2 RunInstances: InsufficientInstanceCapacity: none left");
        }
        std::vector<NodeRecord> out;
        for (int i = 0; i < spec.count; ++i) {
            NodeRecord n;
            n.id = "n-" + spec.client_token.substr(6, 6) + "-" + std::to_string(i);
            n.state = "pending";
            out.push_back(n);
        }
        return out;
    }
    Result<void> refresh(std::vector<NodeRecord>& nodes) override {
        ++refreshes;
        for (auto& n : nodes)
            if (n.state == "pending") n.state = "running";
        return ok();
    }
    Result<void> terminate(NodeRecord& node) override {
        terminated.push_back(node.id);
        node.state = "terminated";
        return ok();
    }
    std::vector<LaunchSpec> launches;
    std::vector<std::string> terminated;
    bool fail_next = false;
    int refreshes = 0;
};

class ServiceTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto opened = StateStore::open(tmp_ / "state.db");
        ASSERT_OK(opened);
        store_ = std::move(*opened);
        service_ = std::make_unique<Service>(*store_, backend_,
                                             ServiceOptions{.default_release = "1.0.0"});
    }
    TempFolder tmp_;
    std::unique_ptr<StateStore> store_;
    FakeBackend backend_;
    std::unique_ptr<Service> service_;
};

TEST_F(ServiceTest, SameKeyReplaysWithoutLaunchingAgain) {
    auto first = service_->add({"agent", 2, "key-1", ""});
    ASSERT_OK(first);
    EXPECT_TRUE(first->created);
    ASSERT_EQ(first->nodes.size(), 2u);
    EXPECT_EQ(first->nodes[0].release, "1.0.0");
    EXPECT_EQ(first->nodes[0].backend, "fake");
    auto again = service_->add({"agent", 2, "key-1", ""});
    ASSERT_OK(again);
    EXPECT_FALSE(again->created);
    ASSERT_EQ(again->nodes.size(), 2u);
    EXPECT_EQ(again->nodes[0].id, first->nodes[0].id);
    EXPECT_EQ(backend_.launches.size(), 1u);
}

TEST_F(ServiceTest, SameKeyWithOtherParametersIsAConflict) {
    ASSERT_OK(service_->add({"agent", 2, "key-1", ""}));
    ASSERT_ERROR(service_->add({"agent", 3, "key-1", ""}), Errc::Conflict,
                 "idempotency key 'key-1' was used for role agent, count 2, release 1.0.0; this "
                 "request asks for role agent, count 3, release 1.0.0");
    EXPECT_EQ(backend_.launches.size(), 1u);
}

TEST_F(ServiceTest, FailedLaunchIsRetriedWithTheSameClientToken) {
    backend_.fail_next = true;
    ASSERT_ERROR(service_->add({"agent", 1, "key-2", ""}), Errc::Busy,
                 "InsufficientInstanceCapacity");
    auto stored = store_->findRequest("key-2");
    ASSERT_OK(stored);
    EXPECT_EQ((*stored)->state, "failed");
    auto nodes = store_->nodes(true);
    ASSERT_OK(nodes);
    EXPECT_TRUE(nodes->empty());
    ASSERT_OK(service_->add({"agent", 1, "key-2", ""}));
    ASSERT_EQ(backend_.launches.size(), 2u);
    EXPECT_EQ(backend_.launches[0].client_token, backend_.launches[1].client_token);
}

TEST_F(ServiceTest, RefusesBadRequestsAndChangesNothing) {
    ASSERT_ERROR(service_->add({"agnet", 1, "k", ""}), Errc::Invalid,
                 "unknown role 'agnet' (roles: master, agent); did you mean 'agent'?");
    ASSERT_ERROR(service_->add({"agent", 21, "k", ""}), Errc::Invalid,
                 "count must be between 1 and 20, got 21");
    ASSERT_ERROR(service_->add({"agent", 1, "bad key!", ""}), Errc::Invalid,
                 "idempotency key 'bad key!' must be 1 to 128 characters");
    ASSERT_ERROR(service_->add({"agent", 1, "k", "../../../etc/passwd"}), Errc::Invalid,
                 "field 'release': version '../../../etc/passwd' may hold only A-Z, a-z, 0-9 and "
                 "'.', '_', '+', '~', '-'");
    EXPECT_TRUE(backend_.launches.empty());
    auto nodes = store_->nodes(true);
    ASSERT_OK(nodes);
    EXPECT_TRUE(nodes->empty());
    ASSERT_ERROR(AddRequest::fromJson(R"({"role":"agent","cout":2})"), Errc::Invalid,
                 "unknown field 'cout' (did you mean 'count'?)");
    ASSERT_ERROR(AddRequest::fromJson(R"({"count":2})"), Errc::Invalid, "field 'role'");
}

TEST_F(ServiceTest, ListRefreshesAndRemoveIsIdempotent) {
    auto added = service_->add({"master", 1, "k-m", "2.0.0"});
    ASSERT_OK(added);
    std::string id = added->nodes.at(0).id;
    auto listed = service_->list(false);
    ASSERT_OK(listed);
    ASSERT_EQ(listed->size(), 1u);
    EXPECT_EQ((*listed)[0].state, "running");
    EXPECT_EQ((*listed)[0].release, "2.0.0");
    auto stored = store_->findNode(id);
    EXPECT_EQ((*stored)->state, "running");
    auto removed = service_->remove(id);
    ASSERT_OK(removed);
    EXPECT_EQ(removed->state, "terminated");
    ASSERT_OK(service_->remove(id));
    EXPECT_EQ(backend_.terminated.size(), 1u);
    EXPECT_TRUE(service_->list(false)->empty());
    EXPECT_EQ(service_->list(true)->size(), 1u);
    ASSERT_ERROR(service_->remove("nope"), Errc::NotFound, "no node 'nope'");
}

}  // namespace
}  // namespace hoist::provisioner
