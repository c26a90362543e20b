//! The ordered setup the sandbox's init runs after its id map is written: the remaining
//! namespaces, the filesystem, `pivot_root`, hostname and loopback. The order is the data
//! in [`SETUP_STAGES`]; each stage only calls into [`crate::rootfs`] or the [`Syscall`]
//! trait, so the whole sequence runs against a recording implementation in tests. This
//! module must not fork, exec or change credentials.

use crate::namespaces::{self, Moment};
use crate::rootfs::{self, Layout, MountContext, RootfsError, SetupReport};
use crate::spec::SandboxSpec;
use crate::syscall::{Syscall, SyscallError};
use nix::mount::MsFlags;
use std::path::Path;

/// One step of the setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Namespaces,
    Propagation,
    Root,
    MountPoints,
    Dev,
    Proc,
    Sys,
    Tmp,
    Binds,
    PivotRoot,
    Hostname,
    Loopback,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self).ok();
        f.write_str(s.as_ref().and_then(|v| v.as_str()).unwrap_or("setup"))
    }
}

/// The setup in order. Why this order:
/// - **Namespaces** first: the mount, ipc, uts and net namespaces are unshared only now that
///   the id map exists (see [`crate::namespaces`]); every later step needs the mount one.
/// - **Propagation** before any mount: `/` turns recursively private, so no mount made here
///   propagates back to the host, and `pivot_root` accepts the tree (it refuses shared parents).
/// - **Root** before anything inside it; **MountPoints** right after, while the image is the
///   only thing in the root, so a symlink in the image is followed inside the root.
/// - **Dev** before **Proc**: masked `/proc` files are covered with the sandbox's `/dev/null`.
/// - **Proc** before **Sys**, **Tmp**, **Binds**: order among them matters only for targets
///   below one another; binds come last so a bind into `/tmp` is not hidden by the tmpfs.
/// - **PivotRoot** after every mount: binds read their sources from the host's tree, which
///   the pivot detaches for good.
/// - **Hostname** and **Loopback** last; they need only their namespaces.
pub static SETUP_STAGES: &[Stage] = &[
    Stage::Namespaces,
    Stage::Propagation,
    Stage::Root,
    Stage::MountPoints,
    Stage::Dev,
    Stage::Proc,
    Stage::Sys,
    Stage::Tmp,
    Stage::Binds,
    Stage::PivotRoot,
    Stage::Hostname,
    Stage::Loopback,
];

/// The setup stopped at a stage.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("sandbox setup failed at stage {stage}")]
    Syscall {
        stage: Stage,
        #[source]
        source: SyscallError,
    },
    #[error("sandbox setup failed at stage {stage}")]
    Rootfs {
        stage: Stage,
        #[source]
        source: RootfsError,
    },
}

impl SetupError {
    pub fn stage(&self) -> Stage {
        match self {
            SetupError::Syscall { stage, .. } | SetupError::Rootfs { stage, .. } => *stage,
        }
    }
}

/// Runs [`SETUP_STAGES`] in order.
pub fn run_setup(
    sys: &dyn Syscall,
    spec: &SandboxSpec,
    layout: &Layout,
    mctx: &MountContext,
) -> Result<SetupReport, SetupError> {
    let mut report = SetupReport::default();
    let root = layout.root();
    for &stage in SETUP_STAGES {
        let fs =
            |r: Result<(), RootfsError>| r.map_err(|source| SetupError::Rootfs { stage, source });
        let call =
            |r: Result<(), SyscallError>| r.map_err(|source| SetupError::Syscall { stage, source });
        match stage {
            Stage::Namespaces => {
                for ns in namespaces::namespaces(&spec.network) {
                    if ns.moment == Moment::AfterIdMap {
                        call(sys.unshare(ns.flag))?;
                    }
                }
            }
            Stage::Propagation => call(sys.mount(
                None,
                Path::new("/"),
                None,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None,
            ))?,
            Stage::Root => fs(rootfs::mount_root(sys, spec, layout))?,
            Stage::MountPoints => fs(rootfs::ensure_fixed_mount_points(sys, &root, &mut report))?,
            Stage::Dev => fs(rootfs::mount_dev(sys, &root, mctx))?,
            Stage::Proc => fs(rootfs::mount_proc(sys, &root, mctx, &mut report))?,
            Stage::Sys => fs(rootfs::mount_sys(sys, &root, &spec.network))?,
            Stage::Tmp => fs(rootfs::mount_tmp(sys, &root))?,
            Stage::Binds => fs(rootfs::mount_binds(sys, spec, layout, &mut report))?,
            Stage::PivotRoot => fs(rootfs::pivot(sys, &root))?,
            Stage::Hostname => match sys.sethostname(&spec.hostname) {
                // A container's seccomp profile (podman's and Docker's default) refuses
                // sethostname without CAP_SYS_ADMIN outside, even in a UTS namespace of
                // our own: the command then sees the container's name, in a namespace it
                // cannot change for anyone else.
                Err(e) if e.errno() == Some(libc::EPERM) => report.degradations.push(format!(
                    "hostname: sethostname was refused (EPERM, the container's seccomp \
                     profile), so the sandbox keeps the container's hostname in its own UTS \
                     namespace instead of {:?}",
                    spec.hostname
                )),
                other => call(other)?,
            },
            Stage::Loopback => {
                // Also with the user-mode network: slirp4netns brings `lo` up as well, but the
                // sandbox does not rely on it for its own loopback.
                if spec.network.has_own_namespace() {
                    call(sys.loopback_up())?;
                }
            }
        }
    }
    Ok(report)
}

