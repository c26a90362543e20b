# Benchmark harness (bash, sourced by scripts/bench/*.sh; never run on its own).
#
# It owns: timing a command N times and reporting its median wall time, measuring peak RSS,
# printing "ours X ms, peer Y ms, ratio Z" lines and each benchmark's one-line SUMMARY,
# finding the binaries, and the per-run temp dir (removed on exit). It must not install
# packages (install.sh does) and never hides a failing command: a benchmark whose command
# fails stops with that command's stderr instead of timing an error path.
#
# Environment:
#   BENCH_RUNS     timed runs per command (default 5; medians of fewer than 3 mean little)
#   BENCH_TOOL     builtin (default; alternates ours and peer runs) | hyperfine
#   BENCH_TMPDIR   where temp trees go (default /var/tmp: big trees, on disk, not tmpfs)
#   BENCH_STORE    the store with the base images (default /var/tmp/solum-bench-store)
#   SOLUM_BUILD    the solum-build binary (default: the cargo target dir, profiling, then release)

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCRIPTS_DIR=$(dirname "$BENCH_DIR")
SOLUM_REPO=$(dirname "$SCRIPTS_DIR")
# shellcheck source=../common.sh
. "$SCRIPTS_DIR/common.sh"
# Benchmarks take `cargo build --profile profiling` first (release code with symbols).
SOLUM_PROFILES=${SOLUM_PROFILES:-profiling release}

BENCH_RUNS=${BENCH_RUNS:-5}
BENCH_STORE=${BENCH_STORE:-/var/tmp/solum-bench-store}
# The builtin timer is the default because it can alternate ours and the peer's runs (see
# bench_pair_ms), which matters more on a shared 2-core machine than hyperfine's
# shell-start correction; hyperfine is used when asked for and installed.
BENCH_TOOL=${BENCH_TOOL:-builtin}
if [[ "$BENCH_TOOL" == hyperfine ]] && ! { command -v hyperfine && command -v jq; } >/dev/null 2>&1; then
    printf '%s\n' "BENCH_TOOL=hyperfine needs hyperfine and jq; using the builtin timer" >&2
    BENCH_TOOL=builtin
fi

bench_log() { printf '%s\n' "$*" >&2; }
bench_die() { bench_log "error: $*"; exit 1; }

# The temp dir of this benchmark run: made when the harness is sourced, removed on exit.
# Trees a rootless unpack left without write permission are made writable first, or rm
# could not remove them.
bench_cleanup() {
    if [[ -n "${BENCH_TMP:-}" && -d "$BENCH_TMP" ]]; then
        chmod -R u+rwX "$BENCH_TMP" 2>/dev/null || true
        rm -rf "$BENCH_TMP"
    fi
}
BENCH_TMP=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/solum-bench.XXXXXX")
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
bench_tmp() { printf '%s\n' "$BENCH_TMP"; }

# Removes a tree made by an earlier run (see bench_cleanup for the chmod).
bench_rmtree() {
    local d
    for d in "$@"; do
        [[ -e "$d" ]] || continue
        chmod -R u+rwX "$d" 2>/dev/null || true
        rm -rf "$d"
    done
}

