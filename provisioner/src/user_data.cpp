#include "provisioner/user_data.hpp"

namespace hoist::provisioner {

extern const std::string_view kUserDataTemplate;

std::string_view defaultUserDataTemplate() {
    return kUserDataTemplate;
}

std::string shellQuote(std::string_view word) {
    std::string out = "'";
    for (char c : word) {
        if (c == '\'')
            out += "'\\''";
        else
            out += c;
    }
    out += "'";
    return out;
}

Result<std::string> renderUserData(std::string_view tmpl,
                                   const std::map<std::string, std::string>& values) {
    std::string out;
    size_t pos = 0;
    while (pos < tmpl.size()) {
        size_t open = tmpl.find("{{", pos);
        if (open == std::string_view::npos) {
            out += tmpl.substr(pos);
            break;
        }
        out += tmpl.substr(pos, open - pos);
        size_t close = tmpl.find("}}", open + 2);
        if (close == std::string_view::npos)
            return fail(Errc::Invalid, "user-data template: '{{' at offset ", open,
                        " is not closed");
        std::string name(tmpl.substr(open + 2, close - open - 2));
        auto it = values.find(name);
        if (it == values.end()) {
            std::string known;
            for (const auto& [key, value] : values) known += (known.empty() ? "" : ", ") + key;
            return fail(Errc::Invalid, "user-data template: unknown placeholder '{{", name,
                        "}}' (known: ", known, ")");
        }
        out += shellQuote(it->second);
        pos = close + 2;
    }
    return out;
}

}  // namespace hoist::provisioner
