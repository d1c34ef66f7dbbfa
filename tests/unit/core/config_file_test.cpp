// Daemons' config files: TOML keys are the long options; the command line wins; every error
// names the file, the line and the key.
#include "core/config_file.hpp"

#include <sstream>

#include <gtest/gtest.h>

#include "core/cli.hpp"
#include "core/error.hpp"
#include "testing.hpp"

namespace hoist::cli {
namespace {

struct Settings {
    std::string state = "default.db";
    std::string listen = "127.0.0.1:7000";
    std::vector<std::string> keys;
    std::vector<std::string> roles;
    int workers = 4;
    bool access_log = false;
    std::string level = "info";
    std::string root;
};

struct Outcome {
    std::optional<int> done;
    std::string err;
    Settings settings;
};

// A daemon shaped like the real ones: options on a subcommand, --root on the program.
Outcome parseWith(std::vector<std::string> args) {
    Outcome o;
    CLI::App app{"demo: a daemon"};
    app.add_option("--root", o.settings.root, "root");
    auto* serve = app.add_subcommand("serve", "serve");
    addConfigOption(*serve, "/etc/hoist/demo.toml");
    serve->add_option("--state", o.settings.state, "state file")->required();
    serve->add_option("--listen", o.settings.listen, "address");
    serve->add_option("--trusted-key", o.settings.keys, "keys");
    serve->add_option("--roles", o.settings.roles, "roles")->delimiter(',');
    serve->add_option("--workers", o.settings.workers, "workers")->check(CLI::Range(1, 64));
    serve->add_flag("--access-log", o.settings.access_log, "log requests");
    serve->add_option("--log-level", o.settings.level, "level")
        ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
    std::ostringstream out;
    std::ostringstream err;
    args.insert(args.begin(), "demo");
    o.done = parse(app, args, "demo", out, err);
    o.err = err.str();
    return o;
}

class ConfigFile : public ::testing::Test {
protected:
    std::string write(const std::string& text) {
        auto path = dir_ / "demo.toml";
        testing::writeFile(path, text);
        return path.string();
    }
    testing::TempFolder dir_;
};

TEST_F(ConfigFile, KeysAreTheLongOptionsAndTheCommandLineWins) {
    auto file = write(
        "# the packaged example\n"
        "state = \"/var/lib/demo/state.db\"\n"
        "listen = \"0.0.0.0:7000\"\n"
        "trusted-key = [\"a.pem\", \"b.pem\"]\n"
        "roles = \"master,agent\"\n"
        "workers = 16\n"
        "access-log = true\n"
        "root = \"/opt/demo\"\n");
    auto o =
        parseWith({"serve", "--config", file, "--listen", "127.0.0.1:0", "--trusted-key", "c.pem"});
    ASSERT_FALSE(o.done.has_value()) << o.err;
    EXPECT_EQ(o.settings.state, "/var/lib/demo/state.db");
    EXPECT_EQ(o.settings.listen, "127.0.0.1:0");
    EXPECT_EQ(o.settings.keys, std::vector<std::string>{"c.pem"});
    EXPECT_EQ(o.settings.roles, (std::vector<std::string>{"master", "agent"}));
    EXPECT_EQ(o.settings.workers, 16);
    EXPECT_TRUE(o.settings.access_log);
    EXPECT_EQ(o.settings.root, "/opt/demo");

    // The option given before --config wins as well, and a required one may come from either.
    auto first = parseWith({"serve", "--state", "cli.db", "--config", file});
    ASSERT_FALSE(first.done.has_value()) << first.err;
    EXPECT_EQ(first.settings.state, "cli.db");
    EXPECT_EQ(first.settings.keys, (std::vector<std::string>{"a.pem", "b.pem"}));
}

TEST_F(ConfigFile, AnEmptyFileChangesNothingAndARequiredOptionIsStillRequired) {
    auto file = write("# nothing set\n");
    auto o = parseWith({"serve", "--config", file});
    ASSERT_TRUE(o.done.has_value());
    EXPECT_EQ(*o.done, exitCode(Errc::Invalid));
    EXPECT_NE(o.err.find("--state is required"), std::string::npos) << o.err;
}

TEST_F(ConfigFile, EachErrorNamesTheFileTheLineAndTheKey) {
    struct Case {
        std::string text;
        std::string needle;
    };
    std::vector<Case> cases = {
        {"state = \"s.db\"\nlisten_addr = \"x\"\n", ":2: key 'listen_addr' is unknown"},
        {"state = \"s.db\"\naccess_log = true\n",
         ":2: key 'access_log' is unknown: did you mean 'access-log'?"},
        {"state = \"s.db\"\nconfig = \"other.toml\"\n", ":2: key 'config' is unknown"},
        {"state = \"s.db\"\nversion = true\n", ":2: key 'version' is unknown"},
        {"state = [\"a\", \"b\"]\n", ":1: key 'state' takes one value, not a list"},
        {"state = \"s.db\"\n[serve]\nlisten = \"x\"\n",
         ":2: key 'serve' is unknown (the keys are the long options of 'demo serve --help', "
         "without the dashes)"},
        {"state = \"s.db\"\nlisten = { host = \"x\" }\n",
         ":2: key 'listen' must be a string, number, boolean or list of them"},
        {"state = \"s.db\"\naccess-log = \"yes\"\n",
         ":2: key 'access-log' is a flag: give true or false"},
        {"state = \"s.db\"\nworkers = 100\n", ":2: key 'workers' is refused: "},
        {"state = \"s.db\"\nworkers = \"many\"\n", ":2: key 'workers' is refused: "},
        {"state = \"s.db\"\nlog-level = \"loud\"\n", ":2: key 'log-level' is refused: "},
        {"state = \"s.db\"\ntrusted-key = [[\"a\"]]\n",
         "key 'trusted-key' holds a list element that is not a string, number or boolean"},
        {"state = 2021-01-01\n", ":1: key 'state' must be a string, number, boolean"},
        {"state = \"s.db\"\nlisten = \n", ":2:"},
        {"state = \"s.db\"\nstate = \"t.db\"\n", ":2:"},
    };
    for (const auto& c : cases) {
        auto file = write(c.text);
        auto o = parseWith({"serve", "--config", file});
        ASSERT_TRUE(o.done.has_value()) << c.text;
        EXPECT_EQ(*o.done, exitCode(Errc::Invalid)) << c.text;
        EXPECT_NE(o.err.find("demo: config file " + file), std::string::npos) << c.text << "\n"
                                                                              << o.err;
        EXPECT_NE(o.err.find(c.needle), std::string::npos) << c.text << "\n" << o.err;
    }
}

TEST_F(ConfigFile, AMissingFileIsRefusedByName) {
    auto missing = (dir_ / "absent.toml").string();
    auto o = parseWith({"serve", "--config", missing});
    ASSERT_TRUE(o.done.has_value());
    EXPECT_EQ(*o.done, exitCode(Errc::Invalid));
    EXPECT_NE(o.err.find("config file " + missing + " does not exist"), std::string::npos) << o.err;
}

}  // namespace
}  // namespace hoist::cli
