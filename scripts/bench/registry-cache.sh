#!/usr/bin/env bash
# Registry build-cache benchmark (issue 14, item 3): the python badger's sample app
# (testdata/apps/python-web) built once with `--cache-to` into Debian's docker-registry on
# 127.0.0.1, then, timed, the same build on a runner whose store has no DU, with
# `--cache-from`: a hit, end to end (source copy, build key, the entry's manifest checked,
# the DU's own blobs pulled, the name written). Before every timed run the runner's store
# is made again (untimed):
#   badger   the store holds badgers/python (the runner's image or an earlier job step
#            brought it), nothing else: the hit pulls the DU's config, its dependency and
#            app layers and its manifest. Target: <= 300 ms.
#   empty    the store is empty: `solum-build pull docker://…/badgers/python:1 --tag
#            badgers/python` first, then the same build (the badger's base layers are the
#            bulk). No target; for scale.
# Both runners name the badger badgers/python in the store: the reference is part of the
# app, so of the build key and of the DU. (`--badger docker://…` would do as well for the
# key, but reads the whole badger from the registry again at every build.)
. "$(dirname "$0")/lib.sh"

bench_require registry-cache docker-registry
bin=$(bench_solum)
bench_ensure_base debian-python3
# Built every run: a kept bench store may hold an older badger under another name.
"$bin" -q --store "$BENCH_STORE" badger build "$SOLUM_REPO/badgers/python" >/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
registry_dir="$BENCH_TMP/registry"
mkdir -p "$registry_dir/storage"
printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: 127.0.0.1:%s}\n' \
    "$registry_dir/storage" "$port" >"$registry_dir/config.yml"
docker-registry serve "$registry_dir/config.yml" >"$BENCH_TMP/registry.log" 2>&1 &
registry_pid=$!
trap 'kill "$registry_pid" 2>/dev/null || true; bench_cleanup' EXIT
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
done
cache="docker://127.0.0.1:$port/ci/cache"
badger="docker://127.0.0.1:$port/badgers/python"
"$bin" -q --store "$BENCH_STORE" push badgers/python "$badger:1" >/dev/null

# The same source and epoch on both runners: the same build key.
export SOURCE_DATE_EPOCH=1700000000
app="$SOLUM_REPO/testdata/apps/python-web"
build() { "$bin" -q --store "$1" build "$app/app.yaml" --badger "$2" --name python-web "${@:3}"; }

# The first runner builds and fills the cache (a store of its own with the badger).
first="$BENCH_TMP/first"
template="$BENCH_TMP/template"
"$bin" -q --store "$template" pull "$badger:1" --tag badgers/python >/dev/null
cp -a "$template" "$first"
digest=$(build "$first" badgers/python --cache-to "$cache" 2>"$BENCH_TMP/first.log") ||
    { cat "$BENCH_TMP/first.log" >&2; bench_die "the first build failed"; }
bench_log "first runner: built $digest and cached it in $cache"

runner="$BENCH_TMP/runner"
# The runner's store before each timed run: the badger only, or nothing.
with_badger() { bench_rmtree "$runner"; cp -a "$template" "$runner"; }
empty() { bench_rmtree "$runner"; }
check_hit() {
    local out
    # Not quiet: the hit is told by the BUILT line.
    out=$("$bin" --store "$runner" build "$app/app.yaml" --badger badgers/python --name python-web --cache-from "$cache" 2>&1) || { printf '%s\n' "$out" >&2; bench_die "build failed"; }
    grep -q "cached in $cache" <<<"$out" || { printf '%s\n' "$out" >&2; bench_die "not a cache hit"; }
    [[ "$(tail -n1 <<<"$out")" == "$digest" ]] || bench_die "another DU than the first runner's"
}
pull_badger() { "$bin" -q --store "$runner" pull "$badger:1" --tag badgers/python >/dev/null; }
with_badger
check_hit
empty
pull_badger
check_hit

hit=("$bin" -q --store "$runner" build "$app/app.yaml" --badger badgers/python --name python-web --cache-from "$cache")
export -f pull_badger
export bin runner badger
pull_and_hit=(bash -c 'pull_badger && "$@"' pull-and-hit "${hit[@]}")
bench_log "timed: ${hit[*]}"
runs=$((BENCH_RUNS < 10 ? 10 : BENCH_RUNS))
ours=$(bench_time_ms "$runs" with_badger "${hit[@]}")
pulled=$(bench_time_ms "$BENCH_RUNS" empty "${pull_and_hit[@]}")
echo "registry-cache hit, store with the badger: $ours ms (median of $runs)"
echo "registry-cache hit, empty store (badger pulled too): $pulled ms (median of $BENCH_RUNS)"
echo "SUMMARY registry-cache hit: $ours ms with the badger in the store, $pulled ms on an empty store (target <= 300 ms): $(bench_at_most "$ours" 300)"
