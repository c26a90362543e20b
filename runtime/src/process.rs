//! The processes inside the sandbox: the init (pid 1 of the sandbox's pid namespace), which
//! waits for its id map, runs the setup, forks the command and reaps every zombie until the
//! command exits; and the command's own preparation before `execve` (signals, fds, limits,
//! `no_new_privs`, credentials). It must not decide mounts or namespaces (see
//! [`crate::setup`]).

use crate::rootfs::{Layout, MountContext, SetupReport};
use crate::setup;
use crate::spec::SandboxSpec;
use crate::syscall::LinuxSyscall;
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Gid, Pid, Uid};
use serde::{Deserialize, Serialize};
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Termination {
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
    /// Killed (with everything in the sandbox) when the timeout passed.
    TimedOut,
    /// Killed (with everything in the sandbox) on the caller's request.
    Cancelled,
}

impl Termination {
    pub fn success(&self) -> bool {
        *self == Termination::Exited(0)
    }
}

/// What the init tells the sandbox's outer process, one JSON line each.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitMessage {
    Ready(SetupReport),
    Failed { stage: String, message: String },
    Finished(Termination),
}

/// Everything the init needs, prepared before the clone.
pub struct InitArgs<'a> {
    pub spec: &'a SandboxSpec,
    pub layout: &'a Layout,
    pub mctx: &'a MountContext,
    /// Closed or written to by the outer process once the id map is in place.
    pub sync: OwnedFd,
    /// Where [`InitMessage`]s go.
    pub report: OwnedFd,
}

fn send(report: &mut std::fs::File, msg: &InitMessage) {
    if let Ok(mut line) = serde_json::to_vec(msg) {
        line.push(b'\n');
        let _ = report.write_all(&line);
    }
}

/// The error and its causes on one line.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        s.push_str(": ");
        s.push_str(&e.to_string());
        cur = e.source();
    }
    s
}

/// The sandbox's init. Runs in the fresh user and pid namespaces right after `clone()`.
pub fn init_main(args: InitArgs<'_>) -> ! {
    // Die with the outer process. Set before anything else; the sync read below closes the
    // race where it died before this call: its end of the pipe is then closed.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    let mut report = std::fs::File::from(args.report);
    let mut sync = std::fs::File::from(args.sync);
    let mut go = [0u8; 1];
    if !matches!(sync.read(&mut go), Ok(1)) {
        // The outer process died or could not write the id map.
        exit_now(1);
    }
    drop(sync);
    let setup_report = match setup::run_setup(&LinuxSyscall, args.spec, args.layout, args.mctx) {
        Ok(r) => r,
        Err(e) => {
            send(
                &mut report,
                &InitMessage::Failed {
                    stage: e.stage().to_string(),
                    message: chain(&e),
                },
            );
            exit_now(1);
        }
    };
    send(&mut report, &InitMessage::Ready(setup_report));
    // SAFETY: the init is single-threaded (a clone of a single-threaded process), so the
    // child may run arbitrary code until exec.
    let child = match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => exec_command(args.spec),
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => {
            send(
                &mut report,
                &InitMessage::Failed {
                    stage: "fork".into(),
                    message: format!("fork of the command failed: {e}"),
                },
            );
            exit_now(1);
        }
    };
    let termination = reap_until(child);
    send(&mut report, &InitMessage::Finished(termination));
    // The init's exit makes the kernel kill every process left in the pid namespace.
    exit_now(0)
}

/// Reaps every child (orphans are re-parented to the init) until `main` has exited.
fn reap_until(main: Pid) -> Termination {
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == main => return Termination::Exited(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == main => {
                return Termination::Signaled(sig as i32)
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return Termination::Exited(255),
        }
    }
}

fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` ends the process without running atexit handlers or unwinding, the
    // only correct way out of a forked child.
    unsafe { libc::_exit(code) }
}

/// Capabilities the command keeps in its user namespace (the usual container set). Above
/// all `CAP_SYS_ADMIN` goes: without it the command cannot unmount or remount what the setup
/// made read-only or masked (`/proc/sys` and friends), nor mount anything else.
pub const KEPT_CAPABILITIES: &[u32] = &[
    0,  // CAP_CHOWN
    1,  // CAP_DAC_OVERRIDE
    3,  // CAP_FOWNER
    4,  // CAP_FSETID
    5,  // CAP_KILL
    6,  // CAP_SETGID
    7,  // CAP_SETUID
    8,  // CAP_SETPCAP
    10, // CAP_NET_BIND_SERVICE
    13, // CAP_NET_RAW
    18, // CAP_SYS_CHROOT
    27, // CAP_MKNOD
    29, // CAP_AUDIT_WRITE
    31, // CAP_SETFCAP
];

/// Drops every other capability from the bounding set and the inheritable set: a root
/// command's `execve` gets its permitted set from both (the inheritable set is added
/// whatever the bounding set says, and some container runtimes fill it), so that is where
/// the command's capabilities end. The ambient set follows the inheritable one down.
fn drop_capabilities(also: &[u32]) -> Result<(), std::io::Error> {
    let kept = |cap: u32| KEPT_CAPABILITIES.contains(&cap) && !also.contains(&cap);
    lower_inheritable(kept)?;
    for cap in 0..64u32 {
        if kept(cap) {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) {
                break; // past the kernel's last capability
            }
            return Err(e);
        }
    }
    Ok(())
}

/// `capget`'s and `capset`'s header (`struct __user_cap_header_struct`), version 3.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

/// One 32-capability half of `capget`'s and `capset`'s data (`struct
/// __user_cap_data_struct`).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Clears from this process's inheritable set every capability `kept` refuses; lowering it
/// needs no privilege.
fn lower_inheritable(kept: impl Fn(u32) -> bool) -> Result<(), std::io::Error> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes two `CapData` for version 3, the array's length.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    for (half, d) in data.iter_mut().enumerate() {
        for bit in 0..32u32 {
            if !kept(half as u32 * 32 + bit) {
                d.inheritable &= !(1 << bit);
            }
        }
    }
    // SAFETY: capset reads two `CapData` for version 3, the array's length.
    if unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Prepares the command's process and execs it; on failure writes to stderr and exits with