/// Whether this kernel keeps a `pid_max` per pid namespace (Linux 6.14 and later). On older
/// kernels the file is the host's global one and must never be written from the sandbox.
pub fn kernel_has_pid_max_per_namespace() -> bool {
    let Ok(uts) = nix::sys::utsname::uname() else {
        return false;
    };
    let release = uts.release().to_string_lossy().to_string();
    let mut nums = release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().unwrap_or(0));
    let (major, minor) = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
    (major, minor) >= (6, 14)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{BindMount, Network, RootFs};
    use crate::syscall::RecordingSyscall;

    fn spec(rootfs: RootFs) -> SandboxSpec {
        let mut s = SandboxSpec::new(rootfs, vec!["true".into()]);
        s.mounts.push(BindMount {
            source: "/".into(),
            target: "/solum/cache".into(),
            read_only: false,
            work: None,
        });
        s
    }

    /// The first remount after call `i`.
    fn next_remount(calls: &[String], i: usize) -> String {
        calls[i..]
            .iter()
            .find(|c| c.contains("MS_REMOUNT"))
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn read_write_binds_are_nosuid_and_nodev() {
        let sys = RecordingSyscall::default();
        run_setup(
            &sys,
            &spec(RootFs::Dir("/img".into())),
            &layout(),
            &MountContext::default(),
        )
        .unwrap();
        let calls = sys.calls();
        let b = sys.position("mount - / /nonexistent-staging/root/solum/cache");
        let remount = next_remount(&calls, b);
        assert!(remount.contains("MS_NOSUID") && remount.contains("MS_NODEV"));
        assert!(!remount.contains("MS_RDONLY"));
    }

    fn layout() -> Layout {
        Layout {
            staging: "/nonexistent-staging".into(),
        }
    }

    #[test]
    fn namespaces_then_private_then_root_then_mounts_then_pivot() {
        let sys = RecordingSyscall::default();
        run_setup(
            &sys,
            &spec(RootFs::Dir("/img".into())),
            &layout(),
            &MountContext::default(),
        )
        .unwrap();
        let order = [
            "unshare CloneFlags(CLONE_NEWNS)",
            "unshare CloneFlags(CLONE_NEWIPC)",
            "unshare CloneFlags(CLONE_NEWUTS)",
            "unshare CloneFlags(CLONE_NEWNET)",
            "mount - - / MsFlags(MS_REC | MS_PRIVATE)",
            "mount tmpfs tmpfs /nonexistent-staging ",
            "mount - /img /nonexistent-staging/root MsFlags(MS_BIND | MS_REC)",
            "mount tmpfs tmpfs /nonexistent-staging/root/dev ",
            "mount proc proc /nonexistent-staging/root/proc",
            "mount sysfs sysfs /nonexistent-staging/root/sys",
            "mount tmpfs tmpfs /nonexistent-staging/root/tmp",
            "mount - / /nonexistent-staging/root/solum/cache",
            "chdir /nonexistent-staging/root",
            "pivot_root . .",
            "umount2 . MntFlags(MNT_DETACH)",
            "chdir /",
            "sethostname solum",
            "loopback_up",
        ];
        // Each expected call appears after the previous one.
        let calls = sys.calls();
        let mut from = 0;
        for want in order {
            let found = calls[from..].iter().position(|c| c.starts_with(want));
            let i = found.unwrap_or_else(|| panic!("{want:?} not after #{from}: {calls:#?}"));
            from += i + 1;
        }
        // The pivot detaches the old root; nothing mounts afterwards.
        let pivot = sys.position("pivot_root");
        assert!(sys.calls()[pivot..].iter().all(|c| !c.starts_with("mount")));
    }

    #[test]
    fn overlay_uses_userxattr_and_a_bottom_mount_point_layer() {
        let sys = RecordingSyscall::default();
        let rootfs = RootFs::Overlay {
            lowers: vec!["/l1".into(), "/l2".into()],
            upper: "/u".into(),
            work: "/w".into(),
        };
        run_setup(&sys, &spec(rootfs), &layout(), &MountContext::default()).unwrap();
        let i = sys.position("mount overlay");
        // Layers are named through short links in the staging tmpfs, so no host path shows
        // in the sandbox's mountinfo.
        assert!(sys.calls()[i].ends_with(
            "lowerdir=root.l0:root.l1:root.l2,upperdir=root.u,workdir=root.w,userxattr"
        ));
        sys.position("symlink /l1 /nonexistent-staging/root.l0");
        sys.position("symlink /nonexistent-staging/mountpoints /nonexistent-staging/root.l2");
        assert!(sys.position("chdir /nonexistent-staging") < i);
        // The mount point layer is filled before the overlay is mounted.
        assert!(sys.position("resolve /nonexistent-staging/mountpoints/solum/cache") < i);
    }

    #[test]
    fn the_root_overlay_is_volatile_and_a_bind_overlay_is_not() {
        let sys = RecordingSyscall::default();
        let mut s = spec(RootFs::Overlay {
            lowers: vec!["/l1".into()],
            upper: "/u".into(),
            work: "/w".into(),
        });
        s.mounts[0].work = Some("/cache-work".into());
        run_setup(&sys, &s, &layout(), &MountContext::default()).unwrap();
        let overlays: Vec<String> = sys
            .calls()
            .into_iter()
            .filter(|c| c.starts_with("mount overlay"))
            .collect();
        assert_eq!(overlays.len(), 2, "{overlays:#?}");
        // The root's upper dir is thrown away: no sync of the host filesystem for it.
        assert!(
            overlays[0].contains(" volatile,lowerdir=root.l0:"),
            "{}",
            overlays[0]
        );
        // A bind's upper dir is the caller's, kept: a command's fsync there must count.
        assert!(overlays[1].contains("upperdir=bind0.u"), "{}", overlays[1]);
        assert!(!overlays[1].contains("volatile"), "{}", overlays[1]);
    }

    #[test]
    fn host_network_keeps_net_namespace_and_binds_host_files_read_only() {
        let sys = RecordingSyscall::default();
        let mut s = spec(RootFs::Dir("/img".into()));
        s.network = Network::Host;
        run_setup(&sys, &s, &layout(), &MountContext::default()).unwrap();
        let calls = sys.calls();
        assert!(!calls
            .iter()
            .any(|c| c.contains("CLONE_NEWNET") || c == "loopback_up"));
        // /sys cannot be a fresh sysfs without our own network namespace: a read-only bind.
        let bind =
            sys.position("mount - /sys /nonexistent-staging/root/sys MsFlags(MS_BIND | MS_REC)");
        assert!(next_remount(&calls, bind).contains("MS_RDONLY"));
        if Path::new("/etc/hosts").exists() {
            let h = sys.position("mount - /etc/hosts /nonexistent-staging/root/etc/hosts");
            assert!(next_remount(&calls, h).contains("MS_RDONLY"));
        }
    }

    /// The setup of a prepared directory with the calls starting with `refused` failing.
    fn setup_refusing(refused: &str) -> (RecordingSyscall, SetupReport) {
        let sys = RecordingSyscall::failing(&[refused]);
        let report = run_setup(
            &sys,
            &spec(RootFs::Dir("/img".into())),
            &layout(),
            &MountContext::default(),
        )
        .unwrap();
        (sys, report)
    }

    #[test]
    fn proc_falls_back_to_a_read_only_bind_when_refused() {
        let (sys, report) = setup_refusing("mount proc");
        assert!(report.proc_fallback);
        assert!(report.degradations.iter().any(|d| d.starts_with("proc:")));
        let b =
            sys.position("mount - /proc /nonexistent-staging/root/proc MsFlags(MS_BIND | MS_REC)");
        assert!(next_remount(&sys.calls(), b).contains("MS_RDONLY"));
    }

    #[test]
    fn a_refused_hostname_is_a_recorded_degradation_not_a_failure() {
        let (sys, report) = setup_refusing("sethostname");
        assert!(report
            .degradations
            .iter()
            .any(|d| d.starts_with("hostname:")));
        // The stages after it still ran.
        sys.position("loopback_up");
    }

    #[test]
    fn pid_max_is_written_before_proc_sys_turns_read_only() {
        let sys = RecordingSyscall::default();
        let mctx = MountContext {
            pid_max: Some(400),
            ..MountContext::default()
        };
        run_setup(&sys, &spec(RootFs::Dir("/img".into())), &layout(), &mctx).unwrap();
        let w = sys.position("write /nonexistent-staging/root/proc/sys/kernel/pid_max 400");
        assert!(w > sys.position("mount proc"));
    }

    #[test]
    fn a_failing_stage_is_named() {
        let sys = RecordingSyscall::failing(&["pivot_root"]);
        let err = run_setup(
            &sys,
            &spec(RootFs::Dir("/img".into())),
            &layout(),
            &MountContext::default(),
        )
        .unwrap_err();
        assert_eq!(err.stage(), Stage::PivotRoot);
    }
}
