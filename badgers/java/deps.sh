#!/bin/sh
# The java badger's dependency step, run as root in /app holding only the pom.xml (and
# .mvn/) the source has: `mvn test` on the bare project, which has nothing to compile or
# run but makes Maven resolve the build's plugins and the project's compile and test
# dependencies into the local repository (/solum/cache/m2), from Debian's repository with
# no network, from Maven Central with `--network host`. What it leaves in /app (target/)
# is removed: the build makes its own.
# A multi-module project resolves in the build step instead (see below).
set -eu
cd /app
if [ ! -f pom.xml ]; then
    echo "java badger: no pom.xml, no dependencies to resolve"
    exit 0
fi
echo "java badger: resolving the plugins and dependencies of pom.xml"
# Ahead of the build only: a project this step cannot resolve alone (modules, whose poms are
# not among its inputs) still builds, resolving in the build step what it needs.
if ! mvn -B --no-transfer-progress -q test; then
    echo "java badger: pom.xml alone does not resolve; the build step resolves its dependencies"
fi
rm -rf target
