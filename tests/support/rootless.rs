//! Re-running a whole test binary as the unprivileged user `tester`, so every path an
//! integration test takes as root is taken rootless too. One mechanism for both crates:
//! `runtime/tests/common` includes this file by path.
//!
//! The rule for a missing `tester` user: on CI (`CI=true`) the tests fail, because a
//! rootless run that silently did not happen is a hole in the coverage; anywhere else the
//! re-run is skipped with the reason written to stderr (past the test harness's capture),
//! so a developer without the user can still run the root half. `scripts/install-deps.sh`
//! and `runtime/tests/setup-host.sh` make the user.
//!
//! This module uses nothing but `std` and `nix`, so that the runtime crate can share it.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Set in the environment of the re-run as `tester`, so it does not re-run itself.
pub const NESTED: &str = "SOLUM_TEST_NESTED";

/// The unprivileged user of the rootless re-run.
pub const TESTER: &str = "tester";

/// How to re-run this test binary as `tester`.
pub struct TesterRerun {
    /// Programs besides the test binary itself that the run starts (the binary under test,
    /// a probe): `tester` must be able to reach them.
    programs: Vec<PathBuf>,
    test_threads: u32,
    include_ignored: bool,
}

impl TesterRerun {
    pub fn new() -> TesterRerun {
        TesterRerun {
            programs: Vec::new(),
            test_threads: 2,
            include_ignored: false,
        }
    }

    /// A program the tests start, made reachable for `tester`.
    pub fn program(mut self, path: impl Into<PathBuf>) -> TesterRerun {
        self.programs.push(path.into());
        self
    }

    pub fn test_threads(mut self, threads: u32) -> TesterRerun {
        self.test_threads = threads;
        self
    }

    /// Also runs the tests marked `#[ignore]`.
    pub fn include_ignored(mut self) -> TesterRerun {
        self.include_ignored = true;
        self
    }

    /// When run as root and not already nested, runs this whole test binary again as
    /// `tester`, asserts it passed and returns its output. `None` when there was nothing to
    /// do: not root, already the re-run, or (off CI) no `tester` user.
    pub fn run(self) -> Option<String> {
        if !nix::unistd::geteuid().is_root() || std::env::var_os(NESTED).is_some() {
            return None;
        }
        let Some(tester) = nix::unistd::User::from_name(TESTER).ok().flatten() else {
            let reason = format!(
                "no user `{TESTER}` (run scripts/install-deps.sh or runtime/tests/setup-host.sh)"
            );
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{reason}: on CI the rootless re-run must happen"
            );
            let _ = writeln!(
                std::io::stderr(),
                "skipped the re-run as {TESTER}: {reason}"
            );
            return None;
        };
        let me = std::env::current_exe().unwrap();
        for program in std::iter::once(&me).chain(&self.programs) {
            make_reachable(program);
        }
        // Peers such as skopeo look for credentials under $XDG_RUNTIME_DIR, which runuser
        // does not set: give the user one of its own.
        let runtime_dir = PathBuf::from(format!("/tmp/solum-test-runtime-{}", tester.uid));
        std::fs::create_dir_all(&runtime_dir).unwrap();
        nix::unistd::chown(&runtime_dir, Some(tester.uid), Some(tester.gid)).unwrap();
        std::fs::set_permissions(&runtime_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut command = Command::new("runuser");
        command
            .args([
                "-u",
                TESTER,
                "--",
                "env",
                &format!("{NESTED}=1"),
                "HOME=/tmp",
            ])
            .arg(format!("XDG_RUNTIME_DIR={}", runtime_dir.display()))
            .arg(&me)
            .args(["--test-threads", &self.test_threads.to_string()]);
        if self.include_ignored {
            command.arg("--include-ignored");
        }
        let out = command.output().expect("runuser runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "as {TESTER}:\n{text}");
        println!("{text}");
        Some(text)
    }
}

impl Default for TesterRerun {
    fn default() -> TesterRerun {
        TesterRerun::new()
    }
}

/// Gives others read and search permission on every folder above `path` (cargo's target
/// folder is often private to root).
fn make_reachable(path: &Path) {
    for ancestor in path.ancestors().skip(1) {
        let mode = std::fs::metadata(ancestor).unwrap().permissions().mode();
        if mode & 0o005 != 0o005 {
            std::fs::set_permissions(ancestor, std::fs::Permissions::from_mode(mode | 0o005))
                .unwrap();
        }
    }
}
