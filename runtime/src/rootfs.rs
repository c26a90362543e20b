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
//!
//! Every path inside the root is resolved by [`Syscall::resolve`] (see [`crate::inroot`])
//! and named to `mount(2)` through its descriptor; none is joined as a string. A mount point
//! that leads to the root itself is refused.

use crate::inroot::{InRoot, Make};
use crate::spec::{Network, RootFs, SandboxSpec};
use crate::syscall::{Syscall, SyscallError};
use nix::mount::{MntFlags, MsFlags};
use std::path::{Path, PathBuf};

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
    /// Steps the host refused that the setup did without, each said in a sentence (see
    /// [`crate::setup`]): what remains still isolates the command.
    #[serde(default)]
    pub degradations: Vec<String>,
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
    #[error("cannot resolve the mount point {} inside the root", inner.display())]
    Target {
        inner: PathBuf,
        #[source]
        source: SyscallError,
    },
    #[error("the mount point {} leads to the root itself (a symlink to `/` in the image?)", inner.display())]
    TargetIsRoot { inner: PathBuf },
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

/// Every mount point the spec needs inside the root, in mount order.
fn mount_points(spec: &SandboxSpec) -> Result<Vec<(PathBuf, Make)>, RootfsError> {
    let mut out: Vec<(PathBuf, Make)> = FIXED_MOUNT_POINTS
        .iter()
        .map(|p| (PathBuf::from(p), Make::Dir))
        .collect();
    for m in &spec.mounts {
        let meta = std::fs::metadata(&m.source).map_err(|source| RootfsError::BindSource {
            path: m.source.clone(),
            source,
        })?;
        let make = if meta.is_dir() { Make::Dir } else { Make::File };
        out.push((m.target.clone(), make));
    }
    if spec.network == Network::Host {
        for f in HOST_NETWORK_FILES {
            if Path::new(f).exists() {
                out.push((PathBuf::from(f), Make::File));
            }
        }
    }
    Ok(out)
}

/// The mount points of the fixed mounts, in mount order.
const FIXED_MOUNT_POINTS: &[&str] = &["/dev", "/proc", "/sys", "/tmp"];

/// `inner` resolved inside `root` (see [`crate::inroot`]), made as `make` where missing,
/// with what had to be made recorded in `created`. A mount point that resolves to the root
/// itself (an image with `/dev -> /`) is refused: a mount there would cover the whole image.
fn mount_target(
    sys: &dyn Syscall,
    root: &Path,
    inner: &Path,
    make: Make,
    created: &mut Vec<PathBuf>,
) -> Result<InRoot, RootfsError> {
    let mut target = sys
        .resolve(root, inner, make)
        .map_err(|source| RootfsError::Target {
            inner: inner.to_path_buf(),
            source,
        })?;
    if target.is_root() {
        return Err(RootfsError::TargetIsRoot {
            inner: inner.to_path_buf(),
        });
    }
    created.append(&mut target.created);
    Ok(target)
}

