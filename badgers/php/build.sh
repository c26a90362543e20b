#!/bin/sh
# The php badger's build command. The dependency step first, unless the pipeline ran it
# already as a layer of its own (it then sets SOLUM_DEPENDENCIES_DONE=1). Then Composer's
# optimised autoloader again: when the step ran apart, the source put above its layer brings
# a committed vendor/composer/ back as it was committed. Then the app's own `build` script.
set -eu
if [ "${SOLUM_DEPENDENCIES_DONE:-}" != 1 ] && [ -x /solum/bin/deps.sh ]; then /solum/bin/deps.sh; fi
cd /app
if [ -f composer.json ] && [ -f vendor/autoload.php ]; then
    echo "php badger: writing the optimised autoloader"
    COMPOSER_HOME=$(mktemp -d "${TMPDIR:-/tmp}/composer-home.XXXXXX")
    COMPOSER_ALLOW_SUPERUSER=1 COMPOSER_HOME=$COMPOSER_HOME \
        composer dump-autoload --no-dev --optimize --no-interaction
    rm -rf "$COMPOSER_HOME"
fi
if [ -f ./build ]; then
    echo "php badger: running ./build"
    if [ -x ./build ]; then ./build; else sh ./build; fi
fi
