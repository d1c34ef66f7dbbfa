// Option validation: every refusal names the option and the rule, with its exact message.

#include <gtest/gtest.h>

#include "config_gen/schema.hpp"
#include "support.hpp"
#include "testing.hpp"

namespace hoist::config_gen {
namespace {

using test::schema;

struct BadCase {
    const char* name;
    const char* role;
    std::string options;
    std::string message;  // exact, after "options.json: "
};

// Agent cases carry a valid "master" so that only the option under test is wrong.
#define AGENT(extra) std::string(R"({"master": "10.0.0.1:5050", )") + extra + "}"

const std::vector<BadCase> kBadCases = {
    {"UnknownWithHint", "master", R"({"qourum": 3})",
     "unknown option 'qourum' (did you mean 'quorum'?)"},
    {"UnknownWithoutHint", "master", R"({"frobnicate": 1})",
     "unknown option 'frobnicate' (see 'config-gen options')"},
    {"OtherRolesOption", "master", R"({"resources": "cpus:4"})",
     "option 'resources' applies to the agent role only, not master"},
    {"RequiredMissing", "agent", R"({})", "option 'master' is required for the agent role"},
    {"RequiredWith", "master", R"({"zk": "zk://10.0.0.1:2181/mesos"})",
     "option 'quorum' is required when 'zk' is set"},
    {"GivenTwice", "master", R"({"port": 5050, "port": 5051})",
     "duplicate key 'port' at offset 21"},
    {"NullValue", "master", R"({"port": null})",
     "option 'port' must not be null (leave it out to use the default)"},
    {"IntOutOfRange", "master", R"({"port": 70000})",
     "option 'port' must be between 1 and 65535 (got 70000)"},
    {"IntAsString", "master", R"({"port": "5050"})",
     "option 'port' must be an integer (got a string)"},
    {"IntFraction", "master", R"({"quorum": 1.5, "zk": "zk://a:2181/m"})",
     "option 'quorum' must be an integer (got 1.5)"},
    {"BoolAsString", "agent", AGENT(R"("strict": "yes")"),
     "option 'strict' must be true or false (got a string)"},
    {"EnumUnknownValue", "master", R"({"registry": "inmemory"})",
     "option 'registry' must be one of replicated_log, in_memory (got 'inmemory'; did you mean "
     "'in_memory'?)"},
    {"EnumNotString", "master", R"({"logging_level": 1})",
     "option 'logging_level' must be one of INFO, WARNING, ERROR (got a number)"},
    {"ListUnknownItem", "agent", AGENT(R"("isolation": ["posix/cpu", "cgroups/cpux"])"),
     "option 'isolation' item 'cgroups/cpux' must be one of the 30 values 'config-gen options' "
     "lists (did you mean 'cgroups/cpu'?)"},
    {"ListDuplicate", "agent", AGENT(R"("containerizers": "mesos,docker,mesos")"),
     "option 'containerizers' lists 'mesos' twice"},
    {"ListTooShort", "agent", AGENT(R"("containerizers": [])"),
     "option 'containerizers' must hold at least 1 item"},
    {"ListEmptyItem", "agent", AGENT(R"("isolation": "posix/cpu,,posix/mem")"),
     "option 'isolation' has an empty item"},
    {"ListWrongType", "agent", AGENT(R"("containerizers": {"a": 1})"),
     "option 'containerizers' must be a list of strings or a comma-separated string (got an "
     "object)"},
    {"MapBadKey", "agent", AGENT(R"("attributes": {"rack zone": "r1"})"),
     "option 'attributes' key 'rack zone' must be letters, digits, '_', '.' and '-'"},
    {"MapValueWithSeparator", "agent", AGENT(R"("attributes": {"rack": "r1;zone:a"})"),
     "option 'attributes' value of 'rack' must not contain ':' or ';' (got 'r1;zone:a')"},
    {"MapStringEntryWithoutColon", "agent", AGENT(R"("attributes": "rack:r1;zone")"),
     "option 'attributes' entry 'zone' must be key:value"},
    {"ResourcesNegative", "agent", AGENT(R"("resources": "cpus:-1;mem:1024")"),
     "option 'resources' value of 'cpus' must be a non-negative number (got '-1')"},
    {"ResourcesPortsNotRanges", "agent", AGENT(R"("resources": "cpus:2;ports:31000")"),
     "option 'resources' value of 'ports' must be ranges like [31000-32000] (got '31000')"},
    {"ResourcesRangeBackwards", "agent", AGENT(R"("resources": "ports:[32000-31000]")"),
     "option 'resources' range '32000-31000' of 'ports' must have start <= end"},
    {"ResourcesTwice", "agent", AGENT(R"("resources": "cpus:1;mem:64;cpus:2")"),
     "option 'resources' lists 'cpus' twice"},
    {"ResourcesSyntax", "agent", AGENT(R"("resources": "cpus=4")"),
     "option 'resources' entry 'cpus=4' must be name:value"},
    {"ResourcesBadName", "agent", AGENT(R"("resources": {"CPUS": 4})"),
     "option 'resources' name 'CPUS' must be lowercase letters, digits and '_', optionally "
     "followed "
     "by (role)"},
    {"DurationMalformed", "agent", AGENT(R"("executor_registration_timeout": "1 minute")"),
     "option 'executor_registration_timeout' must be a duration: a number followed by ns, us, ms, "
     "secs, mins, hrs, days or weeks (got '1 minute')"},
    {"DurationOutOfRange", "agent", AGENT(R"("executor_registration_timeout": "2hrs")"),
     "option 'executor_registration_timeout' must be between 1secs and 1hrs (got 2hrs)"},
    {"DurationBelowMin", "agent", AGENT(R"("gc_delay": "30secs")"),
     "option 'gc_delay' must be at least 1mins (got 30secs)"},
    {"ZkNotAZooKeeperUrl", "master", R"({"zk": "http://zk1:2181/mesos", "quorum": 2})",
     "option 'zk' must be a ZooKeeper URL zk://host:port[,host:port...]/path (got "
     "'http://zk1:2181/mesos')"},
    {"IpNotIpv4", "agent", AGENT(R"("ip": "10.0.0.256")"),
     "option 'ip' must be an IPv4 address like 10.0.0.5 (got '10.0.0.256')"},
    {"MasterNotAnAddress", "agent", R"({"master": "leader.mesos"})",
     "option 'master' must be a ZooKeeper URL zk://host:port[,host:port...]/path or a host:port "
     "(got "
     "'leader.mesos')"},
    {"PathRelative", "master", R"({"work_dir": "var/lib/mesos"})",
     "option 'work_dir' must be an absolute path or start with ${STATE}/ or ${PKG}/ (got "
     "'var/lib/mesos')"},
    {"PathDotDot", "master", R"({"log_dir": "${STATE}/../etc"})",
     "option 'log_dir' must not contain '..' (got '${STATE}/../etc')"},
    {"StringEmpty", "master", R"({"cluster": ""})", "option 'cluster' must not be empty"},
    {"StringControlCharacter", "master", R"({"hostname": "a\nb"})",
     "option 'hostname' must not contain control characters"},
    {"StringWrongType", "master", R"({"cluster": ["a"]})",
     "option 'cluster' must be a string (got a list)"},
    {"EnvBadName", "master", R"({"environment": {"BAD-NAME": "1"}})",
     "option 'environment' key 'BAD-NAME' must be an environment variable name (letters, digits, "
     "'_'; not starting with a digit)"},
    {"EnvShadowsFlag", "master", R"({"environment": {"MESOS_PORT": "1"}})",
     "option 'environment' key 'MESOS_PORT' would set option 'port'; set 'port' instead"},
    {"EnvReserved", "master", R"({"environment": {"MESOS_MODULES": "{}"}})",
     "option 'environment' key 'MESOS_MODULES' is set by config-gen itself (from --module)"},
    {"EnvLdPreload", "master", R"({"environment": {"LD_PRELOAD": "/tmp/evil.so"}})",
     "option 'environment' key 'LD_PRELOAD' may not be set: it controls the loader, the search "
     "path or the service's identity (LD_*, PATH, HOME, HOIST_*, ...)"},
    {"EnvPath", "master", R"({"environment": {"PATH": "/tmp/evil:/usr/bin"}})",
     "option 'environment' key 'PATH' may not be set: it controls the loader, the search "
     "path or the service's identity (LD_*, PATH, HOME, HOIST_*, ...)"},
    {"EnvHoistRoot", "master", R"({"environment": {"HOIST_ROOT": "/"}})",
     "option 'environment' key 'HOIST_ROOT' may not be set: it controls the loader, the search "
     "path or the service's identity (LD_*, PATH, HOME, HOIST_*, ...)"},
    {"EnvNotObject", "master", R"({"environment": "A=1"})",
     "option 'environment' must be an object (got a string)"},
    {"NotAnObject", "master", R"([1, 2])", "must be a JSON object"},
};

class BadOption : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadOption, IsRefusedWithExactMessage) {
    const BadCase& c = GetParam();
    auto resolved = resolveOptions(schema(), c.role, c.options, "options.json");
    ASSERT_FALSE(resolved.has_value()) << "accepted: " << c.options;
    EXPECT_EQ(resolved.error().code, Errc::Invalid);
    EXPECT_EQ(resolved.error().message, "options.json: " + c.message);
}

INSTANTIATE_TEST_SUITE_P(Options, BadOption, ::testing::ValuesIn(kBadCases),
                         [](const ::testing::TestParamInfo<BadCase>& p) { return p.param.name; });

TEST(BadOptionCount, AtLeastFifteenDistinctRules) {
    EXPECT_GE(kBadCases.size(), 15u);
}

TEST(ResolveOptions, ReportsEveryProblemInNameOrder) {
    auto resolved =
        resolveOptions(schema(), "agent", R"({"strict": 1, "port": 0, "qourum": 2})", "opts");
    ASSERT_FALSE(resolved.has_value());
    EXPECT_EQ(resolved.error().message,
              "opts: option 'port' must be between 1 and 65535 (got 0); unknown option 'qourum' "
              "(did you mean 'quorum'?); option 'strict' must be true or false (got a number); "
              "option 'master' is required for the agent role");
}

TEST(ResolveOptions, RefusesUnknownRole) {
    ASSERT_ERROR(resolveOptions(schema(), "worker", "{}", "opts"), Errc::Invalid,
                 "role 'worker' is not one of master, agent");
}

TEST(ResolveOptions, RefusesInvalidJson) {
    ASSERT_ERROR(resolveOptions(schema(), "master", "{\"port\": ", "opts"), Errc::Invalid,
                 "opts: invalid JSON at offset");
}

std::string flagsOf(const ResolvedConfig& config) {
    std::string out;
    for (const auto& flag : config.flags)
        out += flag.name + "=" + flag.value + (flag.from_default ? " (default)\n" : "\n");
    return out;
}

TEST(ResolveOptions, AgentFlagsAreCanonicalAndDefaultsFilledIn) {
    auto resolved = resolveOptions(schema(), "agent", R"({
        "master": "zk://10.0.0.1:2181,10.0.0.2:2181/mesos",
        "resources": {"ports": "[31000-32000, 33000-34000]", "mem": 8192, "cpus": 4.5, "disk": 100000},
        "attributes": {"zone": "us-east-1a", "rack": "r1", "ssd": true, "gen": 3},
        "isolation": "filesystem/linux, cgroups/cpu,cgroups/mem",
        "containerizers": ["docker", "mesos"],
        "executor_registration_timeout": "5mins",
        "hostname": "agent-1.example.com",
        "environment": {"GLOG_v": "1", "LIBPROCESS_NUM_WORKER_THREADS": 8}
    })",
                                   "opts");
    ASSERT_OK(resolved);
    EXPECT_EQ(flagsOf(*resolved),
              "attributes=gen:3;rack:r1;ssd:true;zone:us-east-1a\n"
              "containerizers=docker,mesos\n"
              "executor_registration_timeout=5mins\n"
              "executor_shutdown_grace_period=5secs (default)\n"
              "fetcher_cache_size=2GB (default)\n"
              "gc_delay=1weeks (default)\n"
              "hostname=agent-1.example.com\n"
              "hostname_lookup=true (default)\n"
              "isolation=filesystem/linux,cgroups/cpu,cgroups/mem\n"
              "logging_level=INFO (default)\n"
              "master=zk://10.0.0.1:2181,10.0.0.2:2181/mesos\n"
              "port=5051 (default)\n"
              "recover=reconnect (default)\n"
              "resources=cpus:4.5;disk:100000;mem:8192;ports:[31000-32000,33000-34000]\n"
              "strict=true (default)\n"
              "switch_user=true (default)\n"
              "work_dir=${STATE}/mesos (default)\n"
              "zk_session_timeout=10secs (default)\n");
    ASSERT_EQ(resolved->environment.size(), 2u);
    EXPECT_EQ(resolved->environment[0], (std::pair<std::string, std::string>{"GLOG_v", "1"}));
    EXPECT_EQ(resolved->environment[1],
              (std::pair<std::string, std::string>{"LIBPROCESS_NUM_WORKER_THREADS", "8"}));
}

