#!/usr/bin/env bash
# App benchmarks (issue 13): a realistic app built by ours on its badger, and by podman from
# the idiomatic Dockerfile (dependencies first, code after) on the same image: the badger,
# exported from our store with skopeo (`skopeo copy oci:STORE:NAME containers-storage:…`).
# Both warm (each built once before timing); ours without the test gate, as the Dockerfile
# runs none.
# Cases, per app, and targets (medians, alternating runs):
#   first    a build from nothing cached: ours --no-cache, podman build --no-cache
#                                                           ours <= 0.8 x podman
#   rebuild  after a one-line code change (the dependency layer / podman's cached pip
#            layer reused)                                  ours <= 0.5 x podman
#   size     the DU against podman's image, uncompressed    ours <= podman
# Apps: python (testdata/apps/python-web: Flask, 16 wheels vendored) and nodejs (an express
# app of about 70 packages: its lockfile and npm cache are made here by the host's npm, from
# the registry; the builds then run offline from that cache). Another app is one more
# `app_case` line: its folder, badger, Dockerfile and the file the change edits.
# Usage: apps.sh [python|nodejs]...   (default: every case)
. "$(dirname "$0")/lib.sh"

only=("$@")
# Whether the case LABEL runs: every case, or those named on the command line.
wanted() { [[ ${#only[@]} -eq 0 || " ${only[*]} " == *" $1 "* ]]; }
bench_require apps podman skopeo
bin=$(bench_solum)
if wanted python; then bench_ensure_base debian-python3; fi
if wanted nodejs; then bench_require apps npm; bench_ensure_base debian-nodejs; fi

# podman in a sandbox of this machine: the default ulimits are more than it may set, runc.
conf="$BENCH_TMP/containers.conf"
printf '[containers]\ndefault_ulimits = ["nofile=20000:20000","nproc=32768:32768"]\n' >"$conf"
export CONTAINERS_CONF=$conf
podman_build=(podman build -q --runtime runc --network none)

# The uncompressed size in bytes of the store image NAME (the sum of its layers' tars).
ours_size() {
    local digest total=0 n
    for digest in $("$bin" --store "$BENCH_STORE" inspect "$1" |
        python3 -c 'import json,sys; print(" ".join(l["digest"][7:] for l in json.load(sys.stdin)["manifest"]["layers"]))'); do
        n=$(gzip -dc "$BENCH_STORE/blobs/sha256/$digest" | wc -c)
        total=$((total + n))
    done
    echo "$total"
}

# app_case LABEL APP_DIR BADGER DOCKERFILE CHANGED_FILE
# APP_DIR is copied (with its app.yaml, whose source is the folder itself); DOCKERFILE's
# FROM is replaced by the badger's image in podman's storage; CHANGED_FILE (relative) gets
# one line appended before each rebuild.
app_case() {
    local label=$1 app="$BENCH_TMP/app-$1" badger=$3 dockerfile=$4 changed=$5
    local image="localhost/solum-bench-badger-$label" tag="solum-bench-app-$label"
    cp -a "$2" "$app"
    # Built every time: a store kept from an earlier run may hold an older badger (or one
    # that `badger search` finds under another name).
    "$bin" -q --store "$BENCH_STORE" badger build "$SOLUM_REPO/badgers/$badger" >/dev/null
    skopeo copy -q "oci:$BENCH_STORE:badgers/$badger" "containers-storage:$image" >/dev/null
    sed "s#^FROM .*#FROM $image#" "$dockerfile" >"$app/Dockerfile.bench"

    local ours_first=("$bin" -q --store "$BENCH_STORE" build "$app/app.yaml" --test-cmd ''
        --tag "bench-app-$label" --no-cache)
    local ours_rebuild=("$bin" -q --store "$BENCH_STORE" build "$app/app.yaml" --test-cmd ''
        --tag "bench-app-$label")
    local peer_first=("${podman_build[@]}" --no-cache -t "$tag" -f "$app/Dockerfile.bench" "$app")
    local peer_rebuild=("${podman_build[@]}" -t "$tag" -f "$app/Dockerfile.bench" "$app")
    bench_log "[$label] ours: ${ours_rebuild[*]}"
    bench_log "[$label] peer: ${peer_rebuild[*]}"
    # Warm: each built once, so the badger's trees and podman's base layers are in place.
    "${ours_rebuild[@]}" >/dev/null
    "${peer_rebuild[@]}" >/dev/null

    local pair ours peer share
    pair=$(bench_pair_ms "$BENCH_RUNS" "" ours_first peer_first)
    read -r ours peer <<<"$pair"
    bench_compare "$label first build" "$ours" "$peer" podman
    share=$(awk -v o="$ours" -v p="$peer" 'BEGIN { printf "%.2f", o / p }')
    echo "SUMMARY apps $label first build: ours $ours ms, podman $peer ms, ours/podman $share (target <= 0.8): $(bench_at_most "$share" 0.8)"

    local change="echo '# change '\$RANDOM >> '$app/$changed'"
    pair=$(bench_pair_ms "$BENCH_RUNS" "$change" ours_rebuild peer_rebuild)
    read -r ours peer <<<"$pair"
    bench_compare "$label rebuild after a code change" "$ours" "$peer" podman
    share=$(awk -v o="$ours" -v p="$peer" 'BEGIN { printf "%.2f", o / p }')
    echo "SUMMARY apps $label rebuild: ours $ours ms, podman $peer ms, ours/podman $share (target <= 0.5): $(bench_at_most "$share" 0.5)"

    local ours_bytes peer_bytes
    ours_bytes=$(ours_size "bench-app-$label")
    peer_bytes=$(podman image inspect --format '{{.Size}}' "$tag")
    share=$(awk -v o="$ours_bytes" -v p="$peer_bytes" 'BEGIN { printf "%.3f", o / p }')
    echo "SUMMARY apps $label size: DU $((ours_bytes / 1000000)) MB, podman image $((peer_bytes / 1000000)) MB, DU/podman $share (target <= 1): $(bench_at_most "$share" 1)"
    podman rmi -f "$tag" "$image" >/dev/null 2>&1 || true
}

if wanted python; then
python_dockerfile="$BENCH_TMP/python.Dockerfile"
cat >"$python_dockerfile" <<'EOF'
FROM badger
# The badger's image runs as `app`; the build steps run as root, as ours do.
USER root
WORKDIR /app
COPY requirements.txt ./
COPY wheelhouse ./wheelhouse
RUN pip install --no-input --no-index --find-links wheelhouse -r requirements.txt
COPY . .
RUN python -m compileall -q .
USER 1000:1000
CMD ["python", "serve.py"]
EOF
app_case python "$SOLUM_REPO/testdata/apps/python-web" python "$python_dockerfile" notes/__init__.py
fi

wanted nodejs || exit 0
# The express app: package.json, its lockfile and npm-cache/ from the registry (host npm),
# a route, a test, the app file; the Dockerfile installs first and copies the code after.
node_app="$BENCH_TMP/node-express"
mkdir -p "$node_app/lib"
cat >"$node_app/package.json" <<'EOF'
{"name": "node-express", "version": "1.0.0", "private": true,
 "scripts": {"test": "node test.js"},
 "dependencies": {"express": "4.21.2", "morgan": "1.10.0", "body-parser": "1.20.3"}}
EOF
cat >"$node_app/lib/app.js" <<'EOF'
const express = require('express');
module.exports = () => express().get('/', (req, res) => res.send('hello from express\n'));
EOF
cat >"$node_app/server.js" <<'EOF'
require('./lib/app')().listen(Number(process.env.PORT || 8080), '0.0.0.0');
EOF
cat >"$node_app/test.js" <<'EOF'
require('assert').strictEqual(typeof require('./lib/app')(), 'function');
EOF
cat >"$node_app/app.yaml" <<'EOF'
version: 1
name: node-express
languagepack: nodejs
source:
  repository: .
workflow_config:
  run_cmd: node server.js
  test_cmd: npm test
ports: [8080]
EOF
(cd "$node_app" && npm install --package-lock-only --cache "$node_app/npm-cache" --no-audit --no-fund >/dev/null &&
    npm ci --cache "$node_app/npm-cache" --no-audit --no-fund >/dev/null && rm -rf node_modules)
bench_log "node-express: $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["packages"]) - 1)' "$node_app/package-lock.json") packages in its lockfile"
node_dockerfile="$BENCH_TMP/node.Dockerfile"
cat >"$node_dockerfile" <<'EOF'
FROM badger
USER root
WORKDIR /app
COPY package.json package-lock.json ./
COPY npm-cache ./npm-cache
RUN npm ci --omit=dev --cache ./npm-cache --offline --no-audit --no-fund
COPY . .
RUN rm -rf npm-cache
USER 1000:1000
CMD ["node", "server.js"]
EOF
app_case nodejs "$node_app" nodejs "$node_dockerfile" lib/app.js
