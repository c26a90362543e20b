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

# Pushes to an empty registry each time: restarted on empty storage before each run.
bench_registry_init
trap 'bench_stop_registry; bench_cleanup' EXIT
push_with=("$bin" -q --store "$BENCH_STORE" push bench-attest "docker://127.0.0.1:$bench_registry_port/app:1")
push_without=("$bin" -q --store "$BENCH_STORE" push --no-referrers bench-attest "docker://127.0.0.1:$bench_registry_port/app:1")
pair=$(bench_pair_ms "$BENCH_RUNS" bench_start_registry push_with push_without)
read -r with without <<<"$pair"
share=$(bench_share "$with" "$without")
echo "SUMMARY attest push: with referrers $with ms, DU alone $without ms, ratio $share (target <= 1.2): $(bench_at_most "$share" 1.2)"
