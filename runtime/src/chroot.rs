//! The `chroot` isolation level: for root in a container that may not create user
//! namespaces (Docker's default seccomp profile, Kubernetes' `RuntimeDefault`) but holds
//! `CAP_SYS_CHROOT`. The command runs `chroot`ed into the prepared directory with the
//! container's own ids (root stays root, so a layer's owners are the ones the `userns` level
//! gives), in a process group and session of its own, with the spec's limits and timeout.
//!
//! No mount is made: what a build needs and the image must not keep is created so that it
//! never reaches the diff, in this order, before the command starts:
//! 1. **Devices**: `/dev/null`, `zero`, `full`, `random`, `urandom`, `tty` made with `mknod`
//!    where the image lacks them, and listed as created (the caller leaves them out of the
//!    layer, as it does with the mount points of the `userns` level).
//! 2. **Fresh points**: `/tmp` (a tmpfs in the `userns` level) and every bind target. What
//!    the image has there is renamed aside in its own directory, a fresh empty directory (or
//!    file) takes its place, and a bind's source is copied into it.
//!
//! After the command and every process it left are gone, in reverse order: a writable
//! bind's content is copied back to its source, the fresh point is removed, the image's
//! entry is renamed back, and its directory's times are restored. Every path inside the
//! tree is resolved with [`crate::inroot`] and every step after it works from directory
//! descriptors with `O_NOFOLLOW`, so a symlink the image or the build put there is never
//! followed out of the tree.
//!
//! What chroot cannot prevent ([`CANNOT_PREVENT`]): the command shares the container's
//! network and sees its processes, and nothing here bounds its total of processes and
//! memory. The command
//! loses `CAP_SYS_CHROOT` and `CAP_MKNOD` (no second chroot to climb out, no device of the
//! host; from the inheritable set too), and the processes of this tool turn non-dumpable,
//! so a root command cannot ptrace them. A device node made here that the command
//! hard-linked or moved elsewhere in the tree fails the run: it would reach the layer.

use crate::entry::{wait_or_kill, Report, Waited};
use crate::idmap::IdMapKind;
use crate::inroot::{self, Make};
use crate::process::{self, Termination};
use crate::rootfs::SetupReport;
use crate::spec::{BindMount, Network, RootFs, SandboxSpec};
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, AtFlags, OFlag};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::stat::{fchmodat, fstat, fstatat, mkdirat, mknodat, FchmodatFlags, Mode, SFlag};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{unlinkat, ForkResult, Pid, UnlinkatFlags};
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What the `chroot` level cannot prevent, as `info` and the build log say it.
pub const CANNOT_PREVENT: &[&str] = &[
    "the network: the command uses the container's network (no network namespace), whatever the build asked",
    "the processes: the command sees the container's processes and, as root, may signal them (no pid namespace), the tool's own too: killing them fails the run, and what the command left then outlives it; /proc and /sys are absent",
    "the totals: no cgroup, so the number of processes is held only by the container's pid limit (RLIMIT_NPROC does not hold root) and memory only per process",
];

/// Capabilities a chrooted command gives up on top of those the `userns` level drops: a
/// second `chroot` is the classic way out of a first one, and a device node could reach
/// the host's disks.
const DROPPED_IN_CHROOT: &[u32] = &[
    18, // CAP_SYS_CHROOT
    27, // CAP_MKNOD
];

