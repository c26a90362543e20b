#!/usr/bin/env bash
# Build benchmarks (issue 4): ours and buildah side by side, same base, same script.
#   ours:  solum-build build --badger badgers/shell --source APP --no-cache
#          (badgers/shell runs the app's ./build in /app, no network)
#   peer:  buildah build --network none --layers=false with
#          FROM oci:STORE:base/busybox / COPY build /app/build / RUN cd /app && sh ./build
#          (the same base, the same script; buildah commits into its own storage)
# Cases and targets (medians, alternating runs):
#   10k    the script writes 10,000 small files            ours <= 0.2 x buildah
#   200mb  the script writes one 200 MB file (urandom)     ours <= 0.5 x buildah
#   python one file on badgers/python vs on badgers/shell ours python <= 1.3 x ours shell
#   cache  an identical rebuild (a cache hit)              <= 50 ms
. "$(dirname "$0")/lib.sh"

bench_require build buildah
bin=$(bench_solum)
bench_ensure_base busybox
bench_ensure_base debian-python3
for badger in shell python; do
    if ! "$bin" -q --store "$BENCH_STORE" badger search "$badger" >/dev/null 2>&1; then
        "$bin" -q --store "$BENCH_STORE" badger build "$SOLUM_REPO/badgers/$badger" >/dev/null
    fi
done

# make_app DIR SCRIPT: an app folder whose ./build is SCRIPT, and the peer's Containerfile.
make_app() {
    mkdir -p "$1"
    printf '%s\n' "$2" >"$1/build"
    printf 'FROM oci:%s:base/busybox\nCOPY build /app/build\nRUN cd /app && sh ./build\n' \
        "$BENCH_STORE" >"$1/Containerfile"
}

# run_case LABEL SCRIPT TARGET: times ours and buildah on SCRIPT, prints the comparison.
run_case() {
    local label=$1 app="$BENCH_TMP/app-$1" pair ours peer
    make_app "$app" "$2"
    local ours_cmd=("$bin" -q --store "$BENCH_STORE" build --badger badgers/shell
        --source "$app" --name "bench-$label" --no-cache)
    local peer_cmd=(buildah build -q --network none --layers=false -t "solum-bench-$label"
        -f "$app/Containerfile" "$app")
    "${ours_cmd[@]}" >/dev/null
    "${peer_cmd[@]}" >/dev/null
    bench_log "[$label] ours: ${ours_cmd[*]}"
    bench_log "[$label] peer: ${peer_cmd[*]}"
    pair=$(bench_pair_ms "$BENCH_RUNS" "buildah rmi -f solum-bench-$label >/dev/null 2>&1 || true" ours_cmd peer_cmd)
    read -r ours peer <<<"$pair"
    bench_compare "build $label" "$ours" "$peer" buildah
    local share
    share=$(awk -v o="$ours" -v p="$peer" 'BEGIN { printf "%.2f", o / p }')
    echo "SUMMARY build $label: ours $ours ms, buildah $peer ms, ours/buildah $share (target <= $3): $(bench_at_most "$share" "$3")"
    buildah rmi -f "solum-bench-$label" >/dev/null 2>&1 || true
}

run_case 10k 'mkdir -p out && i=0; while [ $i -lt 10000 ]; do echo "file $i" > out/f$i; i=$((i+1)); done' 0.2
run_case 200mb 'head -c 209715200 /dev/urandom > big.bin' 0.5

# One file on the python badger (about 8,000 files below it) against the same on busybox:
# the cost follows the change, not the base.
one="$BENCH_TMP/app-one"
make_app "$one" 'echo one > one.txt'
py_cmd=("$bin" -q --store "$BENCH_STORE" build --badger badgers/python --source "$one" --name bench-one-py --no-cache)
sh_cmd=("$bin" -q --store "$BENCH_STORE" build --badger badgers/shell --source "$one" --name bench-one-sh --no-cache)
"${py_cmd[@]}" >/dev/null
"${sh_cmd[@]}" >/dev/null
pair=$(bench_pair_ms "$BENCH_RUNS" "" py_cmd sh_cmd)
read -r py sh <<<"$pair"
share=$(awk -v o="$py" -v p="$sh" 'BEGIN { printf "%.2f", o / p }')
echo "SUMMARY build one file: python badger $py ms, shell badger $sh ms, python/shell $share (target <= 1.3): $(bench_at_most "$share" 1.3)"

# An identical rebuild: the cache answers without running anything.
hit_cmd=("$bin" -q --store "$BENCH_STORE" build --badger badgers/shell --source "$one" --name bench-one-sh)
"${hit_cmd[@]}" >/dev/null
hit=$(bench_time_ms "$((BENCH_RUNS < 10 ? 10 : BENCH_RUNS))" "" "${hit_cmd[@]}")
echo "SUMMARY build cache hit: $hit ms (target <= 50): $(bench_at_most "$hit" 50)"
