#!/usr/bin/env bash
# The Debian packages, built with cpack from a finished build and unpacked into a scratch root:
# each package's exact file list, its dependencies (dpkg-shlibdeps' and adduser), conffiles and
# maintainer scripts; every installed binary runs (--help) and has its man page; the bash
# completion completes from the installed binaries; lintian passes on the packages and
# `systemd-analyze verify` and `security` on the installed units. Then, as root,
# dpkg_install.sh installs them for real in a throwaway copy of the machine.
# Usage: packages_test.sh SOURCE_DIR BUILD_DIR CPACK
# Exit 77 (skipped) with one line naming what is missing when a tool it needs is absent.
set -uo pipefail
src=$1
build=$2
cpack=$3
here=$(cd "$(dirname "$0")" && pwd)

missing=()
for tool in "$cpack" dpkg-deb dpkg-shlibdeps lintian systemd-analyze man; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$(basename "$tool")")
done
[ -f /lib/systemd/system/sysinit.target ] || missing+=("systemd's units (/lib/systemd/system)")
[ -f "$build/packaging/man/pkgmgr.1.gz" ] || missing+=("help2man (man pages were not built)")
if [ ${#missing[@]} -gt 0 ]; then
    echo "SKIPPED: missing ${missing[*]}; tools/setup-deps installs them (then reconfigure)"
    exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/hoist-packages.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
# shellcheck source=../helpers/check.sh
. "$src/tests/helpers/check.sh"
skipped=()

echo "== cpack (from $build)"
if ! (cd "$work" && "$cpack" -G DEB --config "$build/CPackConfig.cmake" -B "$work/out" \
    >"$work/cpack.log" 2>&1); then
    cat "$work/cpack.log"
    echo "FAILED: cpack"
    exit 1
fi
deb() { ls "$work"/out/"$1"_*.deb 2>/dev/null | head -n 1; }

# The files each package holds (directories aside), sorted.
expected_files() {
    local package=$1 bins=$2 unit=$3 b
    {
        for b in $bins; do
            echo "/usr/bin/$b"
            echo "/usr/share/bash-completion/completions/$b"
            echo "/usr/share/man/man1/$b.1.gz"
        done
        echo "/usr/share/doc/$package/changelog.Debian.gz"
        echo "/usr/share/doc/$package/copyright"
        echo "/usr/share/lintian/overrides/$package"
        if [ -n "$unit" ]; then
            echo "/etc/default/$unit"
            echo "/etc/hoist/${unit#hoist-}.toml"
            echo "/lib/systemd/system/$unit.service"
        fi
    } | sort
}

same_files() {  # package bins unit
    local d
    d=$(deb "$1")
    diff -u <(expected_files "$1" "$2" "$3") \
        <(dpkg-deb -c "$d" | awk '$1 !~ /^d/ {print $6}' | sed 's|^\./|/|' | sort)
}

depends_on() {  # package word...: the Depends field names each word
    local field w
    field=$(dpkg-deb -f "$(deb "$1")" Depends)
    shift
    for w in "$@"; do
        grep -qE "(^|, )$w( |,|$)" <<<"$field" || { echo "  Depends: $field (no $w)"; return 1; }
    done
}

conffiles_are() {  # package expected-content
    [ "$(dpkg-deb -I "$(deb "$1")" conffiles 2>/dev/null)" = "$2" ]
}

has_postinst() {  # package yes|no
    local listing
    listing=$(dpkg-deb -I "$(deb "$1")")
    if [ "$2" = yes ]; then
        grep -q ' postinst$\| postinst ' <<<"$listing" || return 1
        dpkg-deb --ctrl-tarfile "$(deb "$1")" | tar -xO ./postinst | sh -n
    else
        ! grep -q 'postinst' <<<"$listing"
    fi
}

runs_help() {  # binary: the installed binary prints its usage and exits 0
    local out
    out=$("$root/usr/bin/$1" --help 2>&1) || { echo "  $1 --help: $out"; return 1; }
    grep -q '^Usage:' <<<"$out" && grep -q -- '--help' <<<"$out"
}

man_page_names() {  # binary: the installed man page is this binary's, with its options
    local page
    page=$(gzip -dc "$root/usr/share/man/man1/$1.1.gz") || return 1
    grep -q "^$1 \\\\- " <<<"$page" && grep -q 'help' <<<"$page"
}

declare -A bins=([hoist-node]="pkgmgr restart-helper" [hoist-coordinator]="deploy-coordinator cluster"
    [hoist-repo-server]="repo-server" [hoist-provisioner]="provisioner" [hoist-config-gen]="config-gen")
declare -A units=([hoist-node]=hoist-node [hoist-coordinator]=hoist-coordinator
    [hoist-repo-server]=hoist-repo-server [hoist-provisioner]=hoist-provisioner [hoist-config-gen]="")
packages=(hoist-node hoist-coordinator hoist-repo-server hoist-provisioner hoist-config-gen)

echo "== the packages"
for p in "${packages[@]}"; do
    check "$p was built" test -n "$(deb "$p")"
    [ -n "$(deb "$p")" ] || continue
    check "$p holds exactly its files" same_files "$p" "${bins[$p]}" "${units[$p]}"
    dpkg-deb -x "$(deb "$p")" "$root"
done
check "hoist-node depends on libc6, libarchive13 and libcurl4" \
    depends_on hoist-node libc6 libarchive13 libcurl4
check "hoist-coordinator depends on libsqlite3-0 and adduser" \
    depends_on hoist-coordinator libsqlite3-0 adduser
check "hoist-provisioner depends on libsqlite3-0, libpugixml1v5 and adduser" \
    depends_on hoist-provisioner libsqlite3-0 libpugixml1v5 adduser
check "hoist-repo-server depends on libc6 and adduser" depends_on hoist-repo-server libc6 adduser
check "hoist-config-gen depends on libarchive13" depends_on hoist-config-gen libarchive13
for p in hoist-node hoist-coordinator hoist-repo-server hoist-provisioner; do
    check "$p depends on libtomlplusplus3 (config), libsystemd0 (sd_notify), procps (reload)" \
        depends_on "$p" libtomlplusplus3 libsystemd0 procps
done
for p in hoist-node hoist-coordinator hoist-repo-server hoist-provisioner; do
    check "$p marks /etc/default/${units[$p]} and /etc/hoist/${units[$p]#hoist-}.toml as conffiles" \
        conffiles_are "$p" "/etc/default/${units[$p]}"$'\n'"/etc/hoist/${units[$p]#hoist-}.toml"
done
for p in hoist-coordinator hoist-repo-server hoist-provisioner; do
    check "$p has a postinst (the hoist user, its state folder)" has_postinst "$p" yes
done
for p in hoist-node hoist-config-gen; do
    check "$p has no maintainer script" has_postinst "$p" no
done

echo "== the installed binaries"
for b in pkgmgr restart-helper deploy-coordinator cluster repo-server provisioner config-gen; do
    check "$b --help runs from the scratch root" runs_help "$b"
    check "man page $b(1) is $b's" man_page_names "$b"
done

echo "== bash completion"
# bash-completion's two helpers the script uses, reduced to what a test needs.
completes() {  # expected-word, then the words typed (the last one being completed)
    local want=$1
    shift
    local got
    got=$(PATH="$root/usr/bin:$PATH" bash -c '
        _init_completion() { cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}
                             words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; }
        _filedir() { COMPREPLY=(FILES); }
        source "$1"; shift
        COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
        _hoist; printf "%s\n" "${COMPREPLY[@]}"' completion \
        "$root/usr/share/bash-completion/completions/$1" "$@")
    grep -qxF -- "$want" <<<"$got" || { echo "  completing '$*' gave: $(echo $got)"; return 1; }
}
check "pkgmgr se<TAB> completes serve" completes serve pkgmgr se
check "pkgmgr --root /x serve --li<TAB> completes --listen" \
    completes --listen pkgmgr --root /x serve --li
check "pkgmgr --log-format <TAB> offers json" completes json pkgmgr --log-format ""
check "cluster node <TAB> offers add" completes add cluster node ""
check "repo-server --root <TAB> completes a file name" completes FILES repo-server --root ""
check "deploy-coordinator --adm<TAB> completes --admin-token-file" \
    completes --admin-token-file deploy-coordinator --adm

echo "== lintian"
lintian_ok() {
    local out
    out=$(lintian --fail-on error,warning "$work"/out/*.deb 2>&1)
    local rc=$?
    [ -n "$out" ] && echo "$out" | sed 's/^/  /'
    return $rc
}
check "lintian reports no error or warning" lintian_ok

echo "== systemd-analyze verify"
verify_units() {
    # --root: ExecStart= binaries are looked up in the scratch root, which gets this machine's
    # own units (the targets the hoist units order against) beside the hoist units; MANPATH:
    # Documentation=man: pages are looked up among the installed ones.
    cp -a --no-clobber /lib/systemd/system/. "$root/lib/systemd/system/" || return 1
    # ExecReload='s /bin/kill (procps, which the packages depend on) is not in the scratch root.
    mkdir -p "$root/bin" && cp -L /bin/kill "$root/bin/kill" || return 1
    local out rc
    out=$(MANPATH="$root/usr/share/man" systemd-analyze verify --root="$root" \
        /lib/systemd/system/hoist-{node,coordinator,repo-server,provisioner}.service 2>&1)
    rc=$?
    [ -n "$out" ] && echo "$out" | sed 's/^/  /'
    [ $rc -eq 0 ] && [ -z "$out" ]
}
check "systemd-analyze verify accepts the four units" verify_units
notify_units() {  # each daemon tells systemd it is ready, reloads on SIGHUP and reads its config
    local u
    for u in node coordinator repo-server provisioner; do
        grep -qx 'Type=notify' "$root/lib/systemd/system/hoist-$u.service" &&
            grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$root/lib/systemd/system/hoist-$u.service" &&
            grep -q -- "--config /etc/hoist/$u.toml" "$root/lib/systemd/system/hoist-$u.service" ||
            { echo "  hoist-$u.service"; return 1; }
    done
}
check "the four units are Type=notify, reload with SIGHUP and read /etc/hoist/NAME.toml" notify_units

# systemd's own score of each unit's sandbox (0 safest, 10 none), with a ceiling so that a
# weakened unit fails: the hoist-user daemons 3.0, the node (root, starts services) 8.5.
exposure_at_most() {  # unit ceiling*10
    local out rc
    out=$(systemd-analyze security --offline=true --no-pager --threshold="$2" \
        "$root/lib/systemd/system/$1.service" 2>&1)
    rc=$?
    echo "  $(tail -n 1 <<<"$out")"
    return $rc
}
for u in hoist-coordinator hoist-repo-server hoist-provisioner; do
    check "$u's exposure is at most 3.0" exposure_at_most "$u" 30
done
check "hoist-node's exposure is at most 8.5" exposure_at_most hoist-node 85

echo "== dpkg -i into a throwaway copy of this machine"
if [ "$(id -u)" -ne 0 ]; then
    skipped+=("dpkg -i (needs root for a mount namespace)")
else
    unshare -m --propagation private bash "$here/dpkg_install.sh" "$work/out" "$work/ns" "$src" "$build" \
        >"$work/dpkg.log" 2>&1
    rc=$?
    cat "$work/dpkg.log"
    passed=$((passed + $(grep -c '^ok:' "$work/dpkg.log")))
    if [ $rc -eq 77 ]; then
        skipped+=("dpkg -i (no mount namespace or overlay file system, or a hoist user, here)")
    else
        failed=$((failed + rc))
    fi
fi

echo "passed: $passed, failed: $failed"
[ "$failed" -eq 0 ] || exit 1
if [ ${#skipped[@]} -gt 0 ]; then
    echo "SKIPPED: ${skipped[*]}"
    exit 77
fi
