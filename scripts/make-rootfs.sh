#!/bin/sh
# Makes a base root filesystem in DIR (which must not exist or be empty):
#   busybox         Debian's static busybox, one symlink per applet, /etc/passwd and group,
#                   /tmp (1777), /root, /app; a usable shell image of about 2 MB.
#   debian          debootstrap --variant=minbase bookworm from this machine's mirror.
#   debian-python3  the same with python3, python3-pip and python3-venv; the standard
#                   library's .pyc are rewritten hash-based (see hash_based_pyc).
#   debian-nodejs   the same with Debian's nodejs and npm (the nodejs badger; npm by apt).
#   debian-golang   the same with Debian's golang-go, Go 1.19 (the go badger).
#   debian-ruby     the same with ruby, bundler, rack and minitest (webrick comes with ruby).
#   debian-php      the same with php-cli, php-mbstring and composer.
#   debian-java     the same with OpenJDK 17 (headless), Maven, the Maven plugins a
#                   `mvn package` runs (compiler, resources, surefire, jar) and JUnit 4,
#                   whose Debian repository /usr/share/maven-repo is the offline repository.
# Usage: make-rootfs.sh KIND DIR (KIND: one of the above)
# busybox works as any user; the debian kinds need root (debootstrap chroots and creates
# device nodes). Apt caches and lists are removed so the trees stay small. This script only
# builds a directory: importing it into a store is make-base-images.sh's job.
set -eu
. "$(dirname "$0")/common.sh"

usage() { echo "usage: $0 KIND DIR (KIND: busybox, debian, debian-LANGUAGE as listed above)" >&2; exit 2; }
[ $# -eq 2 ] || usage
kind=$1
dir=$2
if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
    echo "$dir exists and is not empty" >&2
    exit 2
fi

make_busybox() {
    bb=$(command -v busybox || true)
    [ -n "$bb" ] || { echo "busybox not found: apt-get install busybox-static" >&2; exit 1; }
    # A dynamically linked busybox would not run inside a rootfs without its libc.
    if ! file_is_static "$bb"; then
        echo "$bb is not statically linked: apt-get install busybox-static" >&2
        exit 1
    fi
    mkdir -p "$dir"
    for d in bin sbin usr/bin usr/sbin etc root home app tmp var/tmp proc sys dev run; do
        mkdir -p "$dir/$d"
    done
    chmod 1777 "$dir/tmp" "$dir/var/tmp"
    chmod 0700 "$dir/root"
    cp "$bb" "$dir/bin/busybox"
    chmod 0755 "$dir/bin/busybox"
    # One absolute symlink per applet, at the path busybox itself reports (bin/sh,
    # usr/bin/awk, ...), so that the image behaves like a stock busybox image.
    "$bb" --list-full | while IFS= read -r applet; do
        case $applet in "" | bin/busybox) continue ;; esac
        [ -e "$dir/$applet" ] || [ -L "$dir/$applet" ] || ln -s /bin/busybox "$dir/$applet"
    done
    cat >"$dir/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat >"$dir/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
tty:x:5:
nogroup:x:65534:
EOF
    echo solum >"$dir/etc/hostname"
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$dir/etc/hosts"
    # Empty targets, so that the sandbox can bind the host's files over them with --network host.
    : >"$dir/etc/resolv.conf"
    chmod 0644 "$dir/etc/passwd" "$dir/etc/group" "$dir/etc/hostname" "$dir/etc/hosts" "$dir/etc/resolv.conf"
}

# True when the ELF file has no program interpreter (statically linked). Reads the header
# with od, because `file` is not installed everywhere.
file_is_static() {
    ! od -An -c -N 4096 "$1" | tr -d ' \n' | grep -q 'ld-linux'
}

