#include "metric_gates.hpp"

#include <charconv>
#include <cmath>
#include <regex>
#include <set>

#include "core/json.hpp"
#include "core/strings.hpp"

namespace hoist::deploy_coordinator {

namespace {

constexpr std::string_view kCtx = "metric gates";

Result<std::int64_t> parseDuration(std::string_view text, std::string_view gate) {
    std::size_t digits = 0;
    while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits])) != 0)
        ++digits;
    std::int64_t n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + digits, n);
    auto unit = text.substr(digits);
    std::int64_t scale = unit == "ms"  ? 1
                         : unit == "s" ? 1000
                         : unit == "m" ? 60000
                         : unit == "h" ? 3600000
                                       : 0;
    if (digits == 0 || ec != std::errc{} || end != text.data() + digits || scale == 0 ||
        n > 24 * 3600000 / scale)
        return fail(Errc::Invalid, "gate '", gate, "': '", text,
                    "' is not a duration such as 500ms, 30s, 5m or 1h (at most 24h)");
    return n * scale;
}

std::string number(double value) {
    char buffer[64];
    auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
    return ec == std::errc{} ? std::string(buffer, end) : std::string("NaN");
}

}  // namespace

Result<GateSpec> GateSpec::parse(std::string_view text) {
    // NAME: QUERY OP NUMBER [for DURATION]; the last comparison in the text is the gate's, so
    // the query may hold comparisons of its own.
    static const std::regex kGate(
        R"(^\s*([A-Za-z0-9_.-]+)\s*:\s*(.*\S)\s*(<=|>=|==|!=|<|>)\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?:for\s+(\S+))?\s*$)");
    std::string input(text);
    std::smatch m;
    if (!std::regex_match(input, m, kGate))
        return fail(Errc::Invalid, "gate '", text,
                    "' is not NAME: QUERY OP NUMBER [for DURATION], as in 'error-rate: "
                    "sum(rate(http_errors_total[1m])) < 5 for 30s'");
    GateSpec g;
    g.name = m[1];
    g.query = m[2];
    g.op = m[3];
    try {
        g.threshold = std::stod(m[4]);
    } catch (...) {
        return fail(Errc::Invalid, "gate '", g.name, "': '", std::string(m[4]),
                    "' is not a number");
    }
    if (m[5].matched) {
        HOIST_ASSIGN(g.for_ms, parseDuration(std::string(m[5]), g.name));
    }
    if (g.query.size() > 4096)
        return fail(Errc::Invalid, "gate '", g.name, "': the query is longer than 4096 bytes");
    return g;
}

std::string GateSpec::text() const {
    std::string out = name + ": " + query + " " + op + " " + number(threshold);
    if (for_ms > 0) {
        if (for_ms % 60000 == 0)
            out += " for " + std::to_string(for_ms / 60000) + "m";
        else if (for_ms % 1000 == 0)
            out += " for " + std::to_string(for_ms / 1000) + "s";
        else
            out += " for " + std::to_string(for_ms) + "ms";
    }
    return out;
}

bool GateSpec::holds(double value) const {
    if (std::isnan(value)) return false;
    if (op == "<") return value < threshold;
    if (op == "<=") return value <= threshold;
    if (op == ">") return value > threshold;
    if (op == ">=") return value >= threshold;
    if (op == "==") return value == threshold;
    if (op == "!=") return value != threshold;
    return false;
}

std::string GateConfig::toJson() const {
    if (gates.empty()) return "";
    json::Writer w;
    w.beginObject().field("prometheus", prometheus).key("gates").beginArray();
    for (const auto& g : gates) w.value(g.text());
    w.endArray().field("error_grace_ms", error_grace_ms).field("on_fail", on_fail).endObject();
    return w.str();
}

Result<void> GateConfig::validate() const {
    if (gates.empty()) return ok();
    if (prometheus.empty())
        return fail(Errc::Invalid, kCtx, ": gates need a Prometheus URL (--prometheus URL)");
    if (!prometheus.starts_with("http://") && !prometheus.starts_with("https://"))
        return fail(Errc::Invalid, kCtx, ": the Prometheus URL '", prometheus,
                    "' must start with http:// or https://");
    if (on_fail != "hold" && on_fail != "revert")
        return fail(Errc::Invalid, kCtx, ": on_fail must be \"hold\" or \"revert\", got '", on_fail,
                    "'");
    if (error_grace_ms < 0 || error_grace_ms > 24 * 3600000)
        return fail(Errc::Invalid, kCtx, ": error_grace_ms must be between 0 and 86400000");
    if (gates.size() > 32) return fail(Errc::Invalid, kCtx, ": at most 32 gates");
    std::set<std::string> names;
    for (const auto& g : gates)
        if (!names.insert(g.name).second)
            return fail(Errc::Invalid, kCtx, ": the gate name '", g.name, "' is used twice");
    return ok();
}

