#!/bin/sh
# Makes the base images the tests, the README and the benchmarks use, and imports them into
# a store as base/busybox, base/debian and base/debian-python3.
#
# Usage: make-base-images.sh [--only KIND[,KIND...]] [--no-import] [STORE]
#   KIND      busybox, debian, debian-python3, debian-nodejs, debian-golang, debian-ruby,
#             debian-php, debian-java (default: all; tests need busybox and the
#             debian-LANGUAGE kinds of the badgers they build)
#   STORE     the store to import into (default: $SOLUM_BUILD_STORE, else the CLI default
#             ${XDG_DATA_HOME:-~/.local/share}/solum-build)
#   --no-import  only make the cached tarballs
#
# Order of work, per kind:
#   1. the rootfs tarball ${SOLUM_BASE_CACHE:-/var/cache/solum-build-base}/KIND.tar is made
#      once (make-rootfs.sh into a temp dir, then tar, then an atomic rename) and reused on
#      every later run, because debootstrap takes tens of seconds;
#   2. the image is imported from that tarball with SOURCE_DATE_EPOCH fixed (same tarball,
#      same digest), unless the store already has the name.
# The debian kinds need root (debootstrap); busybox works as any user.
set -eu
. "$(dirname "$0")/common.sh"

kinds="busybox debian debian-python3"
kinds="$kinds debian-nodejs debian-golang"
kinds="$kinds debian-ruby debian-php debian-java"
import=1
store=""
while [ $# -gt 0 ]; do
    case $1 in
        --only) [ $# -ge 2 ] || { echo "--only needs a list of kinds" >&2; exit 2; }
                kinds=$(echo "$2" | tr ',' ' '); shift 2 ;;
        --only=*) kinds=$(echo "${1#--only=}" | tr ',' ' '); shift ;;
        --no-import) import=0; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) store=$1; shift ;;
    esac
done
for k in $kinds; do
    case $k in
        busybox|debian|debian-python3) ;;
        debian-nodejs|debian-golang) ;;
        debian-ruby|debian-php|debian-java) ;;
        *) echo "unknown kind $k" >&2; exit 2 ;;
    esac
done
[ -n "$store" ] || store=${SOLUM_BUILD_STORE:-${XDG_DATA_HOME:-$HOME/.local/share}/solum-build}

cache=$(solum_base_cache)
mkdir -p "$cache"
work=""
cleanup() { [ -z "$work" ] || rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# Step 1: the cached tarball of KIND. Written under a temp name in the cache dir and renamed,
# so that an interrupted run never leaves a truncated tarball that later runs would trust.
make_tarball() {
    kind=$1
    tarball=$(solum_base_tarball "$kind")
    if [ -s "$tarball" ]; then
        echo "rootfs $kind: cached $tarball" >&2
        return 0
    fi
    work=$(mktemp -d "$cache/.work-$kind.XXXXXX")
    start=$(date +%s)
    sh "$(dirname "$0")/make-rootfs.sh" "$kind" "$work/rootfs"
    # Numeric owners and xattrs, sorted names, no atime/ctime: the tarball carries what the
    # image needs and nothing of the moment it was made besides file mtimes. Made by an
    # unprivileged user (busybox only), every file is that user's: the image says root.
    owners=""
    [ "$(id -u)" = 0 ] || owners="--owner=0 --group=0"
    # shellcheck disable=SC2086
    tar --format=posix --pax-option=delete=atime,delete=ctime --sort=name \
        --numeric-owner $owners --xattrs --xattrs-include='*' \
        -C "$work/rootfs" -cf "$work/rootfs.tar" .
    chmod 0644 "$work/rootfs.tar"
    mv "$work/rootfs.tar" "$tarball"
    rm -rf "$work"
    work=""
    echo "rootfs $kind: made $tarball in $(($(date +%s) - start)) s ($(du -h "$tarball" | cut -f1))" >&2
}

# True when STORE's index.json names NAME (the store format is an OCI layout, so this needs
# no binary and works whatever the CLI prints).
store_has() {
    index="$store/index.json"
    [ -f "$index" ] || return 1
    if command -v jq >/dev/null 2>&1; then
        jq -e --arg n "$1" \
            'any(.manifests[]?; .annotations["org.opencontainers.image.ref.name"] == $n)' \
            "$index" >/dev/null
    else
        tr -d ' \n\t' <"$index" | grep -q "\"org.opencontainers.image.ref.name\":\"$1\""
    fi
}

# Step 2: import KIND's tarball as base/KIND.
import_kind() {
    kind=$1
    name="base/$kind"
    if store_has "$name"; then
        echo "image $name: already in $store" >&2
        return 0
    fi
    case $kind in
        busybox) cmd=/bin/sh ;;
        *) cmd=/bin/bash ;;
    esac
    SOURCE_DATE_EPOCH=$SOLUM_BASE_EPOCH "$bin" --store "$store" import \
        "$(solum_base_tarball "$kind")" --tag "$name" --cmd "$cmd" \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    echo "image $name: imported into $store" >&2
}

# The binary is looked for before the long work (debootstrap takes minutes), not after it.
bin=""
if [ "$import" = 1 ]; then bin=$(solum_find_bin solum-build); fi
for k in $kinds; do make_tarball "$k"; done
[ "$import" = 1 ] || exit 0
mkdir -p "$store"
for k in $kinds; do import_kind "$k"; done
# Unprivileged users (the rootless tests run as `tester`) must be able to read the store a
# root run filled: blobs are written 0644, but directories follow root's umask.
if [ "$(id -u)" = 0 ]; then chmod -R a+rX "$store"; fi
