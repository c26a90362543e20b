//! What this host allows the sandbox: user namespaces, overlay in a user namespace,
//! subordinate id ranges and their helpers, cgroup v2 delegation, and what the builder will
//! therefore do, limits included. It reads sysctls and files, and tries an overlay mount in
//! a throwaway child in a private folder it removes again (see [`crate::private`]); it must
//! not change anything else on the host.

use crate::idmap::{self, HostIds, IdMapKind, SubRange};
use crate::setup::kernel_has_pid_max_per_namespace;
use crate::spec::IdMapPolicy;
use serde::Serialize;
use std::ffi::CString;
use std::fmt;
use std::path::{Path, PathBuf};

/// The sysctls that switch unprivileged user namespaces off.
#[derive(Debug, Clone, Serialize)]
pub struct UserNamespaces {
    /// Whether this process may create a user namespace (what the sysctls below allow).
    pub allowed: bool,
    /// `kernel.unprivileged_userns_clone` (Debian/Ubuntu kernels), when present.
    pub unprivileged_userns_clone: Option<u64>,
    /// `user.max_user_namespaces`.
    pub max_user_namespaces: Option<u64>,
    /// `kernel.apparmor_restrict_unprivileged_userns` (Ubuntu 23.10+), when present.
    pub apparmor_restrict_unprivileged_userns: Option<u64>,
    /// How to turn them on, when they are off.
    pub fix: Option<String>,
}

/// cgroup v2 as seen by this process.
#[derive(Debug, Clone, Serialize)]
pub struct CgroupV2 {
    /// Where the cgroup2 hierarchy is mounted, if it is.
    pub mount: Option<PathBuf>,
    /// This process's cgroup in it.
    pub cgroup: Option<PathBuf>,
    /// Controllers available to this cgroup (`cgroup.controllers`).
    pub controllers: Vec<String>,
    /// The cgroup is writable by this user and offers `pids` or `memory`.
    pub delegated: bool,
}

/// What the sandbox will do on this host.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub id_map: IdMapKind,
    /// `overlay` or `prepared directory`.
    pub rootfs: &'static str,
    /// Processes per sandbox (the default of builds and runs), if limited.
    pub max_processes: Option<u64>,
    /// Address space per process in bytes (the default of builds and runs), if limited.
    pub memory: Option<u64>,
    /// The process limit and how it is enforced.
    pub process_limit: String,
    /// The memory limit and how it is enforced.
    pub memory_limit: String,
}

/// Everything `solum-build info` shows about the sandbox.
#[derive(Debug, Clone, Serialize)]
pub struct HostInfo {
    pub kernel: String,
    pub euid: u32,
    pub user_namespaces: UserNamespaces,
    /// An overlay mount inside a fresh user namespace worked (tried in a child).
    pub overlay_in_user_namespace: bool,
    /// Why it did not, when it did not.
    pub overlay_error: Option<String>,
    pub subuid: Option<SubRange>,
    pub subgid: Option<SubRange>,
    pub newuidmap: Option<PathBuf>,
    pub newgidmap: Option<PathBuf>,
    pub cgroup_v2: CgroupV2,
    pub pid_max_per_namespace: bool,
    pub plan: Plan,
}

