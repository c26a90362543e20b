#!/usr/bin/env bash
# Unpack benchmark (issue 2): `solum-build unpack base/debian-python3 DIR` against
# `umoci unpack --image STORE:base/debian-python3 DIR` (with --rootless when not root), the
# same image from the same store, page cache warm for both. Target: ours >= 2x faster.
# Each timed run starts from a removed output dir (removal untimed). The output goes once to
# disk (BENCH_TMPDIR) and once to tmpfs (BENCH_UNPACK_TMPFS, default /dev/shm; "none" skips).
. "$(dirname "$0")/lib.sh"

bench_require unpack umoci
bin=$(bench_solum)
image=base/debian-python3
bench_ensure_base debian-python3
umoci_flags=()
bench_is_root || umoci_flags+=(--rootless)

# unpack_at LABEL DIR: the comparison with the output tree under DIR. Prints the compare
# line and sets $last_ours and $last_peer (medians, ms).
unpack_at() {
    local label=$1 out="$2/out" files_ours files_umoci pair ours peer
    local ours_cmd=("$bin" -q --store "$BENCH_STORE" unpack "$image" "$out")
    local peer_cmd=(umoci unpack "${umoci_flags[@]}" --image "$BENCH_STORE:$image" "$out")
    # The previous output is moved aside, not deleted: on ext4 without a journal (this
    # VM's disk) every new inode is allocated past the inodes deleted in the last minute,
    # reading each one, so deleting 11,000 files just before a timed run makes that run
    # pay for the deletion. Everything set aside goes at the end (bench_cleanup).
    local trash="$2/trash" set_aside
    mkdir -p "$trash"
    set_aside="[ ! -e '$out' ] || mv '$out' \"\$(mktemp -d '$trash/run.XXXXXX')/out\""
    # One untimed run of each: warms the page cache with the image's blobs and checks both
    # commands work before anything is timed.
    eval "$set_aside"
    "${ours_cmd[@]}" >/dev/null
    files_ours=$(find "$out" | wc -l)
    eval "$set_aside"
    "${peer_cmd[@]}" >/dev/null
    files_umoci=$(find "$out/rootfs" | wc -l)
    eval "$set_aside"
    bench_log "[$label] entries: ours $files_ours, umoci $files_umoci (umoci's bundle also has config.json and an mtree file)"
    bench_log "[$label] ours: ${ours_cmd[*]}"
    bench_log "[$label] peer: ${peer_cmd[*]}"
    bench_log "[$label] $BENCH_RUNS runs each ($BENCH_TOOL)"
    pair=$(bench_pair_ms "$BENCH_RUNS" "$set_aside" ours_cmd peer_cmd)
    read -r ours peer <<<"$pair"
    bench_compare "unpack $image to $label" "$ours" "$peer" umoci
    last_ours=$ours
    last_peer=$peer
}

# The output tree on disk (BENCH_TMPDIR) is what a user gets; on this kind of VM every file
# creation on disk costs about 0.6 ms of kernel time (plain `tar -x` of the same image takes
# as long as the tools), so the run on tmpfs is the one that shows the tools' own cost.
unpack_at disk "$BENCH_TMP"
ratio=$(bench_ratio "$last_ours" "$last_peer")
summary="disk: ours $last_ours ms, umoci $last_peer ms, ratio $ratio"
verdict="disk $(bench_at_least "$ratio" 2.0)"
if [[ "${BENCH_UNPACK_TMPFS:-/dev/shm}" != none && -d "${BENCH_UNPACK_TMPFS:-/dev/shm}" ]]; then
    shm=$(mktemp -d "${BENCH_UNPACK_TMPFS:-/dev/shm}/solum-bench-unpack.XXXXXX")
    trap 'bench_rmtree "$shm"; bench_cleanup' EXIT
    unpack_at tmpfs "$shm"
    ratio=$(bench_ratio "$last_ours" "$last_peer")
    summary+="; tmpfs: ours $last_ours ms, umoci $last_peer ms, ratio $ratio"
    verdict+=", tmpfs $(bench_at_least "$ratio" 2.0)"
fi
echo "SUMMARY unpack: $summary (target >= 2.0): $verdict"
