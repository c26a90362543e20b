//! Resolving layer paths inside the unpack root without ever leaving it.
//!
//! A layer path is untrusted: it may contain `..`, be absolute, or run through a symlink
//! that an earlier entry (or an earlier layer) planted. This module owns the two rules that
//! keep an unpack inside its root, and nothing else (it creates no entries):
//!
//! 1. *Lexical*: entry names and hardlink targets are normalized; a `..` component or a
//!    leading `/` is refused outright ([`normalize`]).
//! 2. *Resolution*: parent directories are opened with `openat2`, relative to a descriptor
//!    of the root. The fast path uses `RESOLVE_BENEATH`, which fails with `EXDEV` as soon as
//!    resolution would leave the root, be it through an absolute symlink or a `..` climb.
//!    Then we decide, by walking the symlinks ourselves, which of the two it was:
//!    - an absolute symlink (`var/run -> /run`) is *container-relative*: it means
//!      `root/run`, as it would inside the container. This is legitimate and common, so the
//!      directory is opened with `RESOLVE_IN_ROOT`, where the kernel treats the root
//!      descriptor as `/` for every step;
//!    - a symlink whose target climbs above the root with `..` (`x -> ../../etc`) is refused
//!      with [`Resolved::Escapes`]: writing through it cannot mean anything sane.
//!
//! The walk is only a diagnosis. The descriptor the caller gets always comes from
//! `openat2(RESOLVE_BENEATH)` or `openat2(RESOLVE_IN_ROOT)`, so even if the tree changes
//! between the walk and the open (a race), the kernel never resolves a path outside the
//! root. Callers then create entries with `*at` calls relative to that descriptor.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat2, readlinkat, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

/// At most this many symlinks are followed while diagnosing one path (the kernel's limit).
const MAX_SYMLINKS: usize = 40;
/// `openat2(RESOLVE_IN_ROOT)` returns `EAGAIN` when a concurrent rename could have made
/// `..` resolution unsafe; it is safe to retry.
const EAGAIN_RETRIES: usize = 8;

/// Normalizes a layer path into `out` (components joined by `/`, no `.`, no empty
/// components, no trailing `/`). A leading `./` is dropped; `..` anywhere, or a leading `/`,
/// is refused with the reason. The empty result stands for the root itself.
pub(crate) fn normalize(raw: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
    out.clear();
    if raw.first() == Some(&b'/') {
        return Err("absolute path");
    }
    for component in raw.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return Err("`..` path component"),
            _ => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(component);
            }
        }
    }
    Ok(())
}

/// Splits a normalized, non-empty path into (parent, name).
pub(crate) fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(slash) => (&path[..slash], &path[slash + 1..]),
        None => (&[], path),
    }
}

/// The outcome of opening a directory inside the root.
pub(crate) enum Resolved {
    Dir(OwnedFd),
    /// A symlink on the way climbs above the root with `..`.
    Escapes,
}

/// The root directory of an unpack, held open.
pub(crate) struct Root {
    fd: OwnedFd,
}

