//! The caller's side of the sandbox: spawns `EXE __sandbox`, sends the spec, streams the
//! command's stdout and stderr back as raw chunks and timestamped lines, enforces a last-resort
//! deadline, forwards cancellation and returns the outcome. It may run in a threaded process
//! (it only spawns); it must not create namespaces itself.

use crate::entry::Report;
use crate::idmap::IdMapKind;
use crate::isolation::Isolation;
use crate::process::Termination;
use crate::spec::{SandboxSpec, SpecError};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Which output stream a chunk or line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Output of the sandboxed command, as it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputEvent {
    /// Bytes exactly as read (for logs kept byte for byte).
    Bytes {
        stream: Stream,
        data: Vec<u8>,
        /// Since the sandbox was started.
        elapsed: Duration,
    },
    /// One complete line (without its `\n`; invalid UTF-8 replaced), or the last partial
    /// line at the end of the stream.
    Line {
        stream: Stream,
        line: String,
        at: SystemTime,
        elapsed: Duration,
    },
}

/// How a sandbox run ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    pub termination: Termination,
    /// From spawn to the report.
    pub elapsed: Duration,
    /// Paths inside the sandbox the setup had to create in the image (prepared-directory
    /// root, or a symlink in an overlay image pointing to a missing file); leave them out of
    /// the layer.
    pub created_mount_points: Vec<PathBuf>,
    pub id_map: IdMapKind,
    /// `/proc` was a read-only bind of the host's (the host masks its own `/proc`).
    pub proc_fallback: bool,
    /// Steps of the setup the host refused and the sandbox did without (see
    /// [`crate::rootfs::SetupReport::degradations`]), and how a `chroot` run differs.
    pub degradations: Vec<String>,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.termination.success()
    }
}

/// Cancels a running sandbox from another thread: everything in it is killed.
#[derive(Debug, Clone, Default)]
pub struct CancelHandle(Arc<AtomicBool>);

impl CancelHandle {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// The flag itself, for a signal handler to set (e.g. `signal_hook::flag::register`).
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}

/// Running a sandbox failed (as opposed to the command failing, which is an [`Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("invalid sandbox spec")]
    Spec(#[from] SpecError),
    #[error("cannot start the sandbox process {}", exe.display())]
    Spawn {
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sandbox I/O failed while {what}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("sandbox setup failed at {stage}: {message}")]
    Setup { stage: String, message: String },
    #[error("the sandbox process ended without a report ({status})")]
    NoReport { status: String },
    #[error("no sandbox level works here: {why}")]
    NoLevel { why: String },
    #[error("the `none` level runs in place, without this sandbox")]
    NotASandboxLevel,
}

/// How long the output is read after the sandbox process ended (see [`run_at_level`]).
const OUTPUT_AFTER_THE_END: Duration = Duration::from_millis(500);

/// Time the caller waits past the spec's timeout before killing the sandbox process itself
/// (it normally enforces the timeout on its own).
const GRACE: Duration = Duration::from_secs(5);

/// Runs `spec` in a sandbox started as `exe __sandbox` (`exe` calls
/// [`crate::enter_sandbox_if_requested`] first thing in `main`).
pub fn run(
    spec: &SandboxSpec,
    exe: &Path,
    events: impl FnMut(OutputEvent),
) -> Result<Outcome, SandboxError> {
    run_with_cancel(spec, exe, &CancelHandle::new(), events)
}

/// [`run`], stopped early when `cancel` is triggered.
///
/// The spec's isolation level is resolved first: `auto` tries `userns` (once per process)
/// and, when the host refuses a user namespace (the clone or the id map, before anything
/// of the command exists), takes `chroot` where it works; what it chose holds for the
/// rest of the process.
pub fn run_with_cancel(
    spec: &SandboxSpec,
    exe: &Path,
    cancel: &CancelHandle,
    mut events: impl FnMut(OutputEvent),
) -> Result<Outcome, SandboxError> {
    spec.validate()?;
    let at = |level: Isolation| SandboxSpec {
        isolation: level,
        ..spec.clone()
    };
    match spec.isolation {
        Isolation::Auto => {}
        Isolation::None => return Err(SandboxError::NotASandboxLevel),
        _ => return run_at_level(spec, exe, cancel, &mut events),
    }
    if let Some(level) = Isolation::auto_resolved() {
        return run_at_level(&at(level), exe, cancel, &mut events);
    }
    // A command that reads our stdin must start once: the level is probed beforehand.
    if spec.inherit_stdin || spec.tty {
        let level = crate::levels::probe(exe)
            .chosen
            .filter(|l| *l != Isolation::None)
            .ok_or_else(|| crate::levels::no_level(exe))?;
        Isolation::remember_auto(level);
        return run_at_level(&at(level), exe, cancel, &mut events);
    }
    match run_at_level(&at(Isolation::Userns), exe, cancel, &mut events) {
        Err(SandboxError::Setup { stage, .. }) if crate::levels::refuses_userns(&stage) => {
            if crate::levels::probe_chroot().is_err() {
                return Err(crate::levels::no_level(exe));
            }
            Isolation::remember_auto(Isolation::Chroot);
            run_at_level(&at(Isolation::Chroot), exe, cancel, &mut events)
        }
        result => {
            if result.is_ok() {
                Isolation::remember_auto(Isolation::Userns);
            }
            result
        }
    }
}

