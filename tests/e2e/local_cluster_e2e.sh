#!/usr/bin/env bash
# End to end, non-interactively, with tools/local-cluster: a local cluster of 3 masters and
# 5 agents bootstraps itself on 1.0.0; two more agents added through the provisioner join on
# the current release; an SLA monitor's halt (plain curl) stops the rollout to 2.0.0 and
# blocks decommissioning; the admin's unhalt finishes the rollout (the new agents included);
# a node is then decommissioned; the broken 2.0.1 is stopped by the failure budget with the
# failed nodes rolled back and every node still serving 2.0.0.
# Usage: local_cluster_e2e.sh SOURCE_DIR BUILD_DIR
set -uo pipefail
src=$1
export BUILD=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/hoist-e2e.XXXXXX")
export HOIST_CLUSTER_DIR=$work/cluster
lc=$src/tools/local-cluster
# shellcheck source=../helpers/check.sh
. "$src/tests/helpers/check.sh"

cleanup() {
    "$lc" down >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT


status_json() { "$lc" cluster --json status 2>/dev/null; }
# The first "key": value in the status JSON (the deployment's own fields come first).
field() { status_json | grep -m1 "\"$1\"" | sed -E 's/.*: *"?([^",]*)"?,?/\1/'; }

# Polls until the named deployment field equals one of the values.
wait_field() {  # field seconds values...
    local name=$1 seconds=$2 value
    shift 2
    for _ in $(seq 1 $((seconds * 5))); do
        value=$(field "$name")
        for want in "$@"; do [ "$value" = "$want" ] && return 0; done
        sleep 0.2
    done
    echo "  $name is '$value', expected one of: $*"
    return 1
}

nodes_on() {  # version: how many nodes' services answer with it
    local n=0 port
    for root in "$HOIST_CLUSTER_DIR"/nodes/*/; do
        port=$(cat "$root/run/service.port" 2>/dev/null) || continue
        curl -s --max-time 2 "http://127.0.0.1:$port/version" | grep -q "\"version\":\"$1\"" && n=$((n + 1))
    done
    echo "$n"
}

wait_nodes_on() {  # version count seconds
    for _ in $(seq 1 $(($3 * 2))); do
        [ "$(nodes_on "$1")" -ge "$2" ] && return 0
        sleep 0.5
    done
    echo "  $(nodes_on "$1") services answer $1, expected $2"
    return 1
}

wait_registered() {  # count seconds
    for _ in $(seq 1 $(($2 * 5))); do
        [ "$("$lc" cluster nodes 2>/dev/null | grep -c ' up ')" -ge "$1" ] && return 0
        sleep 0.2
    done
    return 1
}

wait_done_at_least() {  # count seconds
    local d
    for _ in $(seq 1 $(($2 * 5))); do
        d=$(field done)
        [ "${d:-0}" -ge "$1" ] && return 0
        sleep 0.2
    done
    return 1
}

echo "== up"
check "the cluster comes up with 8 nodes on 1.0.0" "$lc" up
check "8 services answer 1.0.0" test "$(nodes_on 1.0.0)" = 8

echo "== two more agents, through the coordinator and the provisioner"
"$lc" cluster node add --role agent --count 2 >"$work/add.out"
check "the node request is accepted and names the 2 nodes it made ($(cat "$work/add.out"))" \
    grep -qP '^requested 2 agent node\(s\): \S+ \S+$' "$work/add.out"
check "they bootstrap to the current release: 10 services answer 1.0.0" wait_nodes_on 1.0.0 10 150
check "the coordinator lists 10 nodes up" wait_registered 10 60

echo "== rollout to 2.0.0, halted by an SLA monitor, cleared by the admin (unhalt)"
check "the upgrade starts" "$lc" cluster upgrade 2.0.0 --max-parallel 2 --detach
check "a master finishes" wait_done_at_least 1 60
check "the halt is accepted (curl)" "$lc" halt "e2e: p99 latency above SLO"
check "the rollout stops on the hold" wait_field in_flight 60 0
done_at_halt=$(field done)
sleep 3
check "no node finishes while the hold stands (done stays $done_at_halt)" test "$(field done)" = "$done_at_halt"
check "the deployment says it waits on the hold" bash -c "'$lc' cluster --json status | grep -m1 '\"waiting_on\"' | grep -qi hold"
check "not every node was upgraded" test "$done_at_halt" -lt 10
victim=$("$lc" cluster nodes | awk '$2 == "agent" { print $1 }' | tail -1)
"$lc" cluster node remove "$victim" 2>"$work/remove.err"
rc=$?
check "removing $victim while the hold stands is refused ($rc: $(cat "$work/remove.err"))" \
    bash -c "[ $rc -ne 0 ] && grep -qi halt '$work/remove.err'"
check "$victim still runs" test -d "$HOIST_CLUSTER_DIR/nodes/$victim"
check "the coordinator is killed (SIGKILL) while halted and restarted" "$lc" crash-coordinator
check "the hold survived the crash" bash -c "'$lc' cluster --json status | grep -m1 '\"waiting_on\"' | grep -qi hold"
check "still no node finishes (done stays $done_at_halt)" test "$(field done)" = "$done_at_halt"
check "the admin clears the hold" "$lc" unhalt "p99 recovered"
check "the hold is cleared" bash -c "! '$lc' cluster --json status | grep -m1 '\"waiting_on\"' | grep -qi hold"
check "another node finishes" wait_done_at_least $((done_at_halt + 1)) 60
check "the coordinator is killed mid-rollout and restarted" "$lc" crash-coordinator
check "the rollout finishes" wait_field state 180 done
restarts=$("$lc" cluster --json status | grep '"restarts"' | tr -dc '0-9\n' | sort | uniq -c | tr -s ' ')
check "every node was restarted exactly once (restarts: $restarts)" test "$(echo $restarts)" = "10 1"
check "10 services answer 2.0.0, the added agents included" test "$(nodes_on 2.0.0)" = 10

echo "== decommission $victim now that the hold is cleared"
check "the removal is accepted" "$lc" cluster node remove "$victim"
gone() { for _ in $(seq 1 150); do [ ! -d "$1" ] && return 0; sleep 0.2; done; return 1; }
check "its node root is gone" gone "$HOIST_CLUSTER_DIR/nodes/$victim"
check "9 services answer 2.0.0" test "$(nodes_on 2.0.0)" = 9

echo "== rehearse the broken 2.0.1: nothing is touched, the failure policy is predicted"
m1=$("$lc" cluster nodes | awk '$2 == "master" { print $1 }' | sed -n 1p)
m2=$("$lc" cluster nodes | awk '$2 == "master" { print $1 }' | sed -n 2p)
"$lc" cluster upgrade 2.0.1 --max-parallel 2 --max-failures 1 --rehearse --inject '*:health_fail' \
    >"$work/rehearsal.txt" 2>&1
cat "$work/rehearsal.txt"
check "the rehearsal predicts the first master ($m1) failing" grep -q "wave 1  master  $m1  .*$m1 fails" "$work/rehearsal.txt"
check "the rehearsal predicts the stop by the failure budget" grep -q "the failure budget stops the rollout (held): 2 nodes failed, more than max_failures 1" "$work/rehearsal.txt"
check "the rehearsal reaches no agent" bash -c "! grep -q 'agent.*fails' '$work/rehearsal.txt'"
check "the rehearsal started no deployment" bash -c "! '$lc' cluster --json status | grep -q '\"2.0.1\"'"

echo "== the broken 2.0.1, followed on a terminal (script(1) gives the CLI one)"
script -qefc "'$lc' cluster upgrade 2.0.1 --max-parallel 2 --max-failures 1" "$work/upgrade.tty" </dev/null
rc=$?
check "cluster upgrade 2.0.1 exits non-zero ($rc)" test "$rc" -ne 0
# Lines redrawn in place: the header with its bar, one line per role, each ending with
# erase-to-end-of-line; the cursor goes back up for the next drawing. At the end, the failed
# nodes with their reasons.
check "the terminal shows a progress bar" \
    grep -aqP 'd-\d+ 2\.0\.1 \w+ \[[#-]+\] \d+% \d+/\d+ done.*\x1b\[K' "$work/upgrade.tty"
check "and a line per role" grep -aqP '  master \[[#-]+\] \d+/3 done.*\x1b\[K' "$work/upgrade.tty"
check "redrawn in place" grep -aqP '\x1b\[\d+A\r' "$work/upgrade.tty"
check "the failed nodes are named with their reasons" grep -aqP '(master|agent)-\S+ \((master|agent)\) failed: \S' "$work/upgrade.tty"
check "the failure budget stopped it" bash -c "'$lc' cluster --json status | grep -m1 '\"waiting_on\"' | grep -q 'failure budget'"
check "as rehearsed: $m1 and $m2 failed, no agent was restarted" bash -c "'$lc' cluster --json status | python3 -c \"
import json, sys
d = json.load(sys.stdin)['deployment']
failed = sorted(n['node'] for n in d['nodes'] if n['state'] in ('failed', 'revert_failed'))
agents = [n for n in d['nodes'] if n['role'] == 'agent' and n['restarts'] > 0]
sys.exit(0 if failed == sorted(['$m1', '$m2']) and not agents else 1)\""
check "the failed nodes rolled back: 9 services still answer 2.0.0" test "$(nodes_on 2.0.0)" = 9

echo "== rehearse 2.0.1 again, without --inject: the failures on record are predicted"
"$lc" cluster upgrade 2.0.1 --max-parallel 2 --max-failures 1 --rehearse >"$work/rehearsal2.txt" 2>&1
cat "$work/rehearsal2.txt"
check "the rehearsal predicts $m1 failing again, from the record" grep -q "wave 1  master  $m1  .*$m1 fails (recorded health_fail" "$work/rehearsal2.txt"
check "the rehearsal predicts the stop by the failure budget again" grep -q "the failure budget stops the rollout (held): 2 nodes failed, more than max_failures 1" "$work/rehearsal2.txt"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
