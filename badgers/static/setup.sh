#!/bin/sh
# The static badger's setup, run once when the badger image is made (no network).
set -eu
# The user DUs on this badger run as (badger.yaml `user: "1000:1000"`): `app`, uid and gid
# 1000, home /home/app. Builds still run as root; what they make stays readable by all.
grep -q '^app:' /etc/group 2>/dev/null || echo 'app:x:1000:' >> /etc/group
grep -q '^app:' /etc/passwd 2>/dev/null || echo 'app:x:1000:1000:app:/home/app:/bin/sh' >> /etc/passwd
mkdir -p /home/app
# Open to all and sticky, like /tmp, rather than owned by 1000: a rootless run sees the
# owners of a rootless unpack as root's, and a rootless build without subordinate ids
# cannot chown at all; this way every mode gives the same layer and a writable home.
chmod 1777 /home/app
# The DUs' default command (badger.yaml `command`): a web site, when the app has no bin/
# and has public/ or an index.html, is served by busybox httpd in the foreground on $PORT
# (8080 when unset); otherwise the shell the base image ran before.
mkdir -p /solum/bin
cat >/solum/bin/start.sh <<'SCRIPT'
#!/bin/sh
set -eu
if [ ! -d /app/bin ]; then
    if [ -d /app/public ]; then root=/app/public; elif [ -f /app/index.html ]; then root=/app; else root=""; fi
    if [ -n "$root" ]; then
        echo "static badger: serving $root on port ${PORT:-8080}"
        exec httpd -f -v -p "${PORT:-8080}" -h "$root"
    fi
fi
exec /bin/sh "$@"
SCRIPT
chmod 0755 /solum/bin/start.sh
