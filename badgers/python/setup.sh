#!/bin/sh
# The python badger's setup, run once when the badger image is made (no network).
set -eu
# Solum v1 app files say `python app.py`, so `python` is Python 3 here also outside the
# virtualenv, as Debian's python-is-python3 package makes it. In /usr/local/bin, ahead of
# /usr/bin on the badger's PATH.
if ! command -v python >/dev/null 2>&1; then
    mkdir -p /usr/local/bin
    ln -s /usr/bin/python3 /usr/local/bin/python
fi
# The app's virtualenv, first on the badger's PATH: Debian marks its own Python as
# externally managed (PEP 668), so `pip install` there fails, in the build and in an app's
# tests alike; in the virtualenv it works. pip comes from Debian's bundled wheels (no
# network). Outside /app, so that the dependency layer keeps what it installs apart from
# the source.
python3 -m venv /opt/venv
# pip and setuptools were byte-compiled with their install time in each .pyc, which the
# image's mtime clamp would make stale (then rewritten by every build that runs pip):
# hash-based .pyc name no time.
PYTHONHASHSEED=0 /opt/venv/bin/python -m compileall -q -f --invalidation-mode unchecked-hash /opt/venv/lib >/dev/null
# Byte-compiles the modules under a folder that have no .pyc yet, hash-based: pip installs
# with --no-compile (its .pyc would record the install time), then this runs. Modules
# compiled already are left alone: compiled again, they would be copied into the layer.
mkdir -p /solum/bin
cat > /solum/bin/compile-new-pyc <<'EOF'
#!/usr/bin/python3
import importlib.util, pathlib, py_compile, sys
for source in sorted(pathlib.Path(sys.argv[1]).rglob("*.py")):
    cached = pathlib.Path(importlib.util.cache_from_source(str(source)))
    if not cached.exists():
        try:
            py_compile.compile(str(source), cfile=str(cached), doraise=True,
                               invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        except py_compile.PyCompileError:
            pass
EOF
chmod 755 /solum/bin/compile-new-pyc
# The user DUs on this badger run as (badger.yaml `user: "1000:1000"`): `app`, uid and gid
# 1000, home /home/app. Builds still run as root; what they make stays readable by all.
grep -q '^app:' /etc/group 2>/dev/null || echo 'app:x:1000:' >> /etc/group
grep -q '^app:' /etc/passwd 2>/dev/null || echo 'app:x:1000:1000:app:/home/app:/bin/sh' >> /etc/passwd
mkdir -p /home/app
# Open to all and sticky, like /tmp, rather than owned by 1000: a rootless run sees the
# owners of a rootless unpack as root's, and a rootless build without subordinate ids
# cannot chown at all; this way every mode gives the same layer and a writable home. The
# virtualenv's folders are opened the same way, so that `pip install` works as `app` too.
chmod 1777 /home/app
find /opt/venv -type d -exec chmod a+rwx {} +
python --version
