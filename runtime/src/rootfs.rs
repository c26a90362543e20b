//! The sandbox's filesystem: the root (an overlay mounted in the user namespace, or a
//! prepared directory), `/dev`, `/proc`, `/sys`, `/tmp`, bind mounts, and the `pivot_root`
//! that leaves nothing of the host reachable. Every call goes through [`Syscall`]. This
//! module must not create namespaces or processes.
//!
//! Mount points missing from the image:
//! - overlay: they come from a tmpfs added as the *bottom-most* lower layer, holding the
//!   directories (and empty files for file binds) of every mount point. An image layer that
//!   has the path wins (its mode and owner show), so nothing is written to the upper dir;
//! - prepared directory: they are created in it and listed in
//!   [`SetupReport::created_mount_points`] so the caller can leave them out of a diff;
//! - an image symlink on the way (say `/etc/resolv.conf -> ../run/resolv.conf`) is followed
//!   inside the root, never on the host, and a missing target is created (in the upper dir
//!   for an overlay, and listed).

use crate::spec::{Network, RootFs, SandboxSpec};
use crate::syscall::{Syscall, SyscallError};
use nix::mount::{MntFlags, MsFlags};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// Devices bound from the host into the sandbox's `/dev`.
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];
/// `/proc` entries made read-only (they change the host kernel, not just the sandbox).
const PROC_READ_ONLY: &[&str] = &["sys", "sysrq-trigger", "irq", "bus", "fs"];
/// `/proc` files hidden behind `/dev/null` (host memory and kernel internals).
const PROC_MASKED: &[&str] = &[
    "kcore",
    "keys",
    "timer_list",
    "sched_debug",
    "latency_stats",
];
/// Host files bound read-only with [`Network::Host`].
const HOST_NETWORK_FILES: &[&str] = &["/etc/resolv.conf", "/etc/hosts"];

const NOSUID_NODEV_NOEXEC: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// Where the root is assembled: a private tmpfs over the host staging directory holds the
/// overlay's mount point (`root`) and the mount point layer (`mountpoints`).
#[derive(Debug, Clone)]
pub struct Layout {
    pub staging: PathBuf,
}

impl Layout {
    pub fn root(&self) -> PathBuf {
        self.staging.join("root")
    }

    pub fn mountpoint_layer(&self) -> PathBuf {
        self.staging.join("mountpoints")
    }
}

/// Facts about the environment the mounts depend on.
#[derive(Debug, Clone, Default)]
pub struct MountContext {
    /// The sandbox's user namespace maps gid 5 (`tty`), so devpts may use it.
    pub tty_gid_mapped: bool,
    /// Write this `pid_max` into the sandbox's pid namespace (kernels with one per namespace).
    pub pid_max: Option<u64>,
}

/// What the filesystem setup did that the caller should know.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SetupReport {
    /// Paths inside the sandbox created in the image (upper dir or prepared directory).
    pub created_mount_points: Vec<PathBuf>,
    /// `/proc` is a read-only bind of the host's (the host masks parts of its own).
    pub proc_fallback: bool,
}

/// A mount step failed.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("cannot set up {what}")]
    Mount {
        what: &'static str,
        #[source]
        source: SyscallError,
    },
    #[error("cannot mount the overlay ({options})")]
    Overlay {
        options: String,
        #[source]
        source: SyscallError,
    },
    #[error("bind mount source {} is missing", path.display())]
    BindSource {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn ctx(what: &'static str) -> impl FnOnce(SyscallError) -> RootfsError {
    move |source| RootfsError::Mount { what, source }
}

/// What a mount point must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
}

/// Every mount point the spec needs inside the root, in mount order.
fn mount_points(spec: &SandboxSpec) -> Result<Vec<(PathBuf, Kind)>, RootfsError> {
    let mut out: Vec<(PathBuf, Kind)> = ["/dev", "/proc", "/sys", "/tmp"]
        .iter()
        .map(|p| (PathBuf::from(p), Kind::Dir))
        .collect();
    for m in &spec.mounts {
        let meta = std::fs::metadata(&m.source).map_err(|source| RootfsError::BindSource {
            path: m.source.clone(),
            source,
        })?;
        let kind = if meta.is_dir() { Kind::Dir } else { Kind::File };
        out.push((m.target.clone(), kind));
    }
    if spec.network == Network::Host {
        for f in HOST_NETWORK_FILES {
            if Path::new(f).exists() {
                out.push((PathBuf::from(f), Kind::File));
            }
        }
    }
    Ok(out)
}

