#!/bin/sh
# The test command: unit and integration tests of the whole workspace. As root it first
# installs the peers and the `tester` user, and caches the debian-python3 root filesystem
# the python badger test imports (debootstrap; once, then reused). Every integration test
# file runs again as the unprivileged user `tester`.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
    sh scripts/install-deps.sh
    sh scripts/make-base-images.sh --only busybox,debian-python3 --no-import
fi
cargo test --workspace --release
