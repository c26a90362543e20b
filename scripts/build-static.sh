#!/bin/sh
# The static binary for CI images: builder only (no `server` feature), glibc linked
# statically (`-C target-feature=+crt-static`), the `static` cargo profile (fat LTO, one
# codegen unit, stripped). The result runs in any x86_64 Linux image, busybox and
# distroless ones included, with no libc of its own:
#   target/x86_64-unknown-linux-gnu/static/solum-build
# (where tests/static_binary.rs, scripts/make-tool-image.sh and the ci-cold benchmark look
# for it; $CARGO_TARGET_DIR instead of target/ when set).
# Glibc, not musl: the x86_64-unknown-linux-musl target is not installed on the machines
# this is built on and cannot be downloaded there. Glibc >= 2.34 has its `files` and `dns`
# name services built in, so a static binary resolves `localhost` (from /etc/hosts) and
# registry host names (from /etc/resolv.conf) without libnss_*.so in the image.
# `--target` keeps the static flag off build scripts and proc macros, which must stay
# dynamic to be loaded by cargo and rustc.
# Usage: sh scripts/build-static.sh [extra cargo arguments]
set -eu
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --profile static --no-default-features --target "$target" --bin solum-build "$@"
ls -l "${CARGO_TARGET_DIR:-target}/$target/static/solum-build"