/// `inner` (absolute, inside the sandbox) resolved under `root`, following symlinks as if
/// `root` were `/`: `..` and absolute link targets never leave it.
pub fn resolve_in_root(root: &Path, inner: &Path) -> PathBuf {
    let mut pending: VecDeque<OsString> = normal_parts(inner);
    let mut cur = PathBuf::new();
    let mut hops = 0;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            cur.pop();
            continue;
        }
        let cand = cur.join(&part);
        let full = root.join(&cand);
        match std::fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() && hops < 40 => {
                hops += 1;
                let Ok(target) = std::fs::read_link(&full) else {
                    cur = cand;
                    continue;
                };
                if target.is_absolute() {
                    cur = PathBuf::new();
                }
                for p in normal_parts(&target).into_iter().rev() {
                    pending.push_front(p);
                }
            }
            _ => cur = cand,
        }
    }
    root.join(cur)
}

fn normal_parts(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// Makes sure `inner` exists under `root` as a `kind`, recording what had to be created.
fn ensure_mount_point(
    sys: &dyn Syscall,
    root: &Path,
    inner: &Path,
    kind: Kind,
    created: &mut Vec<PathBuf>,
) -> Result<PathBuf, RootfsError> {
    let resolved = resolve_in_root(root, inner);
    if std::fs::symlink_metadata(&resolved).is_ok() {
        return Ok(resolved);
    }
    // Record the highest missing ancestor first, then everything below it.
    let rel = resolved
        .strip_prefix(root)
        .unwrap_or(&resolved)
        .to_path_buf();
    let mut ancestors: Vec<&Path> = rel
        .ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .collect();
    ancestors.reverse();
    for a in ancestors {
        if std::fs::symlink_metadata(root.join(a)).is_err() {
            created.push(Path::new("/").join(a));
        }
    }
    let parent = resolved.parent().unwrap_or(root);
    sys.mkdir_all(parent, 0o755)
        .map_err(ctx("a mount point's parent"))?;
    match kind {
        Kind::Dir => sys.mkdir_all(&resolved, 0o755),
        Kind::File => sys.create_file(&resolved, 0o644),
    }
    .map_err(ctx("a mount point"))?;
    Ok(resolved)
}

/// Remounts the bind at `target` read-only, keeping the flags the kernel locked on it.
fn remount_read_only(sys: &dyn Syscall, target: &Path) -> Result<(), SyscallError> {
    let flags = sys.mount_flags(target)?;
    sys.mount(
        None,
        target,
        None,
        flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None,
    )
}

/// Read-only recursive bind of `source` at `target`: the top mount and every mount below it.
fn bind_read_only_tree(
    sys: &dyn Syscall,
    source: &Path,
    target: &Path,
) -> Result<(), SyscallError> {
    sys.mount(
        Some(source),
        target,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;
    remount_read_only(sys, target)?;
    for sub in submounts(target) {
        remount_read_only(sys, &sub)?;
    }
    Ok(())
}

/// Mount points strictly below `target`, from `/proc/self/mountinfo`.
fn submounts(target: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p != target && p.starts_with(target))
        .collect()
}

/// Mounts the root filesystem at `layout.root()`.
pub fn mount_root(
    sys: &dyn Syscall,
    spec: &SandboxSpec,
    layout: &Layout,
) -> Result<(), RootfsError> {
    let root = layout.root();
    // A private tmpfs over the staging directory: what is made here never shows on the host
    // and goes away with the mount namespace.
    sys.mount(
        Some(Path::new("tmpfs")),
        &layout.staging,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0700"),
    )
    .map_err(ctx("the staging tmpfs"))?;
    sys.mkdir_all(&root, 0o755)
        .map_err(ctx("the root mount point"))?;
    match &spec.rootfs {
        RootFs::Dir(dir) => {
            sys.mount(
                Some(dir),
                &root,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .map_err(ctx("the root directory bind"))?;
        }
        RootFs::Overlay {
            lowers,
            upper,
            work,
        } => {
            let layer = layout.mountpoint_layer();
            sys.mkdir_all(&layer, 0o755)
                .map_err(ctx("the mount point layer"))?;
            let mut scratch = Vec::new();
            for (inner, kind) in mount_points(spec)? {
                ensure_mount_point(sys, &layer, &inner, kind, &mut scratch)?;
            }
            let lowerdir: Vec<String> = lowers
                .iter()
                .chain(std::iter::once(&layer))
                .map(|p| p.display().to_string())
                .collect();
            let base = format!(
                "lowerdir={},upperdir={},workdir={}",
                lowerdir.join(":"),
                upper.display(),
                work.display()
            );
            // `userxattr` (Linux 5.11+) keeps overlay's own attributes in `user.overlay.*`,
            // the only namespace a user namespace may write. Older kernels only know the
            // privileged form.
            let with_userxattr = format!("{base},userxattr");
            let overlay = |options: &str| {
                sys.mount(
                    Some(Path::new("overlay")),
                    &root,
                    Some("overlay"),
                    MsFlags::empty(),
                    Some(options),
                )
            };
            if let Err(first) = overlay(&with_userxattr) {
                if first.errno() != Some(libc::EINVAL) || overlay(&base).is_err() {
                    return Err(RootfsError::Overlay {
                        options: with_userxattr,
                        source: first,
                    });
                }
            }
        }
    }
    Ok(())
}

/// `/dev`: a tmpfs with the host's harmless devices bound in, a private devpts and a shm.
pub fn mount_dev(sys: &dyn Syscall, root: &Path, mctx: &MountContext) -> Result<(), RootfsError> {
    let dev = root.join("dev");
    sys.mount(
        Some(Path::new("tmpfs")),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=755,size=65536k"),
    )
    .map_err(ctx("/dev"))?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if !host.exists() {
            continue;
        }
        let target = dev.join(name);
        sys.create_file(&target, 0o666)
            .map_err(ctx("a /dev node"))?;
        sys.mount(Some(&host), &target, None, MsFlags::MS_BIND, None)
            .map_err(ctx("a /dev node bind"))?;
    }
    let pts = dev.join("pts");
    sys.mkdir_all(&pts, 0o755).map_err(ctx("/dev/pts"))?;
    let mut pts_opts = String::from("newinstance,ptmxmode=0666,mode=0620");
    if mctx.tty_gid_mapped {
        pts_opts.push_str(",gid=5");
    }
    sys.mount(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(&pts_opts),
    )
    .map_err(ctx("/dev/pts"))?;
    sys.symlink(Path::new("pts/ptmx"), &dev.join("ptmx"))
        .map_err(ctx("/dev/ptmx"))?;
    let shm = dev.join("shm");
    sys.mkdir_all(&shm, 0o755).map_err(ctx("/dev/shm"))?;
    sys.mount(
        Some(Path::new("shm")),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777,size=65536k"),
    )
    .map_err(ctx("/dev/shm"))?;
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        sys.symlink(Path::new(target), &dev.join(link))
            .map_err(ctx("a /dev symlink"))?;
    }
    Ok(())
}

