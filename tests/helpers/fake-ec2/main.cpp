// fake-ec2: a small EC2 Query API (2016-11-15) for the provisioner's tests. It checks every
// request's SigV4 signature with its own copy of the key and answers in the real XML shapes:
// RunInstances, DescribeInstances (reservationSet/instancesSet, MaxResults/NextToken),
// TerminateInstances, and the <Response><Errors><Error> envelope. Instances go pending ->
// running after --pending-polls DescribeInstances calls, and shutting-down -> terminated after
// one. ClientToken makes RunInstances idempotent (IdempotentParameterMismatch when the
// parameters differ). Control routes (no signature):
//   POST /_fake/fail {"action": "RunInstances" or "*", "code", "status", "times"}  inject errors
//   GET  /_fake/requests   every signed call: action, ClientToken, outcome
//   GET  /_fake/instances  every instance with its decoded user data
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/crypto.hpp"
#include "core/http_server.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"
#include "provisioner/sigv4.hpp"

namespace {

using namespace hoist;
namespace sigv4 = hoist::provisioner::sigv4;

constexpr std::string_view kNs = "http://ec2.amazonaws.com/doc/2016-11-15/";

std::string xmlEscape(std::string_view text) {
    std::string out;
    for (char c : text) {
        switch (c) {
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '&':
                out += "&amp;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&apos;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

int hexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string formDecode(std::string_view text) {
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '+') {
            out += ' ';
        } else if (text[i] == '%' && i + 2 < text.size() && hexValue(text[i + 1]) >= 0 &&
                   hexValue(text[i + 2]) >= 0) {
            out += static_cast<char>(hexValue(text[i + 1]) * 16 + hexValue(text[i + 2]));
            i += 2;
        } else {
            out += text[i];
        }
    }
    return out;
}

using Params = std::map<std::string, std::string>;

Params parseForm(std::string_view body) {
    Params out;
    for (const auto& part : strings::split(body, '&')) {
        if (part.empty()) continue;
        size_t eq = part.find('=');
        out[formDecode(part.substr(0, eq))] =
            eq == std::string::npos ? "" : formDecode(part.substr(eq + 1));
    }
    return out;
}

// Values of Prefix.1, Prefix.2, ... in order.
std::vector<std::string> listParam(const Params& params, const std::string& prefix) {
    std::vector<std::string> out;
    for (int i = 1;; ++i) {
        auto it = params.find(prefix + "." + std::to_string(i));
        if (it == params.end()) return out;
        out.push_back(it->second);
    }
}

struct Instance {
    std::string id;
    std::string reservation;
    std::string image_id;
    std::string instance_type;
    std::string state = "pending";
    int polls = 0;
    std::string private_ip;
    std::string client_token;
    std::string launch_time;
    std::string user_data;
    std::vector<std::pair<std::string, std::string>> tags;
};

struct Injection {
    std::string action;
    std::string code;
    int status = 503;
    int times = 1;
};

struct RequestLog {
    std::string action;
    std::string client_token;
    std::string outcome;
};

struct Fake {
    std::string access_key;
    std::string secret_key;
    std::string region;
    int pending_polls = 1;
    int default_page_size = 1000;

    std::mutex mutex;
    std::vector<Instance> instances;
    // ClientToken -> (the other parameters, the reservation they made)
    std::map<std::string, std::pair<Params, std::string>> tokens;
    std::vector<Injection> injections;
    std::vector<RequestLog> log;
    int next_id = 1;

    static http::ServerReply errorReply(int status, const std::string& code,
                                        const std::string& message) {
        std::string request_id = "fake-" + crypto::randomHex(8);
        std::string body =
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>" +
            xmlEscape(code) + "</Code><Message>" + xmlEscape(message) +
            "</Message></Error></Errors><RequestID>" + request_id + "</RequestID></Response>";
        return http::ServerReply::text(status, body, "text/xml;charset=UTF-8");
    }

    static http::ServerReply okReply(const std::string& action, const std::string& inner) {
        std::string body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<" + action +
                           "Response xmlns=\"" + std::string(kNs) + "\">\n    <requestId>fake-" +
                           crypto::randomHex(8) + "</requestId>\n" + inner + "</" + action +
                           "Response>";
        return http::ServerReply::text(200, body, "text/xml;charset=UTF-8");
    }

    // The signature check AWS makes: recompute from the signed headers, compare.
    std::optional<http::ServerReply> checkSignature(const http::ServerRequest& req) {
        auto auth_header = req.header("Authorization");
        if (!auth_header)
            return errorReply(401, "AuthFailure",
                              "AWS was not able to validate the provided access credentials");
        auto auth = sigv4::parseAuthorization(*auth_header);
        if (!auth) return errorReply(400, "IncompleteSignature", auth.error().message);
        if (auth->access_key_id != access_key)
            return errorReply(401, "AuthFailure",
                              "AWS was not able to validate the provided access credentials");
        if (auth->region != region || auth->service != "ec2")
            return errorReply(
                401, "AuthFailure",
                "Credential should be scoped to a valid region, not '" + auth->region + "'");
        auto date = req.header("X-Amz-Date");
        if (!date || date->substr(0, 8) != auth->date)
            return errorReply(400, "IncompleteSignature",
                              "X-Amz-Date is missing or does not match the credential scope");
        sigv4::Request signed_request;
        signed_request.method = req.method;
        signed_request.target = req.path;
        std::string query;
        for (const auto& [k, v] : req.query) {
            if (req.method == "POST") break;  // httplib folds form fields into params
            query += (query.empty() ? "" : "&") + http::urlEncode(k) + "=" + http::urlEncode(v);
        }
        if (!query.empty()) signed_request.target += "?" + query;
        for (const auto& name : auth->signed_headers) {
            bool found = false;
            for (const auto& h : req.headers) {
                if (strings::toLower(h.name) == name) {
                    signed_request.headers.emplace_back(name, h.value);
                    found = true;
                }
            }
            if (!found)
                return errorReply(400, "IncompleteSignature",
                                  "signed header '" + name + "' is not in the request");
        }
        signed_request.body = req.body;
        sigv4::Credentials creds{access_key, secret_key, ""};
        auto expected = sigv4::sign(signed_request, creds, {region, "ec2", *date});
        if (!expected || !crypto::constantTimeEquals(expected->signature, auth->signature))
            return errorReply(403, "SignatureDoesNotMatch",
                              "The request signature we calculated does not match the signature "
                              "you provided. Check your AWS Secret Access Key and signing method. "
                              "Consult the service documentation for details.");
        return std::nullopt;
    }

    std::string instanceXml(const Instance& i) const {
        int code = i.state == "pending"         ? 0
                   : i.state == "running"       ? 16
                   : i.state == "shutting-down" ? 32
                                                : 48;
        std::string tags;
        for (const auto& [k, v] : i.tags)
            tags +=
                "<item><key>" + xmlEscape(k) + "</key><value>" + xmlEscape(v) + "</value></item>";
        return "<item><instanceId>" + i.id + "</instanceId><imageId>" + xmlEscape(i.image_id) +
               "</imageId><instanceState><code>" + std::to_string(code) + "</code><name>" +
               i.state + "</name></instanceState><privateDnsName>ip-" + i.private_ip +
               ".ec2.internal</privateDnsName><dnsName/><instanceType>" +
               xmlEscape(i.instance_type) + "</instanceType><launchTime>" + i.launch_time +
               "</launchTime><privateIpAddress>" + i.private_ip +
               "</privateIpAddress><clientToken>" + xmlEscape(i.client_token) +
               "</clientToken><tagSet>" + tags + "</tagSet></item>";
    }

    http::ServerReply runInstances(const Params& p) {
        for (const char* required : {"ImageId", "InstanceType", "MinCount", "MaxCount"})
            if (!p.contains(required))
                return errorReply(
                    400, "MissingParameter",
                    std::string("The request must contain the parameter ") + required);
        int min_count = std::atoi(p.at("MinCount").c_str());
        int max_count = std::atoi(p.at("MaxCount").c_str());
        if (min_count < 1 || max_count < min_count)
            return errorReply(400, "InvalidParameterValue", "MinCount and MaxCount are invalid");
        std::string user_data;
        if (auto it = p.find("UserData"); it != p.end()) {
            auto decoded = crypto::base64Decode(it->second);
            if (!decoded)
                return errorReply(400, "InvalidParameterValue",
                                  "Invalid BASE64 encoding of user data.");
            user_data = *decoded;
        }
        std::string token = p.contains("ClientToken") ? p.at("ClientToken") : "";
        Params identity = p;
        identity.erase("ClientToken");
        if (!token.empty()) {
            if (auto it = tokens.find(token); it != tokens.end()) {
                if (it->second.first != identity)
                    return errorReply(400, "IdempotentParameterMismatch",
                                      "The client token you have provided is associated with a "
                                      "resource that is already deleted or has different "
                                      "parameters. Please use a different client token.");
                return reservationReply(it->second.second);
            }
        }
        std::string reservation = "r-" + crypto::randomHex(8);
        std::vector<std::pair<std::string, std::string>> tags;
        for (int s = 1;; ++s) {
            std::string prefix = "TagSpecification." + std::to_string(s) + ".";
            if (!p.contains(prefix + "ResourceType")) break;
            for (int t = 1;; ++t) {
                std::string tag = prefix + "Tag." + std::to_string(t) + ".";
                if (!p.contains(tag + "Key")) break;
                tags.emplace_back(p.at(tag + "Key"),
                                  p.contains(tag + "Value") ? p.at(tag + "Value") : "");
            }
        }
        for (int n = 0; n < max_count; ++n) {
            Instance i;
            char id[32];
            std::snprintf(id, sizeof id, "i-%017x", next_id);
            i.id = id;
            i.private_ip =
                "10.0." + std::to_string(next_id / 250) + "." + std::to_string(next_id % 250 + 1);
            ++next_id;
            i.reservation = reservation;
            i.image_id = p.at("ImageId");
            i.instance_type = p.at("InstanceType");
            i.client_token = token;
            i.launch_time = log::nowRfc3339();
            i.user_data = user_data;
            i.tags = tags;
            instances.push_back(std::move(i));
        }
        if (!token.empty()) tokens[token] = {identity, reservation};
        return reservationReply(reservation);
    }

    http::ServerReply reservationReply(const std::string& reservation) {
        std::string items;
        for (const auto& i : instances)
            if (i.reservation == reservation) items += instanceXml(i);
        return okReply("RunInstances", "    <reservationId>" + reservation +
                                           "</reservationId>\n    <ownerId>123456789012</ownerId>\n"
                                           "    <groupSet/>\n    <instancesSet>" +
                                           items + "</instancesSet>\n");
    }

    bool matches(const Instance& i, const std::string& name,
                 const std::vector<std::string>& values) {
        auto in = [&](const std::string& v) {
            return std::find(values.begin(), values.end(), v) != values.end();
        };
        if (name == "instance-id") return in(i.id);
        if (name == "instance-state-name") return in(i.state);
        if (name == "tag-key") {
            for (const auto& [k, v] : i.tags)
                if (in(k)) return true;
            return false;
        }
        if (name.starts_with("tag:")) {
            for (const auto& [k, v] : i.tags)
                if (k == name.substr(4) && in(v)) return true;
            return false;
        }
        return false;
    }

    http::ServerReply describeInstances(const Params& p) {
        auto ids = listParam(p, "InstanceId");
        for (const auto& id : ids) {
            bool known = std::any_of(instances.begin(), instances.end(),
                                     [&](const Instance& i) { return i.id == id; });
            if (!known)
                return errorReply(400, "InvalidInstanceID.NotFound",
                                  "The instance ID '" + id + "' does not exist");
        }
        std::vector<Instance*> selected;
        for (auto& i : instances) {
            if (!ids.empty() && std::find(ids.begin(), ids.end(), i.id) == ids.end()) continue;
            bool ok = true;
            for (int f = 1;; ++f) {
                std::string prefix = "Filter." + std::to_string(f) + ".";
                if (!p.contains(prefix + "Name")) break;
                if (!matches(i, p.at(prefix + "Name"), listParam(p, prefix + "Value"))) ok = false;
            }
            if (ok) selected.push_back(&i);
        }
        // A describe is a poll: time moves on for the instances it sees.
        for (auto* i : selected) {
            if (i->state == "pending" && ++i->polls > pending_polls)
                i->state = "running";
            else if (i->state == "shutting-down")
                i->state = "terminated";
        }
        int page = default_page_size;
        if (auto it = p.find("MaxResults"); it != p.end()) {
            if (!ids.empty())
                return errorReply(
                    400, "InvalidParameterCombination",
                    "The parameter instancesSet cannot be used with the parameter maxResults");
            page = std::atoi(it->second.c_str());
            if (page < 5 || page > 1000)
                return errorReply(400, "InvalidParameterValue",
                                  "Value ( " + it->second +
                                      " ) for parameter maxResults is invalid. "
                                      "Expecting a value greater than 5.");
        }
        size_t offset = 0;
        if (auto it = p.find("NextToken"); it != p.end()) {
            auto decoded = crypto::base64Decode(it->second);
            if (!decoded || !decoded->starts_with("offset:"))
                return errorReply(400, "InvalidParameterValue",
                                  "The token '" + it->second + "' is invalid");
            offset = std::stoul(decoded->substr(7));
        }
        size_t end = std::min(selected.size(), offset + static_cast<size_t>(page));
        // Grouped by reservation, as EC2 does.
        std::vector<std::pair<std::string, std::string>> reservations;
        for (size_t k = offset; k < end; ++k) {
            const Instance& i = *selected[k];
            if (reservations.empty() || reservations.back().first != i.reservation)
                reservations.emplace_back(i.reservation, "");
            reservations.back().second += instanceXml(i);
        }
        std::string inner = "    <reservationSet>";
        for (const auto& [id, items] : reservations)
            inner += "<item><reservationId>" + id +
                     "</reservationId><ownerId>123456789012</ownerId>"
                     "<groupSet/><instancesSet>" +
                     items + "</instancesSet></item>";
        inner += "</reservationSet>\n";
        if (end < selected.size())
            inner += "    <nextToken>" + crypto::base64Encode("offset:" + std::to_string(end)) +
                     "</nextToken>\n";
        return okReply("DescribeInstances", inner);
    }

    http::ServerReply terminateInstances(const Params& p) {
        auto ids = listParam(p, "InstanceId");
        if (ids.empty())
            return errorReply(400, "MissingParameter",
                              "The request must contain the parameter InstanceId");
        std::string items;
        for (const auto& id : ids) {
            auto it = std::find_if(instances.begin(), instances.end(),
                                   [&](const Instance& i) { return i.id == id; });
            if (it == instances.end())
                return errorReply(400, "InvalidInstanceID.NotFound",
                                  "The instance ID '" + id + "' does not exist");
            std::string previous = it->state;
            if (it->state != "terminated") it->state = "shutting-down";
            auto state = [](const std::string& name) {
                int code = name == "pending"         ? 0
                           : name == "running"       ? 16
                           : name == "shutting-down" ? 32
                                                     : 48;
                return "<code>" + std::to_string(code) + "</code><name>" + name + "</name>";
            };
            items += "<item><instanceId>" + id + "</instanceId><currentState>" + state(it->state) +
                     "</currentState><previousState>" + state(previous) + "</previousState></item>";
        }
        return okReply("TerminateInstances", "    <instancesSet>" + items + "</instancesSet>\n");
    }

    http::ServerReply handle(const http::ServerRequest& req) {
        std::lock_guard lock(mutex);
        Params p = parseForm(req.body);
        std::string action = p.contains("Action") ? p.at("Action") : "";
        RequestLog entry{action, p.contains("ClientToken") ? p.at("ClientToken") : "", ""};
        auto reply = [&]() -> http::ServerReply {
            if (auto rejected = checkSignature(req)) return *rejected;
            for (auto& inj : injections) {
                if (inj.times > 0 && (inj.action == "*" || inj.action == action)) {
                    --inj.times;
                    return errorReply(inj.status, inj.code, "injected by the test");
                }
            }
            if (p.contains("Version") && p.at("Version") != "2016-11-15")
                return errorReply(400, "InvalidParameterValue",
                                  "unsupported Version " + p.at("Version"));
            if (action == "RunInstances") return runInstances(p);
            if (action == "DescribeInstances") return describeInstances(p);
            if (action == "TerminateInstances") return terminateInstances(p);
            return errorReply(400, "InvalidAction",
                              "The action " + action + " is not valid for this web service.");
        }();
        entry.outcome = std::to_string(reply.status);
        if (reply.status != 200) {
            size_t start = reply.body.find("<Code>");
            size_t stop = reply.body.find("</Code>");
            if (start != std::string::npos && stop != std::string::npos)
                entry.outcome += " " + reply.body.substr(start + 6, stop - start - 6);
        }
        log.push_back(entry);
        return reply;
    }

    http::ServerReply inject(const http::ServerRequest& req) {
        auto doc = json::parseObject(req.body, "injection");
        if (!doc) return http::ServerReply::error(doc.error());
        Injection inj;
        auto action = json::getString(*doc, "action", "injection");
        auto code = json::getString(*doc, "code", "injection");
        if (!action || !code) return http::ServerReply::error(400, "need action and code");
        inj.action = *action;
        inj.code = *code;
        if (auto s = json::optInt(*doc, "status", "injection"); s && *s)
            inj.status = static_cast<int>(**s);
        if (auto t = json::optInt(*doc, "times", "injection"); t && *t)
            inj.times = static_cast<int>(**t);
        std::lock_guard lock(mutex);
        injections.push_back(inj);
        return http::ServerReply::json(200, "{}");
    }

    http::ServerReply requests() {
        std::lock_guard lock(mutex);
        json::Writer w;
        w.beginObject().key("requests").beginArray();
        for (const auto& e : log)
            w.beginObject()
                .field("action", e.action)
                .field("client_token", e.client_token)
                .field("outcome", e.outcome)
                .endObject();
        w.endArray().endObject();
        return http::ServerReply::json(200, w.str());
    }

    http::ServerReply listInstances() {
        std::lock_guard lock(mutex);
        json::Writer w;
        w.beginObject().key("instances").beginArray();
        for (const auto& i : instances) {
            w.beginObject()
                .field("id", i.id)
                .field("state", i.state)
                .field("client_token", i.client_token)
                .field("user_data", i.user_data)
                .key("tags")
                .beginObject();
            for (const auto& [k, v] : i.tags) w.field(k, v);
            w.endObject().endObject();
        }
        w.endArray().endObject();
        return http::ServerReply::json(200, w.str());
    }
};

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"fake-ec2: an EC2 Query API endpoint for tests", "fake-ec2"};
    Fake fake;
    std::string listen_host = "127.0.0.1";
    int port = 0;
    std::string port_file;
    app.add_option("--host", listen_host, "address to listen on")->capture_default_str();
    app.add_option("--port", port, "port (0: any)")->capture_default_str();
    app.add_option("--port-file", port_file, "write the bound port here");
    app.add_option("--access-key", fake.access_key, "the only access key id accepted")->required();
    app.add_option("--secret-key", fake.secret_key, "its secret")->required();
    app.add_option("--region", fake.region, "region of the credential scope")->required();
    app.add_option("--pending-polls", fake.pending_polls,
                   "DescribeInstances calls an instance stays pending for")
        ->capture_default_str();
    app.add_option("--page-size", fake.default_page_size,
                   "DescribeInstances page size without MaxResults")
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    std::unique_ptr<hoist::http::Server> server;
    hoist::http::SignalWaiter signals([&server] {
        if (server) server->stop();
    });
    hoist::http::ServerOptions options;
    options.component = "fake-ec2";
    options.host = listen_host;
    options.port = port;
    auto created = hoist::http::Server::create(options);
    if (!created) {
        std::cerr << "fake-ec2: " << created.error().describe() << "\n";
        return 1;
    }
    auto& s = **created;
    s.route("POST", "/", [&fake](const hoist::http::ServerRequest& r) { return fake.handle(r); });
    s.route("POST", "/_fake/fail",
            [&fake](const hoist::http::ServerRequest& r) { return fake.inject(r); });
    s.route("GET", "/_fake/requests",
            [&fake](const hoist::http::ServerRequest&) { return fake.requests(); });
    s.route("GET", "/_fake/instances",
            [&fake](const hoist::http::ServerRequest&) { return fake.listInstances(); });
    auto bound = s.bind();
    if (!bound) {
        std::cerr << "fake-ec2: " << bound.error().describe() << "\n";
        return 1;
    }
    if (!port_file.empty()) (void)s.writePortFile(port_file);
    server = std::move(*created);
    server->run();
    return 0;
}
