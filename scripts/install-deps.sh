#!/bin/sh
# Installs what the tests need on a fresh Debian machine (run as root; idempotent): the real
# peers that read our output, static busybox and debootstrap for base images
# (scripts/make-base-images.sh), newuidmap/newgidmap, slirp4netns for `run -p`, and the
# unprivileged user `tester` (with a subordinate id range) for the rootless runs, and
# PostgreSQL (server and client) for the throwaway clusters of tests/support/postgres.rs.
# Benchmark-only tools are in scripts/bench/install.sh.
set -eu
packages="busybox-static debootstrap uidmap slirp4netns skopeo umoci oci-image-tool attr podman runc git python3-yaml docker-registry apache2-utils openssl postgresql time"
missing=""
for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y $missing
fi
sh runtime/tests/setup-host.sh
# PostgreSQL does not run as root, so the tests run its server programs as `tester`
# (tests/support/postgres.rs): check that it can, for the newest installed version. Debian's
# package also makes and starts a cluster of its own on port 5432; the tests do not use it.
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
runuser -u tester -- "$pg_bin/postgres" --version >/dev/null ||
    { echo "tester cannot run $pg_bin/postgres" >&2; exit 1; }
# `run -p` as `tester` (tests/run_publish.rs) opens /dev/net/tun in its own namespaces; some
# hosts make it 0600 (root only). 0666 is Debian's default: only a process that may create
# network devices in a namespace of its own can use it.
if [ -c /dev/net/tun ]; then chmod 0666 /dev/net/tun; fi
# The SBOM validators of tests/sbom.rs: the SPDX project's own tools (pyspdxtools) and the
# CycloneDX Python library with its JSON schema validation, in a venv of their own. The venv
# is made from Debian's /usr/bin/python3, so that `tester` can run it too (a venv links to
# the interpreter it was made with, and one under root's home is out of tester's reach).
venv=/opt/solum-sbom-tools
if ! grep -qx 'home = /usr/bin' "$venv/pyvenv.cfg" 2>/dev/null \
    || ! "$venv/bin/python" -c 'import spdx_tools, cyclonedx.validation.json' 2>/dev/null; then
    dpkg -s python3-venv >/dev/null 2>&1 || { apt-get update; DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv; }
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet spdx-tools 'cyclonedx-python-lib[json-validation]'
    chmod -R a+rX "$venv"
fi
