//! Which isolation level works here, and why a stronger one does not: the probes behind
//! `auto` and `solum-build info`. Levels are tried strongest first:
//! 1. **userns**: a real sandbox is started on an empty prepared directory (so every step a
//!    build's sandbox takes is tried, degradations included) with a command that does not
//!    exist; it works when the setup finished. A refusal is explained by what refused it:
//!    a sysctl, the container's seccomp profile, or a capability the container dropped.
//! 2. **chroot**: root, with `CAP_SYS_CHROOT` and `CAP_SETPCAP` (to narrow the command's
//!    capabilities), and a `chroot(2)` into an empty directory in a throwaway child works.
//! 3. **none**: always the fallback. The probe cannot know whether this container's root
//!    filesystem is the badger; it runs in place and the container is the boundary.
//!
//! Probing changes nothing on the host but a private scratch folder it removes again.

use crate::isolation::Isolation;
use crate::parent::SandboxError;
use crate::spec::{Network, RootFs, SandboxSpec};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// One level and what the probe found.
#[derive(Debug, Clone, Serialize)]
pub struct LevelProbe {
    pub level: Isolation,
    pub works: bool,
    /// Why it does not work (which syscall, capability or sysctl refused it), or, for
    /// `none`, what it means.
    pub reason: Option<String>,
    /// Steps the host refused that the level does without (see
    /// [`crate::rootfs::SetupReport::degradations`]).
    pub degradations: Vec<String>,
}

/// What every level does here, strongest first, and the one `auto` picks.
#[derive(Debug, Clone, Serialize)]
pub struct LevelsReport {
    pub chosen: Option<Isolation>,
    pub levels: Vec<LevelProbe>,
    /// What the `chroot` level cannot prevent.
    pub chroot_cannot_prevent: Vec<&'static str>,
}

impl LevelsReport {
    /// The probe of `level`.
    pub fn level(&self, level: Isolation) -> Option<&LevelProbe> {
        self.levels.iter().find(|p| p.level == level)
    }
}

/// The capabilities named in reasons, by number.
const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;
const CAP_SETPCAP: u32 = 8;
const CAP_SYS_CHROOT: u32 = 18;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_SETFCAP: u32 = 31;

/// This process's effective capabilities (`CapEff` of `/proc/self/status`).
fn effective_capabilities() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("CapEff:"))?;
            u64::from_str_radix(line.split_whitespace().nth(1)?, 16).ok()
        })
        .unwrap_or(0)
}

fn has_capability(cap: u32) -> bool {
    effective_capabilities() & (1u64 << cap) != 0
}

