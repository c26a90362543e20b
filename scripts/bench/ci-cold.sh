#!/usr/bin/env bash
# Cold CI job: a build job that starts in a fresh container with an empty store, pulls the
# badger from the registry, builds and tests the app, and pushes the image.
#   ours:   podman run … CI_IMAGE solum-build --store /tmp/store build app.yaml
#             --badger docker://REG/badgers/shell:1 --push docker://REG/bench/ours:1
#   peer:   podman run … CI_IMAGE sh -c 'buildah bud --isolation chroot --storage-driver vfs
#             -f Dockerfile -t REG/bench/buildah:1 . && buildah push …'
# Both in the same container (`--runtime runc`, the host's network to reach the registry
# on loopback, `$BENCH_CI_PODMAN_FLAGS` for another security profile; default: root with
# podman's default profile) of the same image: Debian bookworm (the cached debian-python3
# rootfs) with buildah installed, made once and kept in podman's storage as CI_IMAGE. Our
# binary is bind-mounted: the static one of scripts/build-static.sh when it is built, else
# the harness's. The app is examples/hello on the shell badger; the Dockerfile does what
# the shell badger does (source at /app, its `build` and `test.sh` run as root, the same
# config). Every `--rm` container starts empty, and before each run the registry's
# `bench/` repositories are removed, so each push uploads its blobs again, for both.
# Target: ours <= 0.5x buildah's median.
# Needs root (podman rootful, the first image build runs apt-get in a container).
. "$(dirname "$0")/lib.sh"

bench_require ci-cold podman runc docker-registry curl python3
if ! bench_is_root; then
    echo "SUMMARY ci-cold: SKIP (needs root: podman runs rootful here)"
    exit 0
fi

runs=$BENCH_RUNS
bin=$(bench_solum)
static=${SOLUM_STATIC_BIN:-${CARGO_TARGET_DIR:-$SOLUM_REPO/target}/x86_64-unknown-linux-gnu/static/solum-build}
if [[ -x "$static" ]]; then
    container_bin=$static
else
    bench_log "no static binary at $static (sh scripts/build-static.sh): the container gets $bin"
    container_bin=$bin
fi
tmp=$(bench_tmp)
# The image's ulimits: root here lacks CAP_SYS_RESOURCE (see the peer-tools notes).
export CONTAINERS_CONF="$tmp/containers.conf"
printf '[containers]\ndefault_ulimits = ["nofile=20000:20000","nproc=32768:32768"]\n' >"$CONTAINERS_CONF"

# The CI job's image, made once: Debian with buildah, as a CI runner image would have it.
ci_image=localhost/solum-bench-ci:1
if ! podman image exists "$ci_image"; then
    tarball=$(bench_base_tarball debian-python3)
    bench_log "making $ci_image (podman import, apt-get install buildah; once)"
    podman import --change CMD=/bin/bash "$tarball" localhost/solum-bench-ci-base:1 >/dev/null
    podman rm -f solum-bench-ci-prep >/dev/null 2>&1 || true
    podman run --name solum-bench-ci-prep --runtime runc --network host \
        localhost/solum-bench-ci-base:1 sh -c 'apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                buildah ca-certificates >/dev/null' >&2
    podman commit -q solum-bench-ci-prep "$ci_image" >/dev/null
    podman rm solum-bench-ci-prep >/dev/null
    podman rmi localhost/solum-bench-ci-base:1 >/dev/null
fi

# The registry, on a free loopback port, stopped when the benchmark exits.
solum_start_registry "$tmp/registry" || bench_die "no registry"
reg=$SOLUM_REGISTRY
trap 'kill "$SOLUM_REGISTRY_PID" 2>/dev/null || true; bench_cleanup' EXIT

