#!/bin/sh
# Installs what the tests need on a fresh Debian machine (run as root; idempotent): the real
# peers that read our output, static busybox for base images, newuidmap/newgidmap, and the
# unprivileged user `tester` (with a subordinate id range) for the rootless runs.
set -eu
packages="busybox-static uidmap skopeo umoci oci-image-tool attr podman runc git python3-yaml docker-registry apache2-utils openssl"
missing=""
for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y $missing
fi
sh runtime/tests/setup-host.sh
