#!/usr/bin/env bash
# gzip benchmark (issue 2): `solum-build import TREE` with gzip layers (tar + gzip on both
# cores + both digests, into a fresh store each run) against `gzip -6` of the same tree's
# tar, made once beforehand and not timed. Both write their output to the same disk. The
# tree is 200 MiB: the debian rootfs plus random and text files (see bench_make_tree).
# Target: ours >= 1.6x faster. pigz -6 on both cores is printed as a reference when installed.
. "$(dirname "$0")/lib.sh"

bin=$(bench_solum)
export SOURCE_DATE_EPOCH=$SOLUM_BASE_EPOCH
tree="$BENCH_TMP/tree"
store="$BENCH_TMP/store"
bench_log "making a 200 MiB tree in $tree"
bench_make_tree "$tree" 200
bench_log "tree: $(du -sh --apparent-size "$tree" | cut -f1), $(find "$tree" | wc -l) entries"
# The peer's input: the same tree as a sorted PAX tar, like the layer ours writes.
tar --format=posix --pax-option=delete=atime,delete=ctime --sort=name --numeric-owner \
    -C "$tree" -cf "$BENCH_TMP/tree.tar" .
# Read both inputs once so that neither side pays for a cold page cache.
cat "$BENCH_TMP/tree.tar" >/dev/null
tar -C "$tree" -cf - . >/dev/null

prep="rm -rf '$store' '$BENCH_TMP/tree.tar.gz'"
ours_cmd=("$bin" -q --store "$store" import "$tree" --tag bench/gzip --compression gzip)
# shellcheck disable=SC2016 # $1 is expanded by the inner sh
peer_cmd=(sh -c 'exec gzip -6 -c "$1" >"$1.gz"' sh "$BENCH_TMP/tree.tar")
# One untimed run of each checks that both work. A faster gzip that compressed much less
# would not be a win, so both output sizes are printed (our layer is the store's largest blob).
eval "$prep"
"${ours_cmd[@]}" >/dev/null
"${peer_cmd[@]}"
size_ours=$(find "$store/blobs" -type f -printf '%s\n' | sort -n | tail -n 1)
size_peer=$(stat -c %s "$BENCH_TMP/tree.tar.gz")
size_tar=$(stat -c %s "$BENCH_TMP/tree.tar")
echo "compressed size: ours $((size_ours / 1024)) KiB, gzip -6 $((size_peer / 1024)) KiB (tar $((size_tar / 1024)) KiB)"
bench_log "ours: $bin import TREE --compression gzip (into a fresh store)"
bench_log "peer: gzip -6 -c TREE.tar > TREE.tar.gz"
bench_log "$BENCH_RUNS runs each ($BENCH_TOOL)"
pair=$(bench_pair_ms "$BENCH_RUNS" "$prep" ours_cmd peer_cmd)
read -r ours peer <<<"$pair"
bench_compare "gzip 200 MiB layer" "$ours" "$peer" gzip-6
if command -v pigz >/dev/null 2>&1; then
    # shellcheck disable=SC2016
    ref=$(bench_time_ms "$BENCH_RUNS" "$prep" \
        sh -c 'exec pigz -6 -p 2 -c "$1" >"$1.gz"' sh "$BENCH_TMP/tree.tar")
    bench_compare "gzip 200 MiB layer (reference)" "$ours" "$ref" pigz-6-p2
fi
ratio=$(bench_ratio "$ours" "$peer")
echo "SUMMARY gzip: ours $ours ms, gzip -6 $peer ms, ratio $ratio (target >= 1.6): $(bench_at_least "$ratio" 1.6)"
