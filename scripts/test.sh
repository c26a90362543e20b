#!/bin/sh
# The test command: the unit tests of the builder-only configuration
# (`--no-default-features`), the static binary (scripts/build-static.sh), then the unit and
# integration tests of the whole workspace. As root it first
# installs the peers and the `tester` user, and caches the debian-LANGUAGE root filesystems
# the language badger tests import (debootstrap; once, then reused). Every integration test
# file runs again as the unprivileged user `tester`, and the server's files run once more
# against PostgreSQL (SOLUM_TEST_DATABASE=postgres). On CI (CI=true), or with
# SOLUM_FUZZ_SECONDS=N, every fuzz target then runs briefly (20 s, or N seconds, each; N=0
# skips): scripts/fuzz.sh, which needs the nightly toolchain.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
    sh scripts/install-deps.sh
    sh scripts/make-base-images.sh --only busybox,debian-python3 --no-import
    sh scripts/make-base-images.sh --only debian-nodejs,debian-golang --no-import
    # The ruby, php and java badgers' tests (build_ruby, build_php, build_java).
    sh scripts/make-base-images.sh --only debian-ruby,debian-php,debian-java --no-import
fi
# cargo's own summaries are kept to print one total as the closing line.
summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
status=0
# The builder-only configuration (no `server` feature) first: its unit tests and one CLI
# file. Then the whole workspace, so that target/release/solum-build is the full tool.
{ cargo test --release --no-default-features -p solum-build --lib --test store_bad_input 2>&1 \
    || echo "cargo-test-exit $?"; } | tee "$summary"
# The static binary (scripts/build-static.sh: builder only, glibc linked in), which
# tests/static_binary.rs runs on the host and in a busybox image; on CI that test fails
# when the binary is missing, so it is built here, before the tests.
{ sh scripts/build-static.sh 2>&1 || echo "cargo-test-exit $?"; } | tee -a "$summary"
{ cargo test --workspace --release 2>&1 || echo "cargo-test-exit $?"; } | tee -a "$summary"
# The server's files again with the records on PostgreSQL (a throwaway cluster each test
# binary starts, tests/support/postgres.rs): what passes on SQLite passes there too.
{ SOLUM_TEST_DATABASE=postgres cargo test --release --test serve --test serve_everyday \
    --test serve_hardening --test serve_security 2>&1 || echo "cargo-test-exit $?"; } \
    | tee -a "$summary"
if grep -q '^cargo-test-exit ' "$summary"; then status=1; fi
fuzz_seconds=${SOLUM_FUZZ_SECONDS:-}
if [ -z "$fuzz_seconds" ] && [ "${CI:-}" = true ]; then
    fuzz_seconds=20
fi
if [ "$status" = 0 ] && [ -n "$fuzz_seconds" ] && [ "$fuzz_seconds" != 0 ]; then
    # A fixed seed on CI: its fuzzing is a repeatable check, not an exploration.
    if [ "${CI:-}" = true ]; then export SOLUM_FUZZ_SEED=${SOLUM_FUZZ_SEED:-1}; fi
    sh scripts/fuzz.sh "$fuzz_seconds"
fi
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, i }' "$summary"
exit $status
