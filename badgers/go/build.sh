#!/bin/sh
# The go badger's build command: the dependency step first unless the build pipeline ran
# it already (SOLUM_DEPENDENCIES_DONE=1), then every main package of the module into
# /app/bin (one binary per package, named after its folder, e.g. /app/bin/go-web):
# static (CGO_ENABLED=0) and reproducible (-trimpath, no build id, no VCS stamp), with
# -mod=vendor when vendor/modules.txt is there (Go's own default since 1.14, said aloud).
set -eu
if [ "${SOLUM_DEPENDENCIES_DONE:-}" != 1 ] && [ -x /solum/bin/deps.sh ]; then /solum/bin/deps.sh; fi
cd /app
if [ ! -f go.mod ]; then
    echo "go badger: no go.mod: the source is used as it is"
    exit 0
fi
set -- -trimpath -ldflags=-buildid= -buildvcs=false
if [ -f vendor/modules.txt ]; then
    set -- "$@" -mod=vendor
else
    set -- "$@" -mod=readonly
fi
# Without network the module cache is all there is: go must not try the proxy.
if ! grep -q '^[[:space:]]*nameserver' /etc/resolv.conf 2>/dev/null; then export GOPROXY=off; fi
mkdir -p /app/bin
echo "go badger: CGO_ENABLED=0 go build $* -o /app/bin/ ./..."
CGO_ENABLED=0 go build "$@" -o /app/bin/ ./...
ls /app/bin
