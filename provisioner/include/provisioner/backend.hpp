#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "provisioner/ec2.hpp"
#include "provisioner/state.hpp"

namespace hoist::provisioner {

/// What a launch asks of a backend. The client token is derived from the idempotency key, so
/// the same request launches the same nodes however often it is repeated.
struct LaunchSpec {
    std::string role;
    int count = 1;
    std::string release;
    std::string client_token;
    std::string request_key;
};

/// Where nodes come from. Implementations are called under the service's lock (one call at
/// a time).
class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;
    /// Starts `count` nodes; returns their records (state pending or running).
    virtual Result<std::vector<NodeRecord>> launch(const LaunchSpec& spec) = 0;
    /// Brings state, address and message of each node up to date.
    virtual Result<void> refresh(std::vector<NodeRecord>& nodes) = 0;
    /// Decommissions one node; sets its state (terminating or terminated).
    virtual Result<void> terminate(NodeRecord& node) = 0;
    /// Attempts the last call made (1 when it did not retry), for the retry counter in metrics.
    virtual int lastAttempts() const { return 1; }
};

/// Values every bootstrap needs, whatever the backend.
struct BootstrapSettings {
    std::string repo_url;
    std::string coordinator_url;
    /// The user-data template (default: the built-in bootstrap-user-data.sh).
    std::string user_data_template;
    /// The node root on the instance.
    std::string node_root = "/opt/hoist";
    /// The PEM text of the key releases are signed with (aws: written to the instance).
    std::string trusted_key_pem;
    /// Let nodes accept unsigned releases (development only).
    bool allow_unsigned = false;
};

struct AwsSettings {
    std::string image_id;
    std::string instance_type = "t3.medium";
    std::string subnet_id;
    std::vector<std::string> security_group_ids;
    std::string key_name;
    std::string iam_instance_profile;
    /// Tag hoist:cluster on every instance; DescribeInstances filters on it.
    std::string cluster = "hoist";
    std::vector<ec2::Tag> extra_tags;
    int describe_page_size = 0;
};

/// EC2: RunInstances with rendered user data (one reservation per request, MinCount = MaxCount
/// = count, ClientToken), DescribeInstances by the hoist:cluster tag, TerminateInstances.
std::unique_ptr<Backend> makeAwsBackend(std::shared_ptr<ec2::Client> client, AwsSettings aws,
                                        BootstrapSettings bootstrap);

struct LocalSettings {
    /// Node roots are <nodes_dir>/<id>/, boot logs <nodes_dir>/<id>.log.
    std::filesystem::path nodes_dir;
    std::filesystem::path restart_helper;
    std::filesystem::path pkgmgr;
    /// The provisioner binary, whose `local-boot` verb boots each node.
    std::filesystem::path provisioner;
    /// Passed to `pkgmgr serve --token-file` (empty: not passed).
    std::filesystem::path serve_token_file;
    /// Passed to `restart-helper bootstrap --coordinator-token-file`: the token nodes present
    /// to the coordinator when they register and ping (empty: not passed).
    std::filesystem::path coordinator_token_file;
    /// Passed to `restart-helper bootstrap`: --trusted-key for each, or --allow-unsigned.
    std::vector<std::filesystem::path> trusted_keys;
    bool allow_unsigned = false;
    std::chrono::milliseconds stop_grace{5000};
};

/// Local development: each node is a root under nodes_dir, booted by a process of its own
/// (`provisioner local-boot`) that runs `restart-helper bootstrap` and then execs
/// `pkgmgr serve` on a loopback port, as a cloud node's user data and init system would.
/// Decommissioning stops the boot process and the node's service, then removes the root.
std::unique_ptr<Backend> makeLocalBackend(LocalSettings local, BootstrapSettings bootstrap);

/// What `provisioner local-boot` does: bootstrap the root, then exec `pkgmgr serve`.
struct LocalBootArgs {
    std::string restart_helper;
    std::string pkgmgr;
    std::string root;
    std::string repo;
    std::string release;
    std::string role;
    std::string coordinator;
    std::string id;
    std::string port_file;
    std::string serve_token_file;
    std::string coordinator_token_file;
    std::vector<std::string> trusted_keys;
    bool allow_unsigned = false;
};
/// Runs the bootstrap and replaces this process with `pkgmgr serve`; returns only on failure
/// (the exit code).
int localBoot(const LocalBootArgs& args, std::ostream& err);

}  // namespace hoist::provisioner
