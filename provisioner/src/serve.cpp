#include "serve.hpp"

#include <atomic>
#include <memory>

#include "core/config_file.hpp"
#include "core/daemon.hpp"
#include "core/files.hpp"
#include "core/http_server.hpp"
#include "core/log.hpp"
#include "core/process.hpp"
#include "core/strings.hpp"
#include "provisioner/backend.hpp"
#include "provisioner/credentials.hpp"
#include "provisioner/ec2.hpp"
#include "provisioner/service.hpp"
#include "provisioner/state.hpp"

namespace hoist::provisioner {

namespace {

constexpr std::string_view kComponent = "provisioner";

struct ServeArgs {
    std::string listen = "127.0.0.1:7300";
    std::string port_file;
    std::string token_file;
    std::string state_file;
    std::string backend;
    std::string repo_url;
    std::string coordinator_url;
    std::string release;
    std::vector<std::string> roles{"master", "agent"};
    int max_count = 20;
    std::string tls_cert;
    std::string tls_key;
    std::vector<std::string> trusted_keys;
    bool allow_unsigned = false;
    // aws
    std::string region;
    std::string endpoint_url;
    std::string profile;
    /// The flags bind to it directly; extra_tags comes from `tags`.
    AwsSettings aws;
    std::vector<std::string> tags;
    std::string user_data_template;
    std::string node_root = "/opt/hoist";
    int max_attempts = 0;
    int retry_base_ms = 1000;
    // local
    std::string nodes_dir;
    std::string restart_helper;
    std::string pkgmgr;
    std::string serve_token_file;
    std::string coordinator_token_file;
};

Result<daemon::Secret> readToken(const std::string& file, std::string_view flag) {
    HOIST_ASSIGN(auto text, files::readFile(file, 4096));
    if (strings::trim(text).empty()) return fail(Errc::Invalid, flag, " ", file, " is empty");
    return daemon::Secret::fromFile(file, std::string(flag));
}

// A binary of the hoist suite: the flag, else beside this executable, else on PATH.
std::filesystem::path siblingProgram(const std::string& flag, const std::string& name) {
    if (!flag.empty()) return flag;
    auto beside = process::selfExe().parent_path() / name;
    if (std::filesystem::exists(beside)) return beside;
    auto found = process::findProgram(name);
    return found.empty() ? std::filesystem::path(name) : found;
}

Result<std::unique_ptr<Backend>> makeBackend(const ServeArgs& a) {
    BootstrapSettings bootstrap;
    bootstrap.repo_url = a.repo_url;
    bootstrap.coordinator_url = a.coordinator_url;
    bootstrap.node_root = a.node_root;
    bootstrap.allow_unsigned = a.allow_unsigned;
    if (a.trusted_keys.empty() && !a.allow_unsigned)
        return fail(Errc::Invalid,
                    "new nodes need --trusted-key (the release signing key) or --allow-unsigned");
    if (!a.user_data_template.empty()) {
        HOIST_ASSIGN(bootstrap.user_data_template, files::readFile(a.user_data_template, 16384));
    }
    if (a.backend == "local") {
        if (a.nodes_dir.empty())
            return fail(Errc::Invalid, "--nodes-dir is required with --backend local");
        LocalSettings local;
        local.nodes_dir = std::filesystem::absolute(a.nodes_dir);
        local.restart_helper = siblingProgram(a.restart_helper, "restart-helper");
        local.pkgmgr = siblingProgram(a.pkgmgr, "pkgmgr");
        local.serve_token_file = a.serve_token_file;
        if (!a.coordinator_token_file.empty())
            local.coordinator_token_file = std::filesystem::absolute(a.coordinator_token_file);
        local.provisioner = process::selfExe();
        local.allow_unsigned = a.allow_unsigned;
        for (const auto& key : a.trusted_keys)
            local.trusted_keys.push_back(std::filesystem::absolute(key));
        for (const auto& p : {local.restart_helper, local.pkgmgr})
            if (!std::filesystem::exists(p))
                return fail(Errc::NotFound, "local backend: program ", p.string(),
                            " does not exist (pass --restart-helper / --pkgmgr)");
        return makeLocalBackend(std::move(local), std::move(bootstrap));
    }
    if (a.aws.image_id.empty())
        return fail(Errc::Invalid, "--image-id is required with --backend aws");
    if (a.trusted_keys.size() > 1)
        return fail(Errc::Invalid, "--backend aws takes one --trusted-key, got ",
                    a.trusted_keys.size());
    if (!a.trusted_keys.empty()) {
        HOIST_ASSIGN(bootstrap.trusted_key_pem, files::readFile(a.trusted_keys.front(), 16384));
    }
    EnvLookup env = processEnv();
    HOIST_ASSIGN(auto region, ec2::resolveRegion(a.region, env));
    ec2::ClientOptions client;
    client.region = region;
    client.endpoint = ec2::resolveEndpoint(a.endpoint_url, region, env);
    client.retry.max_attempts = a.max_attempts;
    if (client.retry.max_attempts == 0) {
        auto from_env = env("AWS_MAX_ATTEMPTS");
        client.retry.max_attempts = from_env ? std::atoi(from_env->c_str()) : 3;
        if (client.retry.max_attempts < 1)
            return fail(Errc::Invalid, "AWS_MAX_ATTEMPTS must be a positive number");
    }
    client.retry.base = std::chrono::milliseconds(a.retry_base_ms);
    CredentialProvider::Options creds;
    creds.profile = a.profile;
    auto provider = std::make_shared<CredentialProvider>(std::move(creds));
    // Fail at start, not at the first request, when no source has credentials.
    HOIST_TRY(provider->get());
    log::info(
        kComponent, "aws backend",
        {{"endpoint", client.endpoint}, {"region", region}, {"credentials", provider->source()}});
    AwsSettings aws = a.aws;
    for (const auto& tag : a.tags) {
        size_t eq = tag.find('=');
        if (eq == std::string::npos || eq == 0)
            return fail(Errc::Invalid, "--tag '", tag, "' must be KEY=VALUE");
        aws.extra_tags.push_back({tag.substr(0, eq), tag.substr(eq + 1)});
    }
    auto ec2_client = std::make_shared<ec2::Client>(std::move(client), std::move(provider));
    return makeAwsBackend(std::move(ec2_client), std::move(aws), std::move(bootstrap));
}

int serve(const ServeArgs& a, std::ostream& err) {
    auto failWith = [&](const Error& e) {
        err << "provisioner: " << e.describe() << "\n";
        return exitCode(e.code);
    };
    // Signals are blocked before any thread starts: SIGHUP re-reads the token and TLS files.
    auto token = readToken(a.token_file, "--token-file");
    if (!token) return failWith(token.error());
    std::atomic<http::Server*> running{nullptr};
    daemon::ReloadWaiter reloader([&running, secret = *token] {
        daemon::reloadSecrets(kComponent, {secret}, [&running]() -> Result<void> {
            auto* s = running.load();
            return s != nullptr ? s->reloadTls() : ok();
        });
    });
    std::unique_ptr<http::Server> server;
    std::atomic<bool> stop_requested{false};
    http::SignalWaiter signals([&running, &stop_requested] {
        stop_requested = true;
        daemon::notifyStopping();
        if (auto* s = running.load()) s->stop();
    });
    auto listen = http::parseHostPort(a.listen);
    if (!listen) return failWith(listen.error());
    auto backend = makeBackend(a);
    if (!backend) return failWith(backend.error());
    auto store = StateStore::open(a.state_file);
    if (!store) return failWith(store.error());

    ServiceOptions options;
    options.roles = a.roles;
    options.max_count = a.max_count;
    options.default_release = a.release;
    Service service(**store, **backend, options);

    http::ServerOptions server_options;
    server_options.component = "provisioner";
    server_options.host = listen->first;
    server_options.port = listen->second;
    server_options.tls_cert = a.tls_cert;
    server_options.tls_key = a.tls_key;
    auto created = http::Server::create(server_options);
    if (!created) return failWith(created.error());
    service.addRoutes(**created, *token);
    auto port = (*created)->bind();
    if (!port) return failWith(port.error());
    if (!a.port_file.empty())
        if (auto written = (*created)->writePortFile(a.port_file); !written)
            return failWith(written.error());
    log::info(kComponent, "serving",
              {{"address", listen->first}, {"port", *port}, {"backend", a.backend}});
    server = std::move(*created);
    running = server.get();
    daemon::notifyReady("serving on " + listen->first + ":" + std::to_string(*port));
    daemon::Watchdog watchdog(nullptr);
    if (!stop_requested) server->run();
    running = nullptr;
    log::info(kComponent, "stopped");
    return 0;
}

}  // namespace

void addServeCommand(CLI::App& app, std::function<int()>& action, std::ostream& /*out*/,
                     std::ostream& err) {
    auto a = std::make_shared<ServeArgs>();
    auto* cmd = app.add_subcommand("serve", "run the provisioner HTTP service");
    hoist::cli::addConfigOption(*cmd, "/etc/hoist/provisioner.toml");
    cmd->add_option("--listen", a->listen, "HOST:PORT to listen on (port 0: any)")
        ->capture_default_str();
    cmd->add_option("--port-file", a->port_file, "write the bound port here");
    cmd->add_option("--token-file", a->token_file,
                    "file holding the bearer token for POST and DELETE")
        ->required();
    cmd->add_option("--state", a->state_file, "SQLite state file")->required();
    cmd->add_option("--backend", a->backend, "aws or local")
        ->required()
        ->check(CLI::IsMember({"aws", "local"}));
    cmd->add_option("--repo-url", a->repo_url, "package repository new nodes bootstrap from")
        ->required();
    cmd->add_option("--coordinator-url", a->coordinator_url, "coordinator new nodes report to")
        ->required();
    cmd->add_option("--release", a->release, "release for requests that name none");
    cmd->add_option("--roles", a->roles, "roles that may be requested")
        ->delimiter(',')
        ->capture_default_str();
    cmd->add_option("--max-count", a->max_count, "most nodes one request may add")
        ->capture_default_str();
    cmd->add_option(
        "--trusted-key", a->trusted_keys,
        "public key (PEM file) new nodes trust releases signed with (repeat; aws: one)");
    cmd->add_flag("--allow-unsigned", a->allow_unsigned,
                  "let new nodes accept unsigned releases (development only)");
    cmd->add_option("--tls-cert", a->tls_cert, "serve HTTPS with this certificate (PEM)");
    cmd->add_option("--tls-key", a->tls_key, "and this key (PEM)");
    cmd->add_option("--region", a->region, "aws: region (default $AWS_REGION)")->group("aws");
    cmd->add_option("--endpoint-url", a->endpoint_url,
                    "aws: EC2 endpoint (default $AWS_ENDPOINT_URL_EC2, $AWS_ENDPOINT_URL, or "
                    "https://ec2.REGION.amazonaws.com)")
        ->group("aws");
    cmd->add_option("--profile", a->profile,
                    "aws: shared credentials profile (default $AWS_PROFILE)")
        ->group("aws");
    cmd->add_option("--image-id", a->aws.image_id, "aws: AMI to launch")->group("aws");
    cmd->add_option("--instance-type", a->aws.instance_type, "aws: instance type")
        ->group("aws")
        ->capture_default_str();
    cmd->add_option("--subnet-id", a->aws.subnet_id, "aws: subnet")->group("aws");
    cmd->add_option("--security-group-id", a->aws.security_group_ids,
                    "aws: security group (repeat)")
        ->group("aws");
    cmd->add_option("--key-name", a->aws.key_name, "aws: EC2 key pair name")->group("aws");
    cmd->add_option("--iam-instance-profile", a->aws.iam_instance_profile,
                    "aws: instance profile name or ARN")
        ->group("aws");
    cmd->add_option("--cluster", a->aws.cluster, "aws: value of the hoist:cluster tag")
        ->group("aws")
        ->capture_default_str();
    cmd->add_option("--tag", a->tags, "aws: extra instance tag KEY=VALUE (repeat)")->group("aws");
    cmd->add_option("--user-data-template", a->user_data_template,
                    "aws: user-data template file (default: the built-in one)")
        ->group("aws");
    cmd->add_option("--node-root", a->node_root, "aws: node root on the instances")
        ->group("aws")
        ->capture_default_str();
    cmd->add_option("--max-attempts", a->max_attempts,
                    "aws: attempts per EC2 call (default $AWS_MAX_ATTEMPTS or 3)")
        ->group("aws");
    cmd->add_option("--retry-base-ms", a->retry_base_ms, "aws: first backoff ceiling")
        ->group("aws")
        ->capture_default_str();
    cmd->add_option("--describe-page-size", a->aws.describe_page_size,
                    "aws: DescribeInstances MaxResults (0: the service's default)")
        ->group("aws");
    cmd->add_option("--nodes-dir", a->nodes_dir, "local: folder of node roots")->group("local");
    cmd->add_option("--restart-helper", a->restart_helper,
                    "local: restart-helper binary (default: beside this one, then PATH)")
        ->group("local");
    cmd->add_option("--pkgmgr", a->pkgmgr,
                    "local: pkgmgr binary (default: beside this one, then PATH)")
        ->group("local");
    cmd->add_option("--serve-token-file", a->serve_token_file,
                    "local: token file passed to each node's pkgmgr serve")
        ->group("local");
    cmd->add_option("--coordinator-token-file", a->coordinator_token_file,
                    "local: token file new nodes present to the coordinator (register, pings)")
        ->group("local");
    cmd->callback([&action, &err, a] { action = [&err, a] { return serve(*a, err); }; });
}

}  // namespace hoist::provisioner
