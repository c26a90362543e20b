#!/usr/bin/env bash
# Unpack benchmark (issue 2): `solum-build unpack base/debian-python3 DIR` against
# `umoci unpack --image STORE:base/debian-python3 DIR` (with --rootless when not root), the
# same image from the same store, page cache warm for both. Target: ours >= 2x faster.
# Each timed run starts from a removed output dir (removal untimed).
. "$(dirname "$0")/lib.sh"

bench_require unpack umoci
bin=$(bench_solum)
image=base/debian-python3
bench_ensure_base debian-python3
out="$BENCH_TMP/out"

umoci_args=(unpack)
bench_is_root || umoci_args+=(--rootless)
umoci_args+=(--image "$BENCH_STORE:$image" "$out")

# One untimed run of each: warms the page cache with the image's blobs and checks both
# commands work before anything is timed.
bench_rmtree "$out"
"$bin" --store "$BENCH_STORE" unpack "$image" "$out" >/dev/null
files_ours=$(find "$out" | wc -l)
bench_rmtree "$out"
umoci "${umoci_args[@]}" >/dev/null
files_umoci=$(find "$out/rootfs" | wc -l)
bench_rmtree "$out"
bench_log "entries: ours $files_ours, umoci $files_umoci (umoci's bundle adds config.json and an mtree file)"

prep="chmod -R u+rwX '$out' 2>/dev/null; rm -rf '$out'"
ours_cmd=("$bin" --store "$BENCH_STORE" unpack "$image" "$out")
peer_cmd=(umoci "${umoci_args[@]}")
bench_log "ours: ${ours_cmd[*]}"
bench_log "peer: ${peer_cmd[*]}"
bench_log "$BENCH_RUNS runs each ($BENCH_TOOL)"
pair=$(bench_pair_ms "$BENCH_RUNS" "$prep" ours_cmd peer_cmd)
read -r ours peer <<<"$pair"
bench_compare "unpack $image" "$ours" "$peer" umoci
ratio=$(bench_ratio "$ours" "$peer")
echo "SUMMARY unpack: ours $ours ms, umoci $peer ms, ratio $ratio (target >= 2.0): $(bench_at_least "$ratio" 2.0)"
