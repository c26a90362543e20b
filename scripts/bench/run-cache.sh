#!/usr/bin/env bash
# Rootfs-cache benchmarks (issue 12, item 10): python DUs on one cached badger.
#   first run   `run DU -- true` of a DU just built on badgers/python (the badger's trees
#               are in the cache, as every build on it leaves them):
#                 ours:  the default, the DU's own layer stacked above the badger's trees
#                 peer:  SOLUM_BUILD_NO_STACK=1, the whole stack unpacked into a tree of its
#                        own (the behaviour before stacking)
#               a new DU is built before every timed run (untimed), so every run is a first.
#               Target: ours <= 300 ms.
#   cache size  15 python DUs built and run once each on one badger, in a fresh store:
#               du of STORE/cache/rootfs against the badger's unpacked size (base/debian-
#               python3 unpacked plus the badger's layer) plus the DUs' own layers unpacked
#               (each unpacked alone into a folder). Target: <= 1.3x.
. "$(dirname "$0")/lib.sh"

bin=$(bench_solum)
bench_ensure_base debian-python3
if ! "$bin" -q --store "$BENCH_STORE" badger search python >/dev/null 2>&1; then
    "$bin" -q --store "$BENCH_STORE" badger build "$SOLUM_REPO/badgers/python" >/dev/null
fi

# make_du STORE NAME N: builds a small python app (20 modules, distinct content per N) as NAME.
make_du() {
    local store=$1 name=$2 n=$3 app="$BENCH_TMP/app-$2-$3" i
    mkdir -p "$app/pkg"
    printf 'print("app %s")\n' "$n" >"$app/app.py"
    : >"$app/pkg/__init__.py"
    for ((i = 0; i < 20; i++)); do
        printf 'VALUE = %d\n\ndef value():\n    return VALUE * %d\n' "$i" "$n" >"$app/pkg/m$i.py"
    done
    "$bin" -q --store "$store" build --badger badgers/python --source "$app" \
        --name "$name" --run-cmd 'python3 app.py' >/dev/null
}

# The first run: every timed run follows a build of a new DU under the same name.
counter="$BENCH_TMP/counter"
echo 0 >"$counter"
prepare='n=$(($(cat "$counter") + 1)); echo $n >"$counter"; make_du "$BENCH_STORE" bench-first-run $n'
ours_cmd=("$bin" -q --store "$BENCH_STORE" run bench-first-run -- true)
peer_cmd=(env SOLUM_BUILD_NO_STACK=1 "$bin" -q --store "$BENCH_STORE" run bench-first-run -- true)
eval "$prepare"
"${ours_cmd[@]}" >/dev/null
bench_log "ours: ${ours_cmd[*]}"
bench_log "peer: ${peer_cmd[*]}"
bench_log "$BENCH_RUNS runs each, a new DU built before each ($BENCH_TOOL)"
pair=$(bench_pair_ms "$BENCH_RUNS" "$prepare" ours_cmd peer_cmd)
read -r ours peer <<<"$pair"
bench_compare "first run of a new python DU" "$ours" "$peer" "flattened"
echo "SUMMARY run-cache first run: stacked $ours ms, flattened $peer ms, ratio $(bench_ratio "$ours" "$peer") (target stacked <= 300 ms): $(bench_at_most "$ours" 300)"

# The cache after 15 DUs, in a store of its own: the base, the badger, 15 DUs.
store="$BENCH_TMP/store-15"
sh "$SCRIPTS_DIR/make-base-images.sh" --only debian-python3 "$store" >&2
"$bin" -q --store "$store" badger build "$SOLUM_REPO/badgers/python" >/dev/null
for ((n = 1; n <= 15; n++)); do
    make_du "$store" "bench-du-$n" "$n"
    "$bin" -q --store "$store" run "bench-du-$n" -- true >/dev/null
done
cache_kib=$(du -sk "$store/cache/rootfs" | cut -f1)
# The expected size: the badger unpacked, and each DU's own (top) layer unpacked alone.
expected="$BENCH_TMP/expected"
mkdir -p "$expected"
"$bin" -q --store "$store" unpack badgers/python "$expected/badger" >/dev/null
layer_kib=0
for ((n = 1; n <= 15; n++)); do
    top=$(jq -r '.layers[-1].digest' <"$store/blobs/sha256/$(jq -r --arg n "bench-du-$n" \
        '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $n) | .digest' \
        <"$store/index.json" | cut -d: -f2)")
    mkdir -p "$expected/du-$n"
    tar -xzf "$store/blobs/sha256/${top#sha256:}" -C "$expected/du-$n" 2>/dev/null ||
        tar -xf "$store/blobs/sha256/${top#sha256:}" -C "$expected/du-$n"
    layer_kib=$((layer_kib + $(du -sk "$expected/du-$n" | cut -f1)))
done
badger_kib=$(du -sk "$expected/badger" | cut -f1)
bench_log "cache/rootfs: $cache_kib KiB; badger unpacked: $badger_kib KiB; 15 DU layers unpacked: $layer_kib KiB"
ls "$store/cache/rootfs" >&2
share=$(awk -v c="$cache_kib" -v b="$badger_kib" -v l="$layer_kib" 'BEGIN { printf "%.2f", c / (b + l) }')
echo "SUMMARY run-cache size: cache $((cache_kib / 1024)) MiB for badger $((badger_kib / 1024)) MiB + 15 DU layers $((layer_kib / 1024)) MiB, ratio $share (target <= 1.3): $(bench_at_most "$share" 1.3)"
