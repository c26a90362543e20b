//! What a step run in place (`--isolation none`) leaves running is ended with it. Killing
//! the step's process group is not enough: a build script may `setsid` (or double-fork
//! into a new session) and keep writing after the second snapshot — into the files the
//! layer is read from, into the store after the commit, into the next step. So before
//! the first step this process becomes a *child subreaper* (`PR_SET_CHILD_SUBREAPER`): every
//! process a step orphans, in whatever session or group, is reparented to it rather than
//! to the container's init. After the step, its children (read from `/proc`) are killed
//! and reaped until none is left; the children of a killed one come to this process in
//! turn, so the sweep repeats until a pass finds none.

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

/// How long the sweep goes on killing: a step's processes cannot fork once killed, and
/// their number is bounded by the process limit, so this is only a backstop.
const SWEEP_LIMIT: Duration = Duration::from_secs(10);

/// Makes this process the reaper of every process a step orphans (see the module
/// documentation); call before a step starts. Needs no privilege.
pub fn adopt_orphans() -> nix::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
}

/// Whether [`adopt_orphans`] was called: only then are a step's survivors swept (a
/// process that is no reaper, such as a test harness running steps beside other work, has
/// children of its own that are none of a step's).
pub fn adopting() -> bool {
    nix::sys::prctl::get_child_subreaper().unwrap_or(false)
}

/// Kills and reaps every child of this process but `keep` (children this process started
/// for itself and waits for elsewhere), repeating while killing them brings new ones;
/// returns how many were killed. In place, a step's processes are the only other children
/// of the build.
pub fn kill_survivors(keep: &[Pid]) -> usize {
    let started = Instant::now();
    let mut killed = 0;
    loop {
        let children: Vec<Pid> = children_of(nix::unistd::getpid())
            .into_iter()
            .filter(|pid| !keep.contains(pid))
            .collect();
        if children.is_empty() || started.elapsed() > SWEEP_LIMIT {
            return killed;
        }
        for &pid in &children {
            if kill(pid, Signal::SIGKILL).is_ok() {
                killed += 1;
            }
        }
        for pid in children {
            // Gone already (reaped elsewhere) is as good as reaped.
            let _ = waitpid(pid, Some(WaitPidFlag::__WALL));
        }
    }
}

/// The processes whose parent is `parent`, from `/proc/PID/stat` (its fourth field, after
/// the command name in parentheses, which may itself hold spaces and parentheses).
fn children_of(parent: Pid) -> Vec<Pid> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some(end) = stat.iter().rposition(|b| *b == b')') else {
                return false;
            };
            let ppid = stat[end + 1..]
                .split(|b| *b == b' ')
                .filter(|field| !field.is_empty())
                .nth(1)
                .and_then(|field| std::str::from_utf8(field).ok()?.parse::<i32>().ok());
            ppid == Some(parent.as_raw())
        })
        .map(Pid::from_raw)
        .collect()
}
