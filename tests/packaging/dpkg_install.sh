#!/usr/bin/env bash
# Installs the packages for real with dpkg -i, maintainer scripts included, into a throwaway
# copy of this machine: run in a mount namespace of its own (unshare -m), it mounts an overlay
# of / whose writes go to a tmpfs and chroots into it, so the machine itself never changes and
# everything is gone when the namespace ends. Checks the hoist user and folders the postinst
# makes, a reinstall, the coordinator and repo-server started the way their units start them
# (as hoist, the packaged config files, tokens in /etc/hoist), a local cluster's upgrade run by the
# installed binaries, and a purge.
# Usage (as root):
#   unshare -m --propagation private bash dpkg_install.sh DEB_DIR WORK_DIR SOURCE_DIR BUILD_DIR
# Prints ok/FAILED lines; exit status: the number of failures (77: no overlay here, or the
# machine has a hoist user already).
set -uo pipefail
debs=$1
ns=$2
src=$3
build=$4

mkdir -p "$ns"
mount -t tmpfs -o size=2g hoist-packages "$ns" || exit 77
mkdir -p "$ns"/{upper,work,root}
mount -t overlay overlay -o "lowerdir=/,upperdir=$ns/upper,workdir=$ns/work" "$ns/root" || exit 77
root=$ns/root
# The overlay holds the root file system alone: give the copy the kernel's file systems.
mount --rbind /dev "$root/dev" && mount -t proc proc "$root/proc" || exit 77
[ "$(findmnt -n -o FSTYPE "$root")" = overlay ] || exit 77
# The source tree (tools/local-cluster) and the build folder (the stand-in service), as they are.
for d in "$src" "$build"; do
    mkdir -p "$root$d" && mount --bind "$d" "$root$d" || exit 77
