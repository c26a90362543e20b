#!/usr/bin/env bash
# `serve` on many nodes (issue 16): one `--role api` node and N `--role worker` nodes on one
# PostgreSQL database (a throwaway cluster, see bench_pg_start), each node with its own
# --data, all pushing to one loopback docker-registry. The app is a shell app on the shell
# badger over busybox whose `build` sleeps (BENCH_SCALE_SLEEP seconds); every workflow
# builds a commit of its own, so that no build is a cache hit.
#   throughput  workflows per minute for N = 1, 2, 4 workers (BENCH_SCALE_PER_WORKER
#               workflows per worker, started at once): N / 1 ratio     target >= 0.8 x N
#   pickup      QUEUED -> first state after it, from the workflow's transitions (their
#               `at`, in ms), one workflow at a time on an idle worker (no sleep in the
#               build; BENCH_SCALE_PICKUPS of them)             target p50 <= 50, p99 <= 250 ms
#               (for reference, no target: created_at -> started_at, the claim alone)
#   status      GET of a workflow on the API node at 200 requests/s for 10 s (open loop,
#               8 keep-alive clients: examples/serve_bench) while two workers build
#                                                                target p99 <= 10 ms
# Every node runs as the user running the script, on one host: what is measured is the
# database and the claim/heartbeat protocol, not a network between hosts.
#
# Usage: bash scripts/bench/serve-scale.sh [--setup-only]
#   --setup-only  starts PostgreSQL and the registry, seeds the nodes' stores with
#                 base/busybox and the shell badger, then stops (the parts that do not need
#                 the multi-node flags of `serve`).
# Environment (besides lib.sh's): BENCH_SCALE_WORKERS (default "1 2 4"),
# BENCH_SCALE_PER_WORKER (6), BENCH_SCALE_SLEEP (3), BENCH_SCALE_PICKUPS (20).
. "$(dirname "$0")/lib.sh"

setup_only=false
case "${1:-}" in
    --setup-only) setup_only=true ;;
    "") ;;
    *) bench_die "usage: bash scripts/bench/serve-scale.sh [--setup-only]" ;;
esac
workers_list=${BENCH_SCALE_WORKERS:-1 2 4}
per_worker=${BENCH_SCALE_PER_WORKER:-6}
build_sleep=${BENCH_SCALE_SLEEP:-3}
pickups=${BENCH_SCALE_PICKUPS:-20}

bench_require serve-scale docker-registry git python3 curl busybox
bin=$(bench_solum)

# The flags of issue 16, checked before anything starts: a binary without them stops the
# benchmark at once with what is missing, not after the setup with a usage error.
if ! $setup_only; then
    serve_help=$("$bin" serve --help)
    for flag in --database --role --worker-id --lease --git-root; do
        grep -q -- "$flag" <<<"$serve_help" ||
            bench_die "$bin serve has no $flag: this benchmark needs serve on many nodes (issue 16); build a binary that has it, or run with --setup-only"
    done
fi

# The load generator: examples/serve_bench of this checkout (any profile; built in release
# when there is none). It need not come from the same build as $SOLUM_BUILD.
if ! $setup_only; then
    load_gen=$(solum_find_bin examples/serve_bench 2>/dev/null) || {
        bench_log "building examples/serve_bench (release)"
        (cd "$SOLUM_REPO" && cargo build -q -j 1 --release --example serve_bench) ||
            bench_die "cannot build examples/serve_bench (cargo build --release --example serve_bench)"
        load_gen=${CARGO_TARGET_DIR:-$SOLUM_REPO/target}/release/examples/serve_bench
    }
fi

