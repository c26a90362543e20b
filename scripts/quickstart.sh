#!/bin/sh
# The README's main job, with no network: makes base/busybox from Debian's busybox-static,
# builds the shipped shell badger, builds the sample app examples/hello on it in the
# rootless sandbox (tests included), and runs the resulting DU. The store is
# $SOLUM_BUILD_STORE, else ./.solum-demo-store.
set -eu
cd "$(dirname "$0")/.."
. scripts/common.sh
bin=$(solum_find_bin solum-build)
export SOLUM_BUILD_STORE="${SOLUM_BUILD_STORE:-$PWD/.solum-demo-store}"
export SOLUM_BASE_CACHE="${SOLUM_BASE_CACHE:-$PWD/.solum-demo-cache}"
echo "== store: $SOLUM_BUILD_STORE"
sh scripts/make-base-images.sh --only busybox "$SOLUM_BUILD_STORE"
if ! "$bin" badger search shell >/dev/null 2>&1; then
    "$bin" badger build badgers/shell
fi
echo "== host:"
"$bin" info | sed -n '1,12p' || true
echo "== build examples/hello/app.yaml"
"$bin" build examples/hello/app.yaml --tag hello
echo "== run the DU"
"$bin" run hello
echo "== images"
"$bin" images
