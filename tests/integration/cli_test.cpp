// Every binary parses through core/cli: `--version` prints "<program> <version>", and `--help`
// after any subcommand, at any depth, prints that subcommand's own help ("Usage: cluster
// upgrade ..."), found by walking the subcommands each help lists.

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/strings.hpp"
#include "testing.hpp"

namespace hoist::testing {
namespace {

struct Binary {
    const char* name;
    const char* path;
};

const Binary kBinaries[] = {
    {"pkgmgr", PKGMGR_BIN},
    {"restart-helper", RESTART_HELPER_BIN},
    {"deploy-coordinator", COORDINATOR_BIN},
    {"cluster", CLUSTER_BIN},
    {"provisioner", PROVISIONER_BIN},
    {"config-gen", CONFIG_GEN_BIN},
    {"repo-server", REPO_SERVER_BIN},
};

std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

/// The subcommand names a CLI11 help text lists under its "Subcommands:" heading.
std::vector<std::string> subcommandsIn(const std::string& help) {
    std::vector<std::string> names;
    bool in_list = false;
    for (auto line : strings::split(help, '\n')) {
        std::string text(line);
        if (lower(std::string(strings::trim(text))) == "subcommands:") {
            in_list = true;
            continue;
        }
        if (!in_list) continue;
        if (text.empty() || !std::isspace(static_cast<unsigned char>(text[0]))) {
            in_list = false;
            continue;
        }
        // A name is indented by two spaces; a wrapped description by many more.
        if (text.find_first_not_of(' ') > 4) continue;
        auto trimmed = std::string(strings::trim(text));
        auto end = trimmed.find_first_of(" \t");
        names.push_back(trimmed.substr(0, end));
    }
    return names;
}

std::string joined(const std::vector<std::string>& words) {
    std::string out;
    for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
    return out;
}

/// Runs `path words... --help` and recurses into the subcommands it lists; returns how many
/// help texts were checked.
int checkHelp(const Binary& binary, const std::vector<std::string>& words) {
    std::vector<std::string> argv{binary.path};
    argv.insert(argv.end(), words.begin(), words.end());
    argv.push_back("--help");
    auto outcome = run(argv);
    std::string command = joined(argv);
    EXPECT_EQ(outcome.exit_code, 0) << command << "\n" << outcome.err;
    std::vector<std::string> named{binary.name};
    named.insert(named.end(), words.begin(), words.end());
    EXPECT_NE(outcome.out.find("Usage: " + joined(named)), std::string::npos)
        << command << " did not print its own help:\n"
        << outcome.out;
    EXPECT_EQ(outcome.err, "") << command;
    int checked = 1;
    for (const auto& sub : subcommandsIn(outcome.out)) {
        auto deeper = words;
        deeper.push_back(sub);
        checked += checkHelp(binary, deeper);
    }
    return checked;
}

TEST(EveryBinary, PrintsItsVersion) {
    for (const auto& binary : kBinaries) {
        auto outcome = run({binary.path, "--version"});
        EXPECT_EQ(outcome.exit_code, 0) << binary.name << "\n" << outcome.err;
        EXPECT_EQ(outcome.out, std::string(binary.name) + " " + HOIST_VERSION_TEXT + "\n")
            << binary.name;
    }
}

TEST(EveryBinary, PrintsEachSubcommandsOwnHelp) {
    for (const auto& binary : kBinaries) {
        int checked = checkHelp(binary, {});
        // The binaries with verbs list them; a walk that found none would check nothing.
        bool has_verbs = std::string_view(binary.name) != "repo-server" &&
                         std::string_view(binary.name) != "deploy-coordinator";
        if (has_verbs) {
            EXPECT_GT(checked, 1) << binary.name << " lists no subcommands";
        }
    }
}

TEST(EveryBinary, NamesTheVerbsThatTheIssueNamed) {
    // The three the change was asked about, by name: each prints its own options.
    auto upgrade = run({CLUSTER_BIN, "upgrade", "--help"});
    EXPECT_NE(upgrade.out.find("Usage: cluster upgrade"), std::string::npos) << upgrade.out;
    EXPECT_NE(upgrade.out.find("--max-parallel"), std::string::npos) << upgrade.out;
    auto stage = run({PKGMGR_BIN, "stage", "--help"});
    EXPECT_NE(stage.out.find("Usage: pkgmgr stage"), std::string::npos) << stage.out;
    auto release = run({CONFIG_GEN_BIN, "release", "--help"});
    EXPECT_NE(release.out.find("Usage: config-gen release"), std::string::npos) << release.out;
    EXPECT_NE(release.out.find("--base"), std::string::npos) << release.out;
}

}  // namespace
}  // namespace hoist::testing
