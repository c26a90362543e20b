#!/bin/sh
# The go badger's dependency step (installed at /solum/bin/deps.sh), run as root in /app
# where only its inputs are: go.mod, go.sum and vendor/. It reads no other file.
#   - vendor/modules.txt present: nothing to fetch, the build uses -mod=vendor offline.
#   - else, with network (the build's /etc/resolv.conf names a server, as under
#     `--network host`): `go mod download` through $GOPROXY (Go's default unless the app
#     sets it) into GOMODCACHE (/solum/deps/go/mod, kept in the dependency layer);
#     go.sum is checked as Go always does.
#   - else: GOPROXY=off and a message saying how to vendor, so that a build with no network
#     fails at once rather than after timeouts.
set -eu
cd /app
if [ ! -f go.mod ]; then
    echo "go badger: no go.mod: no modules to fetch"
    exit 0
fi
if [ -f vendor/modules.txt ]; then
    echo "go badger: vendor/ present: modules build offline with -mod=vendor"
    exit 0
fi
if ! grep -q '^[[:space:]]*require' go.mod; then
    echo "go badger: go.mod requires no module"
    exit 0
fi
if ! grep -q '^[[:space:]]*nameserver' /etc/resolv.conf 2>/dev/null; then
    echo "go badger: go.mod requires modules, there is no vendor/ and the build has no network:" >&2
    echo "  vendor them in the source (go mod vendor) or build with --network host" >&2
    export GOPROXY=off
fi
echo "go badger: go mod download (GOPROXY=${GOPROXY:-$(go env GOPROXY)})"
go mod download
