#!/usr/bin/env bash
# `run` start-up against bubblewrap (issue 12, item 10): start to exit of `true` in a cached
# image's tree.
#   ours:  solum-build -q --store STORE run base/busybox -- true   (after one untimed warm-up
#          run, which unpacks the image into STORE/cache/rootfs/<chain id>)
#   peer:  bwrap --unshare-all --die-with-parent --ro-bind TREE / --proc /proc --dev /dev
#          --tmpfs /tmp true   (TREE: that same cached tree)
# What differs, all of it work that only ours does: ours opens the store and resolves the
# image (index.json, manifest, config), holds the cached tree against `gc`, makes a scratch
# folder in the store's cache and mounts a writable overlay on the tree (bwrap 0.8 has no
# overlay: a read-only bind), mounts a fresh sysfs (bwrap mounts none), masks /proc files,
# and sets the sandbox's rlimits; bwrap alone makes a cgroup namespace. Both make user,
# mount, pid, ipc, uts and net (loopback up) namespaces, a /dev tmpfs with the same device
# nodes, a fresh /proc, a /tmp tmpfs, pivot into the tree, drop capabilities and set
# no_new_privs.
# Target: ours <= 1.3x bwrap's median. Run it as root and as `tester` (see README).
. "$(dirname "$0")/lib.sh"

runs=${BENCH_RUNS_SANDBOX:-$((BENCH_RUNS < 20 ? 20 : BENCH_RUNS))}
bin=$(bench_solum)
bench_require run-start bwrap
bench_ensure_base busybox

ours_cmd=("$bin" -q --store "$BENCH_STORE" run base/busybox -- true)
"${ours_cmd[@]}" >/dev/null
# The cached tree of base/busybox, named by its chain id: a single layer, so the chain id
# is the layer's diff_id.
diff_id=$("$bin" -q --store "$BENCH_STORE" inspect base/busybox |
    tr -d ' \n' | grep -o '"diff_ids":\["sha256:[0-9a-f]*"' | grep -o '[0-9a-f]\{64\}')
tree="$BENCH_STORE/cache/rootfs/$diff_id"
[[ -n "$diff_id" && -d "$tree" ]] || bench_die "no cached tree of base/busybox at $tree"
peer_cmd=(bwrap --unshare-all --die-with-parent --ro-bind "$tree" / --proc /proc --dev /dev
    --tmpfs /tmp true)
"${peer_cmd[@]}"

bench_log "ours: ${ours_cmd[*]}"
bench_log "peer: ${peer_cmd[*]}"
bench_log "$runs runs each ($BENCH_TOOL), as $(id -un)"
pair=$(bench_pair_ms "$runs" "" ours_cmd peer_cmd)
read -r ours peer <<<"$pair"
bench_compare "run true" "$ours" "$peer" bwrap
# The target is on ours / bwrap (bench_ratio prints bwrap / ours).
slower=$(bench_share "$ours" "$peer")
echo "SUMMARY run-start ($(id -un)): ours $ours ms, bwrap $peer ms, ours/bwrap ${slower}x (target <= 1.3x): $(bench_at_most "$slower" 1.3)"