/// Runs `spec` at its own, resolved level (`userns` or `chroot`).
fn run_at_level(
    spec: &SandboxSpec,
    exe: &Path,
    cancel: &CancelHandle,
    mut events: impl FnMut(OutputEvent),
) -> Result<Outcome, SandboxError> {
    if spec.isolation == Isolation::Chroot {
        // A root command could ptrace this process (same uid) and leave its tree that way.
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    }
    let io = |what| move |source| SandboxError::Io { what, source };
    let (mut control, theirs) = UnixStream::pair().map_err(io("creating the control socket"))?;
    let mut cmd = Command::new(exe);
    cmd.arg(crate::SANDBOX_ARG)
        .env_clear()
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(tmp) = std::env::var_os("TMPDIR") {
        cmd.env("TMPDIR", tmp);
    }
    let parent = std::process::id() as i32;
    // `run -i`: the command reads a pipe that a thread of ours fills from our stdin, never
    // our stdin itself. Our file description (a file, a folder, the terminal) in the
    // sandbox could be reopened through /proc/self/fd/0 with the caller's rights: written
    // to, or walked out of. The read end is put at STDIN_FD in the child below.
    let mut terminal = if spec.tty {
        Some(crate::terminal::Terminal::open().map_err(io("opening a terminal"))?)
    } else {
        None
    };
    let stdin_pipe = if spec.inherit_stdin && !spec.tty {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| SandboxError::Io {
                what: "making the stdin pipe",
                source: e.into(),
            })?;
        std::thread::spawn(move || {
            // Ends at our stdin's end, or when the command closed its end (EPIPE).
            let mut write = std::fs::File::from(write);
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut write);
        });
        Some(read)
    } else {
        None
    };
    let stdin_raw = stdin_pipe
        .as_ref()
        .map(std::os::fd::AsRawFd::as_raw_fd)
        .or_else(|| {
            terminal
                .as_ref()
                .and_then(crate::terminal::Terminal::slave_raw)
        });
    // SAFETY: the closure only calls async-signal-safe functions (dup2, prctl, getppid).
    unsafe {
        cmd.pre_exec(move || {
            // dup2 clears close-on-exec: STDIN_FD reaches the sandbox process.
            if let Some(raw) = stdin_raw {
                if libc::dup2(raw, crate::spec::STDIN_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // The sandbox process gets SIGTERM when the thread that spawned it dies (it then
            // kills everything in the sandbox). Callers keep that thread alive while `run`
            // blocks. If the caller died before this line, give up.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) != 0
                || libc::getppid() != parent
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|source| SandboxError::Spawn {
        exe: exe.to_path_buf(),
        source,
    })?;
    drop(cmd);
    drop(stdin_pipe);
    if let Some(terminal) = terminal.as_mut() {
        terminal
            .start(spec.inherit_stdin)
            .map_err(io("relaying the terminal"))?;
    }
    let json = serde_json::to_vec(spec).map_err(|e| SandboxError::Io {
        what: "encoding the spec",
        source: e.into(),
    })?;
    // A sandbox that died early closes its end: the error shows as a missing report below.
    let _ = control.write_all(&json);
    let _ = control.shutdown(std::net::Shutdown::Write);

    let mut out = child.stdout.take().map(OwnedFd::from);
    let mut err = child.stderr.take().map(OwnedFd::from);
    let mut ctl = Some(control);
    let mut lines = [Vec::new(), Vec::new()];
    let mut report = Vec::new();
    let hard_deadline = spec.limits.timeout.map(|t| started + t + GRACE);
    let pid = Pid::from_raw(child.id() as i32);
    let mut cancel_sent = false;
    let mut buf = vec![0u8; 64 * 1024];
    let mut sandbox_ended: Option<Instant> = None;
    while out.is_some() || err.is_some() || ctl.is_some() {
        // The sandbox process is gone but something still holds the output open: at the
        // `chroot` level a command may kill the sandbox process and leave a process it can
        // no longer reap. What was written until shortly after is kept; waiting for the
        // end of the output would wait for that process.
        if sandbox_ended.is_none() && matches!(child.try_wait(), Ok(Some(_))) {
            sandbox_ended = Some(Instant::now());
        }
        if sandbox_ended.is_some_and(|t| t.elapsed() >= OUTPUT_AFTER_THE_END) {
            for w in [0, 1] {
                flush_partial(w, &mut lines[w], started, &mut events);
            }
            break;
        }
        if cancel.is_cancelled() && !cancel_sent {
            let _ = kill(pid, Signal::SIGTERM);
            cancel_sent = true;
        }
        if hard_deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = kill(pid, Signal::SIGKILL);
        }
        let mut fds = Vec::new();
        let mut which = Vec::new();
        if let Some(f) = &out {
            fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
            which.push(0);
        }
        if let Some(f) = &err {
            fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
            which.push(1);
        }
        if let Some(c) = &ctl {
            fds.push(PollFd::new(c.as_fd(), PollFlags::POLLIN));
            which.push(2);
        }
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                return Err(SandboxError::Io {
                    what: "polling the sandbox output",
                    source: e.into(),
                })
            }
        }
        let ready: Vec<usize> = fds
            .iter()
            .zip(&which)
            .filter(|(f, _)| f.revents().is_some_and(|r| !r.is_empty()))
            .map(|(_, w)| *w)
            .collect();
        drop(fds);
        for w in ready {
            let n = match w {
                0 => read_some(out.as_ref(), &mut buf),
                1 => read_some(err.as_ref(), &mut buf),
                _ => ctl.as_mut().map_or(0, |c| c.read(&mut buf).unwrap_or(0)),
            };
            if n == 0 {
                match w {
                    0 => out = None,
                    1 => err = None,
                    _ => ctl = None,
                }
                if w < 2 {
                    flush_partial(w, &mut lines[w], started, &mut events);
                }
                continue;
            }
            if w == 2 {
                report.extend_from_slice(&buf[..n]);
                continue;
            }
            let stream = if w == 0 {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
            let elapsed = started.elapsed();
            events(OutputEvent::Bytes {
                stream,
                data: buf[..n].to_vec(),
                elapsed,
            });
            let pending = &mut lines[w];
            pending.extend_from_slice(&buf[..n]);
            while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=i).collect();
                events(OutputEvent::Line {
                    stream,
                    line: String::from_utf8_lossy(&line[..i]).into_owned(),
                    at: SystemTime::now(),
                    elapsed,
                });
            }
        }
    }
    let status = child
        .wait()
        .map_err(io("waiting for the sandbox process"))?;
    if let Some(terminal) = terminal.as_mut() {
        terminal.finish();
    }
    drop(terminal);
    let elapsed = started.elapsed();
    match serde_json::from_slice::<Report>(&report) {
        Ok(Report::Finished {
            termination,
            setup,
            id_map,
        }) => Ok(Outcome {
            termination,
            elapsed,
            created_mount_points: setup.created_mount_points,
            id_map,
            proc_fallback: setup.proc_fallback,
            degradations: setup.degradations,
        }),
        Ok(Report::Failed { stage, message }) => Err(SandboxError::Setup { stage, message }),
        Err(_) => Err(SandboxError::NoReport {
            status: status.to_string(),
        }),
    }
}

fn read_some(fd: Option<&OwnedFd>, buf: &mut [u8]) -> usize {
    let Some(fd) = fd else { return 0 };
    loop {
        match nix::unistd::read(fd, buf) {
            Ok(n) => return n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return 0,
        }
    }
}

fn flush_partial(
    w: usize,
    pending: &mut Vec<u8>,
    started: Instant,
    events: &mut impl FnMut(OutputEvent),
) {
    if pending.is_empty() {
        return;
    }
    let stream = if w == 0 {
        Stream::Stdout
    } else {
        Stream::Stderr
    };
    events(OutputEvent::Line {
        stream,
        line: String::from_utf8_lossy(pending).into_owned(),
        at: SystemTime::now(),
        elapsed: started.elapsed(),
    });
    pending.clear();
}
