#!/bin/sh
# Fuzzing: builds the cargo-fuzz targets in fuzz/ with the nightly toolchain and runs each
# for SECONDS_PER_TARGET (default 60), one after the other, in one process on one core
# (libFuzzer without -jobs/-workers: the build hosts are small and shared).
#
#   sh scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Installs cargo-fuzz first if it is missing. The seed corpora and dictionaries come from
# scripts/fuzz-seeds.py (testdata/ and badgers/); what libFuzzer finds beside them stays in
# fuzz/corpus/TARGET and makes the next run start further. A crash, a panic of a check, a
# timeout (one input over 20 s) or a leak is written to fuzz/artifacts/TARGET/ and makes
# this script exit 1 once every target has run; replay one with
#   cargo +nightly fuzz run -O -a TARGET fuzz/artifacts/TARGET/crash-…
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-60}
[ $# -gt 0 ] && shift
case $seconds in
    '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2 ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
python3 scripts/fuzz-seeds.py

# The same flags for build and run, so that run does not build again.
flags="-O --debug-assertions"
cd fuzz
# shellcheck disable=SC2086
cargo +nightly fuzz build $flags
targets=${*:-$(cargo +nightly fuzz list)}
# The unpack target makes a temp dir per input: on tmpfs it runs about five times faster.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
    export TMPDIR=/dev/shm
fi
# SOLUM_FUZZ_SEED fixes libFuzzer's seed (CI does, so that a run there can be repeated
# here with the same inputs); unset, each run explores from a new random seed.
seed=${SOLUM_FUZZ_SEED:-}
failed=""
summary=""
for target in $targets; do
    mkdir -p "artifacts/$target" "corpus/$target"
    start=$(date +%s)
    # shellcheck disable=SC2086
    if cargo +nightly fuzz run $flags "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
        -dict="dict/$target.dict" -print_final_stats=1 ${seed:+-seed="$seed"}; then
        outcome=ok
    else
        outcome=FAILED
        failed="$failed $target"
    fi
    summary="$summary
$(printf '%-18s %6ss  %s' "$target" "$(($(date +%s) - start))" "$outcome")"
done
echo "fuzzing, seconds per target:$summary"
if [ -n "$failed" ]; then
    echo "fuzz findings in:$failed (see fuzz/artifacts/)" >&2
    exit 1
fi