bench_solum() {
    local bin
    bin=$(solum_find_bin solum-build)
    case $bin in */debug/*) bench_log "warning: $bin is a debug build; numbers are not meaningful" ;; esac
    printf '%s\n' "$bin"
}

# Exits 0 with a SKIP summary when a command the benchmark needs is missing.
bench_require() {
    local name=$1 c
    shift
    for c in "$@"; do
        if ! command -v "$c" >/dev/null 2>&1; then
            echo "SUMMARY $name: SKIP ($c not installed; run scripts/bench/install.sh)"
            exit 0
        fi
    done
}

# Makes sure BENCH_STORE has base/KIND (from the cached tarball, made once; see
# make-base-images.sh). The debian kinds need root the first time only.
bench_ensure_base() {
    sh "$SCRIPTS_DIR/make-base-images.sh" --only "$1" "$BENCH_STORE" >&2
}

# Median of the numbers on stdin (one a line), printed with one decimal.
bench_median() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) exit 1
        if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.1f\n", m }'
}

# bench_time_ms RUNS PREPARE CMD...
# Runs CMD RUNS times, each run preceded by PREPARE (a bash command string, untimed; "" for
# none), and prints the median wall time in milliseconds. stdout/stderr of CMD are dropped;
# if CMD fails, its stderr is shown and the benchmark stops.
bench_time_ms() {
    local runs=$1 prepare=$2
    shift 2
    if [[ "$BENCH_TOOL" == hyperfine ]]; then
        bench_time_hyperfine "$runs" "$prepare" "$@"
    else
        bench_time_builtin "$runs" "$prepare" "$@"
    fi
}

# The builtin timer reads bash's $EPOCHREALTIME (microseconds, no fork), so each sample is
# the command's fork+exec+run+wait, the same cost for ours and the peer.
bench_time_builtin() {
    local runs=$1 prepare=$2 i t0 t1 err samples=""
    shift 2
    err="$(bench_tmp)/stderr"
    for ((i = 0; i < runs; i++)); do
        if [[ -n "$prepare" ]]; then eval "$prepare" >/dev/null; fi
        t0=${EPOCHREALTIME/[.,]/}
        if ! "$@" >/dev/null 2>"$err"; then
            bench_log "command failed: $*"
            cat "$err" >&2
            return 1
        fi
        t1=${EPOCHREALTIME/[.,]/}
        samples+="$(((t1 - t0) / 1000)).$(((t1 - t0) % 1000 / 100))"$'\n'
    done
    ((runs == 1)) || bench_log "  samples (ms): $(printf '%s' "$samples" | tr '\n' ' ')"
    printf '%s' "$samples" | bench_median
}

# hyperfine runs the command through bash (so paths with spaces survive %q quoting) and
# subtracts the shell's own start-up time from each sample.
bench_time_hyperfine() {
    local runs=$1 prepare=$2 cmd json
    shift 2
    cmd=$(printf '%q ' "$@")
    json="$(bench_tmp)/hyperfine.json"
    local args=(--runs "$runs" --shell bash --style basic --export-json "$json")
    [[ -n "$prepare" ]] && args+=(--prepare "$prepare")
    if ! hyperfine "${args[@]}" "$cmd" >&2; then
        bench_log "command failed under hyperfine: $*"
        "$@" >/dev/null || true
        return 1
    fi
    jq -r '.results[0].times[]' "$json" | awk '{ printf "%.1f\n", $1 * 1000 }' >"$json.ms"
    bench_log "  samples (ms): $(tr '\n' ' ' <"$json.ms")"
    bench_median <"$json.ms"
}

# bench_pair_ms RUNS PREPARE OURS_ARRAY PEER_ARRAY
# Times two commands (given as names of bash arrays) and prints "OURS_MEDIAN PEER_MEDIAN"
# in milliseconds. With the builtin timer the runs alternate (ours, peer, ours, ...), so a
# load change on a shared machine hits both sides alike; hyperfine runs all of ours, then
# all of the peer's.
bench_pair_ms() {
    local runs=$1 prepare=$2 i o p
    local -n _ours=$3 _peer=$4
    if [[ "$BENCH_TOOL" == hyperfine ]]; then
        o=$(bench_time_hyperfine "$runs" "$prepare" "${_ours[@]}") || return 1
        p=$(bench_time_hyperfine "$runs" "$prepare" "${_peer[@]}") || return 1
        printf '%s %s\n' "$o" "$p"
        return 0
    fi
    local so="" sp=""
    for ((i = 0; i < runs; i++)); do
        o=$(bench_time_builtin 1 "$prepare" "${_ours[@]}") || return 1
        p=$(bench_time_builtin 1 "$prepare" "${_peer[@]}") || return 1
        so+="$o"$'\n'
        sp+="$p"$'\n'
    done
    bench_log "  ours samples (ms): $(printf '%s' "$so" | tr '\n' ' ')"
    bench_log "  peer samples (ms): $(printf '%s' "$sp" | tr '\n' ' ')"
    printf '%s %s\n' "$(printf '%s' "$so" | bench_median)" "$(printf '%s' "$sp" | bench_median)"
}

# bench_peak_rss_kib RUNS PREPARE CMD...
# Prints the largest peak RSS (KiB, GNU time's %M: the process's ru_maxrss) over RUNS runs.
bench_peak_rss_kib() {
    local runs=$1 prepare=$2 i out max=0 v
    shift 2
    [[ -x /usr/bin/time ]] || bench_die "/usr/bin/time is missing (apt-get install time)"
    out="$(bench_tmp)/time.out"
    for ((i = 0; i < runs; i++)); do
        if [[ -n "$prepare" ]]; then eval "$prepare" >/dev/null; fi
        if ! /usr/bin/time -f %M -o "$out" "$@" >/dev/null 2>"$out.err"; then
            bench_log "command failed: $*"
            cat "$out.err" >&2
            return 1
        fi
        v=$(tail -n 1 "$out")
        ((v > max)) && max=$v
    done
    printf '%s\n' "$max"
}

# The ratio PEER/OURS with two decimals: above 1 means ours is faster.
bench_ratio() { awk -v o="$1" -v p="$2" 'BEGIN { if (o <= 0) print "inf"; else printf "%.2f\n", p / o }'; }
# The inverse, OURS/PEER, for targets stated as "ours <= N x the peer's time".
bench_share() { awk -v o="$1" -v p="$2" 'BEGIN { if (p <= 0) print "inf"; else printf "%.2f\n", o / p }'; }

# bench_compare LABEL OURS_MS PEER_MS PEER_NAME: the side-by-side line.
bench_compare() {
    printf '%s: ours %s ms, peer %s ms, ratio %s (%s/ours)\n' \
        "$1" "$2" "$3" "$(bench_ratio "$2" "$3")" "$4"
}

# PASS or MISS for "VALUE >= TARGET" (bench_at_least) and "VALUE <= TARGET" (bench_at_most).
bench_at_least() { awk -v v="$1" -v t="$2" 'BEGIN { print (v >= t) ? "PASS" : "MISS" }'; }
bench_at_most() { awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t) ? "PASS" : "MISS" }'; }

# Who runs the benchmark: peers need different flags rootless (umoci --rootless).
bench_is_root() { [[ "$(id -u)" == 0 ]]; }

# Makes sure the cached rootfs tarball of KIND exists and prints its path.
bench_base_tarball() {
    sh "$SCRIPTS_DIR/make-base-images.sh" --no-import --only "$1" >&2
    solum_base_tarball "$1"
}

# bench_make_tree DIR TOTAL_MIB [BIG_MIB]
# A mixed tree of TOTAL_MIB (apparent size): the debian rootfs (without /dev, whose device
# nodes an unprivileged run cannot create), then, if BIG_MIB is given, one random file of
# that size, then the rest split evenly between random files (incompressible) and generated
# English-like text lines (gzip -6 takes them to about 30%), in files from 2 KiB to 32 MiB.
bench_make_tree() {
    local dir=$1 total=$(($2 * 1048576)) big=${3:-0} tarball cur rem i size
    tarball=$(bench_base_tarball debian)
    mkdir -p "$dir"
    tar -xf "$tarball" -C "$dir" --exclude='./dev/*'
    mkdir -p "$dir/bench/random" "$dir/bench/text"
    if ((big > 0)); then
        head -c $((big * 1048576)) /dev/urandom >"$dir/bench/random/big.bin"
    fi
    cur=$(du -sb --apparent-size "$dir" | cut -f1)
    rem=$((total - cur))
    ((rem > 0)) || return 0
    # Random half: sizes cycle through 4 KiB .. 32 MiB; the last file takes what is left.
    local sizes=(4096 65536 1048576 8388608 33554432) want=$((rem / 2))
    i=0
    while ((want > 0)); do
        size=${sizes[i % ${#sizes[@]}]}
        ((size > want)) && size=$want
        head -c "$size" /dev/urandom >"$dir/bench/random/r$i.bin"
        want=$((want - size))
        i=$((i + 1))
    done
    # Text half, in one awk run (a fixed seed, so every run compresses the same text).
    awk -v n=$((rem - rem / 2)) -v d="$dir/bench/text" 'BEGIN {
        srand(7)
        nw = split("the of and to in is that for it as with was on be by this are from or at an " \
            "which not have but all can has more one its also were their other been when into " \
            "will some time may these two only used would first new most over such after many " \
            "where like between make under same both each then through however because while " \
            "system data file value line return error name type list user version config " \
            "build image layer", w, " ")
        ns = split("2048 32768 262144 2097152", sz, " ")
        f = 0; left = 0; total = 0
        while (total < n) {
            if (left <= 0) { close(out); out = d "/t" f ".txt"; left = sz[1 + f % ns]; f++ }
            line = ""
            k = 4 + int(rand() * 12)
            for (i = 0; i < k; i++) line = line w[1 + int(rand() * nw)] " "
            if (rand() < 0.3) line = line int(rand() * 100000)
            print line > out
            left -= length(line) + 1; total += length(line) + 1
        }
    }'
}

# A docker-registry on 127.0.0.1 restarted on empty storage: `bench_registry_init` picks the
# port ($bench_registry_port) and the folder, `bench_start_registry` (re)starts it,
# `bench_stop_registry` stops it. The pid goes through a file because the timing helpers
# run a preparation in a subshell.
bench_registry_init() {
    bench_registry_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    bench_registry_dir="$BENCH_TMP/registry"
    bench_registry_pidfile="$BENCH_TMP/registry.pid"
}
bench_stop_registry() {
    local pid
    [[ -s "$bench_registry_pidfile" ]] || return 0
    pid=$(cat "$bench_registry_pidfile")
    kill "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.02; done
    rm -f "$bench_registry_pidfile"
}
bench_start_registry() {
    bench_stop_registry
    rm -rf "$bench_registry_dir"
    mkdir -p "$bench_registry_dir/storage"
    printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: 127.0.0.1:%s}\n' \
        "$bench_registry_dir/storage" "$bench_registry_port" >"$bench_registry_dir/config.yml"
    docker-registry serve "$bench_registry_dir/config.yml" >"$BENCH_TMP/registry.log" 2>&1 &
    echo $! >"$bench_registry_pidfile"
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$bench_registry_port") 2>/dev/null && return 0
        sleep 0.05
    done
    bench_die "docker-registry did not start (see $BENCH_TMP/registry.log)"
}

# A throwaway PostgreSQL cluster on 127.0.0.1, as tests/support/postgres.rs makes one:
# `bench_pg_start` runs initdb (trust authentication for the user `solum`, fsync off) in
# the run's temp dir and starts the server on a free port ($bench_pg_port), with its unix
# socket in that folder; `bench_pg_url DB` prints the URL of database DB (created first);
# `bench_pg_stop` stops it (`pg_ctl stop -m immediate`: the data is thrown away).
# PostgreSQL refuses to run as root, so as root the server programs run as `tester`.
bench_pg_start() {
    bench_pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [[ -n "$bench_pg_bin" && -x "$bench_pg_bin/postgres" ]] ||
        bench_die "no /usr/lib/postgresql/*/bin/postgres (apt-get install postgresql; scripts/install-deps.sh)"
    bench_pg_dir="$BENCH_TMP/pg"
    mkdir -p "$bench_pg_dir"
    chmod 0700 "$bench_pg_dir"
    bench_pg_as=()
    if bench_is_root; then
        id tester >/dev/null 2>&1 || bench_die "PostgreSQL does not run as root and there is no user tester (scripts/install-deps.sh)"
        chown tester: "$bench_pg_dir"
        # The temp dir above may be private to root; tester needs to reach its own folder.
        chmod a+x "$BENCH_TMP"
        bench_pg_as=(runuser -u tester --)
    fi
    bench_pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    (cd "$bench_pg_dir" && "${bench_pg_as[@]}" "$bench_pg_bin/initdb" --auth=trust -U solum --no-sync \
        --no-locale -E UTF8 -D "$bench_pg_dir/data" >"$BENCH_TMP/pg-initdb.log" 2>&1) ||
        { cat "$BENCH_TMP/pg-initdb.log" >&2; bench_die "initdb failed"; }
    printf "listen_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = '%s'\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 300\n" \
        "$bench_pg_port" "$bench_pg_dir" >>"$bench_pg_dir/data/postgresql.conf"
    (cd "$bench_pg_dir" && "${bench_pg_as[@]}" "$bench_pg_bin/pg_ctl" start -w -s -t 30 \
        -D "$bench_pg_dir/data" -l "$bench_pg_dir/postgres.log" </dev/null) ||
        { cat "$bench_pg_dir/postgres.log" >&2; bench_die "PostgreSQL did not start"; }
}
bench_pg_stop() {
    [[ -n "${bench_pg_dir:-}" && -f "$bench_pg_dir/data/postmaster.pid" ]] || return 0
    (cd "$bench_pg_dir" && "${bench_pg_as[@]}" "$bench_pg_bin/pg_ctl" stop -s -m immediate \
        -D "$bench_pg_dir/data" </dev/null) || true
}
bench_pg_url() {
    "$bench_pg_bin/createdb" -h 127.0.0.1 -p "$bench_pg_port" -U solum "$1" ||
        bench_die "createdb $1 failed"
    printf 'postgres://solum@127.0.0.1:%s/%s?sslmode=disable\n' "$bench_pg_port" "$1"
}