done
mkdir -p "$root/tmp/hoist-debs"
cp "$debs"/*.deb "$root/tmp/hoist-debs/"

inside() {  # a command in the copy, with a clean environment
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"
}

# tools/local-cluster in the copy. Its `down` stops the processes naming its folder, which is
# unique to this run.
cluster_dir=/tmp/$(basename "$(dirname "$ns")")-cluster
lc() {
    inside HOIST_BIN_DIR=/usr/bin BUILD="$build" HOIST_CLUSTER_DIR="$cluster_dir" MASTERS=1 \
        AGENTS=2 bash "$src/tools/local-cluster" "$@"
}
# At exit, every process whose root is the copy (the /opt/hoist node's endpoint and service,
# whatever a failure left running) is one this test started: each is ended by its id.
stop_copy_processes() {
    lc down >/dev/null 2>&1
    local p pids=()
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && pids+=("${p#/proc/}")
    done
    [ ${#pids[@]} -eq 0 ] || kill -KILL "${pids[@]}" 2>/dev/null
}
trap stop_copy_processes EXIT

# shellcheck source=../helpers/check.sh
. "$src/tests/helpers/check.sh"
quiet() {  # a command whose output is shown only when it fails
    local out
    out=$("$@" 2>&1) || { echo "$out" | sed 's/^/  /'; return 1; }
}

if inside getent passwd hoist >/dev/null; then
    echo "this machine already has a hoist user: the postinst could not be tested"
    exit 77
fi
check "dpkg -i installs the five packages" quiet inside sh -c 'dpkg -i /tmp/hoist-debs/*.deb'
check "all five are installed" quiet inside dpkg-query -W -f='${Status}\n' hoist-node \
    hoist-coordinator hoist-repo-server hoist-provisioner hoist-config-gen

mode_is() {  # path "owner:group mode"
    local got
    got=$(inside stat -c '%U:%G %a' "$1") && [ "$got" = "$2" ] || { echo "  $1: $got"; return 1; }
}
user_is_system() {
    local entry
    entry=$(inside getent passwd hoist) || { echo "  no hoist user"; return 1; }
    IFS=: read -r _ _ uid _ _ home shell <<<"$entry"
    [ "$uid" -lt 1000 ] && [ "$home" = /var/lib/hoist ] && [ "$shell" = /usr/sbin/nologin ] ||
        { echo "  $entry"; return 1; }
}
check "the postinst made the system user hoist (home /var/lib/hoist, no login)" user_is_system
check "/etc/hoist is root:hoist 0750" mode_is /etc/hoist "root:hoist 750"
check "/var/lib/hoist/coordinator is hoist:hoist 0750" mode_is /var/lib/hoist/coordinator "hoist:hoist 750"
check "/var/lib/hoist/provisioner is hoist:hoist 0750" mode_is /var/lib/hoist/provisioner "hoist:hoist 750"
check "/var/lib/hoist/repo is hoist:hoist 0755" mode_is /var/lib/hoist/repo "hoist:hoist 755"
check "pkgmgr --help runs from /usr/bin" quiet inside pkgmgr --help
check "a reinstall runs the postinst again without error" \
    quiet inside sh -c 'dpkg -i /tmp/hoist-debs/hoist-coordinator_*.deb'

# A daemon as its unit starts it (run_unit.sh: the unit's environment, default file, user,
# folder, ExecStartPre= and ExecStart=; systemd's sandbox aside, as no systemd runs here). EDIT
# is a sed expression applied to the unit's config file, /etc/hoist/NAME.toml, first (tests
# listen on port 0 and write a port file). Sets unit_pid and unit_port.
start_unit() {  # name port-file edit
    inside sed -i "$3" "/etc/hoist/${1#hoist-}.toml" || return 1
    rm -f "$root$2"
    inside bash "$src/tests/packaging/run_unit.sh" "/lib/systemd/system/$1.service" \
        "/etc/default/$1" >"$ns/$1.log" 2>&1 &
    unit_pid=$!
    unit_port=""
    local i
    for i in $(seq 1 600); do
        unit_port=$(cat "$root$2" 2>/dev/null) && [ -n "$unit_port" ] && return 0
        kill -0 "$unit_pid" 2>/dev/null || break
        sleep 0.1
    done
    sed 's/^/  /' "$ns/$1.log"
    return 1
}
stop_unit() {
    kill "$unit_pid" 2>/dev/null
    wait "$unit_pid" 2>/dev/null
}
make_token() {  # file: as the config files say
    inside sh -c "install -m 0640 -g hoist /dev/null $1 && head -c 32 /dev/urandom | base64 >$1"
}

# hoist-coordinator with its packaged config file: the three tokens it names, made as the file
# says.
coordinator_unit_runs() {
    local t
    for t in admin node halt; do make_token "/etc/hoist/$t.token" || return 1; done
    start_unit hoist-coordinator /var/lib/hoist/coordinator/port \
        's|^listen = "127.0.0.1:7000"|listen = "127.0.0.1:0"\nport-file = "/var/lib/hoist/coordinator/port"|' ||
        return 1
    local ok=1
    if inside cluster --url "http://127.0.0.1:$unit_port" --token-file /etc/hoist/admin.token \
        --json nodes >"$ns/nodes.json" 2>&1 &&
        [ "$(inside stat -c %U /var/lib/hoist/coordinator/coordinator.db)" = hoist ]; then
        ok=0
    else
        sed 's/^/  /' "$ns/hoist-coordinator.log" "$ns/nodes.json"
    fi
    stop_unit
    return $ok
}
check "hoist-coordinator's command line and config file run as hoist; cluster nodes answers" \
    coordinator_unit_runs

# hoist-repo-server with the upload token its config file suggests: a package published to it
# is written under /var/lib/hoist/repo by the hoist user and served back.
repo_unit_runs() {
    make_token /etc/hoist/repo-upload.token || return 1
    mkdir -p "$root/tmp/pkg"
    echo '{"name": "hello", "version": "1.0.0", "kind": "module"}' >"$root/tmp/pkg/pkginfo.json"
    quiet inside pkgmgr pack /tmp/pkg -o /tmp/hello--1.0.0.tar.zst || return 1
    local edit='s|^listen = "127.0.0.1:8070"|listen = "127.0.0.1:0"\nport-file = '
    edit+='"/var/lib/hoist/repo/port"\ntoken-file = "/etc/hoist/repo-upload.token"|'
    start_unit hoist-repo-server /var/lib/hoist/repo/port "$edit" ||
        return 1
    local ok=1 sha
    sha=$(sha256sum "$root/tmp/hello--1.0.0.tar.zst" | cut -d' ' -f1)
    if inside pkgmgr publish --repo "http://127.0.0.1:$unit_port" \
        --token-file /etc/hoist/repo-upload.token /tmp/hello--1.0.0.tar.zst >"$ns/publish.log" 2>&1 &&
        [ "$(inside stat -c %U "/var/lib/hoist/repo/packages/$sha")" = hoist ] &&
        curl -sf --max-time 5 "http://127.0.0.1:$unit_port/packages/$sha" |
        cmp -s - "$root/tmp/hello--1.0.0.tar.zst"; then
        ok=0
    else
        sed 's/^/  /' "$ns/hoist-repo-server.log" "$ns/publish.log"
    fi
    stop_unit
    return $ok
}
check "hoist-repo-server's command line runs as hoist; a published package is stored and served" \
    repo_unit_runs

# tools/local-cluster on the installed binaries: repo-server, the coordinator, the provisioner's
# local backend and three nodes that bootstrap themselves with restart-helper and pkgmgr serve,
# then `cluster upgrade 2.0.0`.
cluster_up() {
    local log=$ns/local-cluster.log
    lc up >"$log" 2>&1 && grep -q "installed binaries in /usr/bin" "$log" && return 0
    tail -n 30 "$log" | sed 's/^/  /'
    return 1
}
# A fourth node the way a real machine runs one: bootstrapped into /opt/hoist from the local
# cluster's repository with the fleet's node token in /etc/hoist (as node.toml says),
# then hoist-node.service's ExecStartPre (recover) and ExecStart (pkgmgr serve); it registers
# with the coordinator and the upgrade below takes it to 2.0.0 with the others.
lc_url() { echo "http://127.0.0.1:$(cat "$root$cluster_dir/ports/$1")"; }
node_unit_joins() {
    inside install -m 0600 "$cluster_dir/secrets/node.token" /etc/hoist/node.token || return 1
    if ! inside restart-helper --root /opt/hoist bootstrap --repo "$(lc_url repo)" \
        --release 1.0.0 --role agent --coordinator "$(lc_url coordinator)" --id packaged-node \
        --trusted-key "$cluster_dir/secrets/release.pub" \
        --coordinator-token-file /etc/hoist/node.token --listen 127.0.0.1:0 \
        >"$ns/bootstrap.log" 2>&1; then
        sed 's/^/  /' "$ns/bootstrap.log"
        return 1
    fi
    start_unit hoist-node /opt/hoist/run/serve.port \
        's|^token-file = |port-file = "/opt/hoist/run/serve.port"\ntoken-file = |' || return 1
    local i
    for i in $(seq 1 300); do
        lc cluster --json nodes 2>/dev/null | grep -q '"packaged-node"' && return 0
        sleep 0.1
    done
    echo "  packaged-node did not register"
    sed 's/^/  /' "$ns/hoist-node.log"
    return 1
}
upgrade_from_installed() {
    local log=$ns/local-cluster.log
    if lc upgrade 2.0.0 --max-parallel 2 >>"$log" 2>&1 &&
        lc cluster --json nodes >"$ns/fleet.json" 2>>"$log" &&
        [ "$(grep -c '"release": *"2.0.0"' "$ns/fleet.json")" -eq 4 ]; then
        return 0
    fi
    tail -n 30 "$log" | sed 's/^/  /'
    sed 's/^/  /' "$ns/fleet.json" 2>/dev/null
    return 1
}
if check "local-cluster starts 1 master and 2 agents on 1.0.0 with the installed binaries" \
    cluster_up; then
    check "a node in /opt/hoist started as hoist-node.service starts it registers" node_unit_joins
    check "cluster upgrade 2.0.0 takes the 4 nodes to 2.0.0" upgrade_from_installed
fi

gone() { ! inside test -e "$1"; }
check "dpkg -P purges hoist-coordinator" quiet inside dpkg -P hoist-coordinator
check "the purge removed /usr/bin/deploy-coordinator" gone /usr/bin/deploy-coordinator
check "the purge removed the conffile /etc/default/hoist-coordinator" \
    gone /etc/default/hoist-coordinator
check "the purge removed the conffile /etc/hoist/coordinator.toml" gone /etc/hoist/coordinator.toml
check "dpkg -r removes hoist-node" quiet inside dpkg -r hoist-node
check "the removal kept the conffile /etc/default/hoist-node" inside test -f /etc/default/hoist-node
check "the removal kept the conffile /etc/hoist/node.toml" inside test -f /etc/hoist/node.toml

exit "$failed"
