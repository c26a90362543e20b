#!/bin/sh
# GET status p99 of `solum-build serve` at 200 requests/s while two builds run.
# Usage: scripts/bench/serve.sh [debug|release|profiling]   (default: release)
# Needs: busybox-static, git. Builds the binary and examples/serve_bench with cargo.
set -eu
profile=${1:-release}
flag=""; [ "$profile" != debug ] && flag="--profile $profile"
cd "$(dirname "$0")/../.."
cargo build -j 1 $flag --bin solum-build --example serve_bench
target=${CARGO_TARGET_DIR:-target}/$profile
bin=$target/solum-build
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT

# A busybox base and the shell badger in the server's store.
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp" "$work/rootfs/app"
cp /bin/busybox "$work/rootfs/bin/"
for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$work/rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/rootfs/etc/passwd"
"$bin" --store "$work/data/store" -q import "$work/rootfs" --tag base/busybox
"$bin" --store "$work/data/store" -q badger build badgers/shell

# An app whose two revisions each build for 20 s.
git init -q -b main "$work/src"
for n in 1 2; do
    printf 'sleep 20; echo %s > /app/built\n' "$n" > "$work/src/build"
    git -C "$work/src" add build
    git -C "$work/src" -c user.name=b -c user.email=b@example.org commit -qm "rev $n"
    eval "rev$n=\$(git -C \"$work/src\" rev-parse HEAD)"
done
printf 'version: 1\nname: bench\nbadger: badgers/shell\nsource:\n  repository: %s\n' "$work/src" > "$work/app.yaml"

echo bench-token > "$work/token"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --listen "127.0.0.1:$port" --data "$work/data" --token-file "$work/token" --workers 2 \
    2>"$work/serve.log" &
server=$!
export SOLUM_BUILD_SERVER="http://127.0.0.1:$port" SOLUM_BUILD_TOKEN=bench-token
until curl -sf "$SOLUM_BUILD_SERVER/v1/health" >/dev/null; do sleep 0.1; done
"$bin" app create "$work/app.yaml" >/dev/null
wf=$("$bin" workflow start bench --actions build --revision "$rev1")
"$bin" workflow start bench --actions build --revision "$rev2" >/dev/null
sleep 2
echo "states at start: $("$bin" workflow list bench | cut -f1,2 | tr '\n' ' ')"
"$target/examples/serve_bench" "$SOLUM_BUILD_SERVER/v1/apps/bench/workflows/$wf" bench-token 200 10 8
echo "states at end:   $("$bin" workflow list bench | cut -f1,2 | tr '\n' ' ')"
