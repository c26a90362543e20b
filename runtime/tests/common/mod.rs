//! Helpers shared by the runtime crate's end-to-end tests: the busybox root filesystem made
//! from the host's static busybox, overlays over it, running a spec through the
//! `solum-sandbox-probe` binary, and re-running a whole test binary as the unprivileged user
//! `tester` (see `tests/setup-host.sh`) by the mechanism the `solum-build` integration tests
//! use, included from there.
#![allow(dead_code)]

#[path = "../../../tests/support/rootless.rs"]
pub mod rootless;

use runtime::{OutputEvent, RootFs, SandboxSpec, Stream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

pub const PROBE: &str = env!("CARGO_BIN_EXE_solum-sandbox-probe");

pub fn busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// A busybox root filesystem shared by all tests of this process (read-only for them: tests
/// that write use it as an overlay lower).
pub fn rootfs() -> &'static Path {
    static ROOT: OnceLock<tempfile::TempDir> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("solum-rt-rootfs")
            .tempdir()
            .unwrap();
        let r = dir.path();
        std::fs::set_permissions(r, std::fs::Permissions::from_mode(0o755)).unwrap();
        for d in ["bin", "etc", "root"] {
            std::fs::create_dir(r.join(d)).unwrap();
        }
        let bb = busybox().expect("busybox-static is installed (apt-get install busybox-static)");
        std::fs::copy(&bb, r.join("bin/busybox")).unwrap();
        let list = std::process::Command::new(&bb)
            .arg("--list")
            .output()
            .unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                std::os::unix::fs::symlink("busybox", r.join("bin").join(applet)).unwrap();
            }
        }
        std::fs::write(
            r.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(r.join("etc/group"), "root:x:0:\nuser:x:1000:\n").unwrap();
        std::fs::create_dir(r.join("tmp")).unwrap();
        std::fs::set_permissions(r.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
        dir
    })
    .path()
}

/// An overlay over the busybox root with a fresh upper dir.
pub struct Overlay {
    pub dir: tempfile::TempDir,
}

impl Overlay {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("solum-rt-ovl")
            .tempdir()
            .unwrap();
        std::fs::create_dir(dir.path().join("upper")).unwrap();
        std::fs::create_dir(dir.path().join("work")).unwrap();
        Overlay { dir }
    }

    pub fn upper(&self) -> PathBuf {
        self.dir.path().join("upper")
    }

    pub fn rootfs(&self) -> RootFs {
        RootFs::Overlay {
            lowers: vec![rootfs().to_path_buf()],
            upper: self.upper(),
            work: self.dir.path().join("work"),
        }
    }
}

pub fn sh(rootfs: RootFs, script: &str) -> SandboxSpec {
    let mut spec = SandboxSpec::new(rootfs, vec!["/bin/sh".into(), "-c".into(), script.into()]);
    spec.limits.timeout = Some(Duration::from_secs(30));
    spec
}

pub struct Ran {
    pub outcome: runtime::Outcome,
    pub stdout: String,
    pub stderr: String,
    pub events: Vec<OutputEvent>,
}

pub fn run(spec: &SandboxSpec) -> Ran {
    let mut events = Vec::new();
    let outcome = runtime::run(spec, Path::new(PROBE), |e| events.push(e))
        .unwrap_or_else(|e| panic!("sandbox failed: {}", runtime::process::chain(&e)));
    let text = |s: Stream| {
        events
            .iter()
            .filter_map(|e| match e {
                OutputEvent::Bytes { stream, data, .. } if *stream == s => {
                    Some(String::from_utf8_lossy(data).into_owned())
                }
                _ => None,
            })
            .collect::<String>()
    };
    Ran {
        stdout: text(Stream::Stdout),
        stderr: text(Stream::Stderr),
        outcome,
        events,
    }
}

pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Host processes whose command line contains `marker`.
pub fn host_processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(marker) && !cmd.contains("solum-sandbox-probe") {
                found.push(format!("{}: {cmd}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

/// A sleep duration unique to this test process and `n`, to find its processes on the host
/// (the root run and the `tester` run go on at the same time).
pub fn marker(n: u32) -> String {
    format!("{}{:02}{}", 7, n, std::process::id())
}

pub fn host_mounts() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap()
}

/// A private copy of the busybox root, for a test to plant symlinks in: `DIR/root`.
pub fn root_copy() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("solum-rt-copy")
        .tempdir()
        .unwrap();
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(rootfs())
        .arg(dir.path().join("root"))
        .status()
        .unwrap();
    assert!(st.success());
    // Other tests run on the shared root as a prepared directory, which adds mount points.
    for d in ["dev", "proc", "sys"] {
        let _ = std::fs::remove_dir(dir.path().join("root").join(d));
    }
    dir
}

pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// When run as root (and not nested), runs this whole test binary again as `tester` and
/// asserts it passes; the rule for a missing user is the one of the `solum-build` tests.
pub fn rerun_as_tester() {
    rootless::TesterRerun::new().program(PROBE).run();
}
