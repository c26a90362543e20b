#!/bin/sh
# The static badger's build command: the artifact (or source) is already built. It checks
# there is something to run and makes files under bin/ executable; a web site (no bin/,
# and public/ or an index.html) is said to be served by the DU's default command.
set -eu
cd /app
count=$(find . -type f | wc -l)
if [ "$count" -eq 0 ]; then
    echo "static badger: the artifact is empty" >&2
    exit 1
fi
if [ -d bin ]; then chmod -R a+x bin; fi
echo "static badger: $count files ready"
if [ ! -d bin ] && { [ -d public ] || [ -f index.html ]; }; then
    site=/app
    [ -d public ] && site=/app/public
    # Readable by the DU's user (1000), whatever modes the source had.
    chmod -R a+rX .
    echo "static badger: a web site: without run_cmd the DU serves $site with busybox httpd on \$PORT"
fi
