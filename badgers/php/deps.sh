#!/bin/sh
# The php badger's dependency step, run as root in /app holding only the composer.json,
# composer.lock and vendor/ the source has. `composer install --no-dev`:
#   - with vendor/ committed and matching composer.lock, Composer has nothing to fetch and
#     needs no network (it only removes dev packages and writes the autoloader);
#   - otherwise it downloads from the repositories composer.json names (Packagist by
#     default), which needs `--network host`; `path` repositories are not among the inputs,
#     so an app using them commits vendor/.
set -eu
cd /app
if [ ! -f composer.json ]; then
    echo "php badger: no composer.json, no packages to install"
    exit 0
fi
# Composer's home and download cache are scratch: not in the image. It runs as root here
# on purpose (the build's user): no warning about it.
COMPOSER_HOME=$(mktemp -d "${TMPDIR:-/tmp}/composer-home.XXXXXX")
trap 'rm -rf "$COMPOSER_HOME"' EXIT
export COMPOSER_HOME COMPOSER_CACHE_DIR="$COMPOSER_HOME/cache" COMPOSER_ALLOW_SUPERUSER=1
if [ -d vendor ]; then
    echo "php badger: installing composer.json from the committed vendor/"
else
    echo "php badger: installing composer.json from its repositories"
fi
composer install --no-dev --no-interaction --no-progress --prefer-dist --optimize-autoloader
