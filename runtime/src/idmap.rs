//! User and group id maps of the sandbox's user namespace: which map to write (a pure
//! decision from the caller's ids, `/etc/subuid`/`/etc/subgid` and the helpers present) and
//! writing it for the sandbox's init from the parent side. It must not create namespaces.
//!
//! The three cases:
//! - **unprivileged, no subordinate range** (or [`IdMapPolicy::Single`]): one id, the
//!   caller's uid/gid mapped to the sandbox user, written directly after `setgroups` is set
//!   to `deny` (the kernel requires it). Files of other owners show as `nobody`.
//! - **unprivileged with a range** in `/etc/subuid` and `/etc/subgid` and
//!   `newuidmap`/`newgidmap` installed: inside 0 is the caller (so the caller's own files, the
//!   unpacked rootfs, are root's), inside 1.. is the subordinate range.
//! - **root**: inside 0..65536 maps to host 0..65536, written directly. The identity keeps
//!   the files of a rootfs unpacked by root readable and writable by the sandbox's root and
//!   keeps ownership in the overlay upper dir true to the image, with no chown pass. The
//!   sandbox root holds capabilities only in its own user namespace; what kuid 0 could still
//!   do through file permissions is closed by the rootfs setup (`/proc/sys` and friends
//!   read-only, `/sys` read-only, nothing of the host reachable after `pivot_root`), and
//!   `RLIMIT_NPROC`, which the kernel does not apply to kuid 0, is backed by the pid
//!   namespace's own `pid_max`.

use crate::spec::IdMapPolicy;
use crate::syscall::{Syscall, SyscallError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The id range root maps to itself.
pub const ROOT_RANGE: u32 = 65536;

/// One line of a `uid_map`/`gid_map`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// How the map gets written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdMapKind {
    /// One id, written by the caller itself.
    Single,
    /// A subordinate range, written by `newuidmap`/`newgidmap`.
    Helper,
    /// Root: a range written directly.
    Root,
}

/// The maps to write for one sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapPlan {
    pub kind: IdMapKind,
    pub uid: Vec<IdRange>,
    pub gid: Vec<IdRange>,
}

/// A subordinate id range from `/etc/subuid` or `/etc/subgid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubRange {
    pub start: u32,
    pub count: u32,
}

/// What the id map decision depends on.
#[derive(Debug, Clone)]
pub struct HostIds {
    pub euid: u32,
    pub egid: u32,
    pub subuid: Option<SubRange>,
    pub subgid: Option<SubRange>,
    pub helpers: bool,
}

impl HostIds {
    /// The ids of this process and what this host offers for them.
    pub fn current() -> Self {
        let euid = nix::unistd::geteuid().as_raw();
        let egid = nix::unistd::getegid().as_raw();
        let name = nix::unistd::User::from_uid(euid.into())
            .ok()
            .flatten()
            .map(|u| u.name);
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        HostIds {
            euid,
            egid,
            subuid: sub_range(&read("/etc/subuid"), name.as_deref(), euid),
            subgid: sub_range(&read("/etc/subgid"), name.as_deref(), euid),
            helpers: find_helper("newuidmap").is_some() && find_helper("newgidmap").is_some(),
        }
    }
}

