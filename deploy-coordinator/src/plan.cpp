#include "deploy_coordinator/plan.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace hoist::deploy_coordinator {

namespace {
Result<std::int64_t> parsePositive(std::string_view digits) {
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (ec != std::errc() || end != digits.data() + digits.size() || value <= 0 || digits.empty())
        return fail(Errc::Invalid, "not a positive number");
    return value;
}

Error badMaxParallel(std::string_view text) {
    return Error{Errc::Invalid,
                 detail::concat("max_parallel '", text,
                                "' must be a positive count or a percentage such as 10%"),
                 0};
}
}  // namespace

Result<void> validateMaxParallel(std::string_view text) {
    HOIST_TRY(resolveMaxParallel(text, 1));
    return ok();
}

Result<std::int64_t> resolveMaxParallel(std::string_view text, std::int64_t agents) {
    if (text.ends_with('%')) {
        auto percent = parsePositive(text.substr(0, text.size() - 1));
        if (!percent || *percent > 100) return std::unexpected(badMaxParallel(text));
        return std::max<std::int64_t>(1, (agents * *percent + 99) / 100);
    }
    auto count = parsePositive(text);
    if (!count) return std::unexpected(badMaxParallel(text));
    return *count;
}

bool naturalLess(std::string_view a, std::string_view b) {
    size_t i = 0;
    size_t j = 0;
    while (i < a.size() && j < b.size()) {
        bool da = std::isdigit(static_cast<unsigned char>(a[i])) != 0;
        bool db = std::isdigit(static_cast<unsigned char>(b[j])) != 0;
        if (da && db) {
            size_t ei = i;
            size_t ej = j;
            while (ei < a.size() && std::isdigit(static_cast<unsigned char>(a[ei])) != 0) ++ei;
            while (ej < b.size() && std::isdigit(static_cast<unsigned char>(b[ej])) != 0) ++ej;
            auto na = a.substr(i, ei - i);
            auto nb = b.substr(j, ej - j);
            while (na.size() > 1 && na.front() == '0') na.remove_prefix(1);
            while (nb.size() > 1 && nb.front() == '0') nb.remove_prefix(1);
            if (na.size() != nb.size()) return na.size() < nb.size();
            if (na != nb) return na < nb;
            i = ei;
            j = ej;
            continue;
        }
        if (a[i] != b[j]) return a[i] < b[j];
        ++i;
        ++j;
    }
    if (a.size() - i != b.size() - j) return a.size() - i < b.size() - j;
    return a < b;
}

int roleRank(std::string_view role) {
    if (role == "master") return 0;
    if (role == "agent") return 1;
    return 2;
}

std::vector<Wave> planWaves(std::vector<PlanNode> nodes, std::int64_t max_parallel) {
    std::sort(nodes.begin(), nodes.end(), [](const PlanNode& x, const PlanNode& y) {
        int rx = roleRank(x.role);
        int ry = roleRank(y.role);
        if (rx != ry) return rx < ry;
        if (x.role != y.role) return x.role < y.role;
        return naturalLess(x.id, y.id);
    });
    std::vector<Wave> waves;
    for (const auto& node : nodes) {
        bool batch = node.role == "agent";
        if (batch && !waves.empty() && waves.back().role == "agent" &&
            static_cast<std::int64_t>(waves.back().nodes.size()) <
                std::max<std::int64_t>(1, max_parallel)) {
            waves.back().nodes.push_back(node.id);
            continue;
        }
        waves.push_back({node.role, {node.id}});
    }
    return waves;
}

}  // namespace hoist::deploy_coordinator
