//! Stacked trees for `run`: a DU is its badger's layers plus one layer of its own, and the
//! badger's flattened tree is usually in the rootfs cache already (every build on it made
//! it). Rather than unpack the whole stack again into a tree of its own, the DU's top layer
//! alone is unpacked into a small tree (`cache/rootfs/d-<chain>-<base chain>`) that is
//! mounted as an overlay lower above the cached tree of the layers below it. The first run
//! of a new DU then unpacks megabytes instead of the whole base, and the cache holds the
//! base once instead of once per DU.
//!
//! Overlay must show what the flattened tree would hold, so a top tree is kept only where
//! the two agree by construction:
//! - the layer has no whiteouts (an empty lower has nothing to remove; overlay would need
//!   whiteout devices of its own): such a layer is flattened as before;
//! - every directory the layer holds without listing it (its parents, the root) takes the
//!   mode, owner and times of the same directory below, as the flattened unpack leaves
//!   them. Where the tree below has no such directory, the default (0755) is the same in
//!   both; where it has a symlink or a file on that path, the flattened unpack would have
//!   gone through it or failed, and the layer is flattened instead.
//!
//! The tree below is hostile content: it is looked at only through `openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, so no path leaves it. Any failure to make a top
//! tree falls back to the flattened one (which reports a real fault of the layer itself).

use super::unpack::{
    apply_layers, cached_tree, chain_ids, held_rootfs, hold_tree, LayerStack, TreeHold, UnpackError,
};
use crate::layer::ROOTLESS_XATTR;
use crate::privilege::Privilege;
use crate::report::Reporter;
use crate::store::Layout;
use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, FileStat, SFlag};
use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The name prefix of a top tree in the rootfs cache.
pub const TOP_PREFIX: &str = "d-";

/// The trees a run stands on, top-most first, held (see [`TreeHold`]) while this lives.
pub struct RunLowers {
    pub lowers: Vec<PathBuf>,
    _holds: Vec<TreeHold>,
}

/// The lowers to run `stack` on: a top tree above the cached tree of the layers below it
/// where that tree exists and the top layer stacks faithfully (see the module doc); else
/// the stack's flattened tree. `overlay` says whether the run will mount an overlay at all
/// (a copy needs one tree).
pub fn run_lowers(
    layout: &Layout,
    stack: &LayerStack,
    cache: &Path,
    privilege: Privilege,
    overlay: bool,
    reporter: &dyn Reporter,
) -> Result<RunLowers, UnpackError> {
    // `SOLUM_BUILD_NO_STACK=1` keeps to flattened trees (to compare, or to rule stacking out).
    let stack_allowed = std::env::var_os("SOLUM_BUILD_NO_STACK").is_none_or(|v| v != "1");
    if overlay && stack_allowed {
        if let Some(stacked) = stacked_lowers(layout, stack, cache, privilege, reporter)? {
            return Ok(stacked);
        }
    }
    let (tree, hold) = held_rootfs(layout, stack, cache, privilege, reporter)?;
    Ok(RunLowers {
        lowers: vec![tree],
        _holds: vec![hold],
    })
}

/// The top tree and the tree below it, or `None` where they do not apply: fewer than two
/// layers, the whole stack already flattened in the cache, the tree below not cached, or a
/// top layer that does not stack faithfully.
fn stacked_lowers(
    layout: &Layout,
    stack: &LayerStack,
    cache: &Path,
    privilege: Privilege,
    reporter: &dyn Reporter,
) -> Result<Option<RunLowers>, UnpackError> {
    let diff_ids = stack.verified_diff_ids()?;
    let chains = chain_ids(&diff_ids);
    let [.., below_chain, top_chain] = chains.as_slice() else {
        return Ok(None);
    };
    if cache.join(top_chain.hex()).is_dir() || !cache.join(below_chain.hex()).is_dir() {
        return Ok(None);
    }
    let below_stack = LayerStack {
        layers: stack.layers[..stack.layers.len() - 1].to_vec(),
        diff_ids: stack.diff_ids[..stack.diff_ids.len() - 1].to_vec(),
    };
    // The tree below first: while it is held, gc leaves it, and the top tree made next is
    // checked against the tree it will run on.
    let (below, below_hold) = held_rootfs(layout, &below_stack, cache, privilege, reporter)?;
    let top_name = format!("{TOP_PREFIX}{}-{}", top_chain.hex(), below_chain.hex());
    let top_index = stack.layers.len() - 1;
    let held = hold_tree(|| {
        let made = cached_tree(cache, &top_name, |temp| {
            let report = apply_layers(
                layout,
                &stack.layers[top_index..],
                &diff_ids[top_index..],
                temp,
                privilege,
                reporter,
            )?;
            if report.whiteouts > 0 {
                return Ok(false);
            }
            Ok(take_unlisted_from_below(&below, temp, &report.unlisted_dirs, privilege).is_ok())
        });
        match made {
            Ok(made) => Ok(made),
            // The flattened unpack tells the layer's own faults; a top tree only declines.
            Err(UnpackError::Io(_) | UnpackError::Layer { .. }) => Ok(None),
            Err(other) => Err(other),
        }
    })?;
    Ok(held.map(|(top, top_hold)| RunLowers {
        lowers: vec![top, below],
        _holds: vec![top_hold, below_hold],
    }))
}

