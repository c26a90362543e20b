//! Paths inside the sandbox's new root, resolved without ever leaving it. Everything the
//! setup makes or mounts there (`/dev` and its entries, `/proc`, `/sys`, `/tmp`, bind
//! targets such as `/solum/cache`, `/etc/hosts`, `/etc/resolv.conf`) is named by the image,
//! and the image is hostile: its `/dev -> /` must mean the root's `/`, never the host's, and
//! a chain of symlinks must not run out into a literal host path.
//!
//! The walk goes one component at a time from directory descriptors, as the kernel's
//! `RESOLVE_IN_ROOT` does: each step is an `openat2` of a single name with `O_NOFOLLOW` and
//! `RESOLVE_BENEATH` relative to the directory reached so far, a symlink's target is fed back
//! into the walk (an absolute one restarts at the root), `..` pops back to the previous
//! directory and never above the root, and more than [`MAX_SYMLINKS`] symlinks end the walk
//! with `ELOOP`. Doing the walk here rather than in one `openat2(RESOLVE_IN_ROOT)` call lets
//! it create what is missing on the way (a mount point, or the missing target of an image's
//! `/etc/resolv.conf -> ../run/resolv.conf`) and say which paths it created.
//!
//! Callers get a descriptor and hand `/proc/self/fd/N` to `mount(2)`, so no path string
//! built from image content is ever resolved by the kernel on the host's terms. A walk
//! crosses mount points like any lookup, so resolving again after a mount reaches the new
//! filesystem. This module decides nothing about mounts.

use nix::errno::Errno;
use nix::fcntl::{openat2, readlinkat, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, mkdirat, Mode, SFlag};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// At most this many symlinks are followed in one resolution (the kernel's own limit).
pub const MAX_SYMLINKS: usize = 40;

/// What to make when a component is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Make {
    /// Nothing: a missing component is `ENOENT`.
    Nothing,
    /// Directories (mode 0755) for every missing component.
    Dir,
    /// Directories for missing parents and an empty file (mode 0644) for the last component.
    File,
}

/// A place inside the root, held open.
#[derive(Debug)]
pub struct InRoot {
    /// `None` only in recorded (test) calls, which have no descriptors.
    fd: Option<OwnedFd>,
    /// What to name to system calls: `/proc/self/fd/N`, or a plain path in recorded calls.
    path: PathBuf,
    /// Where the walk ended, as a path inside the root (`/` for the root itself).
    pub inner: PathBuf,
    pub is_dir: bool,
    /// Paths inside the root the walk created, highest first.
    pub created: Vec<PathBuf>,
}

impl InRoot {
    /// A place named by a plain path, for the recording syscalls of tests.
    pub fn recorded(path: PathBuf, inner: PathBuf, is_dir: bool) -> InRoot {
        InRoot {
            fd: None,
            path,
            inner,
            is_dir,
            created: Vec::new(),
        }
    }

    /// The path that names this place to system calls (`mount`, `open`, `symlink` below it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this is the root itself (the image pointed a mount point at `/`).
    pub fn is_root(&self) -> bool {
        self.inner == Path::new("/")
    }

    /// The path of this place as `/proc/self/mountinfo` shows it (the real location, with
    /// no symlink on the way).
    pub fn mount_path(&self) -> PathBuf {
        match &self.fd {
            Some(_) => std::fs::read_link(&self.path).unwrap_or_else(|_| self.path.clone()),
            None => self.path.clone(),
        }
    }
}

fn one(dir: &OwnedFd, name: &OsString, flags: OFlag, mode: Mode) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .mode(mode)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(dir.as_fd(), name.as_bytes(), how)
}

fn open_one(dir: &OwnedFd, name: &OsString) -> nix::Result<OwnedFd> {
    one(dir, name, OFlag::O_PATH, Mode::empty())
}

