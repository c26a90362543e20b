#!/bin/sh
# The python badger's build command, in /app with the app's whole source. The dependency
# step (deps.sh: requirements.txt) has run already when the pipeline gives it a layer of
# its own; an older pipeline leaves it to this script. Then, in the app layer: the project
# itself (pyproject.toml or setup.py: `pip install .` reads the whole source, so it cannot
# be part of the dependency step), Django's static files, the byte-compiled app, ./build.
set -eu
if [ "${SOLUM_DEPENDENCIES_DONE:-}" != 1 ] && [ -x /solum/bin/deps.sh ]; then /solum/bin/deps.sh; fi
cd /app
export PYTHONHASHSEED=0
if [ -f .python-version ]; then
    echo "python badger: .python-version ($(head -n 1 .python-version | cut -c1-40)) is ignored: this badger has Python 3.11"
fi
if [ ! -f requirements.txt ]; then
    if [ -f Pipfile.lock ]; then
        echo "python badger: Pipfile.lock is not installed (the badger has no pipenv): commit the output of \`pipenv requirements > requirements.txt\` instead"
    fi
    if [ -f poetry.lock ]; then
        echo "python badger: poetry.lock is not installed (the badger has no poetry): commit the output of \`poetry export -f requirements.txt -o requirements.txt\` instead"
    fi
fi
# A pyproject.toml that only configures tools (black, ruff…) is not a project to install.
if [ -f setup.py ] || { [ -f pyproject.toml ] && grep -Eq '^\[(project|build-system)\]' pyproject.toml; }; then
    # The build backend comes from the virtualenv (setuptools), not from a download.
    set -- --no-input --no-compile --no-build-isolation --cache-dir /solum/cache/pip
    if [ -d wheelhouse ]; then
        echo "python badger: installing the project (pip install .) offline from wheelhouse/"
        pip install --no-index --find-links wheelhouse "$@" .
    else
        echo "python badger: installing the project (pip install .)"
        pip install "$@" .
    fi
    # Only the modules without a .pyc (as in deps.sh): the others are in the layers below.
    /solum/bin/compile-new-pyc "$VIRTUAL_ENV/lib"
elif [ ! -f requirements.txt ]; then
    echo "python badger: no requirements.txt, pyproject.toml or setup.py: nothing to install"
fi
# Django: static files are served from STATIC_ROOT only once collected.
if [ -f manage.py ] && grep -rIlq --include='*.py' STATIC_ROOT . 2>/dev/null; then
    echo "python badger: collecting Django's static files (manage.py collectstatic)"
    python manage.py collectstatic --noinput
fi
# Byte-compile the app's modules (only when it has any: starting Python costs ~0.1 s),
# checked against the source's contents rather than its time.
if [ -n "$(find . -name '*.py' -print -quit)" ]; then
    echo "python badger: byte-compiling the app"
    python -m compileall -q --invalidation-mode checked-hash . >/dev/null 2>&1 || true
fi
if [ -f ./build ]; then
    echo "python badger: running ./build"
    if [ -x ./build ]; then ./build; else sh ./build; fi
fi
