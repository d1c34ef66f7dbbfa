#include <map>

#include "core/log.hpp"
#include "provisioner/backend.hpp"
#include "provisioner/user_data.hpp"

namespace hoist::provisioner {

namespace {

constexpr std::string_view kComponent = "provisioner";

std::string nodeState(const std::string& ec2_state) {
    if (ec2_state == "pending" || ec2_state == "running" || ec2_state == "terminated")
        return ec2_state;
    if (ec2_state == "shutting-down") return "terminating";
    return ec2_state.empty() ? "pending" : ec2_state;  // stopping, stopped: shown as they are
}

class AwsBackend final : public Backend {
public:
    AwsBackend(std::shared_ptr<ec2::Client> client, AwsSettings aws, BootstrapSettings bootstrap)
        : client_(std::move(client)), aws_(std::move(aws)), bootstrap_(std::move(bootstrap)) {}

    std::string name() const override { return "aws"; }
    int lastAttempts() const override { return client_->lastAttempts(); }

    Result<std::vector<NodeRecord>> launch(const LaunchSpec& spec) override {
        std::string_view tmpl = bootstrap_.user_data_template.empty()
                                    ? defaultUserDataTemplate()
                                    : std::string_view(bootstrap_.user_data_template);
        HOIST_ASSIGN(auto user_data,
                     renderUserData(
                         tmpl, {{"repo", bootstrap_.repo_url},
                                {"release", spec.release},
                                {"role", spec.role},
                                {"coordinator", bootstrap_.coordinator_url},
                                {"root", bootstrap_.node_root},
                                {"trusted_key_pem", bootstrap_.trusted_key_pem},
                                {"allow_unsigned", bootstrap_.allow_unsigned ? "true" : "false"}}));
        ec2::RunInstancesRequest run;
        run.image_id = aws_.image_id;
        run.instance_type = aws_.instance_type;
        // All or nothing: a partial fleet is harder to reason about than a retry.
        run.min_count = spec.count;
        run.max_count = spec.count;
        run.subnet_id = aws_.subnet_id;
        run.security_group_ids = aws_.security_group_ids;
        run.key_name = aws_.key_name;
        run.iam_instance_profile = aws_.iam_instance_profile;
        ec2::TagSpecification tags;
        tags.resource_type = "instance";
        tags.tags = {{"Name", "hoist-" + spec.role},
                     {"hoist:cluster", aws_.cluster},
                     {"hoist:role", spec.role},
                     {"hoist:release", spec.release},
                     {"hoist:request", spec.request_key}};
        tags.tags.insert(tags.tags.end(), aws_.extra_tags.begin(), aws_.extra_tags.end());
        run.tag_specifications.push_back(std::move(tags));
        run.user_data = std::move(user_data);
        run.client_token = spec.client_token;
        HOIST_ASSIGN(auto reservation, client_->runInstances(run));
        std::vector<NodeRecord> out;
        for (const auto& instance : reservation.instances) {
            NodeRecord node;
            node.id = instance.instance_id;
            node.state = nodeState(instance.state);
            node.address = instance.private_ip;
            out.push_back(std::move(node));
        }
        log::info(kComponent, "instances launched",
                  {{"reservation", reservation.reservation_id},
                   {"count", static_cast<std::int64_t>(out.size())},
                   {"attempts", client_->lastAttempts()}});
        return out;
    }

    Result<void> refresh(std::vector<NodeRecord>& nodes) override {
        ec2::DescribeInstancesRequest request;
        request.filters.push_back({"tag:hoist:cluster", {aws_.cluster}});
        request.max_results = aws_.describe_page_size;
        HOIST_ASSIGN(auto instances, client_->describeInstances(request));
        std::map<std::string, const ec2::Instance*> by_id;
        for (const auto& instance : instances) by_id[instance.instance_id] = &instance;
        for (auto& node : nodes) {
            auto it = by_id.find(node.id);
            if (it == by_id.end()) continue;
            node.state = nodeState(it->second->state);
            if (!it->second->private_ip.empty()) node.address = it->second->private_ip;
        }
        return ok();
    }

    Result<void> terminate(NodeRecord& node) override {
        auto changes = client_->terminateInstances({node.id});
        if (!changes) {
            if (changes.error().code != Errc::NotFound) return std::unexpected(changes.error());
            // The instance is already gone: decommissioned all the same.
            node.state = "terminated";
            node.message = changes.error().message;
            return ok();
        }
        for (const auto& change : *changes)
            if (change.instance_id == node.id) node.state = nodeState(change.current_state);
        if (node.state != "terminated") node.state = "terminating";
        return ok();
    }

private:
    std::shared_ptr<ec2::Client> client_;
    AwsSettings aws_;
    BootstrapSettings bootstrap_;
};

}  // namespace

std::unique_ptr<Backend> makeAwsBackend(std::shared_ptr<ec2::Client> client, AwsSettings aws,
                                        BootstrapSettings bootstrap) {
    return std::make_unique<AwsBackend>(std::move(client), std::move(aws), std::move(bootstrap));
}

}  // namespace hoist::provisioner
