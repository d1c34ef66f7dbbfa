#include "support.hpp"

#include <gtest/gtest.h>

#include <sstream>
#include <stdexcept>

#include "config_gen/cli.hpp"
#include "testing.hpp"

namespace hoist::config_gen::test {

const Schema& schema() {
    static const Schema s = [] {
        auto parsed = Schema::embedded();
        if (!parsed) throw std::runtime_error(parsed.error().describe());
        return std::move(*parsed);
    }();
    return s;
}

CliResult cli(const std::vector<std::string>& args) {
    std::ostringstream out, err;
    std::vector<std::string> argv{"config-gen"};
    argv.insert(argv.end(), args.begin(), args.end());
    int code = runCli(argv, out, err);
    return {code, out.str(), err.str()};
}

void makeModuleDir(const fs::path& dir, const std::string& name, const std::string& version,
                   const std::string& mesos_module, const std::string& parameters_json,
                   bool library_first) {
    const std::string library = "lib/lib" + name + ".so";
    const std::string pkginfo = R"({"name": ")" + name + R"(", "version": ")" + version +
                                R"(", "kind": "module", "module": {"name": ")" + mesos_module +
                                R"(", "library": ")" + library + R"(", "parameters": )" +
                                parameters_json + "}}";
    auto write_library = [&] {
        testing::writeFile(dir / library,
                           "\x7f"
                           "ELF fake module " +
                               name);
    };
    if (library_first) write_library();
    testing::writeFile(dir / "pkginfo.json", pkginfo);
    if (!library_first) write_library();
}

pkgmgr::PackResult pack(const fs::path& dir, const fs::path& out) {
    auto packed = pkgmgr::packDirectory(dir, out);
    EXPECT_TRUE(packed.has_value())
        << "packing " << dir << ": " << (packed ? "" : packed.error().describe());
    return packed ? *packed : pkgmgr::PackResult{};
}

void makeMesosDir(const fs::path& dir, const std::string& version) {
    testing::writeFile(dir / "pkginfo.json",
                       R"({"name": "mesos", "version": ")" + version + R"(", "kind": "mesos",
  "environment": {"MESOS_LAUNCHER_DIR": "${PKG}/libexec/mesos"},
  "service": {"exec": ["bin/mesos-daemon"],
              "health": {"command": ["/bin/true"], "interval_ms": 50, "timeout_ms": 1000,
                         "healthy_after_ms": 100, "deadline_ms": 5000},
              "stop_timeout_ms": 1000}})");
    testing::writeFile(dir / "bin/mesos-daemon", "#!/bin/sh\nexec sleep 1000\n", fs::perms(0755));
    testing::writeFile(dir / "libexec/mesos/mesos-executor", "#!/bin/sh\nexit 0\n",
                       fs::perms(0755));
}

void makePlainDir(const fs::path& dir, const std::string& name, const std::string& version,
                  const std::string& kind) {
    testing::writeFile(dir / "pkginfo.json", R"({"name": ")" + name + R"(", "version": ")" +
                                                 version + R"(", "kind": ")" + kind + R"("})");
    testing::writeFile(dir / ("share/" + name + "/README"), name + " " + version + "\n");
}

}  // namespace hoist::config_gen::test
