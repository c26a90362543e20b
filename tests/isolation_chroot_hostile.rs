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

/// At the degraded `userns` level (podman's default profile refuses a fresh `/proc`, so
/// `/proc` is a read-only bind of the container's), the command sees the tool's processes
/// but can neither enter their root or working directory, nor read their environment, nor
/// signal them (its pid namespace cannot name them).
#[test]
fn the_containers_proc_at_the_degraded_userns_level_opens_no_way_to_the_tool() {
    if !is_root() {
        return;
    }
    let run = run_hostile(
        Confinement::PodmanDefault,
        "",
        "userns",
        "for p in /proc/[0-9]*; do head -c 11 $p/cmdline 2>/dev/null | grep -q solum-build \
           || continue; \
           echo seen-${p#/proc/}; \
           ls $p/root/ >/dev/null 2>&1 && echo ROOT-OPEN; \
           ls $p/cwd/ >/dev/null 2>&1 && echo CWD-OPEN; \
           for f in $p/fd/*; do [ -e $f ] && echo FD-OPEN; done; \
           head -c1 $p/environ >/dev/null 2>&1 && echo ENVIRON-OPEN; \
           kill -0 ${p#/proc/} 2>/dev/null && echo SIGNAL-SENT; \
         done; echo x > /proc/sys/kernel/hostname 2>/dev/null && echo PROC-WRITABLE; echo probed",
    );
    let out = run.text();
    assert!(out.contains("probed") && out.contains("seen-"), "{out}");
    assert!(!out.contains("-OPEN"), "{out}");
    assert!(
        !out.contains("SIGNAL-SENT") && !out.contains("PROC-WRITABLE"),
        "{out}"
    );
}

/// A fork bomb at the `chroot` level (root's `RLIMIT_NPROC` does not hold, the
/// container's pid limit does) ends at the timeout with every process it made, and the
/// tool runs the next command in the same container.
#[test]
fn a_fork_bomb_at_the_chroot_level_ends_at_the_timeout() {
    if !is_root() {
        return;
    }
    let dir = temp_dir();
    let store = busybox_store_bind(dir.path());
    let binds = [Bind {
        host: &store,
        inner: "/store",
        read_only: false,
    }];
    let started = std::time::Instant::now();
    let run = run_in_container(
        dir.path(),
        Confinement::DockerSeccomp,
        &binds,
        "solum-build --store /store run --isolation chroot --timeout 3 base/busybox \
         -- sh -c 'f() { f | f & }; f; sleep 100'; echo \"== bomb $?\"; \
         solum-build --store /store run --isolation chroot base/busybox -- echo alive; \
         left=0; for p in /proc/[0-9]*; do tr \"\\0\" \" \" < $p/cmdline 2>/dev/null | \
         grep -q \"^sh -c f()\" && left=$((left+1)); done; echo \"== left $left\"",
    );
    let out = run.text();
    assert!(started.elapsed().as_secs() < 120, "{out}");
    assert!(out.contains("alive"), "{out}");
    assert!(out.contains("== left 0"), "{out}");
    assert!(!out.contains("== bomb 0"), "{out}");
}

/// A command that kills the tool's sandbox process (root signals whom it likes in the
/// container) and leaves a process holding its output fails the run, promptly: the tool
/// does not wait for that process. That the process outlives the run is what the level
/// cannot prevent.
#[test]
fn a_command_that_kills_its_sandbox_process_fails_the_run_without_waiting() {
    if !is_root() {
        return;
    }
    let run = run_hostile(
        Confinement::DockerSeccomp,
        "timeout 60",
        "chroot",
        "setsid sh -c \"sleep 3031\" & kill -9 $PPID; sleep 1",
    );
    let out = run.text();
    assert!(out.contains("== exit "), "{out}");
    assert!(
        !out.contains("== exit 0") && !out.contains("== exit 124"),
        "{out}"
    );
    assert!(out.contains("without a report"), "{out}");
}

/// Builds at the `chroot` level: one hard-links (or moves) the device nodes the tool made
/// in `/dev` (it cannot make its own: `CAP_MKNOD` is gone) and fails, naming the node,
/// instead of putting a device in the layer; the other tries `mknod`, writes through a
/// symlink into `/dev` and leaves a daemon behind: its DU holds no device node and none of
/// the tool's `/dev` entries, and nothing writes into the tree after the build.
#[test]
fn no_device_node_reaches_the_layer_at_the_chroot_level() {
    if !is_root() {
        return;
    }
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, &["shell"]);
    for (name, script) in [
        ("linked", "ln /dev/null /app/null-link\n"),
        ("moved", "mv /dev/urandom /urandom-moved\n"),
        (
            "devices",
            "mknod /app/disk b 8 0 || true\n\
             ln -s /dev /app/devlink && echo x > /app/devlink/extra\n\
             setsid sh -c 'sleep 2; echo late > /app/late' &\n",
        ),
    ] {
        let src = dir.path().join(name);
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("build"), script).unwrap();
        std::fs::write(
            dir.path().join(format!("{name}.yaml")),
            format!("version: 1\nname: {name}\nbadger: badgers/shell\nsource: {{repository: ./{name}}}\n"),
        )
        .unwrap();
    }
    let binds = [
        Bind {
            host: &store,
            inner: "/store",
            read_only: false,
        },
        Bind {
            host: dir.path(),
            inner: "/work",
            read_only: true,
        },
    ];
    let run = run_in_container(
        dir.path(),
        Confinement::DockerSeccomp,
        &binds,
        "for app in linked moved; do solum-build --store /store build --no-cache \
         /work/$app.yaml; echo \"== $app $?\"; done; \
         solum-build --store /store build --no-cache /work/devices.yaml && \
         solum-build --store /store unpack devices /out && sleep 3 && \
         echo \"== devices $(find /out -type c -o -type b | wc -l)\" && \
         ls /out/dev /out/app; echo \"== done\"",
    );
    let out = run.text();
    for (app, node) in [("linked", "null"), ("moved", "urandom")] {
        assert!(!out.contains(&format!("== {app} 0")), "{out}");
        assert!(
            out.contains(&format!("/dev/{node}, a device node made for the command")),
            "{out}"
        );
    }
    assert!(out.contains("== done"), "{out}");
    assert!(out.contains("== devices 0"), "{out}");
    assert!(out.contains("extra"), "{out}");
    assert!(!out.contains("late\n"), "{out}");
}
