//! Hostile commands at the `chroot` level, run for real inside `podman run --runtime runc`
//! with Docker's default seccomp profile as root (where `auto` picks `chroot`), and at the
//! degraded `userns` level under podman's default profile. Each command tries a way out of
//! its tree and prints what it got; the test asserts the way was closed. Needs root (podman
//! as root); the rootless re-run has nothing to check.

mod support;

use std::path::Path;
use support::container::{run_in_container, store_copy, Bind, Confinement};
use support::*;

/// A store with the busybox base image, bound writable at `/store`.
fn busybox_store_bind(dir: &Path) -> std::path::PathBuf {
    let store = dir.join("store");
    busybox_store(dir, &store, &[]);
    store_copy(dir, &store, "store-in-container")
}

/// `solum-build run base/busybox -- sh -c COMMAND` inside the container, the tool started
/// by `launcher` (empty, or a `setpriv` prefix); returns the container's output.
fn run_hostile(
    confinement: Confinement,
    launcher: &str,
    isolation: &str,
    command: &str,
) -> support::cmd::Run {
    let dir = temp_dir();
    let store = busybox_store_bind(dir.path());
    let binds = [Bind {
        host: &store,
        inner: "/store",
        read_only: false,
    }];
    let quoted = command.replace('\'', "'\\''");
    run_in_container(
        dir.path(),
        confinement,
        &binds,
        &format!(
            "{launcher} solum-build --store /store run --isolation {isolation} base/busybox \
             -- sh -c '{quoted}'; echo \"== exit $?\""
        ),
    )
}

/// A container runtime that hands its processes inheritable capabilities (Docker before
/// 20.10.14, containerd before 1.6.3 did) must not give the chrooted command back what the
/// level drops: a root `execve` adds the inheritable set to the permitted one, whatever
/// the bounding set says. With `CAP_SYS_CHROOT` back a second chroot climbs out; with
/// `CAP_MKNOD` a node of the host's disk can be made.
#[test]
fn inheritable_capabilities_do_not_return_chroot_or_mknod_to_the_command() {
    if !is_root() {
        return;
    }
    let run = run_hostile(
        Confinement::DockerSeccomp,
        "setpriv --inh-caps +sys_chroot,+mknod --",
        "chroot",
        "if chroot / true 2>/dev/null; then echo CHROOT-ALLOWED; else echo chroot-refused; fi; \
         if mknod /tmp/disk b 8 0 2>/dev/null; then echo MKNOD-ALLOWED; else echo mknod-refused; fi",
    );
    let out = run.text();
    assert!(out.contains("chroot-refused"), "{out}");
    assert!(out.contains("mknod-refused"), "{out}");
    assert!(!out.contains("-ALLOWED"), "{out}");
    assert!(out.contains("== exit 0"), "{out}");
}

/// No descriptor of the tool reaches the chrooted command (an inherited directory
/// descriptor is a way out with `fchdir`), and `..` from the tree's root stays in it.
#[test]
fn no_descriptor_of_the_tool_reaches_the_chrooted_command() {
    if !is_root() {
        return;
    }
    let run = run_hostile(
        Confinement::DockerSeccomp,
        "",
        "chroot",
        "for i in $(seq 3 1023); do (: <&$i) 2>/dev/null && echo open-fd-$i; done; \
         cd /../../.. && ls -a / | tr \"\\n\" \" \"; echo; echo probed",
    );
    let out = run.text();
    assert!(out.contains("probed"), "{out}");
    assert!(!out.contains("open-fd-"), "{out}");
    assert!(
        !out.contains(" usr "),
        "the container's root is not seen: {out}"
    );
}
