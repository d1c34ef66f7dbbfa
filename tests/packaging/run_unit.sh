#!/usr/bin/env bash
# Starts a daemon the way systemd starts its simple unit, where no systemd runs (the packages'
# test, inside its installed copy of the machine): the unit's Environment=, then its
# EnvironmentFile (the /etc/default file given), User=, WorkingDirectory=, each ExecStartPre=
# (a leading '-' ignores its failure), then ExecStart= in place of this shell. Variables expand
# as the shell expands them; systemd's sandbox is not applied.
# Usage: run_unit.sh UNIT_FILE ENVIRONMENT_FILE
set -eu
unit=$1
defaults=$2

key() { sed -n "s/^$1=//p" "$unit"; }
environment=$(key Environment)
user=$(key User)
workdir=$(key WorkingDirectory)
pres=$(key ExecStartPre)
start=$(key ExecStart)
[ -n "$start" ] || { echo "run_unit.sh: $unit has no ExecStart=" >&2; exit 1; }

set -a
eval "$environment"
# shellcheck disable=SC1090 # the unit's own environment file
. "$defaults"
set +a

as=""
[ -z "$user" ] || as="setpriv --reuid=$user --regid=$user --init-groups"
cd "${workdir:-/}"

while IFS= read -r pre; do
    [ -n "$pre" ] || continue
    case $pre in
        -*) eval "$as ${pre#-}" || true ;;
        *) eval "$as $pre" ;;
    esac
done <<<"$pres"

eval "exec $as $start"
