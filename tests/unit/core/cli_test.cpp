// The one parse path every binary goes through: --version, --help, usage errors.
#include "core/cli.hpp"

#include <sstream>

#include <gtest/gtest.h>

#include "core/error.hpp"

namespace hoist::cli {
namespace {

struct Parsed {
    std::optional<int> done;
    std::string out;
    std::string err;
};

Parsed parseArgs(std::vector<std::string> args) {
    CLI::App app{"demo: a test program"};
    auto* verb = app.add_subcommand("verb", "does a thing");
    std::string value;
    verb->add_option("--value", value, "a value")->required();
    std::ostringstream out;
    std::ostringstream err;
    args.insert(args.begin(), "demo");
    auto done = parse(app, args, "demo", out, err);
    return {done, out.str(), err.str()};
}

TEST(CliParse, VersionPrintsTheProgramAndTheProjectVersion) {
    auto p = parseArgs({"--version"});
    ASSERT_TRUE(p.done.has_value());
    EXPECT_EQ(*p.done, 0);
    EXPECT_EQ(p.out, std::string("demo ") + HOIST_TEST_VERSION + "\n");
    EXPECT_EQ(p.err, "");
}

TEST(CliParse, HelpOfTheChosenSubcommandAndUsageErrors) {
    auto help = parseArgs({"verb", "--help"});
    ASSERT_TRUE(help.done.has_value());
    EXPECT_EQ(*help.done, 0);
    EXPECT_NE(help.out.find("--value"), std::string::npos) << help.out;
    EXPECT_NE(help.out.find("Usage: demo verb [OPTIONS]"), std::string::npos) << help.out;
    auto bad = parseArgs({"verb"});
    ASSERT_TRUE(bad.done.has_value());
    EXPECT_EQ(*bad.done, exitCode(Errc::Invalid));
    EXPECT_NE(bad.err.find("demo: "), std::string::npos) << bad.err;
    EXPECT_NE(bad.err.find("run 'demo --help' for usage"), std::string::npos) << bad.err;
    auto ok = parseArgs({"verb", "--value", "x"});
    EXPECT_FALSE(ok.done.has_value());
}

TEST(CliParse, AMistypedVerbOrFlagNamesTheClosestOne) {
    auto verb = parseArgs({"verbb", "--value", "x"});
    ASSERT_TRUE(verb.done.has_value());
    EXPECT_EQ(*verb.done, exitCode(Errc::Invalid));
    EXPECT_NE(verb.err.find("'demo' has no command 'verbb'; did you mean 'verb'?"),
              std::string::npos)
        << verb.err;
    auto flag = parseArgs({"verb", "--valeu", "x"});
    ASSERT_TRUE(flag.done.has_value());
    EXPECT_NE(flag.err.find("'demo verb' has no option '--valeu'; did you mean '--value'?"),
              std::string::npos)
        << flag.err;
    auto far = parseArgs({"zzzzzz"});
    EXPECT_NE(far.err.find("'demo' has no command 'zzzzzz'; the commands are verb"),
              std::string::npos)
        << far.err;
}

TEST(CliParse, NoVerbNamesTheVerbs) {
    CLI::App app{"demo"};
    app.require_subcommand(1);
    app.add_subcommand("one", "");
    app.add_subcommand("two", "");
    std::ostringstream out;
    std::ostringstream err;
    auto done = parse(app, {"demo"}, "demo", out, err);
    ASSERT_TRUE(done.has_value());
    EXPECT_NE(err.str().find("'demo' needs a command: one, two"), std::string::npos) << err.str();
}

}  // namespace
}  // namespace hoist::cli