# The badger in the registry, where both jobs pull it from.
bench_ensure_base busybox
if ! "$bin" --store "$BENCH_STORE" inspect badgers/shell >/dev/null 2>&1; then
    (cd "$SOLUM_REPO" && "$bin" --store "$BENCH_STORE" badger build badgers/shell) >&2
fi
"$bin" --store "$BENCH_STORE" push badgers/shell "docker://$reg/badgers/shell:1" >/dev/null 2>&1 ||
    bench_die "cannot push badgers/shell to $reg"

# The app: the sample app with its app file, and the Dockerfile that builds the same.
app=$tmp/app
cp -a "$SOLUM_REPO/examples/hello/." "$app/"
cat >"$app/Dockerfile" <<EOF
FROM $reg/badgers/shell:1
USER 0:0
COPY src/ /app/
WORKDIR /app
RUN ./build && ./test.sh
ENV GREETING=Hello PORT=8080
EXPOSE 8080
USER 1000:1000
CMD ["./run.sh"]
EOF

# shellcheck disable=SC2206
flags=(${BENCH_CI_PODMAN_FLAGS:-})
in_job=(podman run --rm --runtime runc --network host "${flags[@]}" -v "$app:/src:ro")
ours_cmd=("${in_job[@]}" -v "$container_bin:/usr/local/bin/solum-build:ro" "$ci_image"
    solum-build --store /tmp/store build /src/app.yaml
    --badger "docker://$reg/badgers/shell:1" --push "docker://$reg/bench/ours:1")
peer_cmd=("${in_job[@]}" "$ci_image" sh -c
    "buildah bud --isolation chroot --storage-driver vfs --tls-verify=false -f /src/Dockerfile \
        -t $reg/bench/buildah:1 /src &&
     buildah push --storage-driver vfs --tls-verify=false $reg/bench/buildah:1")
forget_pushes="rm -rf '$tmp/registry/storage/docker/registry/v2/repositories/bench'"

bench_log "ours: ${ours_cmd[*]}"
bench_log "peer: ${peer_cmd[*]}"
# One untimed run of each: both must work before anything is timed. Where one side cannot
# work in this container (ours before a level other than userns exists; buildah under
# Docker's default profile, which refuses its unshare), the other is timed alone and the
# summary says which failed and why.
eval "$forget_pushes"
peer_ok=true ours_ok=true
"${peer_cmd[@]}" >/dev/null 2>"$tmp/peer.err" || peer_ok=false
"${ours_cmd[@]}" >/dev/null 2>"$tmp/ours.err" || ours_ok=false
if ! $peer_ok && ! $ours_ok; then
    tail -n 5 "$tmp/peer.err" "$tmp/ours.err" >&2
    bench_die "both jobs failed in the container"
fi
if ! $ours_ok || ! $peer_ok; then
    if $ours_ok; then
        failed=buildah alone=ours cmd=("${ours_cmd[@]}") err=$tmp/peer.err
    else
        failed=ours alone=buildah cmd=("${peer_cmd[@]}") err=$tmp/ours.err
    fi
    bench_log "$failed failed in the container:"
    tail -n 5 "$err" >&2
    ms=$(bench_time_ms "$runs" "$forget_pushes" "${cmd[@]}")
    echo "ci cold: $failed FAILED, $alone $ms ms"
    echo "SUMMARY ci-cold: $failed FAILED in the container ($(grep -v '^time=' "$err" | tail -n 1)), $alone $ms ms (target ours <= 0.5x buildah): MISS"
    exit 1
fi
bench_log "$runs runs each ($BENCH_TOOL)"
pair=$(bench_pair_ms "$runs" "$forget_pushes" ours_cmd peer_cmd)
read -r ours peer <<<"$pair"
bench_compare "ci cold" "$ours" "$peer" buildah
share=$(bench_share "$ours" "$peer")
echo "SUMMARY ci-cold: ours $ours ms, buildah $peer ms, ours/buildah $share (target ours <= 0.5x buildah): $(bench_at_most "$share" 0.5)"