/// `inner` inside `root` as it is now (after the mounts so far), made as `make` when missing.
fn existing(
    sys: &dyn Syscall,
    root: &Path,
    inner: &str,
    make: Make,
) -> Result<InRoot, RootfsError> {
    mount_target(sys, root, Path::new(inner), make, &mut Vec::new())
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

/// Read-only recursive bind of `source` at `inner` of `root` (which exists): the top mount
/// and every mount below it. The target is resolved again after the bind, so the remount
/// reaches the new mount rather than the directory under it.
fn bind_read_only_tree(
    sys: &dyn Syscall,
    source: &Path,
    root: &Path,
    inner: &Path,
) -> Result<(), RootfsError> {
    let target = mount_target(sys, root, inner, Make::Nothing, &mut Vec::new())?;
    sys.mount(
        Some(source),
        target.path(),
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
    .map_err(ctx("a read-only bind mount"))?;
    drop(target);
    let target = mount_target(sys, root, inner, Make::Nothing, &mut Vec::new())?;
    remount_read_only(sys, target.path()).map_err(ctx("a read-only bind mount"))?;
    // The mounts below come from `source` (a host tree), and the real path of the target has
    // no symlink on the way: their paths in mountinfo name them.
    for sub in submounts(&target.mount_path()) {
        remount_read_only(sys, &sub).map_err(ctx("a read-only bind mount"))?;
    }
    Ok(())
}

/// Mount points strictly below `target`, from `/proc/self/mountinfo`.
fn submounts(target: &Path) -> Vec<PathBuf> {
    // Read as bytes: a mount point's path (the image names it) need not be UTF-8, and a
    // file that failed to read as text would leave every mount below writable.
    let Ok(text) = std::fs::read("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.split(|&b| b == b'\n')
        .filter_map(|l| l.split(|&b| b == b' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|p| p != target && p.starts_with(target))
        .collect()
}

/// A path field of `/proc/self/mountinfo` as the path it names: the kernel writes space,
/// tab, newline and backslash as `\ooo` octal escapes, and every other byte as it is.
fn unescape_mountinfo(field: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let octal = |b: &[u8]| -> Option<u8> {
        let digits = std::str::from_utf8(b).ok()?;
        digits
            .bytes()
            .all(|d| (b'0'..=b'7').contains(&d))
            .then(|| u8::from_str_radix(digits, 8).ok())?
    };
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        match field.get(i + 1..i + 4).and_then(octal) {
            Some(byte) if field[i] == b'\\' => {
                out.push(byte);
                i += 4;
            }
            _ => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
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
            for (inner, make) in mount_points(spec)? {
                mount_target(sys, &layer, &inner, make, &mut scratch)?;
            }
            let mut all: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
            all.push(&layer);
            mount_overlay(
                sys,
                &layout.staging,
                "root",
                &root,
                &all,
                upper,
                work,
                MsFlags::empty(),
                UpperLife::Throwaway,
            )?;
        }
    }
    Ok(())
}

/// How long an overlay's upper dir matters, which decides whether the kernel must make it
/// durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UpperLife {
    /// The root's upper dir: thrown away after the run, or read into a layer by the caller
    /// right after it (a host crash loses that build either way). Mounted `volatile`: the
    /// kernel otherwise syncs the whole host filesystem under the upper dir when the overlay
    /// goes away with the sandbox, which costs milliseconds to seconds of other processes'
    /// writes on every run. `volatile` leaves `work/work/incompat/volatile`, which would
    /// refuse the next mount on the same work dir: the sandbox's outer process empties the
    /// work dir once the sandbox is gone (see [`crate::entry`]).
    Throwaway,
    /// A bind's upper dir (`/solum/cache`): the caller's folder, kept between builds, so a
    /// command's `fsync` in it must reach the disk.
    Kept,
}

/// Mounts an overlay of `lowers` (top-most first), `upper` and `work` at `target`. Every
/// layer is named to the kernel through a short symlink in the staging tmpfs (`NAME.l0`,
/// `NAME.u`, …) relative to it, because overlay shows its options as given in the
/// sandbox's `/proc/self/mountinfo`: the store's and scratch folders' host paths stay out
/// of the sandbox's view.
#[allow(clippy::too_many_arguments)]
fn mount_overlay(
    sys: &dyn Syscall,
    staging: &Path,
    name: &str,
    target: &Path,
    lowers: &[&Path],
    upper: &Path,
    work: &Path,
    flags: MsFlags,
    life: UpperLife,
) -> Result<(), RootfsError> {
    let link = |suffix: String, to: &Path| -> Result<String, RootfsError> {
        let short = format!("{name}.{suffix}");
        sys.symlink(to, &staging.join(&short))
            .map_err(ctx("an overlay layer's name"))?;
        Ok(short)
    };
    let mut lowerdir = Vec::new();
    for (i, lower) in lowers.iter().enumerate() {
        lowerdir.push(link(format!("l{i}"), lower)?);
    }
    let base = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowerdir.join(":"),
        link("u".into(), upper)?,
        link("w".into(), work)?
    );
    sys.chdir(staging).map_err(ctx("the staging directory"))?;
    // `userxattr` (Linux 5.11+) keeps overlay's own attributes in `user.overlay.*`, the only
    // namespace a user namespace may write. Older kernels only know the privileged form.
    let with_userxattr = format!("{base},userxattr");
    // Tried in this order; a kernel that does not know an option says EINVAL, and the next
    // one goes without it. `volatile` (Linux 5.10+) leads, so that the options' tail stays
    // the same in every form.
    let mut options = Vec::with_capacity(3);
    if life == UpperLife::Throwaway {
        options.push(format!("volatile,{with_userxattr}"));
    }
    options.push(with_userxattr);
    options.push(base);
    // The error of the fullest form is the one worth reporting.
    let mut first: Option<(String, SyscallError)> = None;
    for option in options {
        let mounted = sys.mount(
            Some(Path::new("overlay")),
            target,
            Some("overlay"),
            flags,
            Some(&option),
        );
        match mounted {
            Ok(()) => return Ok(()),
            Err(error) => {
                let refused_option = error.errno() == Some(libc::EINVAL);
                first.get_or_insert((option, error));
                if !refused_option {
                    break;
                }
            }
        }
    }
    match first {
        Some((options, source)) => Err(RootfsError::Overlay { options, source }),
        None => Ok(()),
    }
}

/// `/dev`: a tmpfs with the host's harmless devices bound in, a private devpts and a shm.
/// Every entry is resolved inside the root again after the tmpfs is mounted, so it lands in
/// the tmpfs wherever the image's `/dev` leads (inside the root).
pub fn mount_dev(sys: &dyn Syscall, root: &Path, mctx: &MountContext) -> Result<(), RootfsError> {
    let dev = existing(sys, root, "/dev", Make::Dir)?;
    sys.mount(
        Some(Path::new("tmpfs")),
        dev.path(),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=755,size=65536k"),
    )
    .map_err(ctx("/dev"))?;
    drop(dev);
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if !host.exists() {
            continue;
        }
        let target = existing(sys, root, &format!("/dev/{name}"), Make::File)?;
        sys.mount(Some(&host), target.path(), None, MsFlags::MS_BIND, None)
            .map_err(ctx("a /dev node bind"))?;
    }
    let pts = existing(sys, root, "/dev/pts", Make::Dir)?;
    let mut pts_opts = String::from("newinstance,ptmxmode=0666,mode=0620");
    if mctx.tty_gid_mapped {
        pts_opts.push_str(",gid=5");
    }
    sys.mount(
        Some(Path::new("devpts")),
        pts.path(),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(&pts_opts),
    )
    .map_err(ctx("/dev/pts"))?;
    let shm = existing(sys, root, "/dev/shm", Make::Dir)?;
    sys.mount(
        Some(Path::new("shm")),
        shm.path(),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777,size=65536k"),
    )
    .map_err(ctx("/dev/shm"))?;
    // The tmpfs itself, held open: each link is one name created in it.
    let dev = existing(sys, root, "/dev", Make::Nothing)?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        sys.symlink(Path::new(target), &dev.path().join(link))
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
    let proc = existing(sys, root, "/proc", Make::Dir)?;
    if let Err(e) = sys.mount(
        Some(Path::new("proc")),
        proc.path(),
        Some("proc"),
        NOSUID_NODEV_NOEXEC,
        None,
    ) {
        if !matches!(e.errno(), Some(libc::EPERM | libc::EACCES)) {
            return Err(RootfsError::Mount {
                what: "/proc",
                source: e,
            });
        }
        report.proc_fallback = true;
        report.degradations.push(format!(
            "proc: a fresh /proc was refused ({}; the container masks parts of its own), so \
             /proc is a read-only bind of the container's",
            std::io::Error::from_raw_os_error(e.errno().unwrap_or(libc::EPERM))
        ));
        return bind_read_only_tree(sys, Path::new("/proc"), root, Path::new("/proc"));
    }
    drop(proc);
    // From here on every path below /proc is in the fresh procfs, not in the image.
    if let Some(max) = mctx.pid_max {
        // Must come before /proc/sys turns read-only.
        let file = existing(sys, root, "/proc/sys/kernel/pid_max", Make::Nothing)?;
        sys.write_file(file.path(), max.to_string().as_bytes())
            .map_err(ctx("the pid namespace's pid_max"))?;
    }
    let present = |inner: &str| match sys.resolve(root, Path::new(inner), Make::Nothing) {
        Ok(p) => Ok(Some(p)),
        Err(e) if e.errno() == Some(libc::ENOENT) => Ok(None),
        Err(source) => Err(RootfsError::Target {
            inner: PathBuf::from(inner),
            source,
        }),
    };
    for name in PROC_READ_ONLY {
        let inner = format!("/proc/{name}");
        if let Some(p) = present(&inner)? {
            sys.mount(
                Some(p.path()),
                p.path(),
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .map_err(ctx("a read-only /proc entry"))?;
            drop(p);
            let p = existing(sys, root, &inner, Make::Nothing)?;
            remount_read_only(sys, p.path()).map_err(ctx("a read-only /proc entry"))?;
        }
    }
    let null = existing(sys, root, "/dev/null", Make::Nothing)?;
    for name in PROC_MASKED {
        if let Some(p) = present(&format!("/proc/{name}"))?.filter(|p| !p.is_dir) {
            sys.mount(Some(null.path()), p.path(), None, MsFlags::MS_BIND, None)
                .map_err(ctx("a masked /proc entry"))?;
        }
    }
    Ok(())
}

/// `/sys`: read-only. A fresh sysfs when the sandbox owns its network namespace (it then
/// shows only the sandbox's network devices and none of the host's cgroup mounts), else a
/// read-only recursive bind of the host's.
pub fn mount_sys(sys: &dyn Syscall, root: &Path, network: &Network) -> Result<(), RootfsError> {
    let target = existing(sys, root, "/sys", Make::Dir)?;
    if network.has_own_namespace()
        && sys
            .mount(
                Some(Path::new("sysfs")),
                target.path(),
                Some("sysfs"),
                NOSUID_NODEV_NOEXEC | MsFlags::MS_RDONLY,
                None,
            )
            .is_ok()
    {
        return Ok(());
    }
    drop(target);
    bind_read_only_tree(sys, Path::new("/sys"), root, Path::new("/sys"))
}

/// `/tmp`: a tmpfs, world-writable and sticky.
pub fn mount_tmp(sys: &dyn Syscall, root: &Path) -> Result<(), RootfsError> {
    let target = existing(sys, root, "/tmp", Make::Dir)?;
    sys.mount(
        Some(Path::new("tmpfs")),
        target.path(),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )
    .map_err(ctx("/tmp"))
}

/// The spec's bind mounts, then the host's network files with [`Network::Host`]. A bind
/// neither carries setuid bits nor device nodes in (`nosuid`, `nodev`): what a build leaves
/// in `/solum/cache` sits in a host folder and must give nothing when run from there.
pub fn mount_binds(
    sys: &dyn Syscall,
    spec: &SandboxSpec,
    layout: &Layout,
    report: &mut SetupReport,
) -> Result<(), RootfsError> {
    let root = &layout.root();
    let points = mount_points(spec)?;
    let mut binds: Vec<(PathBuf, PathBuf, bool, Option<PathBuf>)> = spec
        .mounts
        .iter()
        .map(|m| {
            (
                m.source.clone(),
                m.target.clone(),
                m.read_only,
                m.work.clone(),
            )
        })
        .collect();
    if spec.network == Network::Host {
        for f in HOST_NETWORK_FILES {
            if Path::new(f).exists() {
                binds.push((PathBuf::from(f), PathBuf::from(f), true, None));
            }
        }
    }
    for (i, (source, inner, read_only, work)) in binds.into_iter().enumerate() {
        let make = points
            .iter()
            .find(|(p, _)| *p == inner)
            .map_or(Make::Dir, |(_, k)| *k);
        let target = mount_target(sys, root, &inner, make, &mut report.created_mount_points)?;
        if let (false, Some(work), Make::Dir) = (read_only, &work, make) {
            // An overlay of `source` over an empty lower writes through to `source` like a
            // bind; where the kernel refuses it, the bind below does.
            let empty = layout.staging.join(format!("bind{i}.empty"));
            sys.mkdir_all(&empty, 0o755)
                .map_err(ctx("an empty overlay lower"))?;
            let hidden = mount_overlay(
                sys,
                &layout.staging,
                &format!("bind{i}"),
                target.path(),
                &[&empty],
                &source,
                work,
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                UpperLife::Kept,
            );
            if hidden.is_ok() {
                continue;
            }
        }
        if read_only {
            drop(target);
            bind_read_only_tree(sys, &source, root, &inner)?;
        } else {
            sys.mount(
                Some(&source),
                target.path(),
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .map_err(ctx("a bind mount"))?;
            drop(target);
            let target = mount_target(sys, root, &inner, Make::Nothing, &mut Vec::new())?;
            let flags = sys
                .mount_flags(target.path())
                .map_err(ctx("a bind mount"))?;
            sys.mount(
                None,
                target.path(),
                None,
                flags
                    | MsFlags::MS_BIND
                    | MsFlags::MS_REMOUNT
                    | MsFlags::MS_NOSUID
                    | MsFlags::MS_NODEV,
                None,
            )
            .map_err(ctx("a bind mount (nosuid, nodev)"))?;
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
    for p in FIXED_MOUNT_POINTS {
        mount_target(
            sys,
            root,
            Path::new(p),
            Make::Dir,
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
    use crate::syscall::LinuxSyscall;

    /// B09: an image's `/dev -> /` may not turn the root itself into a mount point.
    #[test]
    fn hostile_mount_point_to_the_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink("/", root.join("dev")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("tmp")).unwrap();
        let mut report = SetupReport::default();
        for inner in ["/dev", "/tmp"] {
            let err = mount_target(
                &LinuxSyscall,
                &root,
                Path::new(inner),
                Make::Dir,
                &mut report.created_mount_points,
            )
            .unwrap_err();
            assert!(
                matches!(err, RootfsError::TargetIsRoot { .. }),
                "{inner}: {err}"
            );
        }
    }

    /// A mount point the image names may hold any byte but `/` and NUL; mountinfo escapes
    /// four of them. Decoding only `\040` lost the mounts below a hostile `/sys`.
    #[test]
    fn mountinfo_paths_are_decoded_byte_for_byte() {
        use std::os::unix::ffi::OsStrExt;
        let decoded = |field: &[u8]| unescape_mountinfo(field).as_os_str().as_bytes().to_vec();
        assert_eq!(decoded(br"/a\040b\011c\012d\134e"), b"/a b\tc\nd\\e");
        assert_eq!(decoded(b"/s\xffx/fs"), b"/s\xffx/fs");
        // Not an escape: kept as it is.
        assert_eq!(decoded(br"/a\x\09\1"), br"/a\x\09\1");
    }
}
