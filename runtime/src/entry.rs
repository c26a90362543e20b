//! The sandbox's outer process: the `solum-build __sandbox` re-exec. It reads the spec from
//! fd 0, prepares the staging directory, clones the init into new user and pid namespaces,
//! writes the id map from outside, starts the user-mode network's slirp4netns
//! ([`crate::usermode`]), enforces the timeout and cancellation, and reports how it went on
//! fd 0. It stays in the host's namespaces and must not mount anything itself.

use crate::idmap::{self, HostIds, IdMapKind};
use crate::isolation::Isolation;
use crate::namespaces::{self, Moment};
use crate::process::{self, chain, InitArgs, InitMessage, Termination};
use crate::rootfs::{Layout, MountContext, SetupReport};
use crate::setup;
use crate::spec::{RootFs, SandboxSpec};
use crate::syscall::LinuxSyscall;
use crate::usermode::UserNetPlan;
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// Prefix of the staging directories (see [`crate::private`]): `solum-sandbox.<pid>.<random>`,
/// in [`crate::private::fast_temp_dir`].
pub const STAGING_PREFIX: &str = "solum-sandbox.";

/// What the outer process reports to the caller, as one JSON document on fd 0.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Report {
    Finished {
        termination: Termination,
        setup: SetupReport,
        id_map: IdMapKind,
    },
    Failed {
        stage: String,
        message: String,
    },
}

fn failed(stage: &str, message: impl Into<String>) -> Report {
    Report::Failed {
        stage: stage.into(),
        message: message.into(),
    }
}

/// The entry point of the re-executed process. Never returns.
pub fn sandbox_main() -> ! {
    // Every descriptor inherited beyond 0 (the caller's socket), 1, 2 and the caller's
    // stdin (STDIN_FD, kept until the spec says whether the command reads it) is closed.
    // SAFETY: close_range with constant arguments; nothing in this fresh process owns
    // descriptors >= 4 yet.
    unsafe { libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32) };
    // SAFETY: fd 0 is the caller's socket, owned by this process for its whole life;
    // ManuallyDrop keeps the File from closing it.
    let mut control = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(0) });
    let report = run_monitor(&mut control);
    if let Ok(json) = serde_json::to_vec(&report) {
        let _ = control.write_all(&json);
    }
    std::process::exit(0)
}

fn run_monitor(control: &mut std::fs::File) -> Report {
    // The caller's death (PR_SET_PDEATHSIG) and cancellation arrive as SIGTERM; they and
    // SIGCHLD are blocked now and taken synchronously in the wait loop below.
    let mut waited = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        waited.add(s);
    }
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&waited), None);
    let mut json = Vec::new();
    if let Err(e) = control.read_to_end(&mut json) {
        return failed("spec", format!("cannot read the spec: {e}"));
    }
    let spec: Result<SandboxSpec, _> = serde_json::from_slice(&json);
    if spec
        .as_ref()
        .is_ok_and(|spec| spec.inherit_stdin || spec.tty)
    {
        // Kept for the command (process.rs puts it at fd 0), but not for what this process
        // execs itself (newuidmap, newgidmap).
        // SAFETY: fcntl on a descriptor number no Rust object of this process owns.
        unsafe { libc::fcntl(crate::spec::STDIN_FD, libc::F_SETFD, libc::FD_CLOEXEC) };
    } else {
        // SAFETY: closing a descriptor number no Rust object of this process owns.
        unsafe { libc::close(crate::spec::STDIN_FD) };
    }
    let spec = match spec {
        Ok(s) => s,
        Err(e) => return failed("spec", format!("invalid spec: {e}")),
    };
    if let Err(e) = spec.validate() {
        return failed("spec", chain(&e));
    }
    let started = Instant::now();
    match spec.isolation {
        Isolation::Userns => {}
        Isolation::Chroot => return crate::chroot::run_chrooted(&spec, &waited, started),
        other => {
            return failed(
                "isolation",
                format!("the sandbox runs at the userns or chroot level, not {other}"),
            )
        }
    }
    crate::private::sweep(STAGING_PREFIX);
    let staging =
        match crate::private::make_dir_in(&crate::private::fast_temp_dir(), STAGING_PREFIX) {
            Ok(dir) => dir,
            Err(e) => {
                return failed(
                    "staging",
                    format!("cannot create a staging directory in the temp dir: {e}"),
                )
            }
        };
    let report = run_in_staging(&spec, &staging, &waited, started);
    let _ = std::fs::remove_dir(&staging);
    // Overlay leaves a mode-000 `work` in the work folder of an overlaid bind: emptied, so
    // nothing in the caller's folders is closed to the caller. The root's work folder is
    // emptied too: its overlay was `volatile` (see `rootfs::UpperLife`), and the kernel
    // refuses the next mount on it (the next step of a build) while its mark is there.
    let root_work = match &spec.rootfs {
        RootFs::Overlay { work, .. } => Some(work),
        RootFs::Dir(_) => None,
    };
    let bind_works = spec.mounts.iter().filter_map(|m| m.work.as_ref());
    for work in root_work.into_iter().chain(bind_works) {
        if let Ok(entries) = std::fs::read_dir(work) {
            for entry in entries.flatten() {
                let _ = crate::private::remove(&entry.path());
            }
        }
    }
    report
}