/// Why a top tree does not stack faithfully on the tree below.
#[derive(Debug)]
enum Unfaithful {
    /// The tree below has a non-directory (or a symlink) where the layer holds a directory.
    NotADirectoryBelow,
    /// A directory could not be looked at or changed (a mode that keeps its owner out, say).
    Io,
}

impl From<Errno> for Unfaithful {
    fn from(_: Errno) -> Unfaithful {
        Unfaithful::Io
    }
}

/// Gives each directory of `top` that its layer held without listing it the mode, owner
/// and times of the same directory in `below`.
fn take_unlisted_from_below(
    below: &Path,
    top: &Path,
    unlisted: &[Vec<u8>],
    privilege: Privilege,
) -> Result<(), Unfaithful> {
    let below_root = open_root(below)?;
    let top_root = open_root(top)?;
    // Descendants (longer paths) before ancestors: a parent's times are set after its
    // children's changes, so they stand.
    let mut paths: Vec<&Vec<u8>> = unlisted.iter().collect();
    paths.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for path in paths {
        let Some(here) = lookup(&top_root, path)? else {
            continue;
        };
        if !is_dir(&fstat(&here)?) {
            // A later entry of the layer put something else there: listed, nothing to take.
            continue;
        }
        let Some(there) = lookup(&below_root, path)? else {
            continue;
        };
        let stat = fstat(&there)?;
        if !is_dir(&stat) {
            return Err(Unfaithful::NotADirectoryBelow);
        }
        copy_dir_metadata(&there, &here, &stat, privilege)?;
    }
    Ok(())
}

fn is_dir(stat: &FileStat) -> bool {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

fn open_root(root: &Path) -> Result<OwnedFd, Errno> {
    nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
}

/// `path` (relative, from the unpacker) inside `root`, itself not followed if a symlink,
/// through no symlink on the way; `None` when it is not there. A symlink on the way is
/// what the flattened unpack would have followed: unfaithful.
fn lookup(root: &OwnedFd, path: &[u8]) -> Result<Option<OwnedFd>, Unfaithful> {
    let name: &OsStr = if path.is_empty() {
        OsStr::new(".")
    } else {
        OsStr::from_bytes(path)
    };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
    match openat2(root, name, how) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(Errno::ELOOP | Errno::ENOTDIR | Errno::EXDEV) => Err(Unfaithful::NotADirectoryBelow),
        Err(errno) => Err(errno.into()),
    }
}

/// Owner (the inode's, or the rootless ownership record), times, then mode, from `from` to
/// `to`; both are `O_PATH` descriptors, reached through their `/proc/self/fd` links, which
/// name exactly these inodes.
fn copy_dir_metadata(
    from: &OwnedFd,
    to: &OwnedFd,
    stat: &FileStat,
    privilege: Privilege,
) -> Result<(), Unfaithful> {
    let from_path = format!("/proc/self/fd/{}", from.as_raw_fd());
    let to_path = format!("/proc/self/fd/{}", to.as_raw_fd());
    let io = |_: std::io::Error| Unfaithful::Io;
    if privilege.is_rootless() {
        if let Some(record) = xattr::get(&from_path, ROOTLESS_XATTR).map_err(io)? {
            xattr::set(&to_path, ROOTLESS_XATTR, &record).map_err(io)?;
        }
    } else {
        std::os::unix::fs::chown(&to_path, Some(stat.st_uid), Some(stat.st_gid)).map_err(io)?;
    }
    let time = |s: i64, ns: i64| nix::sys::time::TimeSpec::new(s, ns);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        to_path.as_str(),
        &time(stat.st_atime, stat.st_atime_nsec),
        &time(stat.st_mtime, stat.st_mtime_nsec),
        nix::sys::stat::UtimensatFlags::FollowSymlink,
    )?;
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        to_path.as_str(),
        nix::sys::stat::Mode::from_bits_truncate(stat.st_mode & 0o7777),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )?;
    Ok(())
}
