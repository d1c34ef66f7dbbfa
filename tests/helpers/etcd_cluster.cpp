#include "etcd_cluster.hpp"

#include <csignal>

#include <gtest/gtest.h>

#include "core/http_client.hpp"
#include "core/json.hpp"
#include "testing.hpp"

namespace hoist::testing {

std::filesystem::path EtcdCluster::binary() {
    return process::findProgram("etcd");
}

EtcdCluster::EtcdCluster(const std::filesystem::path& folder, int members,
                         std::chrono::milliseconds heartbeat, std::chrono::milliseconds election)
    : folder_(folder), heartbeat_(heartbeat), election_(election) {
    for (int i = 0; i < members; ++i) {
        Member m;
        m.name = "m" + std::to_string(i);
        m.client_port = freeLoopbackPort();
        m.peer_port = freeLoopbackPort();
        members_.push_back(std::move(m));
    }
    for (int i = 0; i < members; ++i) start(i, true);
}

EtcdCluster::~EtcdCluster() {
    for (auto& m : members_)
        if (m.child) m.child->terminate(std::chrono::seconds(5));
}

void EtcdCluster::start(int index, bool fresh) {
    auto& m = members_.at(static_cast<std::size_t>(index));
    std::string cluster;
    for (const auto& other : members_) {
        if (!cluster.empty()) cluster += ",";
        cluster += other.name + "=http://127.0.0.1:" + std::to_string(other.peer_port);
    }
    auto data = folder_ / (m.name + ".etcd");
    std::string client = "http://127.0.0.1:" + std::to_string(m.client_port);
    std::string peer = "http://127.0.0.1:" + std::to_string(m.peer_port);
    std::vector<std::string> argv{binary().string(),
                                  "--name",
                                  m.name,
                                  "--data-dir",
                                  data.string(),
                                  "--listen-client-urls",
                                  client,
                                  "--advertise-client-urls",
                                  client,
                                  "--listen-peer-urls",
                                  peer,
                                  "--initial-advertise-peer-urls",
                                  peer,
                                  "--initial-cluster",
                                  cluster,
                                  "--initial-cluster-state",
                                  fresh ? "new" : "existing",
                                  "--initial-cluster-token",
                                  folder_.filename().string(),
                                  "--heartbeat-interval",
                                  std::to_string(heartbeat_.count()),
                                  "--election-timeout",
                                  std::to_string(election_.count()),
                                  "--max-txn-ops",
                                  "1024",
                                  "--logger",
                                  "zap",
                                  "--log-outputs",
                                  "stderr"};
    process::Options options;
    options.stdout_file = folder_ / (m.name + ".log");
    options.stderr_file = folder_ / (m.name + ".log");
    auto child = process::Child::start(argv, options);
    if (!child) {
        ADD_FAILURE() << "cannot start etcd: " << child.error().describe();
        return;
    }
    m.child.emplace(std::move(*child));
}

bool EtcdCluster::waitHealthy(std::chrono::milliseconds timeout) {
    http::Client client;
    return waitFor(
        [&] {
            for (const auto& m : members_) {
                if (!m.child) continue;
                http::Request r;
                r.url = "http://127.0.0.1:" + std::to_string(m.client_port) + "/health";
                r.timeout = std::chrono::seconds(2);
                auto answer = client.send(r);
                if (!answer || answer->status != 200 ||
                    answer->body.find("\"true\"") == std::string::npos)
                    return false;
            }
            return true;
        },
        timeout, std::chrono::milliseconds(100));
}

std::string EtcdCluster::logTails() const {
    std::string out;
    for (const auto& m : members_) {
        auto log = readFile(folder_ / (m.name + ".log"));
        std::size_t from = log.size();
        for (int lines = 0; lines < 6 && from > 0; ++lines) from = log.rfind('\n', from - 1);
        out += "--- etcd member " + m.name + " (client port " + std::to_string(m.client_port) +
               ", peer port " + std::to_string(m.peer_port) + "):\n" +
               log.substr(from == std::string::npos ? 0 : from) + "\n";
    }
    return out;
}

std::vector<std::string> EtcdCluster::endpoints() const {
    std::vector<std::string> out;
    for (const auto& m : members_)
        out.push_back("http://127.0.0.1:" + std::to_string(m.client_port));
    return out;
}

std::string EtcdCluster::stateUrl(const std::string& prefix) const {
    std::string url = "etcd://";
    for (std::size_t i = 0; i < members_.size(); ++i) {
        if (i > 0) url += ",";
        url += "127.0.0.1:" + std::to_string(members_[i].client_port);
    }
    return url + "/" + prefix;
}

int EtcdCluster::raftLeader() const {
    http::Client client;
    for (std::size_t i = 0; i < members_.size(); ++i) {
        http::Request r;
        r.method = "POST";
        r.url = "http://127.0.0.1:" + std::to_string(members_[i].client_port) +
                "/v3/maintenance/status";
        r.body = "{}";
        r.timeout = std::chrono::seconds(2);
        auto answer = client.send(r);
        if (!answer || answer->status != 200) continue;
        auto doc = json::parseObject(answer->body, "etcd status");
        if (!doc) continue;
        auto leader = doc->FindMember("leader");
        auto header = doc->FindMember("header");
        if (leader == doc->MemberEnd() || header == doc->MemberEnd()) continue;
        auto member = header->value.FindMember("member_id");
        if (member == header->value.MemberEnd()) continue;
        if (std::string(leader->value.GetString()) == std::string(member->value.GetString()))
            return static_cast<int>(i);
    }
    return -1;
}

void EtcdCluster::signal(int member, int sig) {
    auto& m = members_.at(static_cast<std::size_t>(member));
    if (m.child) m.child->signal(sig);
}

void EtcdCluster::kill(int member) {
    auto& m = members_.at(static_cast<std::size_t>(member));
    if (!m.child) return;
    m.child->signal(SIGKILL);
    (void)m.child->wait(std::chrono::seconds(10));
    m.child.reset();
}

void EtcdCluster::restart(int member) {
    start(member, false);
}

bool EtcdCluster::running(int member) {
    auto& m = members_.at(static_cast<std::size_t>(member));
    return m.child && m.child->running();
}

}  // namespace hoist::testing