Result<GateConfig> GateConfig::fromJson(std::string_view text) {
    GateConfig config;
    if (strings::trim(text).empty()) return config;
    HOIST_ASSIGN(auto doc, json::parseObject(text, kCtx));
    HOIST_TRY(json::rejectUnknown(doc, {"prometheus", "gates", "error_grace_ms", "on_fail"}, kCtx));
    HOIST_ASSIGN(auto prometheus, json::optString(doc, "prometheus", kCtx));
    config.prometheus = prometheus.value_or("");
    HOIST_ASSIGN(auto gates, json::optStringArray(doc, "gates", kCtx));
    for (const auto& g : gates) {
        HOIST_ASSIGN(auto spec, GateSpec::parse(g));
        config.gates.push_back(std::move(spec));
    }
    HOIST_ASSIGN(auto grace, json::optInt(doc, "error_grace_ms", kCtx));
    if (grace) config.error_grace_ms = *grace;
    HOIST_ASSIGN(auto on_fail, json::optString(doc, "on_fail", kCtx));
    if (on_fail) config.on_fail = *on_fail;
    HOIST_TRY(config.validate());
    return config;
}

GateSample evaluateGate(http::Client& client, const std::string& prometheus,
                        const std::string& query) {
    GateSample sample;
    http::Request request;
    request.url = http::joinUrl(prometheus, "/api/v1/query") + "?query=" + http::urlEncode(query);
    request.connect_timeout = std::chrono::seconds(3);
    request.timeout = std::chrono::seconds(10);
    auto response = client.send(request);
    if (!response) {
        sample.error =
            "prometheus at " + prometheus + " cannot be reached: " + response.error().message;
        return sample;
    }
    auto doc = json::parseObject(response->body, "prometheus answer");
    if (!doc) {
        sample.error = "prometheus answered HTTP " + std::to_string(response->status) +
                       " with a body that is not JSON";
        return sample;
    }
    auto status = json::optString(*doc, "status", "prometheus answer");
    if (!status || status->value_or("") != "success") {
        auto why = json::optString(*doc, "error", "prometheus answer");
        sample.error = "prometheus refused the query (HTTP " + std::to_string(response->status) +
                       "): " + (why && *why ? **why : std::string("no reason given"));
        return sample;
    }
    auto data = json::getObject(*doc, "data", "prometheus answer");
    if (!data) {
        sample.error = data.error().message;
        return sample;
    }
    auto type = json::optString(**data, "resultType", "prometheus answer");
    auto result = (*data)->FindMember("result");
    if (!type || !*type || result == (*data)->MemberEnd()) {
        sample.error = "prometheus answer: no resultType or result";
        return sample;
    }
    // A scalar is [time, "value"]; a vector is [{"metric":{},"value":[time,"value"]}, ...].
    const json::Value* pair = nullptr;
    if (**type == "scalar" && result->value.IsArray()) {
        pair = &result->value;
    } else if (**type == "vector" && result->value.IsArray()) {
        if (result->value.Empty()) {
            sample.error = "the query returned no data";
            return sample;
        }
        if (result->value.Size() > 1) {
            sample.error = "the query returned " + std::to_string(result->value.Size()) +
                           " series, not one (aggregate it, as with sum(...))";
            return sample;
        }
        auto value = result->value[0].FindMember("value");
        if (value != result->value[0].MemberEnd()) pair = &value->value;
    } else {
        sample.error = "the query returned a " + **type + ", not one number";
        return sample;
    }
    if (pair == nullptr || !pair->IsArray() || pair->Size() != 2 || !(*pair)[1].IsString()) {
        sample.error = "prometheus answer: a sample is not [time, \"value\"]";
        return sample;
    }
    std::string text = (*pair)[1].GetString();
    if (text == "NaN") {
        sample.error = "the query's value is NaN";
        return sample;
    }
    try {
        sample.value = std::stod(text);
    } catch (...) {
        sample.error = "prometheus answer: '" + text + "' is not a number";
    }
    return sample;
}

}  // namespace hoist::deploy_coordinator
