#!/usr/bin/env bash
# Snapshot benchmark (issue 14, `--isolation none`): the root snapshot a build in place
# takes before and after its commands, and their difference, on a tree of 50,000 small
# files with one file changed between the two. Target: <= 1000 ms for the three together.
# The harness is `examples/snapshot_bench.rs` (built here with BENCH_CARGO_PROFILE, default
# `profiling`; `dev` works without a release build). The tree is made once, in
# $BENCH_TMPDIR/solum-bench-snapshot-tree, and reused; page cache warm.
. "$(dirname "$0")/lib.sh"

files=${BENCH_SNAPSHOT_FILES:-50000}
profile=${BENCH_CARGO_PROFILE:-profiling}
tree="${BENCH_TMPDIR:-/var/tmp}/solum-bench-snapshot-tree"
(cd "$SOLUM_REPO" && cargo build -q --profile "$profile" --example snapshot_bench) ||
    bench_die "cannot build the snapshot_bench example"
target_dir=${CARGO_TARGET_DIR:-$SOLUM_REPO/target}
[[ "$profile" == dev ]] && dir=debug || dir=$profile
harness="$target_dir/$dir/examples/snapshot_bench"
mkdir -p "$tree"
# One untimed run makes the tree and warms the page cache.
"$harness" "$tree" "$files" 1 >/dev/null
line=$("$harness" "$tree" "$files" "$BENCH_RUNS")
printf '%s\n' "$line"
ms=$(sed -n 's/.*median \([0-9]*\) ms.*/\1/p' <<<"$line")
echo "SUMMARY snapshot: $ms ms before + after + diff of $files files ($profile build; target <= 1000 ms: $(bench_at_most "$ms" 1000))"