/// 127 (not found) or 126 (cannot run), like a shell.
fn exec_command(spec: &SandboxSpec) -> ! {
    exec_command_dropping(spec, &[])
}

/// [`exec_command`], with the capabilities `also` dropped on top of those outside
/// [`KEPT_CAPABILITIES`] (the `chroot` level's, see [`crate::chroot`]).
pub(crate) fn exec_command_dropping(spec: &SandboxSpec, also: &[u32]) -> ! {
    let err = prepare_and_exec(spec, also);
    let _ = writeln!(
        std::io::stderr(),
        "sandbox: cannot run {:?}: {err}",
        spec.command[0]
    );
    exit_now(if err.raw_os_error() == Some(libc::ENOENT) {
        127
    } else {
        126
    })
}

fn prepare_and_exec(spec: &SandboxSpec, also_dropped: &[u32]) -> std::io::Error {
    let io = |e: nix::errno::Errno| std::io::Error::from_raw_os_error(e as i32);
    // Signals: the outer process blocks some for its own waiting and Rust ignores SIGPIPE;
    // the command starts with the defaults.
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    for sig in Signal::iterator() {
        if !matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            // SAFETY: SIG_DFL installs no handler code.
            let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
        }
    }
    let _ = nix::unistd::setsid();
    // stdin is the caller's (`run -i`, passed down as STDIN_FD) or /dev/null of the
    // sandbox; only 0, 1, 2 survive the exec.
    if spec.tty {
        // The terminal is stdin, stdout and stderr, and (in the session setsid just made)
        // the controlling terminal, so that shells do job control and ^C reaches the command.
        for target in [0, 1, 2] {
            // SAFETY: dup2 of a descriptor this process holds onto the standard ones; no
            // Rust object owns them here.
            if unsafe { libc::dup2(crate::spec::STDIN_FD, target) } < 0 {
                return std::io::Error::last_os_error();
            }
        }
        // SAFETY: TIOCSCTTY with an integer argument on fd 0, the terminal.
        if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } < 0 {
            return std::io::Error::last_os_error();
        }
    } else if spec.inherit_stdin {
        // SAFETY: dup2 onto fd 0 of descriptors this process holds; no Rust object owns
        // fd 0 here.
        if unsafe { libc::dup2(crate::spec::STDIN_FD, 0) } < 0 {
            return std::io::Error::last_os_error();
        }
    } else {
        match std::fs::File::open("/dev/null") {
            Ok(null) => {
                let _ = nix::unistd::dup2_stdin(&null);
            }
            Err(e) => return e,
        }
    }
    // SAFETY: close_range with constant arguments; no Rust object owns descriptors >= 3
    // that is used after this point (we exec or _exit).
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    let limits = &spec.limits;
    for (res, val) in [
        (Resource::RLIMIT_NPROC, limits.max_processes),
        (Resource::RLIMIT_FSIZE, limits.max_file_size),
        (Resource::RLIMIT_AS, limits.memory),
        (Resource::RLIMIT_NOFILE, limits.max_open_files),
    ] {
        if let Some(v) = val {
            if let Err(e) = setrlimit(res, v, v) {
                return io(e);
            }
        }
    }
    // SAFETY: prctl with integer arguments only. After this, no exec can gain privileges
    // (setuid/setgid bits and file capabilities are ignored).
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return std::io::Error::last_os_error();
    }
    if let Err(e) = drop_capabilities(also_dropped) {
        return e;
    }
    if let Err(e) = nix::unistd::chdir(&spec.cwd) {
        return io(e);
    }
    // Supplementary groups are dropped where allowed (denied with a single-id map).
    let _ = nix::unistd::setgroups(&[]);
    if let Err(e) = nix::unistd::setresgid(
        Gid::from_raw(spec.gid),
        Gid::from_raw(spec.gid),
        Gid::from_raw(spec.gid),
    ) {
        return io(e);
    }
    if let Err(e) = nix::unistd::setresuid(
        Uid::from_raw(spec.uid),
        Uid::from_raw(spec.uid),
        Uid::from_raw(spec.uid),
    ) {
        return io(e);
    }
    let Ok(argv) = spec
        .command
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return std::io::Error::from_raw_os_error(libc::EINVAL);
    };
    let Ok(envp) = spec
        .env
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return std::io::Error::from_raw_os_error(libc::EINVAL);
    };
    let program = &spec.command[0];
    if program.contains('/') {
        return io(nix::unistd::execve(&argv[0], &argv, &envp).unwrap_err());
    }
    let path = spec
        .env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(crate::spec::DEFAULT_PATH);
    let mut last = std::io::Error::from_raw_os_error(libc::ENOENT);
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let Ok(full) = CString::new(Path::new(dir).join(program).as_os_str().as_encoded_bytes())
        else {
            continue;
        };
        let e = nix::unistd::execve(&full, &argv, &envp).unwrap_err();
        if e != nix::errno::Errno::ENOENT {
            last = io(e);
        }
    }
    last
}