TEST(ResolveOptions, MasterDefaultsDependOnTheRole) {
    auto resolved = resolveOptions(
        schema(), "master", R"({"zk": "zk://zk1:2181/mesos", "quorum": 2, "cluster": "prod-east"})",
        "opts");
    ASSERT_OK(resolved);
    auto flags = flagsOf(*resolved);
    EXPECT_NE(flags.find("port=5050 (default)\n"), std::string::npos) << flags;
    EXPECT_NE(flags.find("quorum=2\n"), std::string::npos) << flags;
    EXPECT_NE(flags.find("cluster=prod-east\n"), std::string::npos) << flags;
    EXPECT_EQ(flags.find("isolation"), std::string::npos)
        << "agent option leaked into master: " << flags;
}

TEST(ResolveOptions, ResourceStringAndObjectFormsAgree) {
    auto a =
        resolveOptions(schema(), "agent",
                       R"({"master": "m:5050", "resources": "mem:1024; cpus(web):2;gpus:0"})", "a");
    auto b = resolveOptions(
        schema(), "agent",
        R"j({"master": "m:5050", "resources": {"gpus": 0, "cpus(web)": 2, "mem": 1024}})j", "b");
    ASSERT_OK(a);
    ASSERT_OK(b);
    EXPECT_EQ(flagsOf(*a), flagsOf(*b));
    EXPECT_NE(flagsOf(*a).find("resources=cpus(web):2;gpus:0;mem:1024\n"), std::string::npos)
        << flagsOf(*a);
}

}  // namespace
}  // namespace hoist::config_gen