# Removes what an installed Debian tree keeps only for apt's or dpkg's convenience; none of
# it is needed to run the image, and apt-get update recreates the lists.
clean_debian() {
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/apt/archives/partial/* \
        "$dir"/var/cache/apt/*.bin "$dir"/var/lib/apt/lists/* \
        "$dir"/var/cache/debconf/*-old "$dir"/var/lib/dpkg/*-old \
        "$dir"/var/log/apt/* "$dir"/var/log/dpkg.log "$dir"/var/log/bootstrap.log \
        "$dir"/var/log/alternatives.log "$dir"/tmp/* "$dir"/var/tmp/*
    mkdir -p "$dir/var/lib/apt/lists/partial"
    # Device nodes in /dev: the sandbox mounts its own /dev, and an unprivileged import or
    # unpack cannot create them, so an image that carried them would get a different digest
    # when imported rootless. Base images of other distributions ship /dev empty as well.
    find "$dir/dev" -mindepth 1 -delete
    # debootstrap copied the host's resolv.conf and hostname; an image must not carry them.
    : >"$dir/etc/resolv.conf"
    echo solum >"$dir/etc/hostname"
}

# Installs packages with apt inside the new tree ($dir), between debootstrap and the
# clean-up: debootstrap's --include does not follow virtual packages (Provides:), which
# npm's dependencies name. apt downloads into the shared .deb cache, bound over the tree's
# archives folder for the time of the install and always unbound after.
apt_install() {
    archives="$dir/var/cache/apt/archives"
    mkdir -p "$debs/partial"
    # Unbound on any exit: a caller that removes the tree (make-base-images.sh does after a
    # failure) would otherwise remove the shared cache through the mount.
    trap 'umount "$archives" 2>/dev/null || true' EXIT
    trap 'exit 130' INT TERM
    mount --bind "$debs" "$archives"
    status=0
    { chroot "$dir" apt-get update \
        && chroot "$dir" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends "$@"; } >"$log" 2>&1 || status=$?
    umount "$archives"
    trap - EXIT
    if [ "$status" != 0 ]; then
        tail -n 30 "$log" >&2
        rm -f "$log"
        exit 1
    fi
}

# make_debian INCLUDE [APT_PACKAGES]: debootstrap with INCLUDE (comma-separated), then
# APT_PACKAGES (comma-separated) with apt in the tree when given.
make_debian() {
    include=$1
    apt_packages=${2:-}
    [ "$(id -u)" = 0 ] || { echo "make-rootfs.sh $kind needs root (debootstrap)" >&2; exit 1; }
    command -v debootstrap >/dev/null || { echo "debootstrap not found: apt-get install debootstrap" >&2; exit 1; }
    mirror=$(solum_debian_mirror)
    set -- --variant=minbase
    [ -z "$include" ] || set -- "$@" "--include=$include"
    # A .deb cache shared by the debian kinds: the second debootstrap downloads only what
    # the first did not need.
    debs="$(solum_base_cache)/debs"
    mkdir -p "$debs"
    set -- "$@" "--cache-dir=$debs"
    echo "debootstrap $* bookworm $dir $mirror" >&2
    # Its progress (hundreds of lines) goes to a log that is shown only when it fails.
    log=$(mktemp "${TMPDIR:-/tmp}/debootstrap.XXXXXX")
    if ! debootstrap "$@" bookworm "$dir" "$mirror" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        [ -f "$dir/debootstrap/debootstrap.log" ] && tail -n 30 "$dir/debootstrap/debootstrap.log" >&2
        rm -f "$log"
        exit 1
    fi
    if [ -n "$apt_packages" ]; then
        echo "apt-get install $apt_packages (in $dir)" >&2
        # shellcheck disable=SC2046
        apt_install $(echo "$apt_packages" | tr ',' ' ')
    fi
    rm -f "$log"
    clean_debian
}

# Debian's .pyc (written by py3compile when the packages were installed) record the mtime
# of their .py, which is the package's build time. Images are imported with their mtimes
# clamped to a fixed epoch ($SOLUM_BASE_EPOCH), older than many packages: the clamped .py no
# longer match their .pyc, so every Python run in a build would write the whole standard
# library's .pyc again (megabytes in each app layer, different at each build). Rewritten
# with `unchecked-hash`, a .pyc names no mtime and stays valid under any clamp; dpkg
# rewrites them when a package is upgraded. Only the .pyc the packages made are rewritten.
hash_based_pyc() {
    # A fixed hash seed: the order of set constants in a .pyc follows string hashing.
    chroot "$dir" env PYTHONHASHSEED=0 /usr/bin/python3 - <<'EOF'
import pathlib, py_compile, sys
tag = sys.implementation.cache_tag
count = 0
for top in ("/usr/lib/python3.11", "/usr/lib/python3/dist-packages"):
    for pyc in sorted(pathlib.Path(top).rglob("__pycache__/*." + tag + ".pyc")):
        source = pyc.parent.parent / (pyc.name.split(".")[0] + ".py")
        if source.is_file():
            py_compile.compile(str(source), cfile=str(pyc), doraise=True,
                               invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            count += 1
print(f"hash-based .pyc: {count} rewritten", file=sys.stderr)
EOF
}

case $kind in
    busybox) make_busybox ;;
    debian) make_debian "" ;;
    debian-python3) make_debian python3,python3-pip,python3-venv && hash_based_pyc ;;
    debian-nodejs) make_debian nodejs,ca-certificates npm ;;
    debian-golang) make_debian golang-go,ca-certificates ;;
    debian-ruby) make_debian ruby,ruby-bundler,ruby-rack,ruby-minitest,ca-certificates ;;
    debian-php) make_debian php-cli,php-mbstring,composer,ca-certificates ;;
    debian-java) make_debian openjdk-17-jdk-headless,maven,libmaven-compiler-plugin-java,libmaven-resources-plugin-java,libsurefire-java,libmaven-jar-plugin-java,junit4,ca-certificates-java ;;
    *) usage ;;
esac