fn pipe() -> Result<(OwnedFd, OwnedFd), Report> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| failed("pipe", format!("pipe2 failed: {e}")))
}

fn run_in_staging(spec: &SandboxSpec, staging: &Path, waited: &SigSet, started: Instant) -> Report {
    let plan = idmap::plan(&HostIds::current(), spec.id_map, spec.uid, spec.gid);
    if !plan.maps_uid(spec.uid) || !plan.maps_gid(spec.gid) {
        return failed(
            "id_map",
            format!(
                "user {}:{} does not exist in the sandbox's id map",
                spec.uid, spec.gid
            ),
        );
    }
    let layout = Layout {
        staging: staging.to_path_buf(),
    };
    let pid_max = spec
        .limits
        .max_processes
        .filter(|_| setup::kernel_has_pid_max_per_namespace())
        // The kernel's floor for pid_max is 301 (pids below 300 are reserved after wrap).
        .map(|n| (n + 1).max(301));
    let mctx = MountContext {
        tty_gid_mapped: plan.maps_gid(5) && plan.kind != IdMapKind::Single,
        pid_max,
    };
    let (sync_r, sync_w) = match pipe() {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (report_r, report_w) = match pipe() {
        Ok(p) => p,
        Err(r) => return r,
    };
    // Before the clone: a host that cannot give the user-mode network says so before
    // anything of the sandbox exists.
    let user_net_plan = match UserNetPlan::for_network(&spec.network) {
        Ok(plan) => plan,
        Err(e) => return failed("network", chain(&e)),
    };
    let flags = namespaces::flags_at(&spec.network, Moment::Clone);
    // SAFETY: a raw clone without a new stack behaves like fork(): the child continues on a
    // copy of this stack. This process is single-threaded (a fresh exec that started no
    // threads), so the child may run arbitrary code.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::c_long::from(flags.bits()) | libc::c_long::from(libc::SIGCHLD),
            0 as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    if pid < 0 {
        let e = std::io::Error::last_os_error();
        return failed("clone", user_namespace_hint(e));
    }
    if pid == 0 {
        drop(sync_w);
        drop(report_r);
        process::init_main(InitArgs {
            spec,
            layout: &layout,
            mctx: &mctx,
            sync: sync_r,
            report: report_w,
        });
    }
    let init = Pid::from_raw(pid as i32);
    drop(sync_r);
    drop(report_w);
    if let Err(e) = plan.apply(&LinuxSyscall, init.as_raw()) {
        let _ = kill(init, Signal::SIGKILL);
        let _ = waitpid(init, None);
        return failed("id_map", chain(&e));
    }
    // After the id map (slirp4netns joins the sandbox's user namespace, where only the map
    // makes it root), before the release (the command finds its network up and its ports
    // published). Kept until the init is reaped: dropping it stops slirp4netns.
    let user_net = match user_net_plan.map(|p| p.start(init.as_raw())).transpose() {
        Ok(net) => net,
        Err(e) => {
            let _ = kill(init, Signal::SIGKILL);
            let _ = waitpid(init, None);
            return failed("network", chain(&e));
        }
    };
    let mut sync_w = std::fs::File::from(sync_w);
    let _ = sync_w.write_all(b"1");
    drop(sync_w);

    let deadline = spec.limits.timeout.map(|t| started + t);
    let forced = wait_init(init, waited, deadline);
    drop(user_net);
    read_report(report_r, forced, plan.kind)
}

/// Waits for the init; on timeout or a termination request kills it (the kernel then kills
/// the rest of the pid namespace) and says why.
fn wait_init(init: Pid, waited: &SigSet, deadline: Option<Instant>) -> Option<Termination> {
    let kill_init = || {
        let _ = kill(init, Signal::SIGKILL);
    };
    match wait_or_kill(init, waited, deadline, kill_init) {
        Waited::Ended(_) => None,
        Waited::Killed(why) => Some(why),
    }
}

/// How a waited-for process ended: on its own (its wait status, `None` when it could not
/// be waited for), or killed by [`wait_or_kill`], and why.
pub(crate) enum Waited {
    Ended(Option<WaitStatus>),
    Killed(Termination),
}

/// Waits for `pid`; when the deadline passes or a termination request arrives, calls
/// `kill_it` and reaps `pid` (for the init, that returns once its pid namespace is gone).
pub(crate) fn wait_or_kill(
    pid: Pid,
    waited: &SigSet,
    deadline: Option<Instant>,
    kill_it: impl Fn(),
) -> Waited {
    loop {
        match waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(status) => return Waited::Ended(Some(status)),
            Err(_) => return Waited::Ended(None),
        }
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let why = if remaining.is_some_and(|r| r.is_zero()) {
            Termination::TimedOut
        } else {
            match next_signal(waited, remaining) {
                // A child changed state, the timeout passed or a signal interrupted: look again.
                Some(Signal::SIGCHLD) | None => continue,
                Some(_) => Termination::Cancelled,
            }
        };
        kill_it();
        let _ = waitpid(pid, None);
        return Waited::Killed(why);
    }
}

