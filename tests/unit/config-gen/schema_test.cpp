// The option schema: the embedded copy, its own validation, and `config-gen options`.

#include <gtest/gtest.h>

#include <sstream>

#include "config_gen/cli.hpp"
#include "config_gen/schema.hpp"
#include "core/json.hpp"
#include "support.hpp"
#include "testing.hpp"

namespace hoist::config_gen {
namespace {

namespace fs = std::filesystem;
using test::cli;
using testing::readFile;
using testing::TempFolder;
using testing::writeFile;

TEST(Schema, EmbeddedCopyIsTheLayoutsFile) {
    EXPECT_EQ(Schema::embeddedText(),
              readFile(fs::path(HOIST_SOURCE_DIR) / "layouts/config-schema.json"));
    ASSERT_OK(Schema::embedded());
}

TEST(Schema, CoversTheOptionsMesosNodesAreConfiguredWith) {
    auto schema = Schema::embedded();
    ASSERT_OK(schema);
    const std::vector<std::pair<std::string, std::string>> expected = {
        {"resources", "agent"},
        {"attributes", "agent"},
        {"work_dir", "both"},
        {"port", "both"},
        {"quorum", "master"},
        {"zk", "master"},
        {"isolation", "agent"},
        {"containerizers", "agent"},
        {"hostname", "both"},
        {"ip", "both"},
        {"cluster", "master"},
        {"log_dir", "both"},
        {"executor_registration_timeout", "agent"},
        {"master", "agent"},
        {"environment", "both"},
    };
    for (const auto& [name, roles] : expected) {
        const OptionSpec* spec = schema->find(name);
        ASSERT_NE(spec, nullptr) << name;
        EXPECT_EQ(spec->rolesText(), roles) << name;
        EXPECT_FALSE(spec->description.empty()) << name;
    }
    EXPECT_EQ(schema->find("port")->defaultFor("master")->text, "5050");
    EXPECT_EQ(schema->find("port")->defaultFor("agent")->text, "5051");
    EXPECT_EQ(schema->find("isolation")->defaultFor("agent")->text, "posix/cpu,posix/mem");
    EXPECT_TRUE(schema->find("master")->required);
    EXPECT_EQ(schema->find("quorum")->required_with, std::vector<std::string>{"zk"});
}

TEST(Schema, RefusesABrokenSchema) {
    auto parse = [](const std::string& option) {
        return Schema::parse(R"({"schema": 1, "options": [)" + option + "]}", "s.json");
    };
    ASSERT_OK(parse(R"({"name": "x", "type": "int", "roles": "both", "description": "d"})"));
    ASSERT_ERROR(
        parse(R"({"name": "x", "type": "float", "roles": "both", "description": "d"})"),
        Errc::Invalid,
        "s.json: option 'x': type 'float' is not one of string, int, bool, enum, list, map, "
        "resources, duration, path");
    ASSERT_ERROR(parse(R"({"name": "x", "type": "int", "roles": "both", "description": "d",
                          "min": 1, "max": 10, "default": 11})"),
                 Errc::Invalid,
                 "s.json: option 'x': default: option 'x' must be between 1 and 10 (got 11)");
    ASSERT_ERROR(parse(R"({"name": "x", "type": "int", "roles": "all", "description": "d"})"),
                 Errc::Invalid, "s.json: option 'x': roles must be master, agent or both");
    ASSERT_ERROR(
        parse(R"({"name": "x", "type": "int", "roles": "both", "description": "d", "dflt": 1})"),
        Errc::Invalid, "s.json: option 'x': unknown field 'dflt'");
    ASSERT_ERROR(parse(R"({"name": "x", "type": "string", "roles": "both", "description": "d",
                          "pattern": "^a$"})"),
                 Errc::Invalid,
                 "s.json: option 'x': a pattern needs a pattern_rule saying it in words");
    ASSERT_ERROR(parse(R"({"name": "x", "type": "string", "roles": "both", "description": "d",
                          "pattern": "([", "pattern_rule": "r"})"),
                 Errc::Invalid, "s.json: option 'x': pattern does not compile");
    ASSERT_ERROR(parse(R"({"name": "x", "type": "int", "roles": "both", "description": "d",
                          "required_with": ["y"]})"),
                 Errc::Invalid, "s.json: option 'x': required_with names unknown option 'y'");
    ASSERT_ERROR(parse(R"({"name": "x", "type": "enum", "roles": "both", "description": "d"})"),
                 Errc::Invalid, "s.json: option 'x': an enum needs values");
    ASSERT_ERROR(parse(R"({"name": "x", "type": "int", "roles": "master", "description": "d",
                          "default_by_role": {"agent": 1}})"),
                 Errc::Invalid,
                 "s.json: option 'x': default_by_role names role 'agent', which the option does "
                 "not apply to");
    ASSERT_ERROR(parse(R"({"name": "x", "type": "int", "roles": "both", "description": "d"},
                          {"name": "x", "type": "int", "roles": "both", "description": "d"})"),
                 Errc::Invalid, "s.json: option 'x' is defined twice");
    ASSERT_ERROR(Schema::parse(R"({"schema": 2, "options": []})", "s.json"), Errc::Invalid,
                 "s.json: schema version 2 is not supported (only 1)");
}

