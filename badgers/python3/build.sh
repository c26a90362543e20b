#!/bin/sh
# The python3 badger's build command. Installs requirements.txt with pip: from the app's
# vendored wheelhouse/ with no network when it has one, else from the index (which needs
# `--network host`). pip's cache lives in /solum/cache (kept per app, never in the image).
# Debian marks its Python as externally managed; the DU is a container of one app, so
# packages go to /usr/local like a virtualenv would, with --break-system-packages.
set -eu
cd /app
if [ -f requirements.txt ]; then
    set -- --no-input --break-system-packages --cache-dir /solum/cache/pip -r requirements.txt
    if [ -d wheelhouse ]; then
        echo "python3 badger: installing requirements.txt offline from wheelhouse/"
        python3 -m pip install --no-index --find-links wheelhouse "$@"
    else
        echo "python3 badger: installing requirements.txt from the package index"
        python3 -m pip install "$@"
    fi
fi
# Byte-compile the app's modules (only when it has any: starting Python costs ~0.1 s).
if [ -n "$(find . -name '*.py' -print -quit)" ]; then
    echo "python3 badger: byte-compiling the app"
    python3 -m compileall -q . >/dev/null 2>&1 || true
fi
if [ -f ./build ]; then
    echo "python3 badger: running ./build"
    if [ -x ./build ]; then ./build; else sh ./build; fi
fi