/// `/proc`: a fresh instance for the sandbox's pid namespace, with what reaches the host
/// kernel read-only or masked. Where the kernel refuses a fresh one (the host masks parts of
/// its own `/proc`), a read-only bind of the host's.
pub fn mount_proc(
    sys: &dyn Syscall,
    root: &Path,
    mctx: &MountContext,
    report: &mut SetupReport,
) -> Result<(), RootfsError> {
    let proc = root.join("proc");
    if let Err(e) = sys.mount(
        Some(Path::new("proc")),
        &proc,
        Some("proc"),
        NOSUID_NODEV_NOEXEC,
        None,
    ) {
        if !matches!(e.errno(), Some(libc::EPERM) | Some(libc::EACCES)) {
            return Err(RootfsError::Mount {
                what: "/proc",
                source: e,
            });
        }
        report.proc_fallback = true;
        return bind_read_only_tree(sys, Path::new("/proc"), &proc).map_err(ctx("/proc (bind)"));
    }
    if let Some(max) = mctx.pid_max {
        // Must come before /proc/sys turns read-only.
        sys.write_file(&proc.join("sys/kernel/pid_max"), max.to_string().as_bytes())
            .map_err(ctx("the pid namespace's pid_max"))?;
    }
    for name in PROC_READ_ONLY {
        let p = proc.join(name);
        if p.exists() {
            sys.mount(Some(&p), &p, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)
                .and_then(|()| remount_read_only(sys, &p))
                .map_err(ctx("a read-only /proc entry"))?;
        }
    }
    let null = root.join("dev/null");
    for name in PROC_MASKED {
        let p = proc.join(name);
        if p.is_file() {
            sys.mount(Some(&null), &p, None, MsFlags::MS_BIND, None)
                .map_err(ctx("a masked /proc entry"))?;
        }
    }
    Ok(())
}