/// The first range of `/etc/subuid`-style `text` for the user `name` or numeric `uid`.
pub fn sub_range(text: &str, name: Option<&str>, uid: u32) -> Option<SubRange> {
    text.lines().find_map(|line| {
        let mut f = line.trim().split(':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        let matches = Some(who) == name || who.parse::<u32>().ok() == Some(uid);
        let range = SubRange {
            start: start.parse().ok()?,
            count: count.parse().ok()?,
        };
        (matches && range.count > 0).then_some(range)
    })
}

/// `newuidmap`/`newgidmap` on the usual paths.
pub fn find_helper(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Decides the maps for a sandbox user `uid`/`gid`.
pub fn plan(host: &HostIds, policy: IdMapPolicy, uid: u32, gid: u32) -> IdMapPlan {
    let single = |inside, outside| {
        vec![IdRange {
            inside,
            outside,
            count: 1,
        }]
    };
    if policy == IdMapPolicy::Single {
        return IdMapPlan {
            kind: IdMapKind::Single,
            uid: single(uid, host.euid),
            gid: single(gid, host.egid),
        };
    }
    if host.euid == 0 {
        let all = vec![IdRange {
            inside: 0,
            outside: 0,
            count: ROOT_RANGE,
        }];
        return IdMapPlan {
            kind: IdMapKind::Root,
            uid: all.clone(),
            gid: all,
        };
    }
    match (host.subuid, host.subgid, host.helpers) {
        (Some(su), Some(sg), true) => {
            let ranged = |own, sub: SubRange| {
                vec![
                    IdRange {
                        inside: 0,
                        outside: own,
                        count: 1,
                    },
                    IdRange {
                        inside: 1,
                        outside: sub.start,
                        count: sub.count,
                    },
                ]
            };
            IdMapPlan {
                kind: IdMapKind::Helper,
                uid: ranged(host.euid, su),
                gid: ranged(host.egid, sg),
            }
        }
        _ => IdMapPlan {
            kind: IdMapKind::Single,
            uid: single(uid, host.euid),
            gid: single(gid, host.egid),
        },
    }
}

impl IdMapPlan {
    /// Whether `id` exists inside for this map.
    pub fn maps_uid(&self, id: u32) -> bool {
        self.uid
            .iter()
            .any(|r| id >= r.inside && id - r.inside < r.count)
    }

    pub fn maps_gid(&self, id: u32) -> bool {
        self.gid
            .iter()
            .any(|r| id >= r.inside && id - r.inside < r.count)
    }

    /// Writes the maps of process `pid` (the sandbox's init, blocked until this is done).
    pub fn apply(&self, sys: &dyn Syscall, pid: i32) -> Result<(), IdMapError> {
        let proc = PathBuf::from(format!("/proc/{pid}"));
        match self.kind {
            IdMapKind::Helper => {
                // Both at once: they write different files of the same process, and each is
                // a fork and exec of a setuid program, most of a rootless start's cost.
                let uid = RunningHelper::spawn("newuidmap", pid, &self.uid)?;
                let gid = RunningHelper::spawn("newgidmap", pid, &self.gid);
                let uid = uid.finish();
                gid?.finish()?;
                uid?;
            }
            IdMapKind::Single | IdMapKind::Root => {
                // The kernel refuses an unprivileged gid_map while setgroups is allowed (a
                // process could drop a group that denies it access). Root may keep it.
                if self.kind == IdMapKind::Single {
                    sys.write_file(&proc.join("setgroups"), b"deny")
                        .map_err(|source| IdMapError::Write { source })?;
                }
                sys.write_file(&proc.join("uid_map"), map_text(&self.uid).as_bytes())
                    .map_err(|source| IdMapError::Write { source })?;
                sys.write_file(&proc.join("gid_map"), map_text(&self.gid).as_bytes())
                    .map_err(|source| IdMapError::Write { source })?;
            }
        }
        Ok(())
    }
}

fn map_text(ranges: &[IdRange]) -> String {
    use std::fmt::Write as _;
    ranges.iter().fold(String::new(), |mut text, r| {
        let _ = writeln!(text, "{} {} {}", r.inside, r.outside, r.count);
        text
    })
}

/// `newuidmap` or `newgidmap` started for a pid, not yet waited for.
struct RunningHelper {
    helper: PathBuf,
    child: std::process::Child,
}

impl RunningHelper {
    fn spawn(name: &'static str, pid: i32, ranges: &[IdRange]) -> Result<Self, IdMapError> {
        let helper = find_helper(name).ok_or(IdMapError::HelperMissing { helper: name })?;
        let mut cmd = Command::new(&helper);
        cmd.arg(pid.to_string());
        for r in ranges {
            cmd.args([r.inside, r.outside, r.count].map(|n| n.to_string()));
        }
        // Not this process's stdin: in the sandbox's outer process that is the caller's
        // control socket.
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        match cmd.spawn() {
            Ok(child) => Ok(RunningHelper { helper, child }),
            Err(source) => Err(IdMapError::HelperSpawn { helper, source }),
        }
    }

    fn finish(self) -> Result<(), IdMapError> {
        let RunningHelper { helper, child } = self;
        let out = match child.wait_with_output() {
            Ok(out) => out,
            Err(source) => return Err(IdMapError::HelperSpawn { helper, source }),
        };
        if !out.status.success() {
            return Err(IdMapError::HelperFailed {
                helper,
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(())
    }
}

/// Writing an id map failed.
#[derive(Debug, thiserror::Error)]
pub enum IdMapError {
    #[error("cannot write the id map")]
    Write {
        #[source]
        source: SyscallError,
    },
    #[error("{helper} is not installed (Debian: apt-get install uidmap)")]
    HelperMissing { helper: &'static str },
    #[error("cannot run {}", helper.display())]
    HelperSpawn {
        helper: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} failed ({status}): {stderr}", helper.display())]
    HelperFailed {
        helper: PathBuf,
        status: String,
        stderr: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::RecordingSyscall;

    fn user(subs: bool, helpers: bool) -> HostIds {
        let r = SubRange {
            start: 100_000,
            count: 65536,
        };
        HostIds {
            euid: 1000,
            egid: 1000,
            subuid: subs.then_some(r),
            subgid: subs.then_some(r),
            helpers,
        }
    }

    #[test]
    fn parses_subuid_by_name_or_uid() {
        let text = "alice:200000:65536\n1000:100000:65536\n";
        assert_eq!(sub_range(text, Some("alice"), 5).unwrap().start, 200_000);
        assert_eq!(sub_range(text, Some("bob"), 1000).unwrap().start, 100_000);
        assert!(sub_range(text, Some("bob"), 7).is_none());
    }

    #[test]
    fn chooses_single_helper_or_root_map() {
        assert_eq!(
            plan(&user(false, true), IdMapPolicy::Auto, 0, 0).kind,
            IdMapKind::Single
        );
        assert_eq!(
            plan(&user(true, false), IdMapPolicy::Auto, 0, 0).kind,
            IdMapKind::Single
        );
        let ranged = plan(&user(true, true), IdMapPolicy::Auto, 0, 0);
        assert_eq!(ranged.kind, IdMapKind::Helper);
        assert!(ranged.maps_uid(0) && ranged.maps_uid(65536) && !ranged.maps_uid(65537));
        let root = HostIds {
            euid: 0,
            egid: 0,
            ..user(false, false)
        };
        assert_eq!(plan(&root, IdMapPolicy::Auto, 0, 0).kind, IdMapKind::Root);
        assert_eq!(plan(&root, IdMapPolicy::Single, 5, 5).uid[0].inside, 5);
    }

    #[test]
    fn single_map_denies_setgroups_before_the_gid_map() {
        let sys = RecordingSyscall::default();
        plan(&user(false, false), IdMapPolicy::Auto, 0, 0)
            .apply(&sys, 42)
            .unwrap();
        assert_eq!(
            sys.calls(),
            vec![
                "write /proc/42/setgroups deny",
                "write /proc/42/uid_map 0 1000 1\n",
                "write /proc/42/gid_map 0 1000 1\n",
            ]
        );
    }
}
