#!/bin/sh
# The nodejs badger's dependency step (installed at /solum/bin/deps.sh), run as root in
# /app where only its inputs are: package.json, package-lock.json or npm-shrinkwrap.json,
# .npmrc and npm-cache/. It reads no other file of the source.
#   - With a lockfile: `npm ci`, exactly what it pins; without one: `npm install`, with
#     the lockfile it would write left out (the source stays as it was).
#   - With a vendored npm-cache/ folder (made by `npm install --cache ./npm-cache`): no
#     network, `--offline`; without one npm fetches from the registry when the build has
#     network (`--network host`), else it runs `--offline` on the app's cache and fails
#     at once when a package is not there, saying how to vendor.
#   - Dev dependencies are installed only when package.json has a `build` script, which
#     usually needs them; build.sh prunes them after the build.
# npm's cache lives in /solum/cache/npm (kept per app, never in the image); the vendored
# cache is copied there because npm writes to its cache.
set -eu
cd /app
if [ ! -f package.json ]; then
    echo "nodejs badger: no package.json: no dependencies to install"
    exit 0
fi
cache=/solum/cache/npm
if ! mkdir -p "$cache" 2>/dev/null; then cache=$(mktemp -d); fi
set -- --cache "$cache" --no-audit --no-fund --loglevel=warn
if [ -d npm-cache ]; then
    cp -R npm-cache/. "$cache/"
    set -- "$@" --offline
    where="offline from npm-cache/"
elif grep -q '^[[:space:]]*nameserver' /etc/resolv.conf 2>/dev/null; then
    where="from the registry"
else
    # No network (the build's resolv.conf names no server): npm would only retry and
    # time out, so it runs offline on the app's cache and fails at once if that lacks a
    # package.
    set -- "$@" --offline
    where="offline from /solum/cache/npm (the build has no network: --network host gives it)"
fi
if node -e 'process.exit((require("/app/package.json").scripts || {}).build ? 0 : 1)'; then
    set -- "$@" --include=dev
    what="dependencies and dev dependencies (package.json has a build script)"
else
    set -- "$@" --omit=dev
    what="dependencies"
fi
if [ -f package-lock.json ] || [ -f npm-shrinkwrap.json ]; then
    echo "nodejs badger: npm ci: $what $where"
    status=0
    npm ci "$@" || status=$?
else
    echo "nodejs badger: npm install (no lockfile): $what $where"
    status=0
    npm install --package-lock=false "$@" || status=$?
fi
if [ "$status" != 0 ]; then
    echo "nodejs badger: npm failed ($status); to build with no network, vendor npm's cache in the source: npm install --cache ./npm-cache" >&2
    exit "$status"
fi
