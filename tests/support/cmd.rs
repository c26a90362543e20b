//! The one way the integration tests run a program: [`Cmd`], a builder over
//! [`std::process::Command`] for the real `solum-build` binary (against a temp store, with a
//! fixed `SOURCE_DATE_EPOCH`) or any peer (umoci, skopeo, tar, …), and [`Run`], its output
//! kept for assertions. A peer that cannot be started is a broken setup and panics with the
//! script that installs it; it never counts as a pass.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// The `SOURCE_DATE_EPOCH` every run of the binary gets, so digests are reproducible.
pub const SOURCE_DATE_EPOCH: &str = "1700000000";

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_solum-build")
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A command line being put together; [`Cmd::run`] runs it to the end.
pub struct Cmd {
    command: Command,
    /// What to blame when the program cannot be started.
    missing: String,
}

impl Cmd {
    /// `solum-build --store STORE` with a fixed `SOURCE_DATE_EPOCH`.
    pub fn solum(store: &Path) -> Cmd {
        let mut cmd = Cmd::solum_without_store();
        cmd.command.arg("--store").arg(store);
        cmd
    }

    /// `solum-build` with no `--store` (the client commands, `serve`), with a fixed
    /// `SOURCE_DATE_EPOCH`.
    pub fn solum_without_store() -> Cmd {
        let mut command = Command::new(bin());
        command.env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH);
        Cmd {
            command,
            missing: "the solum-build binary (cargo build)".to_string(),
        }
    }

    /// Any other program, found on `PATH`.
    pub fn program(name: &str) -> Cmd {
        Cmd {
            command: Command::new(name),
            missing: format!("{name}; run scripts/install-deps.sh"),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.command.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Cmd {
        self.command.env(key, value);
        self
    }

    pub fn envs<I, K, V>(mut self, vars: I) -> Cmd
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.command.envs(vars);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.command.current_dir(dir);
        self
    }

    /// The command as built so far, for the rare test that needs a setting the builder
    /// does not offer (a `pre_exec` limit, a pipe of its own).
    pub fn into_command(self) -> Command {
        self.command
    }

    /// Runs to the end and keeps the output.
    pub fn run(mut self) -> Run {
        let output = self.command.output().unwrap_or_else(|e| {
            panic!("cannot run {} ({e})", self.missing);
        });
        Run::from(output)
    }

    /// Runs to the end with `input` on stdin, and keeps the output.
    pub fn run_with_input(mut self, input: &[u8]) -> Run {
        let mut child = self
            .command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} ({e})", self.missing));
        // Written before reading, and the pipe closed, so the program sees the end of it.
        child.stdin.take().unwrap().write_all(input).unwrap();
        Run::from(child.wait_with_output().unwrap())
    }

    /// Starts in the background with both outputs piped.
    pub fn spawn(mut self) -> Child {
        self.command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} ({e})", self.missing))
    }
}

/// One finished run, with its output kept for assertions.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts exit code 0.
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success:\n{}", self.text());
        self
    }

    /// Asserts this exit code.
    pub fn fails_with(self, code: i32) -> Run {
        assert_eq!(self.code, code, "expected exit {code}:\n{}", self.text());
        self
    }

    /// Both outputs, for an assertion message.
    pub fn text(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }

    /// The last line of stdout (a digest, for commands that print one).
    pub fn last_line(&self) -> String {
        self.stdout.lines().last().unwrap_or_default().to_string()
    }
}

/// A temp dir that the `tester` user can reach when the tests run as root.
pub fn temp_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("solum-test-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}
