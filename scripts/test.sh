#!/bin/sh
# The test command: unit and integration tests of the whole workspace. The runtime crate's
# sandbox tests run as root and again as the unprivileged user `tester` when run as root.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then sh scripts/install-deps.sh; fi
cargo test --workspace --release
