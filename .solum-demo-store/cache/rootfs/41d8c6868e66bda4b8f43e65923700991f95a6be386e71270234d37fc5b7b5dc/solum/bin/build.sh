#!/bin/sh
# The shell badger's build command: runs in /app with the app's source. An app with its
# own `build` script (executable, or run with sh) gets it run; otherwise there is nothing
# to compile and the source is the app.
set -eu
cd /app
if [ -f ./build ]; then
    echo "shell badger: running ./build"
    if [ -x ./build ]; then ./build; else sh ./build; fi
else
    echo "shell badger: no ./build script; the source is used as it is"
fi
