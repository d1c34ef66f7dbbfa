#!/usr/bin/env bash
# Installs the packages for real with dpkg -i, maintainer scripts included, into a throwaway
# copy of this machine: run in a mount namespace of its own (unshare -m), it mounts an overlay
# of / whose writes go to a tmpfs and chroots into it, so the machine itself never changes and
# everything is gone when the namespace ends. Checks the hoist user and folders the postinst
# makes, a reinstall, a daemon started the way its unit starts it (as hoist, tokens in
# /etc/hoist), a local cluster's upgrade run by the installed binaries, and a purge.
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
mount -t tmpfs -o size=512m hoist-packages "$ns" || exit 77
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
# unique to this run; the exit trap makes sure nothing it started outlives the test.
cluster_dir=/tmp/$(basename "$(dirname "$ns")")-cluster
lc() {
    inside HOIST_BIN_DIR=/usr/bin BUILD="$build" HOIST_CLUSTER_DIR="$cluster_dir" MASTERS=1 \
        AGENTS=2 bash "$src/tools/local-cluster" "$@"
}
trap 'lc down >/dev/null 2>&1' EXIT

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

# The coordinator as its unit runs it: the hoist user, the state in its state folder, the token
# made as /etc/default/hoist-coordinator says.
coordinator_runs_as_hoist() {
    inside sh -c 'install -m 0640 -g hoist /dev/null /etc/hoist/admin.token &&
                  head -c 32 /dev/urandom | base64 >/etc/hoist/admin.token' || return 1
    inside setpriv --reuid=hoist --regid=hoist --init-groups --reset-env \
        /usr/bin/deploy-coordinator --state /var/lib/hoist/coordinator/coordinator.db \
        --listen 127.0.0.1:0 --port-file /var/lib/hoist/coordinator/port \
        --admin-token-file /etc/hoist/admin.token >"$ns/coordinator.log" 2>&1 &
    local pid=$! port="" i
    for i in $(seq 1 300); do
        port=$(cat "$root/var/lib/hoist/coordinator/port" 2>/dev/null) && [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    local ok=1
    if [ -n "$port" ] && inside cluster --url "http://127.0.0.1:$port" \
        --token-file /etc/hoist/admin.token --json nodes >"$ns/nodes.json" 2>&1 &&
        [ "$(inside stat -c %U /var/lib/hoist/coordinator/coordinator.db)" = hoist ]; then
        ok=0
    fi
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    [ $ok -eq 0 ] || sed 's/^/  /' "$ns/coordinator.log" "$ns/nodes.json"
    return $ok
}
check "deploy-coordinator runs as hoist (database in its state folder), cluster nodes answers" \
    coordinator_runs_as_hoist

# tools/local-cluster on the installed binaries: repo-server, the coordinator, the provisioner's
# local backend and three nodes that bootstrap themselves with restart-helper and pkgmgr serve,
# then `cluster upgrade 2.0.0`.
upgrade_from_installed() {
    local log=$ns/local-cluster.log
    if lc up >"$log" 2>&1 && lc upgrade 2.0.0 --max-parallel 2 >>"$log" 2>&1 &&
        lc cluster --json nodes >"$ns/fleet.json" 2>>"$log" &&
        [ "$(grep -c '"release": *"2.0.0"' "$ns/fleet.json")" -eq 3 ] &&
        grep -q "installed binaries in /usr/bin" "$log"; then
        return 0
    fi
    tail -n 30 "$log" | sed 's/^/  /'
    sed 's/^/  /' "$ns/fleet.json" 2>/dev/null
    return 1
}
check "local-cluster upgrades 1 master and 2 agents to 2.0.0 with the installed binaries" \
    upgrade_from_installed

gone() { ! inside test -e "$1"; }
check "dpkg -P purges hoist-coordinator" quiet inside dpkg -P hoist-coordinator
check "the purge removed /usr/bin/deploy-coordinator" gone /usr/bin/deploy-coordinator
check "the purge removed the conffile /etc/default/hoist-coordinator" \
    gone /etc/default/hoist-coordinator
check "dpkg -r removes hoist-node" quiet inside dpkg -r hoist-node
check "the removal kept the conffile /etc/default/hoist-node" inside test -f /etc/default/hoist-node

exit "$failed"
