#!/usr/bin/env bash
# Supply-chain attachments benchmark (issue 15): what the SBOMs, the provenance and the
# signature cost. The python badger's sample app (testdata/apps/python-web), each case run
# with attachments (`--sign-key`: two SBOMs, a signed provenance, a cosign signature) and
# without (`--no-attestations`), alternating, medians:
#   cold     a build with nothing cached (--no-cache): with / without  target <= 1.10
#   hit      a build-cache hit: with - without                         target <= 30 ms
#   push     the DU with its referrers / the DU alone, each to an empty registry
#            (Debian's docker-registry on 127.0.0.1: the fallback tag)  target <= 1.2
. "$(dirname "$0")/lib.sh"

bench_require attest docker-registry
bin=$(bench_solum)
bench_ensure_base debian-python3
"$bin" -q --store "$BENCH_STORE" badger build "$SOLUM_REPO/badgers/python" >/dev/null
# A copy of the app: each cold build first appends a line to its code, so that every timed
# build makes a new DU (the same DU again would find its attachments made already).
app="$BENCH_TMP/python-web"
cp -a "$SOLUM_REPO/testdata/apps/python-web" "$app"
export SOURCE_DATE_EPOCH=1700000000
"$bin" -q keygen --output-prefix "$BENCH_TMP/bench" >/dev/null
key="$BENCH_TMP/bench.key"

signed=("$bin" -q --store "$BENCH_STORE" build "$app/app.yaml" --test-cmd '' --tag bench-attest --sign-key "$key")
bare=("$bin" -q --store "$BENCH_STORE" build "$app/app.yaml" --test-cmd '' --tag bench-bare --no-attestations)
# Warm: the badger's trees unpacked, both DUs made once.
"${signed[@]}" >/dev/null
"${bare[@]}" >/dev/null

cold_signed=("${signed[@]}" --no-cache)
cold_bare=("${bare[@]}" --no-cache)
bench_log "cold: ${cold_signed[*]}"
change="echo '# change '\$RANDOM\$RANDOM >> '$app/serve.py'"
pair=$(bench_pair_ms "$BENCH_RUNS" "$change" cold_signed cold_bare)
read -r with without <<<"$pair"
share=$(bench_share "$with" "$without")
echo "SUMMARY attest cold build: with $with ms, without $without ms, with/without $share (target <= 1.10): $(bench_at_most "$share" 1.10)"

# For scale, no target: the first DU on a badger in a store reads the badger's layers too
# (afterwards their records are kept in STORE/cache/sbom).
first=$(bench_time_ms 3 "rm -rf '$BENCH_STORE/cache/sbom'; $change" "${cold_signed[@]}")
echo "attest: a cold build whose store has no layer records yet: $first ms (median of 3)"

runs=$((BENCH_RUNS < 10 ? 10 : BENCH_RUNS))
pair=$(bench_pair_ms "$runs" "" signed bare)
read -r with without <<<"$pair"
extra=$(awk -v a="$with" -v b="$without" 'BEGIN { printf "%.1f", a - b }')
echo "SUMMARY attest cache hit: with $with ms, without $without ms, extra $extra ms (target <= 30 ms): $(bench_at_most "$extra" 30)"

# Pushes to an empty registry each time: a fresh registry folder per run.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
registry_dir="$BENCH_TMP/registry"
pidfile="$BENCH_TMP/registry.pid"
# Each timed run happens in a subshell of its own, so the registry's pid goes in a file.
stop_registry() {
    if [[ -f "$pidfile" ]]; then
        kill "$(cat "$pidfile")" 2>/dev/null || true
        while kill -0 "$(cat "$pidfile")" 2>/dev/null; do sleep 0.02; done
        rm -f "$pidfile"
    fi
}
start_registry() {
    stop_registry
    rm -rf "$registry_dir"
    mkdir -p "$registry_dir/storage"
    printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: 127.0.0.1:%s}\n' \
        "$registry_dir/storage" "$port" >"$registry_dir/config.yml"
    docker-registry serve "$registry_dir/config.yml" >"$BENCH_TMP/registry.log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.05
    done
}
trap 'stop_registry; bench_cleanup' EXIT
push_with=("$bin" -q --store "$BENCH_STORE" push bench-attest "docker://127.0.0.1:$port/app:1")
push_without=("$bin" -q --store "$BENCH_STORE" push --no-referrers bench-attest "docker://127.0.0.1:$port/app:1")
# `start_registry` runs in this shell before each timed push (bench_time_builtin evals the
# preparation), so each push meets an empty registry.
pair=$(bench_pair_ms "$BENCH_RUNS" start_registry push_with push_without)
read -r with without <<<"$pair"
share=$(bench_share "$with" "$without")
echo "SUMMARY attest push: with referrers $with ms, DU alone $without ms, ratio $share (target <= 1.2): $(bench_at_most "$share" 1.2)"
