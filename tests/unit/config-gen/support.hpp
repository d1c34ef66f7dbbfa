#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "config_gen/schema.hpp"
#include "pkgmgr/pack.hpp"

namespace hoist::config_gen::test {

namespace fs = std::filesystem;

/// The embedded option schema, parsed once (a broken embedded copy throws: every test fails).
const Schema& schema();

/// What `config-gen ARGS...` (runCli, in this process) printed and returned.
struct CliResult {
    int code;
    std::string out;
    std::string err;
};
CliResult cli(const std::vector<std::string>& args);

/// Writes an unpacked module package into `dir`: pkginfo.json (kind module, with a "module"
/// section naming lib/lib<name>.so and `parameters_json`, a JSON object) and the library.
/// `library_first` creates the library before pkginfo.json (file creation order).
void makeModuleDir(const fs::path& dir, const std::string& name, const std::string& version,
                   const std::string& mesos_module, const std::string& parameters_json = "{}",
                   bool library_first = false);

/// Packs a folder with pkgmgr::packDirectory into `out` (a file path); fails the test otherwise.
pkgmgr::PackResult pack(const fs::path& dir, const fs::path& out);

/// An unpacked "mesos" package (kind mesos, a service with a command health check).
void makeMesosDir(const fs::path& dir, const std::string& version);

/// A plain package of another kind (tool, library) with one file under share/.
void makePlainDir(const fs::path& dir, const std::string& name, const std::string& version,
                  const std::string& kind);

}  // namespace hoist::config_gen::test
