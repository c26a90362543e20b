#!/bin/sh
# Installs what only the benchmarks need (run as root; idempotent), on top of
# scripts/install-deps.sh: GNU time for peak RSS, umoci (unpack peer), buildah (sandbox
# peer, optional), bubblewrap (run-start peer), pigz (a reference line in gzip.sh), jq (reads hyperfine's JSON) and
# hyperfine when the configured archive has it. CI's test run does not need any of these.
set -eu
cd "$(dirname "$0")/../.."
sh scripts/install-deps.sh
packages="time umoci buildah bubblewrap pigz jq"
# hyperfine is in bookworm; on an archive without it the harness times with bash instead.
if apt-cache show hyperfine >/dev/null 2>&1; then packages="$packages hyperfine"; fi
missing=""
for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    apt-get update
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
fi
