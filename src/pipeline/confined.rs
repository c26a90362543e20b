//! File operations on a build's writable root (an overlay upper dir or the copy of the
//! fallback) from the host side: installing a badger's scripts before a step, removing them
//! and the sandbox's mount points after it. The tree is the image's and the build's, so it
//! is hostile: a build may have turned `/solum` into a symlink to `/somewhere` on the host
//! between two steps, and an image may ship one.
//!
//! Every path is opened relative to a descriptor of the root with `openat2` and
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, and changed with `*at` calls relative to the
//! directory so reached: the kernel refuses any symlink on the way, so nothing here ever
//! reaches outside the root. Where a file is installed, a symlink (or any non-directory) on
//! the way is replaced by a directory — what an overlay does when its upper dir shadows a
//! lower symlink — so both build modes give the same layer. Paths with `..` are refused.
//! This module must not follow a symlink, nor take a path string from the tree.

use crate::error_class::{Classify, ErrorClass};
use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fchmod, mkdirat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};
use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// A file operation inside a build's root failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfinedError {
    #[error("path {} inside the image must be absolute and without `..`", path.display())]
    BadPath { path: PathBuf },
    #[error("cannot {action} {} inside the build's root {}", path.display(), root.display())]
    Io {
        root: PathBuf,
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
}

impl Classify for ConfinedError {
    fn class(&self) -> ErrorClass {
        match self {
            ConfinedError::BadPath { .. } => ErrorClass::Input,
            ConfinedError::Io { .. } => ErrorClass::Failure,
        }
    }
}

/// The normal components of `inner` (an absolute path inside the image); `..` is refused.
fn components(inner: &Path) -> Result<Vec<&OsStr>, ConfinedError> {
    let mut out = Vec::new();
    for c in inner.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(ConfinedError::BadPath {
                    path: inner.to_path_buf(),
                })
            }
        }
    }
    Ok(out)
}

fn how(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        )
}

fn open_root(root: &Path) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens the directory `parts` (relative to `dir`) with `flags`, through no symlink.
fn open_dir_beneath(dir: &OwnedFd, parts: &[&OsStr], flags: OFlag) -> io::Result<OwnedFd> {
    let mut rel = Vec::new();
    for p in parts {
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(p.as_bytes());
    }
    if rel.is_empty() {
        rel.push(b'.');
    }
    Ok(openat2(
        dir.as_fd(),
        &rel[..],
        how(flags | OFlag::O_DIRECTORY),
    )?)
}

/// Opens `parts` below `root` as directories, making the missing ones (mode 0755) and
/// replacing a symlink or other non-directory on the way by a directory.
fn make_dirs(root: &OwnedFd, parts: &[&OsStr]) -> io::Result<OwnedFd> {
    let mut dir = open_dir_beneath(root, &[], OFlag::O_PATH)?;
    for part in parts {
        let next = match open_dir_beneath(&dir, &[part], OFlag::O_PATH) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                mkdir(&dir, part)?;
                open_dir_beneath(&dir, &[part], OFlag::O_PATH)?
            }
            // A symlink (ELOOP) or a file (ENOTDIR) where a directory must be.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                unlinkat(&dir, *part, UnlinkatFlags::NoRemoveDir)?;
                mkdir(&dir, part)?;
                open_dir_beneath(&dir, &[part], OFlag::O_PATH)?
            }
            Err(e) => return Err(e),
        };
        dir = next;
    }
    Ok(dir)
}

fn mkdir(dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
    match mkdirat(dir, name, Mode::from_bits_truncate(0o755)) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Writes `content` to `inner` in the root as a regular file of `mode`, making its parents;
/// whatever `inner` was (a symlink, say) is replaced.
pub fn install(root: &Path, inner: &Path, content: &[u8], mode: u32) -> Result<(), ConfinedError> {
    let fail = |action: &'static str| {
        move |source: io::Error| ConfinedError::Io {
            root: root.to_path_buf(),
            path: inner.to_path_buf(),
            action,
            source,
        }
    };
    let parts = components(inner)?;
    let Some((name, parents)) = parts.split_last() else {
        return Err(ConfinedError::BadPath {
            path: inner.to_path_buf(),
        });
    };
    let root_fd = open_root(root).map_err(fail("open"))?;
    let dir = make_dirs(&root_fd, parents).map_err(fail("create the parents of"))?;
    match unlinkat(&dir, *name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(fail("replace")(e.into())),
    }
    let fd = openat2(
        dir.as_fd(),
        *name,
        how(OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY).mode(Mode::from_bits_truncate(0o600)),
    )
    .map_err(|e| fail("create")(e.into()))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(content).map_err(fail("write"))?;
    // The mode is set after writing, whatever the umask.
    fchmod(&file, Mode::from_bits_truncate(mode)).map_err(|e| fail("chmod")(e.into()))
}