fn sysctl(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The fix to name when user namespaces are off, if a known switch is off.
pub fn userns_fix() -> Option<String> {
    let euid = nix::unistd::geteuid().as_raw();
    if sysctl("/proc/sys/user/max_user_namespaces") == Some(0) {
        return Some(
            "user namespaces are disabled: sysctl -w user.max_user_namespaces=28633".into(),
        );
    }
    if euid != 0 && sysctl("/proc/sys/kernel/unprivileged_userns_clone") == Some(0) {
        return Some(
            "unprivileged user namespaces are disabled: sysctl -w kernel.unprivileged_userns_clone=1"
                .into(),
        );
    }
    if euid != 0 && sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == Some(1) {
        return Some(
            "AppArmor restricts unprivileged user namespaces: sysctl -w \
             kernel.apparmor_restrict_unprivileged_userns=0, or load an AppArmor profile for \
             solum-build that allows `userns,`"
                .into(),
        );
    }
    None
}

/// Looks at the host. Forks one short-lived child to try an overlay mount in a user
/// namespace.
pub fn host_info() -> HostInfo {
    let ids = HostIds::current();
    let fix = userns_fix();
    let user_namespaces = UserNamespaces {
        allowed: fix.is_none(),
        unprivileged_userns_clone: sysctl("/proc/sys/kernel/unprivileged_userns_clone"),
        max_user_namespaces: sysctl("/proc/sys/user/max_user_namespaces"),
        apparmor_restrict_unprivileged_userns: sysctl(
            "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
        ),
        fix,
    };
    let overlay = probe_overlay();
    let cgroup_v2 = cgroup_v2();
    let pid_max_per_namespace = kernel_has_pid_max_per_namespace();
    let plan = idmap::plan(&ids, IdMapPolicy::Auto, 0, 0);
    let limits = crate::spec::Limits::defaults();
    let process_limit = describe_process_limit(
        limits.max_processes,
        ids.euid == 0 || plan.kind == IdMapKind::Root,
        pid_max_per_namespace,
    );
    let memory_limit = match limits.memory {
        Some(bytes) => format!(
            "{} of address space per process (RLIMIT_AS); the sum over processes is not limited (no cgroup)",
            gib(bytes)
        ),
        None => "none".to_string(),
    };
    HostInfo {
        kernel: nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        euid: ids.euid,
        user_namespaces,
        overlay_in_user_namespace: overlay.is_ok(),
        overlay_error: overlay.clone().err(),
        subuid: ids.subuid,
        subgid: ids.subgid,
        newuidmap: idmap::find_helper("newuidmap"),
        newgidmap: idmap::find_helper("newgidmap"),
        cgroup_v2,
        pid_max_per_namespace,
        plan: Plan {
            id_map: plan.kind,
            rootfs: if overlay.is_ok() {
                "overlay"
            } else {
                "prepared directory"
            },
            max_processes: limits.max_processes,
            memory: limits.memory,
            process_limit,
            memory_limit,
        },
    }
}

/// `bytes` in GiB with one decimal.
fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

/// The process limit and what enforces it: kuid 0 is exempt from `RLIMIT_NPROC`, so a root
/// sandbox has only the pid namespace's own `pid_max` (Linux 6.14+).
fn describe_process_limit(max: Option<u64>, root: bool, pid_max_per_namespace: bool) -> String {
    let Some(n) = max else {
        return "none".to_string();
    };
    match (root, pid_max_per_namespace) {
        (true, true) => format!("{n} processes (pid_max of the sandbox's pid namespace)"),
        (true, false) => format!(
            "none: kuid 0 is exempt from RLIMIT_NPROC and this kernel has no per-namespace pid_max (asked: {n})"
        ),
        (false, true) => format!(
            "{n} processes (pid_max of the sandbox's pid namespace, and RLIMIT_NPROC of its user)"
        ),
        (false, false) => format!(
            "{n} processes of the sandbox's host user, counting its processes outside too (RLIMIT_NPROC)"
        ),
    }
}

fn cgroup_v2() -> CgroupV2 {
    let mount = std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let (left, right) = l.split_once(" - ")?;
                (right.split(' ').next() == Some("cgroup2"))
                    .then(|| PathBuf::from(left.split(' ').nth(4).unwrap_or("/")))
            })
        });
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("0::").map(PathBuf::from))
        });
    let dir = match (&mount, &cgroup) {
        (Some(m), Some(c)) => Some(m.join(c.strip_prefix("/").unwrap_or(c))),
        _ => None,
    };
    let controllers: Vec<String> = dir
        .as_ref()
        .and_then(|d| std::fs::read_to_string(d.join("cgroup.controllers")).ok())
        .map(|t| t.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    let writable = dir
        .as_ref()
        .is_some_and(|d| nix::unistd::access(d.as_path(), nix::unistd::AccessFlags::W_OK).is_ok());
    let delegated = writable && controllers.iter().any(|c| c == "pids" || c == "memory");
    CgroupV2 {
        mount,
        cgroup,
        controllers,
        delegated,
    }
}

/// Prefix of the overlay probe's folders (see [`crate::private`]).
const PROBE_PREFIX: &str = "solum-overlay-probe.";

/// Tries `mount -t overlay … userxattr` in a child in a fresh user and mount namespace, in
/// a private folder that is removed afterwards (overlay leaves a mode-000 `work` in it).
fn probe_overlay() -> Result<(), String> {
    crate::private::sweep(PROBE_PREFIX);
    let dir = crate::private::make_dir(PROBE_PREFIX)
        .map_err(|e| format!("cannot create a probe directory: {e}"))?;
    let result = (|| {
        for d in ["l", "u", "w", "m"] {
            std::fs::create_dir(dir.join(d))
                .map_err(|e| format!("cannot create a probe directory: {e}"))?;
        }
        probe_overlay_in(&dir)
    })();
    let _ = crate::private::remove(&dir);
    result
}