impl Root {
    pub(crate) fn open(path: &Path) -> io::Result<Root> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root { fd })
    }

    /// Opens the directory at the normalized path `rel` (empty: the root itself) with
    /// `flags` (add `O_PATH` for a descriptor only used as the base of `*at` calls).
    /// `O_DIRECTORY` and `O_NOFOLLOW` are always added: the final component must itself be
    /// a directory, never a symlink, for the final-pass metadata to land on the right inode.
    pub(crate) fn open_dir(&self, rel: &[u8], flags: OFlag) -> io::Result<Resolved> {
        let flags = flags | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let how = |resolve| {
            OpenHow::new()
                .flags(flags)
                .resolve(resolve | ResolveFlag::RESOLVE_NO_MAGICLINKS)
        };
        let rel = if rel.is_empty() { &b"."[..] } else { rel };
        match openat2(self.fd.as_fd(), rel, how(ResolveFlag::RESOLVE_BENEATH)) {
            Ok(fd) => return Ok(Resolved::Dir(fd)),
            Err(Errno::EXDEV) => {}
            Err(errno) => return Err(errno.into()),
        }
        if self.escapes(rel)? {
            return Ok(Resolved::Escapes);
        }
        let mut attempts = 0;
        loop {
            match openat2(self.fd.as_fd(), rel, how(ResolveFlag::RESOLVE_IN_ROOT)) {
                Ok(fd) => return Ok(Resolved::Dir(fd)),
                Err(Errno::EAGAIN) if attempts < EAGAIN_RETRIES => attempts += 1,
                Err(errno) => return Err(errno.into()),
            }
        }
    }

    /// Walks `rel` as the kernel would with the root as `/`, following symlinks, and says
    /// whether some `..` climbs above the root. Components that do not exist (yet) are taken
    /// literally. Only used to tell a container-relative absolute symlink from an escape.
    fn escapes(&self, rel: &[u8]) -> io::Result<bool> {
        let mut resolved: Vec<Vec<u8>> = Vec::new();
        let mut pending: VecDeque<Vec<u8>> =
            rel.split(|&b| b == b'/').map(<[u8]>::to_vec).collect();
        let mut followed = 0;
        let mut candidate = Vec::new();
        while let Some(component) = pending.pop_front() {
            match &component[..] {
                b"" | b"." => continue,
                b".." => {
                    if resolved.pop().is_none() {
                        return Ok(true);
                    }
                    continue;
                }
                _ => {}
            }
            candidate.clear();
            for part in resolved.iter().chain(std::iter::once(&component)) {
                if !candidate.is_empty() {
                    candidate.push(b'/');
                }
                candidate.extend_from_slice(part);
            }
            // `candidate` consists of components already resolved to real directories, so
            // readlinkat follows no symlink on the way (barring a race, which the final
            // RESOLVE_IN_ROOT open makes harmless).
            match readlinkat(self.fd.as_fd(), &candidate[..]) {
                Ok(target) => {
                    followed += 1;
                    if followed > MAX_SYMLINKS {
                        return Err(Errno::ELOOP.into());
                    }
                    let target = target.as_bytes();
                    if target.first() == Some(&b'/') {
                        resolved.clear();
                    }
                    for part in target.split(|&b| b == b'/').rev() {
                        pending.push_front(part.to_vec());
                    }
                }
                Err(Errno::EINVAL | Errno::ENOENT | Errno::ENOTDIR) => resolved.push(component),
                Err(errno) => return Err(errno.into()),
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> Result<String, &'static str> {
        let mut out = Vec::new();
        normalize(raw.as_bytes(), &mut out).map(|()| String::from_utf8(out).unwrap())
    }

    #[test]
    fn normalize_strips_dot_and_refuses_dotdot_and_absolute() {
        assert_eq!(norm("./usr//bin/./ls").unwrap(), "usr/bin/ls");
        assert_eq!(norm("usr/lib/").unwrap(), "usr/lib");
        assert_eq!(norm("./").unwrap(), "");
        assert!(norm("../etc/passwd").is_err());
        assert!(norm("usr/../../etc").is_err());
        assert!(norm("usr/..").is_err());
        assert!(norm("/etc/passwd").is_err());
        assert_eq!(split(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split(b"c"), (&b""[..], &b"c"[..]));
    }

    #[test]
    fn absolute_symlinks_are_container_relative_and_dotdot_climbs_escape() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("run/lock")).unwrap();
        std::fs::create_dir(root.path().join("var")).unwrap();
        std::os::unix::fs::symlink("/run", root.path().join("var/run")).unwrap();
        std::os::unix::fs::symlink("../../..", root.path().join("var/up")).unwrap();
        std::os::unix::fs::symlink("../run", root.path().join("var/rel")).unwrap();
        let r = Root::open(root.path()).unwrap();
        for ok in ["var/run/lock", "var/rel/lock", "var/run"] {
            assert!(
                matches!(
                    r.open_dir(ok.as_bytes(), OFlag::O_PATH),
                    Ok(Resolved::Dir(_))
                ),
                "{ok}"
            );
        }
        assert!(matches!(
            r.open_dir(b"var/up/tmp", OFlag::O_PATH),
            Ok(Resolved::Escapes)
        ));
    }
}
