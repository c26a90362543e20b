#!/bin/sh
# The java badger's dependency step, run as root in /app holding only the pom.xml (and
# .mvn/) the source has: `mvn test` on the bare project, which has nothing to compile or
# run but makes Maven resolve the build's plugins and the project's compile and test
# dependencies into the local repository (/solum/cache/m2), from Debian's repository with
# no network, from Maven Central with `--network host`. What it leaves in /app (target/)
# is removed: the build makes its own.
set -eu
cd /app
if [ ! -f pom.xml ]; then
    echo "java badger: no pom.xml, no dependencies to resolve"
    exit 0
fi
echo "java badger: resolving the plugins and dependencies of pom.xml"
mvn -B --no-transfer-progress -q test
rm -rf target
