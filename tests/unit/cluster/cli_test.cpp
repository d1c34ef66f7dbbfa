// The CLI's basics, through runCli: suggestions for typos, per-verb help with the program's
// name and defaults, global flags after the verb, durations, completion, --version.
#include "cluster/cli.hpp"

#include <sstream>

#include <gtest/gtest.h>

#include "core/duration.hpp"
#include "core/error.hpp"
#include "testing.hpp"

namespace hoist::cluster {
namespace {

struct Run {
    int code;
    std::string out;
    std::string err;
};

Run run(std::vector<std::string> args) {
    args.insert(args.begin(), "cluster");
    std::ostringstream out;
    std::ostringstream err;
    int code = runCli(args, out, err);
    return {code, out.str(), err.str()};
}

TEST(ClusterCli, AMistypedVerbOrFlagGetsASuggestion) {
    auto verb = run({"upgarde", "2.0.0"});
    EXPECT_EQ(verb.code, exitCode(Errc::Invalid));
    EXPECT_NE(verb.err.find("'cluster' has no command 'upgarde'; did you mean 'upgrade'?"),
              std::string::npos)
        << verb.err;
    auto flag = run({"upgrade", "2.0.0", "--max-paralel", "2"});
    EXPECT_EQ(flag.code, exitCode(Errc::Invalid));
    EXPECT_NE(flag.err.find("'cluster upgrade' has no option '--max-paralel'; did you mean "
                            "'--max-parallel'?"),
              std::string::npos)
        << flag.err;
    auto nested = run({"node", "froget", "agent-1"});
    EXPECT_NE(nested.err.find("did you mean 'forget'?"), std::string::npos) << nested.err;
    auto none = run({});
    EXPECT_NE(none.err.find("'cluster' needs a command: upgrade, follow, status"),
              std::string::npos)
        << none.err;
}

TEST(ClusterCli, PerVerbHelpNamesTheProgramAndShowsDefaults) {
    auto help = run({"upgrade", "--help"});
    EXPECT_EQ(help.code, 0);
    EXPECT_NE(help.out.find("cluster upgrade"), std::string::npos) << help.out;
    EXPECT_NE(help.out.find("--node-deadline"), std::string::npos) << help.out;
    EXPECT_NE(help.out.find("--progress-deadline"), std::string::npos) << help.out;
    EXPECT_NE(help.out.find("=10m"), std::string::npos) << "the default is shown: " << help.out;
    EXPECT_NE(help.out.find("=30m"), std::string::npos) << help.out;
    EXPECT_EQ(help.out.find("--min-healthy-ms"), std::string::npos) << help.out;
    auto top = run({"--help"});
    EXPECT_NE(top.out.find("CLUSTER_TOKEN (the bearer token itself)"), std::string::npos)
        << top.out;
    EXPECT_NE(top.out.find("CLUSTER_TOKEN_FILE (a file holding it"), std::string::npos) << top.out;
    EXPECT_NE(top.out.find("--ca-file"), std::string::npos) << top.out;
    auto version = run({"--version"});
    EXPECT_EQ(version.code, 0);
    EXPECT_TRUE(version.out.starts_with("cluster ")) << version.out;
}

TEST(ClusterCli, GlobalFlagsAreTakenAfterTheVerb) {
    // Nothing listens on the URL: the flags were understood when the error is about the
    // connection, not the usage.
    auto port = testing::freeLoopbackPort();
    std::string url = "http://127.0.0.1:" + std::to_string(port);
    auto r = run({"nodes", "--json", "--url", url, "--retry-for", "0s"});
    EXPECT_EQ(r.code, exitCode(Errc::Unauthorized)) << r.err;
    EXPECT_NE(r.err.find("no token"), std::string::npos) << r.err;
    testing::TempFolder token;
    testing::writeFile(token.path() / "t", "secret\n");
    auto down = run({"status", "--url", url, "--token-file", (token.path() / "t").string(),
                     "--json", "--retry-for", "0s"});
    EXPECT_EQ(down.code, exitCode(Errc::Network)) << down.err;
    EXPECT_NE(down.err.find("coordinator " + url), std::string::npos) << down.err;
}

TEST(ClusterCli, DurationsAreWrittenWithUnits) {
    auto bad = run({"upgrade", "2.0.0", "--node-deadline", "600000x"});
    EXPECT_EQ(bad.code, exitCode(Errc::Invalid));
    EXPECT_NE(bad.err.find("must be a whole number and a unit"), std::string::npos) << bad.err;
    EXPECT_EQ(duration::parseMs("30s", "d").value_or(-1), 30000);
    EXPECT_EQ(duration::parseMs("5m", "d").value_or(-1), 300000);
    EXPECT_EQ(duration::parseMs("1500ms", "d").value_or(-1), 1500);
    EXPECT_FALSE(duration::parseMs("-1s", "d").has_value());
    EXPECT_FALSE(duration::parseMs("101d", "d").has_value());
    EXPECT_EQ(duration::format(300000), "5m");
    EXPECT_EQ(duration::format(1500), "1500ms");
    EXPECT_EQ(duration::format(0), "0s");
}

TEST(ClusterCli, BashCompletionKnowsVerbsAndFlags) {
    auto r = run({"completion", "bash"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("complete -F _cluster cluster"), std::string::npos);
    EXPECT_NE(r.out.find("\" upgrade\") words=\""), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("--max-parallel"), std::string::npos);
    EXPECT_NE(r.out.find("\" node\") words=\"add remove forget"), std::string::npos) << r.out;
    // bash reads it, and completes a verb.
    testing::TempFolder dir;
    testing::writeFile(dir.path() / "c.bash", r.out);
    auto outcome = testing::run(
        {"/bin/bash", "-c",
         "source " + (dir.path() / "c.bash").string() +
             "; COMP_WORDS=(cluster node f); COMP_CWORD=2; _cluster; echo \"${COMPREPLY[*]}\""},
        {}, std::chrono::seconds(10));
    EXPECT_EQ(outcome.out, "forget\n") << outcome.err;
}

}  // namespace
}  // namespace hoist::cluster
