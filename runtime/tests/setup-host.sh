#!/bin/sh
# Prepares a Debian host for the runtime crate's tests (run as root, idempotent):
# static busybox for the test root filesystem, newuidmap/newgidmap, and the unprivileged
# user `tester` with a subordinate id range.
set -eu
command -v busybox >/dev/null && command -v newuidmap >/dev/null ||
    { apt-get update && apt-get install -y busybox-static uidmap; }
id tester >/dev/null 2>&1 || useradd -m tester
grep -q '^tester:' /etc/subuid || echo 'tester:100000:65536' >> /etc/subuid
grep -q '^tester:' /etc/subgid || echo 'tester:100000:65536' >> /etc/subgid
