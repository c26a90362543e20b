#!/bin/sh
# The ruby badger's setup, run once when the badger image is made (no network): the user
# DUs on this badger run as (badger.yaml `user: "1000:1000"`): `app`, uid and gid 1000,
# home /home/app. Builds still run as root; what they make stays readable by all.
set -eu
grep -q '^app:' /etc/group 2>/dev/null || echo 'app:x:1000:' >> /etc/group
grep -q '^app:' /etc/passwd 2>/dev/null || echo 'app:x:1000:1000:app:/home/app:/bin/sh' >> /etc/passwd
mkdir -p /home/app
# Open to all and sticky, like /tmp, rather than owned by 1000: a rootless run sees the
# owners of a rootless unpack as root's, and a rootless build without subordinate ids
# cannot chown at all; this way every mode gives the same layer and a writable home.
chmod 1777 /home/app
ruby --version
bundle --version