TEST(Schema, ParsesDurations) {
    EXPECT_EQ(parseDuration("30secs"), 30e9L);
    EXPECT_EQ(parseDuration("1.5mins"), 90e9L);
    EXPECT_EQ(parseDuration("2weeks"), 2 * 604800e9L);
    EXPECT_EQ(parseDuration("10ms"), 10e6L);
    EXPECT_FALSE(parseDuration("10"));
    EXPECT_FALSE(parseDuration("10 secs"));
    EXPECT_FALSE(parseDuration("-1secs"));
    EXPECT_FALSE(parseDuration("1sec"));
}

TEST(OptionsCli, PrintsATablePerRole) {
    auto all = cli({"options"});
    ASSERT_EQ(all.code, 0) << all.err;
    EXPECT_TRUE(all.out.starts_with("OPTION ")) << all.out;
    EXPECT_NE(all.out.find("\nquorum "), std::string::npos);
    EXPECT_NE(all.out.find("\nresources "), std::string::npos);
    EXPECT_NE(all.out.find("master: 5050, agent: 5051"), std::string::npos) << all.out;
    EXPECT_NE(all.out.find("    rule: 1..9; required with zk\n"), std::string::npos) << all.out;

    auto agent = cli({"options", "--role", "agent"});
    ASSERT_EQ(agent.code, 0) << agent.err;
    EXPECT_EQ(agent.out.find("\nquorum "), std::string::npos);
    EXPECT_NE(agent.out.find("\nmaster "), std::string::npos);
    EXPECT_NE(agent.out.find("(required)"), std::string::npos);

    auto bad = cli({"options", "--role", "worker"});
    EXPECT_EQ(bad.code, exitCode(Errc::Invalid));
    EXPECT_EQ(bad.err, "config-gen: role 'worker' is not one of master, agent\n");
}

TEST(OptionsCli, PrintsJsonAScriptCanRead) {
    auto r = cli({"options", "--json", "--role", "master"});
    ASSERT_EQ(r.code, 0) << r.err;
    auto doc = json::parseObject(r.out, "options --json");
    ASSERT_OK(doc);
    const auto& options = (*doc)["options"];
    ASSERT_TRUE(options.IsArray());
    bool saw_port = false;
    for (const auto& o : options.GetArray()) {
        EXPECT_NE(std::string(o["roles"].GetString()), "agent");
        if (std::string(o["name"].GetString()) == "port") {
            saw_port = true;
            EXPECT_EQ(std::string(o["defaults"]["master"].GetString()), "5050");
            EXPECT_FALSE(o["defaults"].HasMember("agent"));
            EXPECT_EQ(std::string(o["env"].GetString()), "MESOS_PORT");
            EXPECT_EQ(std::string(o["type"].GetString()), "int");
        }
    }
    EXPECT_TRUE(saw_port);
}

TEST(OptionsCli, SchemaFileOverridesTheEmbeddedOne) {
    TempFolder tmp;
    writeFile(tmp / "schema.json", R"({"schema": 1, "options": [
        {"name": "color", "type": "enum", "roles": "both", "values": ["red", "blue"],
         "default": "red", "description": "a test option"}]})");
    auto r = cli({"--schema", (tmp / "schema.json").string(), "options"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out,
              "OPTION  TYPE  ROLES  DEFAULT\n"
              "color   enum  both   red\n"
              "    a test option\n"
              "    rule: one of red, blue\n");

    // The option after the verb works too, and a package follows the other schema.
    writeFile(tmp / "options.json", R"({"color": "blue"})");
    r = cli({"package", "--schema", (tmp / "schema.json").string(), "--role", "agent", "--options",
             (tmp / "options.json").string(), "--version", "1", "-o", (tmp / "out").string()});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(fs::exists(tmp / "out/mesos-config-agent--1.tar.zst"));

    writeFile(tmp / "broken.json", R"({"schema": 1, "options": [{"name": "x"}]})");
    r = cli({"--schema", (tmp / "broken.json").string(), "options"});
    EXPECT_EQ(r.code, exitCode(Errc::Invalid));
    EXPECT_EQ(r.err, "config-gen: " + (tmp / "broken.json").string() +
                         ": option 'x': field 'type' is required\n");
}

TEST(OptionsCli, BinaryCarriesTheSchemaWherever) {
    // A copy of the binary, run from an empty folder: the schema is compiled in.
    TempFolder tmp;
    fs::copy_file(CONFIG_GEN_BIN, tmp / "config-gen");
    process::Options options;
    options.cwd = tmp.path();
    auto r = process::run({(tmp / "config-gen").string(), "options", "--role", "master"}, options);
    ASSERT_OK(r);
    ASSERT_EQ(r->exit_code, 0) << r->err;
    EXPECT_NE(r->out.find("\nquorum "), std::string::npos);
    auto help = testing::run({CONFIG_GEN_BIN, "--help"});
    EXPECT_EQ(help.exit_code, 0);
    EXPECT_NE(help.out.find("package"), std::string::npos);
    auto bad = testing::run({CONFIG_GEN_BIN, "frobnicate"});
    EXPECT_EQ(bad.exit_code, exitCode(Errc::Invalid));
}

}  // namespace
}  // namespace hoist::config_gen
