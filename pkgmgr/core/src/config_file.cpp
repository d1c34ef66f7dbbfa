#include "core/config_file.hpp"

#include <algorithm>
#include <filesystem>
#include <optional>
#include <sstream>
#include <vector>

#include <toml++/toml.h>

namespace hoist::cli {

namespace {

// Keys that name no setting: the file cannot point at another file or ask for help.
bool reservedKey(std::string_view key) {
    return key == "config" || key == "help" || key == "help-all" || key == "version";
}

// The option a key sets: in `app`, else in the commands above it (pkgmgr's --root for serve).
CLI::Option* findOption(CLI::App& app, const std::string& key) {
    for (CLI::App* a = &app; a != nullptr; a = a->get_parent()) {
        if (auto* op = a->get_option_no_throw("--" + key); op != nullptr) return op;
    }
    return nullptr;
}

[[noreturn]] void refuse(const std::string& file, const toml::source_region& where,
                         std::string_view key, std::string_view rule) {
    std::ostringstream message;
    message << "config file " << file;
    if (where.begin.line > 0) message << ":" << where.begin.line;
    message << ": key '" << key << "' " << rule;
    throw CLI::ConfigError(message.str());
}

// A TOML scalar as the string a command line would carry; nullopt for tables, arrays, dates.
std::optional<std::string> scalarText(const toml::node& node) {
    if (auto s = node.value_exact<std::string>()) return *s;
    if (auto i = node.value_exact<int64_t>()) return std::to_string(*i);
    if (auto b = node.value_exact<bool>()) return *b ? std::string("true") : std::string("false");
    if (node.is_floating_point()) {
        std::ostringstream text;
        text << *node.value_exact<double>();
        return text.str();
    }
    return std::nullopt;
}

void applyKey(CLI::App& app, const std::string& file, const std::string& key,
              const toml::node& node) {
    const auto& where = node.source();
    CLI::Option* op = reservedKey(key) ? nullptr : findOption(app, key);
    if (op == nullptr || !op->get_configurable()) {
        std::string dashed = key;
        std::replace(dashed.begin(), dashed.end(), '_', '-');
        if (dashed != key && !reservedKey(dashed) && findOption(app, dashed) != nullptr)
            refuse(file, where, key, "is unknown: did you mean '" + dashed + "'?");
        std::string command = app.get_name();
        for (auto* a = app.get_parent(); a != nullptr; a = a->get_parent())
            command = a->get_name() + " " + command;
        refuse(file, where, key,
               "is unknown (the keys are the long options of '" + command +
                   " --help', without the dashes)");
    }
    // The command line wins.
    if (op->count() > 0) return;

    std::vector<std::string> inputs;
    if (const auto* list = node.as_array()) {
        if (op->get_expected_max() <= 1) refuse(file, where, key, "takes one value, not a list");
        for (const auto& element : *list) {
            auto text = scalarText(element);
            if (!text)
                refuse(file, element.source(), key,
                       "holds a list element that is not a "
                       "string, number or boolean");
            inputs.push_back(std::move(*text));
        }
    } else if (auto text = scalarText(node)) {
        inputs.push_back(std::move(*text));
    } else {
        refuse(file, where, key, "must be a string, number, boolean or list of them");
    }

    try {
        if (op->get_expected_min() == 0) {
            // A flag: a boolean only, as "flag = true" reads.
            if (!node.is_boolean()) refuse(file, where, key, "is a flag: give true or false");
            op->add_result(op->get_flag_value(key, inputs.front()));
        } else {
            op->add_result(inputs);
        }
        op->run_callback();
    } catch (const CLI::ConfigError&) {
        throw;
    } catch (const CLI::Error& e) {
        refuse(file, where, key, std::string("is refused: ") + e.what());
    }
}

void applyFile(CLI::App& app, const std::string& file) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec))
        throw CLI::ConfigError("config file " + file + " does not exist or is not a file");
    toml::table table;
    try {
        table = toml::parse_file(file);
    } catch (const toml::parse_error& e) {
        std::ostringstream message;
        message << "config file " << file << ":" << e.source().begin.line << ":"
                << e.source().begin.column << ": not TOML: " << e.description();
        throw CLI::ConfigError(message.str());
    }
    for (const auto& [key, node] : table) applyKey(app, file, std::string(key.str()), node);
}

}  // namespace

CLI::Option* addConfigOption(CLI::App& app, std::string_view default_hint) {
    CLI::App* owner = &app;
    std::string help =
        "read options from this TOML file (keys: the long options without the "
        "dashes; the command line wins)";
    if (!default_hint.empty()) help += "; packaged: " + std::string(default_hint);
    return app
        .add_option_function<std::string>(
            "--config", [owner](const std::string& file) { applyFile(*owner, file); }, help)
        ->type_name("FILE");
}

}  // namespace hoist::cli