/// The character devices made in the tree's `/dev` when missing: name, major, minor.
const DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Runs the spec chrooted; called by the `__sandbox` process instead of the namespace setup.
pub fn run_chrooted(spec: &SandboxSpec, waited: &SigSet, started: Instant) -> Report {
    let RootFs::Dir(root) = &spec.rootfs else {
        return failed(
            "root",
            "the chroot level needs a prepared directory (overlay needs a user namespace)",
        );
    };
    // A root command could ptrace this process (same uid) and leave the tree through it.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let mut report = SetupReport::default();
    report.degradations.push(format!(
        "chroot: no namespaces; it cannot prevent {}",
        CANNOT_PREVENT.join("; nor ")
    ));
    if spec.network != Network::Host {
        report.degradations.push(
            "network: asked for no network, but the chroot level shares the container's".into(),
        );
    }
    let mut points = Vec::new();
    let mut devices = Vec::new();
    let prepared = make_devices(root, &mut report, &mut devices).and_then(|()| {
        let tmp = FreshPoint::new(root, Path::new("/tmp"), None, &mut report)?;
        points.push(tmp);
        for bind in &spec.mounts {
            let point = FreshPoint::new(root, &bind.target, Some(bind), &mut report)?;
            points.push(point);
        }
        Ok(())
    });
    let outcome = match prepared {
        Ok(()) => run_command(root, spec, waited, started),
        Err(e) => Err(failed("root", process::chain(&e))),
    };
    // Checked once every process of the command is gone (run_command waits for that).
    let outcome =
        outcome.and_then(
            |termination| match devices.iter().find(|d| !d.stayed_in_place(root)) {
                Some(moved) => Err(failed(
                    "devices",
                    format!(
                        "/dev/{}, a device node made for the command, was hard-linked or moved \
                     elsewhere in the tree, where it would reach the layer",
                        moved.name
                    ),
                )),
                None => Ok(termination),
            },
        );
    // Restored also after a failed preparation: the tree goes back as it came.
    let mut restore_error = None;
    for point in points.into_iter().rev() {
        if let Err(e) = point.restore() {
            restore_error.get_or_insert(e);
        }
    }
    match (outcome, restore_error) {
        (Err(report), _) => report,
        (Ok(_), Some(e)) => failed("restore", process::chain(&e)),
        (Ok(termination), None) => Report::Finished {
            termination,
            setup: report,
            id_map: IdMapKind::Root,
        },
    }
}

fn failed(stage: &str, message: impl Into<String>) -> Report {
    Report::Failed {
        stage: stage.into(),
        message: message.into(),
    }
}