fn parts(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

fn inner_of(stack: &[(OwnedFd, OsString)], last: Option<&OsString>) -> PathBuf {
    let mut p = PathBuf::from("/");
    for (_, name) in stack {
        p.push(name);
    }
    if let Some(name) = last {
        p.push(name);
    }
    p
}

/// `inner` (a path inside the sandbox) resolved under the directory `root` as if `root`
/// were `/`, making what is missing as `make` says. Errors: `ELOOP` past [`MAX_SYMLINKS`],
/// `ENOTDIR` for a non-directory on the way, `ENOENT` for a missing part with
/// [`Make::Nothing`].
pub fn resolve(root: &Path, inner: &Path, make: Make) -> io::Result<InRoot> {
    let root_fd = nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut stack: Vec<(OwnedFd, OsString)> = Vec::new();
    let mut pending = parts(inner);
    let mut followed = 0;
    let mut created = Vec::new();
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            // Above the root is the root, as in the kernel's RESOLVE_IN_ROOT.
            stack.pop();
            continue;
        }
        let last = pending.is_empty();
        let dir = stack.last().map_or(&root_fd, |(fd, _)| fd);
        let fd = match open_one(dir, &part) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if make != Make::Nothing => {
                let made = if last && make == Make::File {
                    one(
                        dir,
                        &part,
                        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY,
                        Mode::from_bits_truncate(0o644),
                    )
                    .map(drop)
                } else {
                    mkdirat(dir, part.as_bytes(), Mode::from_bits_truncate(0o755))
                };
                match made {
                    Ok(()) => created.push(inner_of(&stack, Some(&part))),
                    Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                open_one(dir, &part)?
            }
            Err(e) => return Err(e.into()),
        };
        let kind = SFlag::from_bits_truncate(fstat(&fd)?.st_mode & SFlag::S_IFMT.bits());
        if kind == SFlag::S_IFLNK {
            followed += 1;
            if followed > MAX_SYMLINKS {
                return Err(Errno::ELOOP.into());
            }
            let target = readlinkat(dir, part.as_bytes())?;
            if Path::new(&target).is_absolute() {
                stack.clear();
            }
            for p in parts(Path::new(&target)).into_iter().rev() {
                pending.push_front(p);
            }
            continue;
        }
        if !last && kind != SFlag::S_IFDIR {
            return Err(Errno::ENOTDIR.into());
        }
        stack.push((fd, part));
    }
    let inner = inner_of(&stack, None);
    let (fd, is_dir) = match stack.pop() {
        Some((fd, _)) => {
            let is_dir = fstat(&fd)?.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits();
            (fd, is_dir)
        }
        None => (root_fd, true),
    };
    Ok(InRoot {
        path: PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
        fd: Some(fd),
        inner,
        is_dir,
        created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        (dir, root)
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let (dir, root) = tree();
        symlink("/../../../etc", root.join("abs")).unwrap();
        symlink("../../run/x", root.join("etc/rel")).unwrap();
        symlink("/", root.join("dev")).unwrap();
        let r = resolve(&root, Path::new("/abs"), Make::Nothing).unwrap();
        assert_eq!(r.inner, Path::new("/etc"));
        assert_eq!(r.mount_path(), root.join("etc"));
        let r = resolve(&root, Path::new("/a/../../b"), Make::Dir).unwrap();
        assert_eq!(r.inner, Path::new("/b"));
        assert_eq!(r.created, [PathBuf::from("/a"), PathBuf::from("/b")]);
        // A dangling link's target is made where the link points inside the root.
        let r = resolve(&root, Path::new("/etc/rel"), Make::File).unwrap();
        assert_eq!(r.inner, Path::new("/run/x"));
        assert!(!r.is_dir && root.join("run/x").is_file());
        assert_eq!(r.created, [PathBuf::from("/run"), PathBuf::from("/run/x")]);
        // `/dev -> /` is the root itself; what is made below it stays in the root.
        assert!(resolve(&root, Path::new("/dev"), Make::Dir)
            .unwrap()
            .is_root());
        let r = resolve(&root, Path::new("/dev/null"), Make::File).unwrap();
        assert_eq!(r.inner, Path::new("/null"));
        assert!(root.join("null").is_file());
        assert!(!dir.path().join("null").exists());
    }

    /// B10: a chain longer than the kernel's 40 hops used to be joined literally, and its
    /// absolute tail then followed on the host. It is an error now, and nothing is made.
    #[test]
    fn hostile_symlink_chain_past_40_hops_is_refused() {
        let (dir, root) = tree();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        symlink("/c1", root.join("etc/hosts")).unwrap();
        for i in 1..=45 {
            symlink(format!("/c{}", i + 1), root.join(format!("c{i}"))).unwrap();
        }
        symlink(&outside, root.join("c46")).unwrap();
        let err = resolve(&root, Path::new("/etc/hosts"), Make::File).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        // At 40 hops (`etc/hosts` and `c1`..`c39`) it resolves, inside the root.
        std::fs::remove_file(root.join("c39")).unwrap();
        symlink(&outside, root.join("c39")).unwrap();
        let r = resolve(&root, Path::new("/etc/hosts"), Make::File).unwrap();
        assert_eq!(r.inner, outside);
        assert!(root.join(outside.strip_prefix("/").unwrap()).is_file());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }

    #[test]
    fn a_file_on_the_way_is_not_a_directory() {
        let (_dir, root) = tree();
        std::fs::write(root.join("etc/f"), "").unwrap();
        let err = resolve(&root, Path::new("/etc/f/x"), Make::Dir).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTDIR));
        let err = resolve(&root, Path::new("/nope"), Make::Nothing).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    }
}
