#!/usr/bin/env bash
# Runs every benchmark in scripts/bench/ in turn and prints their SUMMARY lines together at
# the end. A benchmark that fails is reported as FAILED and the others still run.
# Usage: all.sh [NAME...]   (default: unpack gzip import-rss sandbox run-start build push run-cache apps ci-cold snapshot attest)
set -u
here=$(cd "$(dirname "$0")" && pwd)
names=("$@")
((${#names[@]})) || names=(unpack gzip import-rss sandbox run-start build push run-cache apps ci-cold snapshot attest)
summaries=()
for n in "${names[@]}"; do
    echo "=== $n"
    # Progress and samples stream on stderr; the result lines are printed once it is done
    # (tee to /dev/stderr would truncate stderr when it is redirected to a file).
    out=$(bash "$here/$n.sh")
    rc=$?
    printf '%s\n' "$out"
    # Every SUMMARY line of the benchmark (some measure more than one target).
    s=$(grep '^SUMMARY ' <<<"$out")
    if ((rc != 0)) || [[ -z "$s" ]]; then s="SUMMARY $n: FAILED (exit $rc)"; fi
    summaries+=("$s")
done
echo "=== summaries"
printf '%s\n' "${summaries[@]}"