/// Preparing or restoring the tree failed.
#[derive(Debug, thiserror::Error)]
pub enum ChrootError {
    #[error("cannot {what} {} in the tree", inner.display())]
    InTree {
        what: &'static str,
        inner: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a directory in the tree", inner.display())]
    NotADirectory { inner: PathBuf },
    #[error("{} names no entry", inner.display())]
    NoName { inner: PathBuf },
    #[error("cannot {what} {}", path.display())]
    Host {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The error of `what` on `inner`, a path inside the tree.
fn in_tree<E: Into<std::io::Error>>(
    what: &'static str,
    inner: &Path,
) -> impl FnOnce(E) -> ChrootError {
    let inner = inner.to_path_buf();
    move |e| ChrootError::InTree {
        what,
        inner,
        source: e.into(),
    }
}

/// The error of `what` on `path`, a path of the host (a bind's source).
fn on_host<E: Into<std::io::Error>>(
    what: &'static str,
    path: &Path,
) -> impl FnOnce(E) -> ChrootError {
    let path = path.to_path_buf();
    move |e| ChrootError::Host {
        what,
        path,
        source: e.into(),
    }
}

/// A directory inside the tree, resolved without leaving it and opened for `*at` calls.
fn open_dir_in(
    root: &Path,
    inner: &Path,
    report: &mut SetupReport,
) -> Result<OwnedFd, ChrootError> {
    let place = inroot::resolve(root, inner, Make::Dir).map_err(in_tree("resolve", inner))?;
    report.created_mount_points.extend(place.created.clone());
    if !place.is_dir {
        return Err(ChrootError::NotADirectory {
            inner: inner.to_path_buf(),
        });
    }
    nix::fcntl::open(
        place.path(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(in_tree("open", inner))
}

fn exists_at(dir: &OwnedFd, name: &OsStr) -> Result<Option<SFlag>, Errno> {
    match fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(SFlag::from_bits_truncate(
            st.st_mode & SFlag::S_IFMT.bits(),
        ))),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A device node this level made, held by an `O_PATH` descriptor (which does not open the
/// device) to tell where it went after the command.
struct MadeDevice {
    name: &'static str,
    node: OwnedFd,
}

impl MadeDevice {
    /// Whether the node is gone, or still only at `/dev/NAME` of the tree: the layer leaves
    /// that path out, so no device made here reaches it. A command that hard-linked or
    /// moved the node elsewhere would put a device node in the layer.
    fn stayed_in_place(&self, root: &Path) -> bool {
        let Ok(node) = fstat(self.node.as_fd()) else {
            return false;
        };
        if node.st_nlink == 0 {
            return true;
        }
        let at_its_name = nix::fcntl::open(
            root,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .and_then(|root| {
            openat(
                root.as_fd(),
                "dev",
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
        })
        .and_then(|dev| fstatat(dev.as_fd(), self.name, AtFlags::AT_SYMLINK_NOFOLLOW));
        at_its_name.is_ok_and(|st| {
            st.st_nlink == 1 && st.st_ino == node.st_ino && st.st_dev == node.st_dev
        })
    }
}

/// Makes the devices the image lacks in its `/dev`; without `CAP_MKNOD` says so and goes on.
fn make_devices(
    root: &Path,
    report: &mut SetupReport,
    made: &mut Vec<MadeDevice>,
) -> Result<(), ChrootError> {
    let dev = open_dir_in(root, Path::new("/dev"), report)?;
    for &(device, major, minor) in DEVICES {
        let name = OsStr::new(device);
        if exists_at(&dev, name)
            .map_err(in_tree("look at", Path::new("/dev")))?
            .is_some()
        {
            continue;
        }
        let mode = Mode::from_bits_truncate(0o666);
        match mknodat(
            dev.as_fd(),
            name,
            SFlag::S_IFCHR,
            mode,
            nix::sys::stat::makedev(major, minor),
        ) {
            Ok(()) => {
                // mknod applied the umask. The node was made just now and nothing runs in the
                // tree yet, so following its name is safe.
                let _ = fchmodat(dev.as_fd(), name, mode, FchmodatFlags::FollowSymlink);
                let node = openat(
                    dev.as_fd(),
                    name,
                    OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(in_tree("open", &Path::new("/dev").join(name)))?;
                made.push(MadeDevice { name: device, node });
                report
                    .created_mount_points
                    .push(Path::new("/dev").join(name));
            }
            Err(e) => {
                report.degradations.push(format!(
                    "dev: cannot make /dev/{} ({e}; CAP_MKNOD missing?)",
                    name.to_string_lossy()
                ));
                break;
            }
        }
    }
    Ok(())
}

/// A path of the tree given a fresh, empty entry for the run (see the module doc).
struct FreshPoint {
    /// The path inside the tree, for errors.
    inner: PathBuf,
    parent: OwnedFd,
    name: OsString,
    /// Where the image's own entry waits, renamed, in the same directory.
    aside: Option<OsString>,
    /// The host folder a writable bind writes back to.
    write_back: Option<PathBuf>,
    /// The parent's access and modification times before anything was changed in it.
    times: [libc::timespec; 2],
}

impl FreshPoint {
    fn new(
        root: &Path,
        inner: &Path,
        bind: Option<&BindMount>,
        report: &mut SetupReport,
    ) -> Result<FreshPoint, ChrootError> {
        let parent_inner = inner.parent().unwrap_or(Path::new("/"));
        let name = inner
            .file_name()
            .ok_or_else(|| ChrootError::NoName {
                inner: inner.to_path_buf(),
            })?
            .to_os_string();
        let parent = open_dir_in(root, parent_inner, report)?;
        let st = fstat(parent.as_fd()).map_err(in_tree("stat", parent_inner))?;
        let times = [
            libc::timespec {
                tv_sec: st.st_atime,
                tv_nsec: st.st_atime_nsec,
            },
            libc::timespec {
                tv_sec: st.st_mtime,
                tv_nsec: st.st_mtime_nsec,
            },
        ];
        let mut point = FreshPoint {
            inner: inner.to_path_buf(),
            parent,
            name,
            aside: None,
            write_back: None,
            times,
        };
        if exists_at(&point.parent, &point.name)
            .map_err(in_tree("look at", inner))?
            .is_some()
        {
            let aside = OsString::from(format!(
                ".solum-aside.{}.{}",
                std::process::id(),
                point.name.to_string_lossy()
            ));
            renameat(
                point.parent.as_fd(),
                point.name.as_os_str(),
                point.parent.as_fd(),
                aside.as_os_str(),
            )
            .map_err(in_tree("set aside", inner))?;
            point.aside = Some(aside);
        } else {
            report.created_mount_points.push(inner.to_path_buf());
        }
        // From here on the image's entry is aside: a failure puts it back before returning.
        match point.fill(inner, bind) {
            Ok(()) => Ok(point),
            Err(e) => {
                let _ = point.restore();
                Err(e)
            }
        }
    }

    /// Makes the fresh entry (a directory, or a file for a file bind) and copies the bind's
    /// source into it.
    fn fill(&mut self, inner: &Path, bind: Option<&BindMount>) -> Result<(), ChrootError> {
        let source_is_dir = bind.is_none_or(|b| b.source.is_dir());
        if source_is_dir {
            mkdirat(self.parent.as_fd(), self.name.as_os_str(), Mode::empty())
                .map_err(in_tree("make", inner))?;
        } else {
            openat(
                self.parent.as_fd(),
                self.name.as_os_str(),
                OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
            .map(drop)
            .map_err(in_tree("make", inner))?;
        }
        let mode = match bind {
            None => 0o1777,
            Some(b) => std::fs::metadata(&b.source)
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
                .map_err(on_host("read", &b.source))?,
        };
        fchmodat(
            self.parent.as_fd(),
            self.name.as_os_str(),
            Mode::from_bits_truncate(mode),
            FchmodatFlags::FollowSymlink,
        )
        .map_err(in_tree("chmod", inner))?;
        if let Some(bind) = bind {
            let target = self.fresh_path()?;
            copy_tree(&bind.source, &target.1)
                .map_err(on_host("copy into the tree", &bind.source))?;
            if !bind.read_only && source_is_dir {
                self.write_back = Some(bind.source.clone());
            }
        }
        Ok(())
    }

    /// The fresh entry, opened without following a symlink, and its `/proc/self/fd` path.
    fn fresh_path(&self) -> Result<(OwnedFd, PathBuf), ChrootError> {
        let fd = openat(
            self.parent.as_fd(),
            self.name.as_os_str(),
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(in_tree("open", &self.inner))?;
        let path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        Ok((fd, path))
    }

    fn restore(self) -> Result<(), ChrootError> {
        if let Some(source) = &self.write_back {
            // The command may have replaced the fresh directory by a symlink: only a real
            // directory is copied back, its symlinks as symlinks.
            if exists_at(&self.parent, &self.name) == Ok(Some(SFlag::S_IFDIR)) {
                let (_fd, path) = self.fresh_path()?;
                clear_dir(source).map_err(on_host("empty", source))?;
                copy_tree(&path, source).map_err(on_host("copy back into", source))?;
            }
        }
        remove_at(&self.parent, &self.name).map_err(in_tree("remove", &self.inner))?;
        if let Some(aside) = &self.aside {
            renameat(
                self.parent.as_fd(),
                aside.as_os_str(),
                self.parent.as_fd(),
                self.name.as_os_str(),
            )
            .map_err(in_tree("put back", &self.inner))?;
        }
        // SAFETY: futimens on a descriptor this function owns, with a two-element array.
        unsafe { libc::futimens(self.parent.as_raw_fd(), self.times.as_ptr()) };
        Ok(())
    }
}

/// Removes `name` in `dir` and everything below it, never following a symlink.
fn remove_at(dir: &OwnedFd, name: &OsStr) -> Result<(), Errno> {
    match exists_at(dir, name)? {
        None => Ok(()),
        Some(SFlag::S_IFDIR) => {
            let sub = openat(
                dir.as_fd(),
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            // A directory the command made unreadable is opened up first.
            let _ = nix::sys::stat::fchmod(sub.as_fd(), Mode::from_bits_truncate(0o700));
            let listing = std::fs::read_dir(format!("/proc/self/fd/{}", sub.as_raw_fd()))
                .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
            for entry in listing.flatten() {
                remove_at(&sub, &entry.file_name())?;
            }
            unlinkat(dir.as_fd(), name, UnlinkatFlags::RemoveDir)
        }
        Some(_) => unlinkat(dir.as_fd(), name, UnlinkatFlags::NoRemoveDir),
    }
}

/// Copies the tree `from` into the existing directory (or file) `to`: directories, regular
/// files and symlinks (as symlinks), with their permission bits but no setuid or setgid
/// bit; nothing else.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // `from` itself may be a `/proc/self/fd/N` name, which only `metadata` sees through.
    let meta = std::fs::metadata(from)?;
    if !meta.is_dir() {
        std::fs::copy(from, to)?;
        return Ok(());
    }
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            std::fs::create_dir(&dst)?;
            copy_tree(&src, &dst)?;
            let mode = std::fs::symlink_metadata(&src)?.permissions().mode();
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode))?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if kind.is_file() {
            std::fs::copy(&src, &dst)?;
            // A bind is `nosuid` at the userns level: no setuid or setgid file crosses.
            let mode = std::fs::symlink_metadata(&dst)?.permissions().mode();
            if mode & 0o6000 != 0 {
                std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode & 0o1777))?;
            }
        }
    }
    Ok(())
}

/// Empties a host folder of this tool (a bind's source) before its content comes back.
fn clear_dir(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        crate::private::remove(&entry?.path())?;
    }
    Ok(())
}

/// Forks the command, chrooted, and waits for it within the deadline; then kills every
/// process it left.
fn run_command(
    root: &Path,
    spec: &SandboxSpec,
    waited: &SigSet,
    started: Instant,
) -> Result<Termination, Report> {
    // Orphans of the command are re-parented here, so none outlives the run.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let root_c = std::ffi::CString::new(root.as_os_str().as_bytes())
        .map_err(|_| failed("root", "the tree's path contains a NUL byte"))?;
    let null = std::fs::File::open("/dev/null").map_err(|e| failed("stdin", e.to_string()))?;
    // SAFETY: this process is single-threaded (the fresh `__sandbox` exec), so the child may
    // run arbitrary code until exec.
    let child = match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            // SAFETY: prctl with integer arguments; chroot on a NUL-terminated path.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                if libc::chroot(root_c.as_ptr()) != 0 {
                    let e = std::io::Error::last_os_error();
                    eprintln!("sandbox: chroot failed: {e}");
                    libc::_exit(126);
                }
            }
            if nix::unistd::chdir("/").is_err() {
                // SAFETY: leaving a forked child.
                unsafe { libc::_exit(126) };
            }
            let mut spec = spec.clone();
            if !spec.inherit_stdin && !spec.tty {
                // The container's /dev/null, opened before the chroot: the tree may have none.
                // SAFETY: dup2 onto the descriptor number the command's stdin comes from.
                unsafe { libc::dup2(null.as_raw_fd(), crate::spec::STDIN_FD) };
                spec.inherit_stdin = true;
            }
            process::exec_command_dropping(&spec, DROPPED_IN_CHROOT)
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => return Err(failed("fork", format!("fork of the command failed: {e}"))),
    };
    drop(null);
    let deadline = spec.limits.timeout.map(|t| started + t);
    let termination = wait_command(child, waited, deadline);
    kill_leftovers(child);
    Ok(termination)
}

/// Waits for the command; on timeout or a termination request kills its process group.
fn wait_command(child: Pid, waited: &SigSet, deadline: Option<Instant>) -> Termination {
    let kill_group = || {
        let _ = kill(Pid::from_raw(-child.as_raw()), Signal::SIGKILL);
        let _ = kill(child, Signal::SIGKILL);
    };
    match wait_or_kill(child, waited, deadline, kill_group) {
        Waited::Ended(Some(WaitStatus::Exited(_, code))) => Termination::Exited(code),
        Waited::Ended(Some(WaitStatus::Signaled(_, sig, _))) => Termination::Signaled(sig as i32),
        Waited::Ended(_) => Termination::Exited(255),
        Waited::Killed(why) => why,
    }
}

/// Kills the command's process group, then every process re-parented here (those that
/// left the group with `setsid`), until none is left.
fn kill_leftovers(child: Pid) {
    let _ = kill(Pid::from_raw(-child.as_raw()), Signal::SIGKILL);
    let me = std::process::id();
    for _ in 0..10_000 {
        let children = children_of(me);
        for pid in &children {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        if children.is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// The pids whose parent is `parent` (from the container's `/proc`).
fn children_of(parent: u32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    // The name in parentheses may hold spaces: fields after its last `)`.
                    let rest = &s[s.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// A fresh `/tmp` replaced by the command with symlinks to a host folder: the restore
    /// removes the links, not what they name, and puts the image's `/tmp` and its
    /// directory's times back.
    #[test]
    fn a_fresh_point_is_restored_without_following_the_commands_symlinks() {
        let dir = crate::private::make_dir("solum-chroot-unit.").unwrap();
        let (root, outside) = (dir.join("root"), dir.join("outside"));
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        std::fs::write(root.join("tmp/keep"), "image\n").unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("precious"), "host\n").unwrap();
        let times = |p: &Path| {
            let m = std::fs::metadata(p).unwrap();
            (m.mtime(), m.mtime_nsec())
        };
        let root_times = times(&root);
        let mut report = SetupReport::default();
        let point = FreshPoint::new(&root, Path::new("/tmp"), None, &mut report).unwrap();
        let fresh = std::fs::symlink_metadata(root.join("tmp")).unwrap();
        assert!(fresh.is_dir() && fresh.permissions().mode() & 0o7777 == 0o1777);
        assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0);
        // What a hostile command leaves: links to the host folder, inside and instead.
        std::os::unix::fs::symlink(&outside, root.join("tmp/inner-link")).unwrap();
        std::fs::create_dir(root.join("tmp/sub")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("tmp/sub/deeper")).unwrap();
        std::fs::rename(root.join("tmp"), root.join("moved")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("tmp")).unwrap();
        point.restore().unwrap();
        assert_eq!(times(&root), root_times, "the root's times are back");
        assert_eq!(
            std::fs::read_to_string(outside.join("precious")).unwrap(),
            "host\n"
        );
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
        assert_eq!(
            std::fs::read_to_string(root.join("tmp/keep")).unwrap(),
            "image\n"
        );
        assert!(std::fs::symlink_metadata(root.join("tmp"))
            .unwrap()
            .is_dir());
        std::fs::remove_dir_all(root.join("moved")).unwrap();
        assert_eq!(
            std::fs::read_dir(&root).unwrap().count(),
            1,
            "nothing set aside is left"
        );
        assert!(report.created_mount_points.is_empty());
        crate::private::remove(&dir).unwrap();
    }
}
