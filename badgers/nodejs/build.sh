#!/bin/sh
# The nodejs badger's build command: the dependency step first unless the build pipeline
# ran it already (SOLUM_DEPENDENCIES_DONE=1), then the app's own steps: package.json's
# `build` script (`npm run build`) when it has one, after which the dev dependencies it
# needed are pruned (`npm prune --omit=dev`, offline: it only removes). An app without a
# build script is used as it is.
set -eu
if [ "${SOLUM_DEPENDENCIES_DONE:-}" != 1 ] && [ -x /solum/bin/deps.sh ]; then /solum/bin/deps.sh; fi
cd /app
# npm run keeps its cache, like the dependency step's, out of the image.
if mkdir -p /solum/cache/npm 2>/dev/null; then export NPM_CONFIG_CACHE=/solum/cache/npm; fi
if [ ! -f package.json ]; then
    echo "nodejs badger: no package.json: the source is used as it is"
    exit 0
fi
if node -e 'process.exit((require("/app/package.json").scripts || {}).build ? 0 : 1)'; then
    echo "nodejs badger: npm run build"
    npm run build
    echo "nodejs badger: pruning dev dependencies"
    npm prune --omit=dev --offline --no-save --no-audit --no-fund --loglevel=warn
fi
