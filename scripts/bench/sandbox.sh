#!/usr/bin/env bash
# Sandbox start-up benchmark (issue 3): start to exit of `true` on base/busybox.
#   ours:   solum-build run base/busybox -- true   (after one untimed warm-up run, which
#           also fills any rootfs cache)
#   bare:   solum-sandbox-probe ROOTFS true        (the runtime crate alone, on the
#           extracted busybox rootfs: no store, no image)
#   peer:   buildah run --network none CTR true    (CTR from one untimed `buildah from`)
# Target: ours <= 20 ms median. buildah is optional (scripts/bench/install.sh installs it).
. "$(dirname "$0")/lib.sh"

runs=${BENCH_RUNS_SANDBOX:-$((BENCH_RUNS < 20 ? 20 : BENCH_RUNS))}
bin=$(bench_solum)
bench_ensure_base busybox

# The bare sandbox, on the rootfs of the same tarball the image came from.
probe=$(solum_find_bin solum-sandbox-probe || true)
bare=""
if [[ -n "$probe" ]]; then
    rootfs="$BENCH_TMP/rootfs"
    mkdir -p "$rootfs"
    tar -xf "$(solum_base_tarball busybox)" -C "$rootfs"
    "$probe" "$rootfs" true
    bench_log "bare: $probe ROOTFS true ($runs runs, $BENCH_TOOL)"
    bare=$(bench_time_ms "$runs" "" "$probe" "$rootfs" true)
    echo "sandbox bare (solum-sandbox-probe): $bare ms"
fi

ours_cmd=("$bin" -q --store "$BENCH_STORE" run base/busybox -- true)
"${ours_cmd[@]}" >/dev/null
peer=""
if command -v buildah >/dev/null 2>&1; then
    # buildah keeps its own storage (root: /var/lib/containers, rootless: ~/.local/share/
    # containers); the container is removed again when the benchmark exits.
    ctr=$(buildah from --name "solum-bench-sandbox-$$" "oci:$BENCH_STORE:base/busybox")
    trap 'buildah rm "$ctr" >/dev/null 2>&1 || true; bench_cleanup' EXIT
    peer_cmd=(buildah run --network none "$ctr" true)
    "${peer_cmd[@]}"
    bench_log "ours: ${ours_cmd[*]}"
    bench_log "peer: ${peer_cmd[*]}"
    bench_log "$runs runs each ($BENCH_TOOL)"
    pair=$(bench_pair_ms "$runs" "" ours_cmd peer_cmd)
    read -r ours peer <<<"$pair"
    bench_compare "sandbox true" "$ours" "$peer" buildah
else
    bench_log "buildah not installed: no peer numbers (scripts/bench/install.sh installs it)"
    bench_log "ours: ${ours_cmd[*]} ($runs runs, $BENCH_TOOL)"
    ours=$(bench_time_ms "$runs" "" "${ours_cmd[@]}")
    echo "sandbox true: ours $ours ms"
fi

echo "SUMMARY sandbox: ours $ours ms${bare:+, bare $bare ms}${peer:+, buildah $peer ms, ratio $(bench_ratio "$ours" "$peer")} (target ours <= 20 ms): $(bench_at_most "$ours" 20)"
