#!/bin/sh
# Writes a binary's help2man include file: a COMMANDS section holding each subcommand's own
# --help, two levels deep (`cluster node add`), so that the man page documents every verb and
# its options (none for a binary without subcommands), then the file EXTRA (SEE ALSO).
# Usage: subcommands.sh BINARY NAME EXTRA OUTPUT
set -eu
bin=$1
name=$2
extra=$3
out=$4

subcommands() {  # the names under "Subcommands:" in the --help of: BINARY ARGS...
    "$bin" "$@" --help | sed -n '/^[Ss][Uu][Bb][Cc][Oo][Mm][Mm][Aa][Nn][Dd][Ss]:/,/^$/s/^  \([a-z][a-z0-9-]*\) .*/\1/p'
}

# roff: a backslash is \e, a leading dot or quote is escaped, a hyphen is \- (a minus sign,
# so options can be searched and copied).
roff() { sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/" -e 's/-/\\-/g'; }

section() {  # subcommand words
    printf '.SS "%s %s"\n.nf\n' "$name" "$*"
    "$bin" "$@" --help | roff
    printf '.fi\n'
}

top=$(subcommands)
{
    [ -z "$top" ] || echo "[COMMANDS]"
    for s in $top; do
        section "$s"
        for t in $(subcommands "$s"); do
            section "$s" "$t"
        done
    done
    cat "$extra"
} >"$out.tmp"
mv "$out.tmp" "$out"
