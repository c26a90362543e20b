#!/bin/sh
# The test gate: the DU is made only if this exits 0; what it writes is thrown away.
set -eu
test -s public/build-info.txt
./run.sh | grep -q "from the hello DU"
echo "tests passed"
