#!/bin/sh
# The java badger's build command, in this order:
#   1. the dependency step, unless the pipeline ran it already as a layer of its own (it
#      then sets SOLUM_DEPENDENCIES_DONE=1);
#   2. `mvn package` without the tests (the app's test_cmd, `mvn -B test`, runs them in the
#      gate), with the archives' timestamps set from SOURCE_DATE_EPOCH when the build has one
#      (the pom's project.build.outputTimestamp otherwise), so the same commit makes the
#      same jar;
#   3. the runnable jar copied to /app/app.jar, the path the run command names
#      (`java -jar /app/app.jar`): the one jar in target/ that is not sources, javadoc,
#      tests or a shade plugin's original-*;
#   4. the app's own `build` script, if it has one.
set -eu
if [ "${SOLUM_DEPENDENCIES_DONE:-}" != 1 ] && [ -x /solum/bin/deps.sh ]; then /solum/bin/deps.sh; fi
cd /app
if [ -f pom.xml ]; then
    set -- -B --no-transfer-progress -DskipTests
    if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
        set -- "$@" "-Dproject.build.outputTimestamp=$SOURCE_DATE_EPOCH"
    fi
    echo "java badger: mvn package"
    mvn "$@" package
    jars=$(find target -maxdepth 1 -type f -name '*.jar' ! -name '*-sources.jar' \
        ! -name '*-javadoc.jar' ! -name '*-tests.jar' ! -name 'original-*.jar' | sort)
    count=$(printf '%s' "$jars" | grep -c . || true)
    if [ "$count" != 1 ]; then
        echo "java badger: expected one runnable jar in target/, found $count: $jars" >&2
        exit 1
    fi
    cp "$jars" /app/app.jar
    echo "java badger: $jars is /app/app.jar"
fi
if [ -f ./build ]; then
    echo "java badger: running ./build"
    if [ -x ./build ]; then ./build; else sh ./build; fi
fi
