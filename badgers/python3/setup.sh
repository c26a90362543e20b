#!/bin/sh
# The python3 badger's setup, run once when the badger image is made (no network): Solum v1
# app files say `python app.py`, so `python` is Python 3 here, as Debian's python-is-python3
# package makes it. In /usr/local/bin, ahead of /usr/bin on the badger's PATH.
set -eu
if ! command -v python >/dev/null 2>&1; then
    mkdir -p /usr/local/bin
    ln -s /usr/bin/python3 /usr/local/bin/python
fi
python --version