/// The next blocked signal of `set`, or `None` when `timeout` passes first.
fn next_signal(set: &SigSet, timeout: Option<Duration>) -> Option<Signal> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(t.subsec_nanos()),
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), std::ptr::from_ref::<libc::timespec>);
    // SAFETY: `set` is a valid sigset_t, the info pointer may be null, and `ts_ptr` is null or
    // points at `ts`, alive for the call.
    let sig = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), ts_ptr) };
    if sig < 0 {
        return None;
    }
    Signal::try_from(sig).ok()
}

fn read_report(report_r: OwnedFd, forced: Option<Termination>, id_map: IdMapKind) -> Report {
    let reader = std::io::BufReader::new(std::fs::File::from(report_r));
    let mut setup = None;
    let mut finished = None;
    for line in reader.lines().map_while(Result::ok) {
        match serde_json::from_str::<InitMessage>(&line) {
            Ok(InitMessage::Ready(r)) => setup = Some(r),
            Ok(InitMessage::Finished(t)) => finished = Some(t),
            Ok(InitMessage::Failed { stage, message }) => return Report::Failed { stage, message },
            Err(_) => {}
        }
    }
    let termination = match (forced, finished) {
        (Some(f), _) => f,
        (None, Some(t)) => t,
        (None, None) => return failed("init", "the sandbox's init died without a report"),
    };
    Report::Finished {
        termination,
        setup: setup.unwrap_or_default(),
        id_map,
    }
}

/// A clone error, with the fix when user namespaces are off.
fn user_namespace_hint(e: std::io::Error) -> String {
    let mut msg = format!("clone of the sandbox's init failed: {e}");
    if matches!(
        e.raw_os_error(),
        Some(libc::EPERM | libc::ENOSPC | libc::EACCES)
    ) {
        if let Some(fix) = crate::hostinfo::userns_fix() {
            msg.push_str("; ");
            msg.push_str(&fix);
        }
    }
    msg
}