fn probe_overlay_in(dir: &Path) -> Result<(), String> {
    let c = |p: &Path| CString::new(p.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string());
    // Everything the child needs is built before the fork: the caller may be threaded, and
    // the child must only make raw system calls.
    let target = c(&dir.join("m"))?;
    let opts = CString::new(format!(
        "lowerdir={},upperdir={},workdir={},userxattr",
        dir.join("l").display(),
        dir.join("u").display(),
        dir.join("w").display()
    ))
    .map_err(|e| e.to_string())?;
    let uid_map = format!("0 {} 1", nix::unistd::geteuid());
    let gid_map = format!("0 {} 1", nix::unistd::getegid());
    let files: [(CString, &[u8]); 3] = [
        (
            CString::new("/proc/self/setgroups").unwrap_or_default(),
            b"deny",
        ),
        (
            CString::new("/proc/self/uid_map").unwrap_or_default(),
            uid_map.as_bytes(),
        ),
        (
            CString::new("/proc/self/gid_map").unwrap_or_default(),
            gid_map.as_bytes(),
        ),
    ];
    let overlay = CString::new("overlay").unwrap_or_default();
    // SAFETY: the child only calls async-signal-safe functions (unshare, open, write, close,
    // mount, _exit) on data prepared above, so forking a possibly threaded process is sound.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork failed: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: see above; every pointer refers to a live CString or slice of the parent's
        // copied memory.
        unsafe {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
                libc::_exit(2);
            }
            for (path, data) in &files {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY);
                if fd >= 0 {
                    libc::write(fd, data.as_ptr().cast(), data.len());
                    libc::close(fd);
                }
            }
            let r = libc::mount(
                overlay.as_ptr(),
                target.as_ptr(),
                overlay.as_ptr(),
                0,
                opts.as_ptr().cast(),
            );
            libc::_exit(if r == 0 { 0 } else { 3 });
        }
    }
    match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None) {
        Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
        Ok(nix::sys::wait::WaitStatus::Exited(_, 2)) => {
            Err("cannot create a user namespace".into())
        }
        Ok(nix::sys::wait::WaitStatus::Exited(_, 3)) => {
            Err("the kernel refused an overlay mount in a user namespace".into())
        }
        other => Err(format!("probe child ended unexpectedly: {other:?}")),
    }
}

impl fmt::Display for HostInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let range = |r: Option<SubRange>| {
            r.map_or("none".to_string(), |r| {
                format!(
                    "{}..{} ({} ids)",
                    r.start,
                    u64::from(r.start) + u64::from(r.count),
                    r.count
                )
            })
        };
        let path = |p: &Option<PathBuf>| {
            p.as_ref()
                .map_or("missing".to_string(), |p| p.display().to_string())
        };
        writeln!(f, "kernel:                     {}", self.kernel)?;
        writeln!(f, "user:                       uid {}", self.euid)?;
        let u = &self.user_namespaces;
        writeln!(f, "user namespaces:            {}", yes(u.allowed))?;
        writeln!(
            f,
            "  sysctls:                  unprivileged_userns_clone={} max_user_namespaces={} apparmor_restrict_unprivileged_userns={}",
            opt(u.unprivileged_userns_clone),
            opt(u.max_user_namespaces),
            opt(u.apparmor_restrict_unprivileged_userns)
        )?;
        if let Some(fix) = &u.fix {
            writeln!(f, "  fix:                      {fix}")?;
        }
        writeln!(
            f,
            "overlay in user namespace:  {}",
            yes(self.overlay_in_user_namespace)
        )?;
        if let Some(e) = &self.overlay_error {
            writeln!(f, "  why not:                  {e}")?;
        }
        writeln!(f, "subuid:                     {}", range(self.subuid))?;
        writeln!(f, "subgid:                     {}", range(self.subgid))?;
        writeln!(f, "newuidmap:                  {}", path(&self.newuidmap))?;
        writeln!(f, "newgidmap:                  {}", path(&self.newgidmap))?;
        let cg = &self.cgroup_v2;
        writeln!(
            f,
            "cgroup v2:                  {} (controllers: {}; delegated: {})",
            path(&cg.mount),
            if cg.controllers.is_empty() {
                "none".to_string()
            } else {
                cg.controllers.join(" ")
            },
            yes(cg.delegated)
        )?;
        writeln!(
            f,
            "pid_max per pid namespace:  {}",
            yes(self.pid_max_per_namespace)
        )?;
        let id_map = match self.plan.id_map {
            IdMapKind::Single => "one id (your uid and gid as root, no helper)",
            IdMapKind::Helper => {
                "a range through newuidmap/newgidmap (root inside is you; ids 1.. are your subordinate range)"
            }
            IdMapKind::Root => "0..65536 to the same host ids, written directly",
        };
        writeln!(f, "the sandbox will use:")?;
        writeln!(f, "  id map:                   {id_map}")?;
        writeln!(f, "  root filesystem:          {}", self.plan.rootfs)?;
        writeln!(f, "  process limit:            {}", self.plan.process_limit)?;
        write!(f, "  memory limit:             {}", self.plan.memory_limit)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_info_describes_this_host() {
        let info = super::host_info();
        let text = info.to_string();
        assert!(text.contains("user namespaces:"));
        assert!(serde_json::to_string(&info).unwrap().contains("\"plan\""));
        if info.user_namespaces.allowed {
            assert!(info.overlay_in_user_namespace, "{:?}", info.overlay_error);
        }
    }
}