/// `/sys`: read-only. A fresh sysfs when the sandbox owns its network namespace (it then
/// shows only the sandbox's network devices and none of the host's cgroup mounts), else a
/// read-only recursive bind of the host's.
pub fn mount_sys(sys: &dyn Syscall, root: &Path, network: Network) -> Result<(), RootfsError> {
    let target = root.join("sys");
    if network == Network::None
        && sys
            .mount(
                Some(Path::new("sysfs")),
                &target,
                Some("sysfs"),
                NOSUID_NODEV_NOEXEC | MsFlags::MS_RDONLY,
                None,
            )
            .is_ok()
    {
        return Ok(());
    }
    bind_read_only_tree(sys, Path::new("/sys"), &target).map_err(ctx("/sys"))
}

/// `/tmp`: a tmpfs, world-writable and sticky.
pub fn mount_tmp(sys: &dyn Syscall, root: &Path) -> Result<(), RootfsError> {
    sys.mount(
        Some(Path::new("tmpfs")),
        &root.join("tmp"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )
    .map_err(ctx("/tmp"))
}

/// The spec's bind mounts, then the host's network files with [`Network::Host`].
pub fn mount_binds(
    sys: &dyn Syscall,
    spec: &SandboxSpec,
    root: &Path,
    report: &mut SetupReport,
) -> Result<(), RootfsError> {
    let points = mount_points(spec)?;
    let mut binds: Vec<(PathBuf, PathBuf, bool)> = spec
        .mounts
        .iter()
        .map(|m| (m.source.clone(), m.target.clone(), m.read_only))
        .collect();
    if spec.network == Network::Host {
        for f in HOST_NETWORK_FILES {
            if Path::new(f).exists() {
                binds.push((PathBuf::from(f), PathBuf::from(f), true));
            }
        }
    }
    for (source, inner, read_only) in binds {
        let kind = points
            .iter()
            .find(|(p, _)| *p == inner)
            .map_or(Kind::Dir, |(_, k)| *k);
        let target = ensure_mount_point(sys, root, &inner, kind, &mut report.created_mount_points)?;
        if read_only {
            bind_read_only_tree(sys, &source, &target).map_err(ctx("a read-only bind mount"))?;
        } else {
            sys.mount(
                Some(&source),
                &target,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .map_err(ctx("a bind mount"))?;
        }
    }
    Ok(())
}

/// Mount points of the fixed mounts (`/dev`, `/proc`, `/sys`, `/tmp`) present in the root.
pub fn ensure_fixed_mount_points(
    sys: &dyn Syscall,
    root: &Path,
    report: &mut SetupReport,
) -> Result<(), RootfsError> {
    for p in ["/dev", "/proc", "/sys", "/tmp"] {
        ensure_mount_point(
            sys,
            root,
            Path::new(p),
            Kind::Dir,
            &mut report.created_mount_points,
        )?;
    }
    Ok(())
}

/// Makes `root` the process's `/` and detaches the old root: after this, no path leads to
/// the host. `pivot_root(".", ".")` stacks the old root on the new one, so no directory for
/// it has to exist in the image; the lazy unmount then drops it and everything under it.
pub fn pivot(sys: &dyn Syscall, root: &Path) -> Result<(), RootfsError> {
    sys.chdir(root).map_err(ctx("pivot_root (chdir)"))?;
    sys.pivot_root(Path::new("."), Path::new("."))
        .map_err(ctx("pivot_root"))?;
    sys.umount2(Path::new("."), MntFlags::MNT_DETACH)
        .map_err(ctx("the old root's detach"))?;
    sys.chdir(Path::new("/"))
        .map_err(ctx("pivot_root (chdir /)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_stays_inside_the_root() {
        let dir = std::env::temp_dir().join(format!("solum-resolve-{}", std::process::id()));
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/../../../etc/shadow", root.join("etc/abs")).unwrap();
        std::os::unix::fs::symlink("../../run/x", root.join("etc/rel")).unwrap();
        assert_eq!(
            resolve_in_root(&root, Path::new("/etc/abs")),
            root.join("etc/shadow")
        );
        assert_eq!(
            resolve_in_root(&root, Path::new("/etc/rel")),
            root.join("run/x")
        );
        assert_eq!(
            resolve_in_root(&root, Path::new("/a/../../b")),
            root.join("b")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
