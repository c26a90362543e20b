#!/usr/bin/env bash
# Import memory benchmark (issue 2): peak RSS of `solum-build import` of a 1 GiB tree (the
# debian rootfs, one 256 MiB random file, then random and text files), once with gzip and
# once with zstd layers, into a fresh store each time. Target: < 64 MiB for both. The peak
# is GNU time's %M (ru_maxrss), the largest over BENCH_RUNS runs (default here: 2).
. "$(dirname "$0")/lib.sh"

bin=$(bench_solum)
export SOURCE_DATE_EPOCH=$SOLUM_BASE_EPOCH
tree="$BENCH_TMP/tree"
store="$BENCH_TMP/store"
runs=${BENCH_RUNS_RSS:-2}
bench_log "making a 1 GiB tree in $tree"
bench_make_tree "$tree" 1024 256
bench_log "tree: $(du -sh --apparent-size "$tree" | cut -f1), $(find "$tree" | wc -l) entries"

verdict=PASS
line=""
for c in gzip zstd; do
    t0=${EPOCHREALTIME/[.,]/}
    kib=$(bench_peak_rss_kib "$runs" "rm -rf '$store'" \
        "$bin" --store "$store" import "$tree" --tag "bench/rss-$c" --compression "$c")
    t1=${EPOCHREALTIME/[.,]/}
    mib=$(awk -v k="$kib" 'BEGIN { printf "%.1f", k / 1024 }')
    echo "import 1 GiB tree, $c: peak RSS $mib MiB ($kib KiB), $(((t1 - t0) / 1000 / runs)) ms per run"
    [[ "$(bench_at_most "$kib" $((64 * 1024 - 1)))" == PASS ]] || verdict=MISS
    line+="${line:+, }$c $mib MiB"
done
echo "SUMMARY import-rss: $line (target < 64 MiB): $verdict"
