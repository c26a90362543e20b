#!/bin/sh
# The ruby badger's build command. The dependency step first, unless the pipeline ran it
# already as a layer of its own (it then sets SOLUM_DEPENDENCIES_DONE=1); then the app's own
# `build` script, if it has one.
set -eu
if [ "${SOLUM_DEPENDENCIES_DONE:-}" != 1 ] && [ -x /solum/bin/deps.sh ]; then /solum/bin/deps.sh; fi
cd /app
if [ -f ./build ]; then
    echo "ruby badger: running ./build"
    if [ -x ./build ]; then ./build; else sh ./build; fi
fi
