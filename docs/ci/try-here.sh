#!/bin/sh
# Tries the recipes of docs/ci/ on one machine: podman (runc) reproduces the security
# settings each recipe's job runs under, and the job's commands run there with the static
# binary: `solum-build info`, then a build of examples/hello on the shell badger pulled from
# a local docker-registry, its test included, pushed back to it. One line per recipe: the
# level `info` names, whether the build passed, and whether the DU's digest equals one
# built on the bare host (as root, or as the user `tester`).
#
# What stands in for what (podman is not docker, containerd or CRI-O):
#   gitlab-ci.yml, github-actions.yml's job container: root, Docker's default seccomp
#     profile ($DOCKER_SECCOMP, default testdata/seccomp/docker-default.json) and Docker's
#     default capabilities (podman's plus AUDIT_WRITE, MKNOD, NET_RAW);
#   tekton-task.yaml: the same, plus no-new-privileges (allowPrivilegeEscalation: false);
#   kubernetes-job.yaml: uid 1000:1000, every capability dropped, no-new-privileges, the
#     same seccomp profile (RuntimeDefault), the badger image as the container's image and
#     a tmpfs at /app owned by that user (the emptyDir);
#   github-actions.yml's runner job: the host itself, as the user `tester`.
# Needs root (rootful podman), the static binary (scripts/build-static.sh), docker-registry,
# and the `tester` user for the host line.
# Usage: sh docs/ci/try-here.sh
set -eu
cd "$(dirname "$0")/../.."
. scripts/common.sh
static=${SOLUM_STATIC_BIN:-${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/static/solum-build}
[ -x "$static" ] || { echo "no static binary at $static: run sh scripts/build-static.sh" >&2; exit 1; }
profile=$(realpath "${DOCKER_SECCOMP:-testdata/seccomp/docker-default.json}" 2>/dev/null) ||
    { echo "no seccomp profile: set DOCKER_SECCOMP to Docker's default profile (JSON)" >&2; exit 1; }
work=$(mktemp -d /tmp/solum-ci-try.XXXXXX)
chmod 0755 "$work"
cleanup() {
    [ -z "${SOLUM_REGISTRY_PID:-}" ] || kill "$SOLUM_REGISTRY_PID" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
# Root here lacks CAP_SYS_RESOURCE: podman must not raise the open-files limit.
export CONTAINERS_CONF="$work/containers.conf"
printf '[containers]\ndefault_ulimits = ["nofile=20000:20000","nproc=32768:32768"]\n' >"$CONTAINERS_CONF"
export SOURCE_DATE_EPOCH=1700000000

# The registry with the badger and the tool image, as a CI setup would have them.
solum_start_registry "$work/registry"
reg=$SOLUM_REGISTRY
bin=$work/solum-build
cp "$static" "$bin"
store=$work/store
sh scripts/make-base-images.sh --only busybox "$store" >/dev/null
"$bin" --store "$store" badger build badgers/shell >/dev/null 2>&1
"$bin" --store "$store" push badgers/shell "docker://$reg/badgers/shell:1" >/dev/null 2>&1
SOLUM_BUILD_STORE=$store SOLUM_STATIC_BIN=$bin sh scripts/make-tool-image.sh \
    "docker://$reg/tools/solum-build:try" >/dev/null 2>&1
podman pull -q --tls-verify=false "$reg/badgers/shell:1" "$reg/tools/solum-build:try" >/dev/null
# A glibc image for the GitHub job container (GitHub's own actions need glibc).
podman image exists localhost/solum-ci-try-debian:1 ||
    podman import -q --change CMD=/bin/bash "$(solum_base_tarball debian-python3)" \
        localhost/solum-ci-try-debian:1 >/dev/null
# The app outside the checkout, so that no build records a git revision.
cp -a examples/hello "$work/hello"
chmod -R a+rX "$work/hello"

build_args="build /src/app.yaml --badger docker://$reg/badgers/shell:1"

# The level `info` names on its `isolation:` line.
level_of() {
    _line=$(grep -m 1 '^isolation:' "$1" || true)
    if [ -n "$_line" ]; then
        echo "${_line#isolation:}" | sed 's/^ *//'
    else
        echo "(info names none)"
    fi
}

# Prints one result line: RECIPE, the level `info` named, the build's outcome (the build's
# stdout, ending with the digest, is in OUT, its stderr in OUT.err), the digest.
report() {
    _name=$1 _info=$2 _out=$3 _rc=$4
    if [ "$_rc" = 0 ]; then
        _digest=$(tail -n 1 "$_out")
        case $_digest in
            "$root_digest") _same="= the host's as root" ;;
            "$tester_digest") _same="= the host's as tester" ;;
            *) _same="$_digest, unlike the host's" ;;
        esac
        printf '%-24s level: %s | build ok | digest %s\n' "$_name" "$(level_of "$_info")" "$_same"
    else
        printf '%-24s level: %s | build FAILED: %s\n' "$_name" "$(level_of "$_info")" "$(tail -n 1 "$_out.err")"
    fi
}