nodes="$BENCH_TMP/nodes"
mkdir -p "$nodes"
# The pids of the running nodes: the API node first, then the workers.
node_pids=()
# stop_pids PID...: SIGTERM (as a pod deletion would), then waits until each is gone.
stop_pids() {
    local pid
    for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
    for pid in "$@"; do while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done; done
}
stop_nodes() {
    ((${#node_pids[@]} == 0)) || stop_pids "${node_pids[@]}"
    node_pids=()
}
trap 'stop_nodes; bench_stop_registry; bench_pg_stop; bench_cleanup' EXIT

bench_pg_start
bench_registry_init
bench_start_registry
bench_log "PostgreSQL on 127.0.0.1:$bench_pg_port, docker-registry on 127.0.0.1:$bench_registry_port"

# A busybox root filesystem, as tests/support/fixtures.rs makes one, imported into every
# node's store as base/busybox with the shell badger built on it: the API node checks the
# badger when the app is created, the workers build on it.
rootfs="$BENCH_TMP/busybox-rootfs"
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/app"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for applet in $("$rootfs/bin/busybox" --list); do
    [[ "$applet" == busybox ]] || ln -sf busybox "$rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
# Stores for the most workers of a throughput run, and at least the two of the load run.
max_workers=2
for n in $workers_list; do ((n > max_workers)) && max_workers=$n; done
seed_store() {
    local data=$1
    mkdir -p "$data"
    "$bin" --store "$data/store" -q import "$rootfs" --tag base/busybox >/dev/null
    "$bin" --store "$data/store" -q badger build "$SOLUM_REPO/badgers/shell" >/dev/null
}
seed_store "$nodes/api"
for ((i = 1; i <= max_workers; i++)); do seed_store "$nodes/worker$i"; done
bench_log "stores seeded: api and $max_workers workers (base/busybox, badgers/shell)"

# The app's source: one commit per workflow, each with a build that sleeps.
src="$BENCH_TMP/src"
git init -q -b main "$src"
commits=0
# Sets $revision to a new commit whose build sleeps $1 seconds (not in a $(…) subshell,
# which would lose the count and commit the same tree twice).
new_revision() {
    commits=$((commits + 1))
    printf 'sleep %s; echo %s > /app/built\n' "$1" "$commits" >"$src/build"
    git -C "$src" add build
    git -C "$src" -c user.name=bench -c user.email=bench@example.org commit -qm "build $commits"
    revision=$(git -C "$src" rev-parse HEAD)
}
new_revision 0
printf 'version: 1\nname: scale\nbadger: badgers/shell\nsource:\n  repository: %s\n' "$src" >"$BENCH_TMP/app.yaml"
if $setup_only; then
    "$bench_pg_bin/psql" -X -At "$(bench_pg_url setup_check)" -c 'SELECT 1' >/dev/null ||
        bench_die "psql cannot reach the throwaway PostgreSQL"
    curl -sf "http://127.0.0.1:$bench_registry_port/v2/" >/dev/null ||
        bench_die "docker-registry does not answer /v2/"
    "$bin" --store "$nodes/api/store" images | grep -q 'badgers/shell' ||
        bench_die "the api store has no badgers/shell"
    echo "serve-scale setup: PostgreSQL $bench_pg_port, registry $bench_registry_port, $((max_workers + 1)) stores seeded: ok"
    exit 0
fi

database=$(bench_pg_url scale)
token_file="$BENCH_TMP/token"
echo bench-scale-token-0123456789 >"$token_file"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_node NAME ROLE: starts a node on a free port and waits until its /v1/health says
# ok; sets $node_port. Not run in a $(…) subshell: the node must be this shell's child, so
# that bash reaps it and `kill -0` sees it gone (PID 1 of a container may reap nothing).
start_node() {
    local name=$1 role=$2 port pid
    port=$(free_port)
    local args=(serve --role "$role" --worker-id "$name" --listen "127.0.0.1:$port"
        --data "$nodes/$name" --database "$database" --token-file "$token_file"
        --push-to "docker://127.0.0.1:$bench_registry_port/scale"
        --allow-local-source "$src" --workers 1)
    [[ "$role" == api ]] && args+=(--git-root "$BENCH_TMP/git")
    "$bin" "${args[@]}" >"$nodes/$name.log" 2>&1 &
    pid=$!
    node_pids+=("$pid")
    for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || { cat "$nodes/$name.log" >&2; bench_die "node $name ($role) exited"; }
        if curl -sf "http://127.0.0.1:$port/v1/health" 2>/dev/null | grep -q '"status":"ok"'; then
            node_port=$port
            return 0
        fi
        sleep 0.1
    done
    cat "$nodes/$name.log" >&2
    bench_die "node $name ($role) is not healthy after 30 s"
}

# The client side: starts workflows, waits for them, reads their transitions
# (python3's http.client, one keep-alive connection).
cat >"$BENCH_TMP/client.py" <<'PY'
import datetime, http.client, json, sys, time

port, token, command, args = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}

def call(method, path, body=None):
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    text = response.read()
    if response.status >= 300:
        sys.exit(f"{method} {path}: HTTP {response.status}: {text[:500]!r}")
    return json.loads(text)

def at(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

if command == "start":
    # start APP REVISION...: one build-only workflow per revision; prints the ids.
    app = args[0]
    for revision in args[1:]:
        body = json.dumps({"actions": ["build"], "revision": revision})
        print(call("POST", f"/v1/apps/{app}/workflows", body)["id"])
elif command == "wait":
    # wait APP ID...: polls until every workflow has finished; fails if one did not end
    # well (a benchmark never times an error path).
    app, pending, failed = args[0], set(args[1:]), []
    deadline = time.monotonic() + 900
    while pending:
        for wf in sorted(pending):
            record = call("GET", f"/v1/apps/{app}/workflows/{wf}")
            if record.get("finished_at"):
                pending.discard(wf)
                if record["state"] not in ("BUILT", "READY"):
                    failed.append(f"{wf}: {record['state']} {record.get('reason')}")
        if time.monotonic() > deadline:
            sys.exit(f"workflows still not finished after 900 s: {sorted(pending)}")
        time.sleep(0.1)
    if failed:
        sys.exit("workflows failed:\n" + "\n".join(failed))
elif command == "pickup":
    # pickup APP ID: ms from the QUEUED transition to the first one after it, and (for
    # reference) from created_at to started_at, the claim, which comes before the source
    # is laid out and the first state after QUEUED is reported.
    record = call("GET", f"/v1/apps/{args[0]}/workflows/{args[1]}")
    states = record["transitions"]
    queued = next(t for t in states if t["state"] == "QUEUED")
    after = next(t for t in states if t["state"] != "QUEUED")
    claim = "-"
    if record.get("started_at"):
        claim = f"{(at(record['started_at']) - at(record['created_at'])) * 1000:.1f}"
    print(f"{(at(after['at']) - at(queued['at'])) * 1000:.1f} {claim}")
PY
client() { python3 "$BENCH_TMP/client.py" "$api_port" "$(cat "$token_file")" "$@"; }
# Percentile P (0..100) of the numbers on stdin, nearest rank.
percentile() { sort -g | awk -v p="$1" '{ v[NR] = $1 } END { i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; print v[i] }'; }

start_node api api
api_port=$node_port
export SOLUM_BUILD_SERVER="http://127.0.0.1:$api_port" SOLUM_BUILD_TOKEN
SOLUM_BUILD_TOKEN=$(cat "$token_file")
"$bin" app create "$BENCH_TMP/app.yaml" >/dev/null || bench_die "app create failed (see $nodes/api.log)"

# Throughput: N workers, N x per_worker workflows started at once, timed until the last ends.
declare -A per_minute
for n in $workers_list; do
    for ((i = 1; i <= n; i++)); do start_node "worker$i" worker; done
    total=$((n * per_worker))
    revisions=()
    for ((i = 0; i < total; i++)); do
        new_revision "$build_sleep"
        revisions+=("$revision")
    done
    t0=${EPOCHREALTIME/[.,]/}
    mapfile -t ids < <(client start scale "${revisions[@]}")
    ((${#ids[@]} == total)) || bench_die "started ${#ids[@]} of $total workflows (see $nodes/api.log)"
    client wait scale "${ids[@]}" || bench_die "throughput run with $n workers failed (logs: $nodes/*.log)"
    t1=${EPOCHREALTIME/[.,]/}
    per_minute[$n]=$(awk -v m="$total" -v us=$((t1 - t0)) 'BEGIN { printf "%.1f", m * 60e6 / us }')
    bench_log "  $n workers: $total workflows in $(((t1 - t0) / 1000)) ms: ${per_minute[$n]} per minute"
    # The API node stays; the workers go.
    stop_pids "${node_pids[@]:1}"
    node_pids=("${node_pids[0]}")
done

# Pickup latency: one idle worker, one workflow at a time.
start_node worker1 worker
samples="$BENCH_TMP/pickup.ms"
: >"$samples"
for ((i = 0; i < pickups; i++)); do
    # The worker is idle: the previous workflow ended, and a moment passed since.
    sleep 0.3
    new_revision 0
    id=$(client start scale "$revision") || bench_die "cannot start a workflow (see $nodes/api.log)"
    client wait scale "$id" || bench_die "pickup run failed (logs: $nodes/*.log)"
    client pickup scale "$id" >>"$samples"
done
pickup_p50=$(cut -d' ' -f1 "$samples" | percentile 50)
pickup_p99=$(cut -d' ' -f1 "$samples" | percentile 99)
claim_p50=$(cut -d' ' -f2 "$samples" | grep -v '^-$' | percentile 50) || claim_p50=-
bench_log "  pickup samples (ms): $(cut -d' ' -f1 "$samples" | tr '\n' ' ')"
bench_log "  claim samples (ms):  $(cut -d' ' -f2 "$samples" | tr '\n' ' ')"

# Status under load: two workers building (long builds, so that they outlast the load).
start_node worker2 worker
new_revision 14
first=$revision
new_revision 14
mapfile -t ids < <(client start scale "$first" "$revision")
((${#ids[@]} == 2)) || bench_die "cannot start the builds of the load run (see $nodes/api.log)"
sleep 1
load=$("$load_gen" "$SOLUM_BUILD_SERVER/v1/apps/scale/workflows/${ids[0]}" "$SOLUM_BUILD_TOKEN" 200 10 8)
bench_log "  load: $load"
status_p99=$(sed -n 's/.*p99 \([0-9.]*\) ms.*/\1/p' <<<"$load")
status_errors=$(sed -n 's/.*errors \([0-9]*\),.*/\1/p' <<<"$load")
[[ -n "$status_p99" ]] || bench_die "cannot read the load generator's output: $load"
client wait scale "${ids[@]}" || bench_die "builds under load failed (logs: $nodes/*.log)"

# The table, then one SUMMARY line per target.
base=${per_minute[1]:-}
printf '\n%-40s %-22s %-16s %s\n' measure value target result
for n in $workers_list; do
    if [[ -n "$base" && "$n" != 1 ]]; then
        ratio=$(awk -v a="${per_minute[$n]}" -v b="$base" 'BEGIN { printf "%.2f", a / b }')
        want=$(awk -v n="$n" 'BEGIN { printf "%.1f", 0.8 * n }')
        result=$(bench_at_least "$ratio" "$want")
        printf '%-40s %-22s %-16s %s\n' "workflows/min, $n workers" "${per_minute[$n]} (x$ratio)" ">= x$want" "$result"
        echo "SUMMARY serve-scale throughput $n workers: ${per_minute[$n]} workflows/min, x$ratio of 1 worker (target >= x$want): $result" >>"$BENCH_TMP/summary"
    else
        printf '%-40s %-22s %-16s %s\n' "workflows/min, $n workers" "${per_minute[$n]}" "(the base)" "-"
    fi
done
r50=$(bench_at_most "$pickup_p50" 50)
r99=$(bench_at_most "$pickup_p99" 250)
printf '%-40s %-22s %-16s %s\n' "QUEUED -> next state p50 (idle worker)" "$pickup_p50 ms" "<= 50 ms" "$r50"
printf '%-40s %-22s %-16s %s\n' "QUEUED -> next state p99 (idle worker)" "$pickup_p99 ms" "<= 250 ms" "$r99"
printf '%-40s %-22s %-16s %s\n' "created -> claimed p50 (for reference)" "${claim_p50:--} ms" "-" "-"
rs=$(bench_at_most "$status_p99" 10)
[[ "$status_errors" == 0 ]] || rs=MISS
printf '%-40s %-22s %-16s %s\n' "status p99 at 200 req/s, builds running" "$status_p99 ms ($status_errors errors)" "<= 10 ms, 0 err" "$rs"
echo
cat "$BENCH_TMP/summary" 2>/dev/null || true
echo "SUMMARY serve-scale pickup: p50 $pickup_p50 ms, p99 $pickup_p99 ms over $pickups (target p50 <= 50, p99 <= 250): $([[ $r50 == PASS && $r99 == PASS ]] && echo PASS || echo MISS)"
echo "SUMMARY serve-scale status: p99 $status_p99 ms at 200 req/s, $status_errors errors (target <= 10 ms): $rs"
