#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/process.hpp"

namespace hoist::testing {

/// Real etcd members (Debian's etcd-server) on free loopback ports, each with its own data
/// folder, started by a test and stopped by pid. Heartbeat and election timeouts are raised
/// over etcd's defaults so that a busy machine does not trigger elections.
class EtcdCluster {
public:
    /// The etcd binary, or empty when it is not installed (tests skip then).
    static std::filesystem::path binary();

    EtcdCluster(const std::filesystem::path& folder, int members,
                std::chrono::milliseconds heartbeat = std::chrono::milliseconds(200),
                std::chrono::milliseconds election = std::chrono::milliseconds(2000));
    ~EtcdCluster();
    EtcdCluster(const EtcdCluster&) = delete;
    EtcdCluster& operator=(const EtcdCluster&) = delete;

    /// True once every member answers /health (or `timeout` passed).
    bool waitHealthy(std::chrono::milliseconds timeout = std::chrono::seconds(30));
    /// The last lines of each member's log (for a failure's message).
    std::string logTails() const;
    /// "http://127.0.0.1:PORT" of each member.
    std::vector<std::string> endpoints() const;
    /// etcd://127.0.0.1:P1,127.0.0.1:P2,.../prefix
    std::string stateUrl(const std::string& prefix) const;
    /// The member that leads etcd's raft now (-1 when none answers).
    int raftLeader() const;
    void signal(int member, int sig);
    /// SIGKILLs a member and waits for it to exit.
    void kill(int member);
    /// Starts a killed member again on its ports and data folder.
    void restart(int member);
    bool running(int member);

private:
    void start(int member, bool fresh);
    std::filesystem::path folder_;
    std::chrono::milliseconds heartbeat_;
    std::chrono::milliseconds election_;
    struct Member {
        std::string name;
        int client_port = 0;
        int peer_port = 0;
        std::optional<process::Child> child;
    };
    std::vector<Member> members_;
};

}  // namespace hoist::testing