# host_build NAME [runuser -u USER --]: `info` and the build on the bare host, in a store
# of its own (owned by USER when one is given).
host_build() {
    _name=$1
    shift
    mkdir -p "$work/$_name-store"
    [ $# -eq 0 ] || chown "$3" "$work/$_name-store"
    (
        cd "$work/hello"
        "$@" env HOME="$work/$_name-store" "$bin" --store "$work/$_name-store" info \
            >"$work/$_name.info" 2>&1 || true
        "$@" env HOME="$work/$_name-store" "$bin" --store "$work/$_name-store" build app.yaml \
            --badger "docker://$reg/badgers/shell:1" --push "docker://$reg/ci/$_name:1" \
            >"$work/$_name.out" 2>"$work/$_name.out.err"
    )
}

# The references: the bare host as root, and as `tester` (the GitHub runner job). Their
# digests differ by the build key annotation, which records whether the build was
# rootless; a container build is compared with both.
rc=0
host_build host-root || rc=$?
root_digest=$(tail -n 1 "$work/host-root.out")
[ "$rc" = 0 ] || root_digest="(no host build)"
tester_digest="(no tester build)"
report "bare host, root" "$work/host-root.info" "$work/host-root.out" "$rc"
if id tester >/dev/null 2>&1; then
    rc=0
    host_build github-runner runuser -u tester -- || rc=$?
    [ "$rc" != 0 ] || tester_digest=$(tail -n 1 "$work/github-runner.out")
    report "github runner (tester)" "$work/github-runner.info" "$work/github-runner.out" "$rc"
else
    echo "github runner (tester)   not tried: no user tester (scripts/install-deps.sh makes it)"
fi

# try NAME IMAGE PODMAN_FLAGS…: `info`, then the build, in a container of IMAGE.
try() {
    _name=$1 _image=$2
    shift 2
    set -- podman run --rm --runtime runc --network host "$@" \
        -v "$bin:/tools/solum-build:ro" -v "$work/hello:/src:ro" \
        -e SOURCE_DATE_EPOCH -e SOLUM_BUILD_STORE=/tmp/store -e HOME=/tmp "$_image"
    "$@" /tools/solum-build info >"$work/$_name.info" 2>&1 || true
    _rc=0
    # shellcheck disable=SC2086
    "$@" /tools/solum-build $build_args --push "docker://$reg/ci/$_name:1" \
        >"$work/$_name.out" 2>"$work/$_name.out.err" || _rc=$?
    report "$_name" "$work/$_name.info" "$work/$_name.out" "$_rc"
}

docker_default="--security-opt seccomp=$profile --cap-add AUDIT_WRITE,MKNOD,NET_RAW"
# shellcheck disable=SC2086
try gitlab-docker "$reg/tools/solum-build:try" $docker_default
# shellcheck disable=SC2086
try github-job-container localhost/solum-ci-try-debian:1 $docker_default
# shellcheck disable=SC2086
try tekton-step "$reg/tools/solum-build:try" $docker_default --security-opt no-new-privileges
try kubernetes-job "$reg/badgers/shell:1" --user 1000:1000 --cap-drop=ALL \
    --security-opt no-new-privileges --security-opt "seccomp=$profile" --tmpfs /app:rw,exec,U \
    -e SOLUM_BUILD_ISOLATION=none