fn capability_names(caps: &[(u32, &'static str)]) -> Vec<&'static str> {
    caps.iter()
        .filter(|(cap, _)| !has_capability(*cap))
        .map(|(_, name)| *name)
        .collect()
}

/// Whether a sandbox that failed at `stage` failed because this host refuses the user
/// namespace itself (nothing of the command existed yet, so another level may run it).
pub fn refuses_userns(stage: &str) -> bool {
    matches!(stage, "clone" | "id_map")
}

/// Probes every level (see the module doc).
pub fn probe(exe: &Path) -> LevelsReport {
    let userns = probe_userns(exe);
    let chroot = match probe_chroot() {
        Ok(()) => LevelProbe {
            level: Isolation::Chroot,
            works: true,
            reason: None,
            degradations: Vec::new(),
        },
        Err(reason) => LevelProbe {
            level: Isolation::Chroot,
            works: false,
            reason: Some(reason),
            degradations: Vec::new(),
        },
    };
    let none = LevelProbe {
        level: Isolation::None,
        works: true,
        reason: Some(
            "the fallback: runs in place, the container is the boundary (the probe cannot \
             know whether this container's root filesystem is the badger)"
                .into(),
        ),
        degradations: Vec::new(),
    };
    let levels = vec![userns, chroot, none];
    LevelsReport {
        chosen: levels.iter().find(|p| p.works).map(|p| p.level),
        levels,
        chroot_cannot_prevent: crate::chroot::CANNOT_PREVENT.to_vec(),
    }
}

/// The error for a host where neither `userns` nor `chroot` works, with both reasons.
pub fn no_level(exe: &Path) -> SandboxError {
    let report = probe(exe);
    let why = |level| {
        report
            .level(level)
            .and_then(|p| p.reason.clone())
            .unwrap_or_else(|| "it works now".into())
    };
    SandboxError::NoLevel {
        why: format!(
            "userns: {}; chroot: {}; only `--isolation none` is left (it runs in place, the \
             container is the boundary)",
            why(Isolation::Userns),
            why(Isolation::Chroot)
        ),
    }
}

/// Starts a real sandbox on an empty directory (see the module doc).
fn probe_userns(exe: &Path) -> LevelProbe {
    let mut probe = LevelProbe {
        level: Isolation::Userns,
        works: false,
        reason: None,
        degradations: Vec::new(),
    };
    let dir = match crate::private::make_dir("solum-level-probe.") {
        Ok(dir) => dir,
        Err(e) => {
            probe.reason = Some(format!("cannot make a probe folder: {e}"));
            return probe;
        }
    };
    let mut spec = SandboxSpec::new(RootFs::Dir(dir.clone()), vec!["/.solum-probe".into()]);
    spec.isolation = Isolation::Userns;
    spec.network = Network::None;
    spec.limits.timeout = Some(Duration::from_secs(20));
    let result = crate::parent::run(&spec, exe, |_| {});
    let _ = crate::private::remove(&dir);
    match result {
        Ok(outcome) => {
            probe.works = true;
            probe.degradations = outcome.degradations;
        }
        Err(SandboxError::Setup { stage, message }) => {
            probe.reason = Some(explain_userns(&stage, &message));
        }
        Err(e) => probe.reason = Some(e.to_string()),
    }
    probe
}

/// What refused the user namespace, from the stage and message of the failed setup.
fn explain_userns(stage: &str, message: &str) -> String {
    let refused = message.contains("Operation not permitted") || message.contains("os error 1)");
    match stage {
        "clone" => {
            if let Some(fix) = crate::hostinfo::userns_fix() {
                return format!("clone(CLONE_NEWUSER) was refused: {fix}");
            }
            if refused {
                let admin = if has_capability(CAP_SYS_ADMIN) {
                    ""
                } else {
                    " without CAP_SYS_ADMIN"
                };
                return format!(
                    "clone(CLONE_NEWUSER) was refused with EPERM although the sysctls allow \
                     user namespaces: the container's seccomp profile refuses new namespaces{admin} \
                     (Docker's default profile and Kubernetes' RuntimeDefault do)"
                );
            }
            format!("clone(CLONE_NEWUSER) failed: {message}")
        }
        "id_map" => {
            let missing = capability_names(&[
                (CAP_SETUID, "CAP_SETUID"),
                (CAP_SETGID, "CAP_SETGID"),
                (CAP_SETFCAP, "CAP_SETFCAP"),
            ]);
            if refused && !missing.is_empty() {
                return format!(
                    "writing the user namespace's uid_map was refused (EPERM): the container \
                     dropped {}; root needs CAP_SETFCAP to map uid 0 (Linux 5.12 and later) \
                     and CAP_SETUID/CAP_SETGID for a range",
                    missing.join(", ")
                );
            }
            format!("the id map could not be written: {message}")
        }
        _ => format!("the sandbox setup failed at {stage}: {message}"),
    }
}

/// Whether the `chroot` level can run here; the reason when not.
pub fn probe_chroot() -> Result<(), String> {
    let euid = nix::unistd::geteuid().as_raw();
    if euid != 0 {
        return Err(format!(
            "not root (uid {euid}): chroot(2) and the layer's owners need root in the container"
        ));
    }
    let missing = capability_names(&[
        (CAP_SYS_CHROOT, "CAP_SYS_CHROOT"),
        (CAP_SETPCAP, "CAP_SETPCAP"),
    ]);
    if !missing.is_empty() {
        return Err(format!(
            "the container dropped {} (chroot(2) needs CAP_SYS_CHROOT; CAP_SETPCAP narrows the \
             command's capabilities)",
            missing.join(" and ")
        ));
    }
    let dir = crate::private::make_dir("solum-chroot-probe.")
        .map_err(|e| format!("cannot make a probe folder: {e}"))?;
    let result = chroot_in_child(&dir);
    let _ = crate::private::remove(&dir);
    result
}

fn chroot_in_child(dir: &Path) -> Result<(), String> {
    let path =
        std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: the child only calls chroot and _exit (async-signal-safe) on a string made
    // before the fork, so forking a possibly threaded process is sound.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork failed: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            let code = if libc::chroot(path.as_ptr()) == 0 {
                0
            } else {
                *libc::__errno_location() & 0x7f
            };
            libc::_exit(code);
        }
    }
    match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None) {
        Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
        Ok(nix::sys::wait::WaitStatus::Exited(_, errno)) => Err(format!(
            "chroot(2) was refused ({}): the container's seccomp profile or security module",
            std::io::Error::from_raw_os_error(errno)
        )),
        other => Err(format!("the chroot probe ended unexpectedly: {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_explained_by_what_refused_them() {
        let clone = explain_userns(
            "clone",
            "clone of the sandbox's init failed: Operation not permitted (os error 1)",
        );
        assert!(clone.contains("CLONE_NEWUSER"), "{clone}");
        let other = explain_userns("hostname", "boom");
        assert!(other.contains("hostname") && other.contains("boom"));
        assert!(refuses_userns("clone") && refuses_userns("id_map"));
        assert!(!refuses_userns("hostname"));
    }

    #[test]
    fn chroot_needs_root_and_its_capabilities() {
        let result = probe_chroot();
        if !nix::unistd::geteuid().is_root() {
            assert!(result.unwrap_err().contains("not root"));
        } else if has_capability(CAP_SYS_CHROOT) && has_capability(CAP_SETPCAP) {
            // Works, unless a seccomp profile refuses the call itself; then it says so.
            if let Err(reason) = result {
                assert!(reason.contains("chroot(2) was refused"), "{reason}");
            }
        } else {
            assert!(result.unwrap_err().contains("the container dropped"));
        }
    }
}
