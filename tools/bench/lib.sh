# Shared pieces of the benchmarks (sourced): timing, medians, ratios, the machine's load, and
# the physical floor of an ingest measured in the same run.

now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$2"; }
# median of the arguments
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# Lets the disk finish what a large delete queued, so that the next timed write starts clean.
settle() { sync; sleep "${SETTLE:-2}"; }

# measure_floor SCRATCH_DIR ZSTD_FILE...: the rates this machine manages now for each part of
# an ingest of these zstd files (each best of 2), and their floor, the slowest of
#   decompress: zstd -dc of the files to /dev/null;
#   hash:       SHA-256 of the files plus their unpacked bytes, by `openssl dgst -sha256`: the
#               SHA-256 pkgmgr uses (OpenSSL's, with the CPU's SHA instructions where it has
#               them; coreutils' sha256sum hashes 3x slower here, and as the floor it made
#               every ratio look 3x better than the machine allows);
#   write:      the unpacked bytes written sequentially and fsynced (dd conv=fsync).
# Sets FLOOR_S, FLOOR_DECOMP_S, FLOOR_HASH_S, FLOOR_WRITE_S and prints them.
best_of() { python3 -c "import sys; print(min(float(x) for x in sys.argv[1:] if x))" "$@"; }
measure_floor() {
    local scratch=$1 t0 t1 i best unpacked
    shift
    mkdir -p "$scratch"
    cat "$@" | zstd -dc > "$scratch/floor.tar"
    unpacked=$(stat -c %s "$scratch/floor.tar")
    best=""
    for i in 1 2; do
        t0=$(now); cat "$@" | zstd -dc > /dev/null; t1=$(now)
        best=$(best_of "$best" "$(elapsed "$t0" "$t1")")
    done
    FLOOR_DECOMP_S=$best
    best=""
    for i in 1 2; do
        t0=$(now); openssl dgst -sha256 "$scratch/floor.tar" "$@" > /dev/null; t1=$(now)
        best=$(best_of "$best" "$(elapsed "$t0" "$t1")")
    done
    FLOOR_HASH_S=$best
    best=""
    for i in 1 2; do
        rm -f "$scratch/floor.out"; settle
        t0=$(now); dd if="$scratch/floor.tar" of="$scratch/floor.out" bs=4M conv=fsync status=none; t1=$(now)
        best=$(best_of "$best" "$(elapsed "$t0" "$t1")")
    done
    FLOOR_WRITE_S=$best
    rm -f "$scratch/floor.out" "$scratch/floor.tar"
    FLOOR_S=$(python3 -c "import sys; print(max(float(x) for x in sys.argv[1:]))" "$FLOOR_DECOMP_S" "$FLOOR_HASH_S" "$FLOOR_WRITE_S")
    python3 - "$unpacked" "$FLOOR_DECOMP_S" "$FLOOR_HASH_S" "$FLOOR_WRITE_S" "$FLOOR_S" "$(loadavg)" <<'PY'
import sys
u = float(sys.argv[1]) / 1e6
d, h, w, f = map(float, sys.argv[2:6])
print(f"   floor ({u:.0f} MB unpacked; load {sys.argv[6]}): decompress {d:.3f} s ({u/d:.0f} MB/s), "
      f"hash (openssl) {h:.3f} s ({u/h:.0f} MB/s of unpacked, tarball included), "
      f"write+fsync {w:.3f} s ({u/w:.0f} MB/s): floor {f:.3f} s")
PY
}

# The package tree the store and ostree benchmarks share: >= 20,000 files and >= 250 MB
# unpacked, from /usr/include (headers) and /usr/lib (shared libraries, less compressible).
# make_big_tree DIR
make_big_tree() {
    local dir=$1
    mkdir -p "$dir"
    cat > "$dir/pkginfo.json" <<'EOF'
{"name": "bench-big", "version": "1.0.0", "kind": "library"}
EOF
    # Regular files only, symlinks followed (a package may not link outside itself).
    (cd /usr && find include -type f -print0 | tar --null -T - -cf - 2>/dev/null) | tar -xf - -C "$dir"
    mkdir -p "$dir/lib"
    find /usr/lib/x86_64-linux-gnu -maxdepth 1 -type f -name '*.so*' -size -20M -printf '%s %p\n' |
        sort -k2 | awk '{ total += $1; if (total > 100*1024*1024) exit; print $2 }' |
        while read -r f; do cp "$f" "$dir/lib/"; done
    local files unpacked
    files=$(find "$dir" -type f | wc -l)
    unpacked=$(du -sb "$dir" | cut -f1)
    echo "   files: $files, unpacked: $((unpacked / 1024 / 1024)) MiB"
    if [ "$files" -lt 20000 ] || [ "$unpacked" -lt $((250 * 1024 * 1024)) ]; then
        echo "bench: the package is smaller than 250 MB / 20,000 files on this machine" >&2
        return 1
    fi
}
