#!/usr/bin/env bash
# Registry push benchmarks (issue 5), against Debian's docker-registry on 127.0.0.1 with
# its storage emptied before every timed run (the preparation is not timed):
#   fresh   push the badgers/python image (debian-python3 + the badger layer) to an empty
#           registry: ours `solum-build push` vs `skopeo copy oci:STORE:NAME docker://…`
#           (target ours <= 1.0 x skopeo)
#   exists  push again when the registry has every blob (target <= 100 ms)
#   rss     peak RSS of ours pushing an image with one 1 GiB layer (target <= 64 MiB)
. "$(dirname "$0")/lib.sh"

bench_require push docker-registry skopeo
bin=$(bench_solum)
bench_ensure_base debian-python3
if ! "$bin" -q --store "$BENCH_STORE" badger search python >/dev/null 2>&1; then
    "$bin" -q --store "$BENCH_STORE" badger build "$SOLUM_REPO/badgers/python" >/dev/null
fi
image=badgers/python

bench_registry_init
trap 'bench_stop_registry; bench_cleanup' EXIT
bench_start_registry

dest="docker://127.0.0.1:$bench_registry_port/bench/python3:1"
ours_cmd=("$bin" -q --store "$BENCH_STORE" push "$image" "$dest")
peer_cmd=(skopeo copy -q --dest-tls-verify=false "oci:$BENCH_STORE:$image" "$dest")
"${ours_cmd[@]}" >/dev/null
bench_start_registry
"${peer_cmd[@]}" >/dev/null
bench_log "ours: ${ours_cmd[*]}"
bench_log "peer: ${peer_cmd[*]}"
pair=$(bench_pair_ms "$BENCH_RUNS" bench_start_registry ours_cmd peer_cmd)
read -r ours peer <<<"$pair"
bench_compare "push $image to an empty registry" "$ours" "$peer" skopeo
share=$(awk -v o="$ours" -v p="$peer" 'BEGIN { printf "%.2f", o / p }')
echo "SUMMARY push fresh: ours $ours ms, skopeo $peer ms, ours/skopeo $share (target <= 1.0): $(bench_at_most "$share" 1.0)"

# Every blob already there: only HEADs and the manifest.
bench_start_registry
"${ours_cmd[@]}" >/dev/null
exists=$(bench_time_ms "$((BENCH_RUNS < 10 ? 10 : BENCH_RUNS))" "" "${ours_cmd[@]}")
peer_exists=$(bench_time_ms "$((BENCH_RUNS < 10 ? 10 : BENCH_RUNS))" "" "${peer_cmd[@]}")
echo "SUMMARY push exists: ours $exists ms, skopeo $peer_exists ms (target ours <= 100): $(bench_at_most "$exists" 100)"

# One 1 GiB layer (random bytes: the compressed blob is 1 GiB too), pushed from disk.
big="$BENCH_TMP/big-tree"
mkdir -p "$big"
head -c 1073741824 /dev/urandom >"$big/big.bin"
"$bin" -q --store "$BENCH_STORE" import "$big" --tag bench/big --compression zstd >/dev/null
bench_rmtree "$big"
bench_start_registry
rss=$(bench_peak_rss_kib 1 "" "$bin" -q --store "$BENCH_STORE" push bench/big "docker://127.0.0.1:$bench_registry_port/bench/big:1")
rss_mib=$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')
"$bin" -q --store "$BENCH_STORE" rmi bench/big >/dev/null
"$bin" -q --store "$BENCH_STORE" gc >/dev/null
echo "SUMMARY push rss: $rss_mib MiB pushing a 1 GiB layer (target <= 64): $(bench_at_most "$rss_mib" 64)"
