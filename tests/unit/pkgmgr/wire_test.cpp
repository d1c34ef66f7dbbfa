// The node<->coordinator messages (pkgmgr/wire.hpp): each one round-trips, ignores what a newer
// peer adds (the commands a node carries out refuse it instead), and refuses a missing or
// mistyped required field by name.

#include "pkgmgr/wire.hpp"

#include <functional>

#include <gtest/gtest.h>

#include "core/json.hpp"
#include "pkgmgr/status.hpp"
#include "testing.hpp"

namespace hoist::pkgmgr {
namespace {

using Parse = std::function<Result<std::string>(std::string_view)>;

template <class T>
Parse parser() {
    return [](std::string_view text) -> Result<std::string> {
        HOIST_ASSIGN(auto parsed, T::fromJson(text));
        return parsed.toJson();
    };
}

// `text` with its top-level member `key` removed, or set to `value` (JSON), or both.
std::string edit(const std::string& text, const std::string& key,
                 std::optional<std::string> value = std::nullopt) {
    auto doc = json::parseObject(text, "test");
    EXPECT_TRUE(doc.has_value());
    doc->RemoveMember(key.c_str());
    if (value) {
        auto v = json::parse(*value, "test value");
        EXPECT_TRUE(v.has_value());
        json::Value name(key.c_str(), doc->GetAllocator());
        json::Value copy(*v, doc->GetAllocator());
        doc->AddMember(name, copy, doc->GetAllocator());
    }
    return json::toString(*doc);
}

// The contract every message keeps; `sample` is a message as its sender writes it.
void checkContract(const Parse& parse, const std::string& sample, std::string_view ctx,
                   const std::vector<std::string>& required, bool command) {
    SCOPED_TRACE(sample);
    auto again = parse(sample);
    ASSERT_OK(again);
    EXPECT_EQ(*again, sample) << "toJson(fromJson(x)) differs from x";

    auto newer = edit(sample, "from_a_newer_peer", R"({"nested": [1, 2]})");
    if (command) {
        ASSERT_ERROR(parse(newer), Errc::Invalid,
                     detail::concat(ctx, ": unknown field 'from_a_newer_peer'"));
    } else {
        auto read = parse(newer);
        ASSERT_OK(read);
        EXPECT_EQ(*read, sample) << "an unknown field changed what was read";
    }

    std::string all_missing = sample;
    std::string names;
    for (const auto& key : required) {
        SCOPED_TRACE(key);
        ASSERT_ERROR(parse(edit(sample, key)), Errc::Invalid,
                     detail::concat(ctx, ": field '", key, "' is required"));
        ASSERT_ERROR(parse(edit(sample, key, "1.5")), Errc::Invalid,
                     detail::concat("field '", key, "' must be"));
        all_missing = edit(all_missing, key);
        names += detail::concat(names.empty() ? "" : ", ", "'", key, "'");
    }
    if (required.size() > 1)
        ASSERT_ERROR(parse(all_missing), Errc::Invalid,
                     detail::concat(ctx, ": fields ", names, " are required"));
}

Journal sampleJournal() {
    Journal j;
    j.operation = "op-1f";
    j.deployment = "d-7";
    j.report_to = "http://coordinator:8480";
    j.release = "2.0.0";
    j.from_generation = 4;
    j.to_generation = 5;
    j.state = "checking";
    j.started = "2026-11-22T10:00:00.000Z";
    j.updated = "2026-11-22T10:00:02.000Z";
    j.pid = 4242;
    j.steps = {{"stopping", "2026-11-22T10:00:00.000Z", ""},
               {"checking", "2026-11-22T10:00:02.000Z", "waiting for health"}};
    return j;
}

TEST(Wire, StatusPing) {
    StatusPing ping{.node = "agent-3",
                    .deployment = "d-42",
                    .seq = 7,
                    .state = "checking",
                    .from_generation = 4,
                    .to_generation = 5,
                    .release = "2.0.0",
                    .message = "",
                    .time = "2026-11-22T10:00:00.000Z"};
    checkContract(parser<StatusPing>(), ping.toJson(), "status ping", {"node", "seq", "state"},
                  false);
    ASSERT_ERROR(StatusPing::fromJson(R"({"node": "a", "seq": 1, "state": "dancing"})"),
                 Errc::Invalid, "status ping: field 'state' has the unknown value 'dancing'");
    ASSERT_ERROR(StatusPing::fromJson(R"({"node": "a", "seq": -1, "state": "healthy"})"),
                 Errc::Invalid, "field 'seq' must not be negative");
    EXPECT_FALSE(isTerminalState("checking"));
    EXPECT_TRUE(isTerminalState("rolled_back"));
}

TEST(Wire, Registration) {
    Registration r{.id = "agent-1",
                   .role = "agent",
                   .address = "http://10.0.0.7:8470",
                   .release = "1.0.0",
                   .generation = 3};
    checkContract(parser<Registration>(), r.toJson(), "registration", {"id", "role", "address"},
                  false);
    // Push is the default and is not written (coordinators before pull mode refused the field).
    EXPECT_EQ(r.toJson().find("mode"), std::string::npos);
    r.mode = "pull";
    checkContract(parser<Registration>(), r.toJson(), "registration", {"id", "role", "address"},
                  false);
    EXPECT_EQ(Registration::fromJson(r.toJson())->mode, "pull");
    ASSERT_ERROR(Registration::fromJson(edit(r.toJson(), "mode", R"("sideways")")), Errc::Invalid,
                 "registration: field 'mode' must be 'push' or 'pull', not 'sideways'");
    // The variant key the coordinator once took: a node is named "id", nothing else.
    ASSERT_ERROR(Registration::fromJson(edit(edit(r.toJson(), "id"), "node", R"("agent-1")")),
                 Errc::Invalid, "registration: field 'id' is required");
}

TEST(Wire, NodeView) {
    NodeView v{.id = "master-1",
               .role = "master",
               .address = "http://10.0.0.2:8470",
               .release = "1.0.0",
               .generation = 2,
               .service = {"process", true, 811, "running"},
               .healthy = true,
               .transaction = TransactionSummary{"op-9", "swapping"}};
    checkContract(parser<NodeView>(), v.toJson(), "GET /v1/node",
                  {"id", "role", "release", "generation", "healthy"}, false);
    // A node with nothing active: generation and pid are null, and read back as 0.
    NodeView empty{
        .id = "agent-2", .role = "agent", .release = "", .service = {"process", false, 0, ""}};
    auto text = empty.toJson();
    EXPECT_NE(text.find(R"("generation":null)"), std::string::npos) << text;
    EXPECT_NE(text.find(R"("pid":null)"), std::string::npos) << text;
    EXPECT_NE(text.find(R"("transaction":null)"), std::string::npos) << text;
    auto read = NodeView::fromJson(text);
    ASSERT_OK(read);
    EXPECT_EQ(read->generation, 0);
    EXPECT_FALSE(read->transaction.has_value());
    // The variant key the coordinator once took.
    ASSERT_ERROR(NodeView::fromJson(edit(v.toJson(), "generation")), Errc::Invalid,
                 "GET /v1/node: field 'generation' is required");
    ASSERT_ERROR(
        NodeView::fromJson(edit(edit(v.toJson(), "generation"), "current_generation", "2")),
        Errc::Invalid, "GET /v1/node: field 'generation' is required");
}

TEST(Wire, TransactionView) {
    TransactionView under_way{true, sampleJournal()};
    checkContract(parser<TransactionView>(), under_way.toJson(), "GET /v1/transaction",
                  {"active", "transaction"}, false);
    EXPECT_TRUE(under_way.underWay());
    EXPECT_EQ(under_way.step(), "checking");

    TransactionView starting{true, std::nullopt};
    checkContract(parser<TransactionView>(), starting.toJson(), "GET /v1/transaction",
                  {"active", "transaction"}, false);
    EXPECT_TRUE(starting.underWay());
    EXPECT_EQ(starting.step(), "starting");

    auto ended = sampleJournal();
    ended.state = "healthy";
    EXPECT_FALSE((TransactionView{true, ended}.underWay()));
    EXPECT_FALSE((TransactionView{false, ended}.underWay()));
    EXPECT_FALSE(TransactionView{}.underWay());
    EXPECT_EQ(TransactionView{}.toJson(), R"({"active":false,"transaction":null})");

    // The journal inside is read by the same rules: a step under another name is refused.
    auto renamed = edit(edit(sampleJournal().toJson(), "state"), "step", R"("checking")");
    ASSERT_ERROR(TransactionView::fromJson(R"({"active":true,"transaction":)" + renamed + "}"),
                 Errc::Invalid, "GET /v1/transaction: transaction: field 'state' is required");
}

TEST(Wire, StageRequestIsACommand) {
    StageRequest by_release{.release = "2.0.0"};
    checkContract(parser<StageRequest>(), by_release.toJson(), "stage request", {}, true);
    PackageRef ref{"mesos--1.11.0", std::string(64, 'a'), 100};
    StageRequest by_list{.packages = std::vector<PackageRef>{ref}};
    checkContract(parser<StageRequest>(), by_list.toJson(), "stage request", {}, true);
    ASSERT_ERROR(StageRequest::fromJson("{}"), Errc::Invalid,
                 "give exactly one of 'release' or 'packages'");
    ASSERT_ERROR(StageRequest::fromJson(R"({"release": 2})"), Errc::Invalid,
                 "stage request: field 'release' must be a string");
    ASSERT_ERROR(StageRequest::fromJson(R"({"packages": []})"), Errc::Invalid,
                 "'packages' is empty");
    ASSERT_ERROR(StageRequest::fromJson(R"({"relase": "2.0.0"})"), Errc::Invalid,
                 "stage request: unknown field 'relase' (did you mean 'release'?)");
}

TEST(Wire, StageReply) {
    PackageRef ref{"mesos--1.11.0", std::string(64, 'b'), 100};
    StageReply reply{5, "2.0.0", {ref}};
    checkContract(parser<StageReply>(), reply.toJson(), "stage reply",
                  {"generation", "release", "packages"}, false);
    ASSERT_ERROR(StageReply::fromJson(edit(reply.toJson(), "generation", "0")), Errc::Invalid,
                 "stage reply: field 'generation' must be above 0");
}

TEST(Wire, RestartAndRollbackRequestsAreCommands) {
    RestartRequest restart{5, "d-3", "http://coordinator:8480"};
    checkContract(parser<RestartRequest>(), restart.toJson(), "restart request", {"generation"},
                  true);
    auto bare = RestartRequest::fromJson(R"({"generation": 5})");
    ASSERT_OK(bare);
    EXPECT_EQ(bare->deployment, "");
    EXPECT_EQ(bare->report_to, "");

    RollbackRequest rollback{"d-3", "http://coordinator:8480"};
    checkContract(parser<RollbackRequest>(), rollback.toJson(), "rollback request", {}, true);
    ASSERT_OK(RollbackRequest::fromJson(""));
    ASSERT_OK(RollbackRequest::fromJson(" \n"));
    ASSERT_ERROR(RollbackRequest::fromJson(R"({"deployment": 3})"), Errc::Invalid,
                 "rollback request: field 'deployment' must be a string");
}

TEST(Wire, RestartReply) {
    checkContract(parser<RestartReply>(), RestartReply{"op-7", 5}.toJson(), "restart reply",
                  {"operation", "generation"}, false);
}

TEST(Wire, DesiredState) {
    DesiredState d{.action = "restart",
                   .deployment = "d-2",
                   .release = "2.0.0",
                   .generation = 6,
                   .held = true};
    checkContract(parser<DesiredState>(), d.toJson(), "desired state",
                  {"action", "deployment", "release", "generation"}, false);
    // An action from a newer coordinator is kept as it came (the node does nothing for it).
    auto future = DesiredState::fromJson(edit(d.toJson(), "action", R"("drain")"));
    ASSERT_OK(future);
    EXPECT_EQ(future->action, "drain");
    EXPECT_EQ(desiredPath("agent 1", 4), "/v1/nodes/agent%201/desired?generation=4");
}

// The coordinator's epoch: optional in every command and pull answer (absent reads as 0, and
// 0 is not written, so a coordinator without one still talks to nodes from before it).
TEST(Wire, TheCoordinatorEpochIsOptionalAndNeverNegative) {
    StageRequest stage{.release = "2.0.0", .epoch = 12};
    checkContract(parser<StageRequest>(), stage.toJson(), "stage request", {}, true);
    EXPECT_EQ(StageRequest::fromJson(stage.toJson())->epoch, 12);
    EXPECT_EQ(StageRequest{.release = "2.0.0"}.toJson(), R"({"release":"2.0.0"})");
    RestartRequest restart{5, "d-3", "http://coordinator:8480", 12};
    checkContract(parser<RestartRequest>(), restart.toJson(), "restart request", {"generation"},
                  true);
    EXPECT_EQ(RestartRequest::fromJson(restart.toJson())->epoch, 12);
    EXPECT_EQ(RestartRequest::fromJson(R"({"generation": 5})")->epoch, 0);
    RollbackRequest rollback{"d-3", "", 12};
    checkContract(parser<RollbackRequest>(), rollback.toJson(), "rollback request", {}, true);
    EXPECT_EQ(RollbackRequest::fromJson(rollback.toJson())->epoch, 12);
    DesiredState desired{.action = "none", .epoch = 12};
    checkContract(parser<DesiredState>(), desired.toJson(), "desired state",
                  {"action", "deployment", "release", "generation"}, false);
    EXPECT_EQ(DesiredState::fromJson(desired.toJson())->epoch, 12);
    EXPECT_EQ(DesiredState{}.toJson().find("epoch"), std::string::npos);
    NodeView view{.id = "agent-1", .role = "agent", .release = "1.0.0", .epoch = 12};
    EXPECT_EQ(NodeView::fromJson(view.toJson())->epoch, 12);

    ASSERT_ERROR(RestartRequest::fromJson(R"({"generation": 5, "epoch": -1})"), Errc::Invalid,
                 "restart request: field 'epoch' must not be negative");
    ASSERT_ERROR(StageRequest::fromJson(R"({"release": "2.0.0", "epoch": "7"})"), Errc::Invalid,
                 "stage request: field 'epoch' must be");
}

TEST(Wire, NotRegisteredIsOneRefusalBothSidesKnow) {
    auto refusal = notRegistered("agent-3");
    EXPECT_EQ(refusal.code, Errc::NotFound);
    EXPECT_EQ(refusal.message, "node 'agent-3' is not registered");
    auto body = json::Writer().beginObject().field("error", refusal.message).endObject().str();
    EXPECT_TRUE(isNotRegistered(404, body));
    EXPECT_FALSE(isNotRegistered(409, body));
    EXPECT_FALSE(isNotRegistered(404, R"({"error":"no such route"})"));
    EXPECT_FALSE(isNotRegistered(404, "not json"));
}

}  // namespace
}  // namespace hoist::pkgmgr
