# Shared shell functions for scripts/ (sourced, never run): where the solum-build binary
# is, which Debian mirror this machine is configured for, where base rootfs tarballs are
# cached. POSIX sh so that both sh and bash scripts can source it. It must not install
# anything or touch a store: callers decide that.

# The repository root: $SOLUM_REPO when the caller set it (scripts/bench/lib.sh does),
# else the first directory with a Cargo.toml above the running script.
solum_repo_root() {
    if [ -n "${SOLUM_REPO:-}" ]; then echo "$SOLUM_REPO"; return 0; fi
    _d=$(cd "$(dirname "$0")" && pwd)
    while [ "$_d" != / ] && [ ! -f "$_d/Cargo.toml" ]; do _d=$(dirname "$_d"); done
    [ -f "$_d/Cargo.toml" ] || { echo "cannot find the repository root above $0" >&2; return 1; }
    echo "$_d"
}

# Prints the path of a built workspace binary NAME (solum-build, solum-sandbox-probe).
# Order: $SOLUM_BUILD (for solum-build only), the cargo target dir (the profiles in
# $SOLUM_PROFILES, default release then debug; the benchmarks put `profiling` first, release
# code with symbols for perf), then PATH.
solum_find_bin() {
    _name=$1
    if [ "$_name" = solum-build ] && [ -n "${SOLUM_BUILD:-}" ]; then echo "$SOLUM_BUILD"; return 0; fi
    # Outside a checkout (the scripts copied elsewhere) only CARGO_TARGET_DIR and PATH count.
    _root=$(solum_repo_root 2>/dev/null) || _root=""
    for _t in "${CARGO_TARGET_DIR:-}" "${_root:+$_root/target}"; do
        [ -n "$_t" ] || continue
        for _p in ${SOLUM_PROFILES:-release debug}; do
            if [ -x "$_t/$_p/$_name" ]; then echo "$_t/$_p/$_name"; return 0; fi
        done
    done
    if command -v "$_name" >/dev/null 2>&1; then command -v "$_name"; return 0; fi
    echo "cannot find $_name: build it (cargo build --release), put it on PATH, or set SOLUM_BUILD / CARGO_TARGET_DIR" >&2
    return 1
}

# The Debian mirror this machine uses for bookworm (deb822 or one-line sources), so that
# debootstrap needs no network beyond what apt already reaches. $DEBIAN_MIRROR wins.
solum_debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return 0; fi
    _m=""
    for _f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$_f" ] || continue
        # deb822 stanzas: the URIs of a stanza whose Suites include plain "bookworm".
        _m=$(awk '
            /^[[:space:]]*$/ { if (uri != "" && suite) { print uri; exit } uri=""; suite=0; next }
            /^URIs:/ { uri=$2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") suite=1 }
            END { if (uri != "" && suite) print uri }' "$_f" | head -n 1)
        [ -n "$_m" ] && break
    done
    if [ -z "$_m" ]; then
        for _f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [ -f "$_f" ] || continue
            _m=$(awk '$1 == "deb" && $0 ~ / bookworm / {
                        for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' "$_f" | head -n 1)
            [ -n "$_m" ] && break
        done
    fi
    [ -n "$_m" ] || { echo "no bookworm mirror in /etc/apt/sources.list*; set DEBIAN_MIRROR" >&2; return 1; }
    echo "$_m"
}

# Where cached base rootfs tarballs live, and the tarball of one KIND:
# ${SOLUM_BASE_CACHE:-/var/cache/solum-build-base}/KIND.tar (uncompressed, numeric owners,
# xattrs kept, world-readable so unprivileged tests can import it into their own store).
solum_base_cache() { echo "${SOLUM_BASE_CACHE:-/var/cache/solum-build-base}"; }
solum_base_tarball() { echo "$(solum_base_cache)/$1.tar"; }

# The clock every base image is imported with, so that the same rootfs gives the same digest.
SOLUM_BASE_EPOCH=${SOLUM_BASE_EPOCH:-1704067200}

# Starts Debian's docker-registry on a free loopback port, with its config, storage and log
# in DIR, and waits until it answers. Sets SOLUM_REGISTRY (127.0.0.1:PORT) and
# SOLUM_REGISTRY_PID; the caller stops it (kill "$SOLUM_REGISTRY_PID").
solum_start_registry() {
    _dir=$1
    _port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    SOLUM_REGISTRY=127.0.0.1:$_port
    mkdir -p "$_dir"
    cat >"$_dir/config.yml" <<EOF_REGISTRY
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $_dir/storage}, delete: {enabled: true}}
http: {addr: $SOLUM_REGISTRY}
EOF_REGISTRY
    docker-registry serve "$_dir/config.yml" >"$_dir/log" 2>&1 &
    SOLUM_REGISTRY_PID=$!
    _i=0
    until curl -fs "http://$SOLUM_REGISTRY/v2/" >/dev/null 2>&1; do
        _i=$((_i + 1))
        if [ "$_i" -gt 200 ]; then
            echo "docker-registry did not start: $(cat "$_dir/log")" >&2
            return 1
        fi
        sleep 0.05
    done
}
