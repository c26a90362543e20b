#!/bin/sh
# The python badger's dependency step (badger.yaml `dependencies`): runs in /app holding
# only requirements.txt and wheelhouse/ (what the source has of them), as root. What it
# installs into /opt/venv becomes the DU's dependency layer, reused while those two do not
# change. Offline from wheelhouse/ when the app vendors one, else from the package index
# (which needs `--network host`). pip's cache lives in /solum/cache (kept per app, never
# in the image).
set -eu
cd /app
if [ ! -f requirements.txt ]; then
    echo "python badger: no requirements.txt; nothing to install before the source"
    exit 0
fi
# --no-compile, then compileall: pip's .pyc would record the install time; hash-based ones
# depend on the contents alone, so the same requirements give the same layer.
set -- --no-input --no-compile --cache-dir /solum/cache/pip -r requirements.txt
if [ -d wheelhouse ]; then
    echo "python badger: installing requirements.txt offline from wheelhouse/"
    pip install --no-index --find-links wheelhouse "$@"
else
    echo "python badger: installing requirements.txt from the package index"
    # With no network (the default; `--network host` gives one), pip would retry for 10 s
    # and more before failing: once is enough to fail with the build's network hint.
    if ! python3 -c 'import socket; socket.getaddrinfo("pypi.org", 443)' 2>/dev/null; then
        export PIP_RETRIES=0 PIP_TIMEOUT=5
    fi
    pip install "$@"
fi
# Each new module compiled once, hash-based (see setup.sh). A fixed hash seed: the order of
# set constants in a .pyc follows string hashing.
export PYTHONHASHSEED=0
/solum/bin/compile-new-pyc "$VIRTUAL_ENV/lib"
