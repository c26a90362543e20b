#!/bin/sh
# The static badger's build command: the artifact is already built. It checks there is
# something to run and makes files under bin/ executable.
set -eu
cd /app
count=$(find . -type f | wc -l)
if [ "$count" -eq 0 ]; then
    echo "static badger: the artifact is empty" >&2
    exit 1
fi
if [ -d bin ]; then chmod -R a+x bin; fi
echo "static badger: $count files ready"
