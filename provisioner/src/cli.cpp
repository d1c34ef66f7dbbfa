#include "provisioner/cli.hpp"

#include <functional>
#include <iostream>
#include <iterator>

#include <CLI/CLI.hpp>

#include "core/cli.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"
#include "provisioner/backend.hpp"
#include "provisioner/sigv4.hpp"
#include "serve.hpp"

namespace hoist::provisioner {

namespace {

struct Cli {
    std::ostream& out;
    std::ostream& err;
    CLI::App app{"provisioner: adds and decommissions hoist nodes (AWS EC2 or local)",
                 "provisioner"};
    std::function<int()> action;
    hoist::cli::LogOptions log;

    Cli(std::ostream& o, std::ostream& e) : out(o), err(e) {}
    int failWith(const Error& error) const {
        err << "provisioner: " << error.describe() << "\n";
        return exitCode(error.code);
    }
};

struct SigV4Args {
    std::string access_key;
    std::string secret_key;
    std::string session_token;
    std::string region;
    std::string service;
    std::string time;
    std::string signed_headers;
    std::string whitespace = "aws";
    bool query_plus_is_space = false;
    bool json = false;
};

void addSigV4(Cli& cli) {
    auto args = std::make_shared<SigV4Args>();
    auto* cmd = cli.app.add_subcommand(
        "sigv4",
        "sign a raw HTTP request read from stdin; prints the canonical request, the string to "
        "sign and the Authorization header");
    cmd->add_option("--access-key", args->access_key, "access key id")->required();
    cmd->add_option("--secret-key", args->secret_key, "secret access key")->required();
    cmd->add_option("--session-token", args->session_token,
                    "session token (added as X-Amz-Security-Token unless the request has it)");
    cmd->add_option("--region", args->region, "region, e.g. us-east-1")->required();
    cmd->add_option("--service", args->service, "service, e.g. ec2")->required();
    cmd->add_option("--time", args->time,
                    "signing time, YYYYMMDDTHHMMSSZ (default: X-Amz-Date of the request, or now)");
    cmd->add_option("--signed-headers", args->signed_headers,
                    "sign only these headers, as in SignedHeaders= (host;x-amz-date); default: "
                    "every header of the request");
    cmd->add_option("--header-whitespace", args->whitespace,
                    "what folds as whitespace in header values: aws (space, \\t, \\n, \\v, "
                    "\\f, \\r; AWS's SDKs) or botocore (also Unicode spaces such as U+00A0)")
        ->check(CLI::IsMember({"aws", "botocore"}));
    cmd->add_flag("--query-plus-is-space", args->query_plus_is_space,
                  "read '+' in the query as a space (captures from clients that form-encode "
                  "queries, such as botocore); AWS reads it as a plus");
    cmd->add_flag("--json", args->json, "print one JSON object");
    cmd->callback([&cli, args] {
        cli.action = [&cli, args]() -> int {
            sigv4::SignOptions options;
            options.whitespace = args->whitespace == "botocore" ? sigv4::Whitespace::Botocore
                                                                : sigv4::Whitespace::Aws;
            options.query_plus_is_space = args->query_plus_is_space;
            if (!args->signed_headers.empty()) {
                auto names = sigv4::parseSignedHeaders(args->signed_headers);
                if (!names) return cli.failWith(names.error());
                options.signed_headers = std::move(*names);
            }
            std::string raw(std::istreambuf_iterator<char>(std::cin), {});
            auto request = sigv4::parseRawRequest(raw);
            if (!request) return cli.failWith(request.error());
            std::string time = args->time;
            if (time.empty()) {
                for (const auto& [name, value] : request->headers)
                    if (strings::toLower(name) == "x-amz-date") time = value;
                if (time.empty()) time = sigv4::amzTimeNow();
            }
            sigv4::Credentials creds{args->access_key, args->secret_key, args->session_token};
            sigv4::Scope scope{args->region, args->service, time};
            sigv4::prepare(*request, creds, scope);
            auto sig = sigv4::sign(*request, creds, scope, options);
            if (!sig) return cli.failWith(sig.error());
            if (args->json) {
                json::Writer w;
                w.beginObject()
                    .field("canonical_request", sig->canonical_request)
                    .field("string_to_sign", sig->string_to_sign)
                    .field("signed_headers", sig->signed_headers)
                    .field("signature", sig->signature)
                    .field("authorization", sig->authorization)
                    .endObject();
                cli.out << w.str() << "\n";
                return 0;
            }
            cli.out << "# canonical request\n"
                    << sig->canonical_request << "\n\n"
                    << "# string to sign\n"
                    << sig->string_to_sign << "\n\n"
                    << "# authorization\n"
                    << "Authorization: " << sig->authorization << "\n";
            return 0;
        };
    });
}

void addLocalBoot(Cli& cli) {
    auto a = std::make_shared<LocalBootArgs>();
    auto* cmd = cli.app.add_subcommand(
        "local-boot",
        "boot one local node: restart-helper bootstrap, then exec pkgmgr serve (the local "
        "backend runs this as each node's first process)");
    cmd->add_option("--restart-helper", a->restart_helper, "restart-helper binary")->required();
    cmd->add_option("--pkgmgr", a->pkgmgr, "pkgmgr binary")->required();
    cmd->add_option("--root", a->root, "node root")->required();
    cmd->add_option("--repo", a->repo, "repository URL")->required();
    cmd->add_option("--release", a->release, "release")->required();
    cmd->add_option("--role", a->role, "role")->required();
    cmd->add_option("--coordinator", a->coordinator, "coordinator URL");
    cmd->add_option("--id", a->id, "node id")->required();
    cmd->add_option("--port-file", a->port_file, "pkgmgr serve's port file")->required();
    cmd->add_option("--serve-token-file", a->serve_token_file, "pkgmgr serve --token-file");
    cmd->add_option("--coordinator-token-file", a->coordinator_token_file,
                    "token the node presents to the coordinator");
    cmd->add_option("--trusted-key", a->trusted_keys, "release signing key (PEM file)");
    cmd->add_flag("--allow-unsigned", a->allow_unsigned, "accept unsigned releases");
    cmd->callback([&cli, a] { cli.action = [&cli, a] { return localBoot(*a, cli.err); }; });
}

}  // namespace

int runCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    Cli cli(out, err);
    auto& app = cli.app;
    app.require_subcommand(1);
    hoist::cli::addLogOptions(app, cli.log);
    addSigV4(cli);
    addServeCommand(app, cli.action, out, err);
    addLocalBoot(cli);

    if (auto done = hoist::cli::parse(app, args, "provisioner", out, err)) return *done;
    return hoist::cli::run(cli.action, cli.log, "provisioner", err);
}

}  // namespace hoist::provisioner
