#!/bin/sh
# hoist node bootstrap: EC2 user data rendered by the provisioner (provisioner/README.md).
# Placeholders (a name in double braces) become single-quoted shell words; nothing else
# is rendered. Known names: repo, release, role, coordinator, root, trusted_key_pem,
# allow_unsigned.
set -eu
exec >>/var/log/hoist-bootstrap.log 2>&1
echo "hoist bootstrap starting at $(date -u +%Y-%m-%dT%H:%M:%SZ)"

# The node id is the instance id, read from the instance metadata service (IMDSv2).
imds=http://169.254.169.254
token=$(curl -sf -X PUT "$imds/latest/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')
node_id=$(curl -sf -H "X-aws-ec2-metadata-token: $token" "$imds/latest/meta-data/instance-id")

# Releases must be signed by the key the provisioner was given, unless it was told otherwise.
key_pem={{trusted_key_pem}}
if [ -n "$key_pem" ]; then
    mkdir -p /etc/hoist
    printf '%s\n' "$key_pem" >/etc/hoist/release-key.pem
    trust="--trusted-key /etc/hoist/release-key.pem"
elif [ {{allow_unsigned}} = true ]; then
    trust="--allow-unsigned"
else
    echo "hoist bootstrap: no trusted release key and unsigned releases not allowed" >&2
    exit 1
fi

# shellcheck disable=SC2086 # $trust is one or two words without spaces inside
restart-helper --root {{root}} bootstrap --repo {{repo}} --release {{release}} \
    --role {{role}} --coordinator {{coordinator}} --id "$node_id" $trust
echo "hoist bootstrap done"
