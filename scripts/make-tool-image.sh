#!/bin/sh
# The tool image of the CI recipes (docs/ci/): Debian's busybox-static (a shell and `cp`
# for CI job scripts and init containers), the host's CA bundle at
# /etc/ssl/certs/ca-certificates.crt (for https registries), and the static solum-build at
# /usr/local/bin/solum-build. Made by the static binary itself (`import` of a tree, with
# the fixed base image clock, so the same binary gives the same digest) into the store
# ($SOLUM_BUILD_STORE, else the default) as tools/solum-build:VERSION, and pushed when a
# destination is given. The binary is built first when there is none.
# Usage: sh scripts/make-tool-image.sh [docker://REGISTRY/REPO:TAG]
set -eu
cd "$(dirname "$0")/.."
. scripts/common.sh
bin=${SOLUM_STATIC_BIN:-${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/static/solum-build}
[ -x "$bin" ] || sh scripts/build-static.sh
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
tag=tools/solum-build:$version
sh scripts/make-base-images.sh --only busybox --no-import >&2
tree=$(mktemp -d "${TMPDIR:-/tmp}/solum-tool-image.XXXXXX")
trap 'rm -rf "$tree"' EXIT
tar -xf "$(solum_base_tarball busybox)" -C "$tree"
mkdir -p "$tree/usr/local/bin" "$tree/etc/ssl/certs"
cp "$bin" "$tree/usr/local/bin/solum-build"
chmod 0755 "$tree/usr/local/bin/solum-build"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$tree/etc/ssl/certs/ca-certificates.crt"
else
    echo "warning: no /etc/ssl/certs/ca-certificates.crt here: the image trusts no CA" >&2
fi
SOURCE_DATE_EPOCH=$SOLUM_BASE_EPOCH "$bin" import "$tree" --tag "$tag" \
    --env PATH=/usr/local/bin:/usr/bin:/bin --cmd /bin/sh
if [ $# -gt 0 ]; then
    "$bin" push "$tag" "$1"
fi