/// Removes the file or empty directory `inner` from the root if it is there and reachable
/// without a symlink. Whether it was removed.
pub fn remove(root: &Path, inner: &Path) -> Result<bool, ConfinedError> {
    let fail = |source: io::Error| ConfinedError::Io {
        root: root.to_path_buf(),
        path: inner.to_path_buf(),
        action: "remove",
        source,
    };
    let parts = components(inner)?;
    let Some((name, parents)) = parts.split_last() else {
        return Ok(false);
    };
    let root_fd = open_root(root).map_err(fail)?;
    let dir = match open_dir_beneath(&root_fd, parents, OFlag::O_PATH) {
        Ok(fd) => fd,
        // Gone, or replaced on the way by a symlink or a file: nothing of ours is left there.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT | libc::ELOOP | libc::ENOTDIR)
            ) =>
        {
            return Ok(false)
        }
        Err(e) => return Err(fail(e)),
    };
    let removed = match unlinkat(&dir, *name, UnlinkatFlags::NoRemoveDir) {
        Err(Errno::EISDIR) => unlinkat(&dir, *name, UnlinkatFlags::RemoveDir),
        other => other,
    };
    match removed {
        Ok(()) => Ok(true),
        Err(Errno::ENOENT | Errno::ENOTEMPTY | Errno::EEXIST) => Ok(false),
        Err(e) => Err(fail(e.into())),
    }
}

/// The directory `inner` of the root opened for reading (listing, `futimens`), through no
/// symlink; `None` when it is not there as a directory.
pub fn open_dir(root: &Path, inner: &Path) -> Option<OwnedFd> {
    let parts = components(inner).ok()?;
    let root_fd = open_root(root).ok()?;
    open_dir_beneath(&root_fd, &parts, OFlag::O_RDONLY).ok()
}

/// The names in the directory `fd` (without `.` and `..`).
pub fn names(fd: &OwnedFd) -> Option<std::collections::BTreeSet<std::ffi::OsString>> {
    let dup = open_dir_beneath(fd, &[], OFlag::O_RDONLY).ok()?;
    let mut dir = nix::dir::Dir::from_fd(dup).ok()?;
    Some(
        dir.iter()
            .filter_map(std::result::Result::ok)
            .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
            .filter(|n| n != "." && n != "..")
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    /// B12: an image's `/solum -> /host/dir` made the install write `build.sh` into the
    /// host's `/host/dir/bin/`. The symlink is replaced by a directory inside the root.
    #[test]
    fn hostile_install_through_an_image_symlink_stays_in_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(outside.join("bin")).unwrap();
        symlink(&outside, root.join("solum")).unwrap();
        symlink("/etc/passwd", root.join("etc/x")).unwrap();
        let script = b"#!/bin/sh\n";
        install(&root, Path::new("/solum/bin/build.sh"), script, 0o755).unwrap();
        assert_eq!(std::fs::read_dir(outside.join("bin")).unwrap().count(), 0);
        let installed = root.join("solum/bin/build.sh");
        assert!(!std::fs::symlink_metadata(root.join("solum"))
            .unwrap()
            .file_type()
            .is_symlink());
        let mode = std::fs::metadata(&installed).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o755);
        // A symlink at the file's own name is replaced, not written through.
        install(&root, Path::new("/etc/x"), script, 0o644).unwrap();
        assert!(std::fs::symlink_metadata(root.join("etc/x"))
            .unwrap()
            .is_file());
        // A relative symlink climbing out is replaced too.
        symlink("../../outside", root.join("up")).unwrap();
        install(&root, Path::new("/up/b.sh"), script, 0o755).unwrap();
        assert_eq!(std::fs::read_dir(outside.join("bin")).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
        // B01's shape: `..` may not climb out of the root.
        let err = install(&root, Path::new("/../../tmp/x/A.sh"), script, 0o755).unwrap_err();
        assert!(matches!(err, ConfinedError::BadPath { .. }));
    }

    /// B11: removing a mount point after the build must not follow a `/solum` the build
    /// replaced by a symlink to a host folder.
    #[test]
    fn hostile_remove_through_a_symlink_leaves_the_host_alone() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let somewhere = dir.path().join("somewhere");
        std::fs::create_dir_all(somewhere.join("cache")).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        symlink(&somewhere, root.join("solum")).unwrap();
        assert!(!remove(&root, Path::new("/solum/cache")).unwrap());
        assert!(somewhere.join("cache").is_dir());
        std::fs::remove_file(root.join("solum")).unwrap();
        std::fs::create_dir_all(root.join("solum/cache")).unwrap();
        assert!(remove(&root, Path::new("/solum/cache")).unwrap());
        assert!(!root.join("solum/cache").exists());
    }
}
