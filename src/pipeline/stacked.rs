//! Stacked trees: an image's root filesystem as a stack of overlay lowers, one small tree
//! per layer (`cache/rootfs/d-<chain id>`, the layer alone), rather than one flattened tree
//! per image. A DU is its badger's layers plus one of its own, and a badger is its base's
//! layers plus one: flattened, each of them held the whole base again (a python base is
//! 77 MB; 15 DUs on it took 3 GB). Stacked, the cache holds each layer once, and the first
//! run of a new DU on a cached badger unpacks only the DU's own layer. Builds and runs
//! both stand on these lowers; a flattened tree (`cache/rootfs/<chain id>`) is still made
//! where a copy is needed (no overlay here) and for the bottom layer.
//!
//! Overlay must show what the flattened tree would hold, so a layer's tree is kept only
//! where the two agree by construction:
//! - the layer has no whiteouts (an empty lower has nothing to remove; overlay would need
//!   whiteout devices of its own): such a layer is flattened with those below it;
//! - every directory the layer holds without listing it (its parents, the root) takes the
//!   mode, owner and times of the same directory in the view below, as the flattened
//!   unpack leaves them. Where the view below has no such directory, the default (0755) is
//!   the same in both; where it has a symlink or a file on that path, the flattened unpack
//!   would have gone through it or failed, and the layer is flattened instead.
//!
//! A layer's tree depends only on the layer and on the view below it, which its chain id
//! names: it serves above any faithful representation of that view (flattened, or stacked
//! trees), so a tree removed from the cache is simply made again. The trees below are
//! hostile content: they are looked at only through `openat2` with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS`, so no path leaves them. Any failure to make a layer's tree falls
//! back to the flattened one (which reports a real fault of the layer itself).

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

/// The name prefix of a layer's own tree in the rootfs cache (`d-<chain id>`).
pub const TOP_PREFIX: &str = "d-";

/// Most layers stacked as trees of their own; the layers below the deepest are flattened
/// into one tree (overlay takes at most 500 lowers, and each costs a lookup).
pub const MAX_STACKED: usize = 32;

/// The trees a run or build stands on, top-most first, held (see [`TreeHold`]) while this
/// lives.
pub struct StackedLowers {
    pub lowers: Vec<PathBuf>,
    holds: Vec<TreeHold>,
}

impl StackedLowers {
    /// The lowers and their holds, for an owner that keeps the holds as long as it stands
    /// on the lowers (a build's workspace).
    pub fn into_parts(self) -> (Vec<PathBuf>, Vec<TreeHold>) {
        (self.lowers, self.holds)
    }
}

/// The lowers to run `stack` on, unpacking what the cache lacks: layer trees stacked above
/// the view below them (see the module doc) where `overlay` will be mounted, else (a copy
/// needs one tree, or `SOLUM_BUILD_NO_STACK=1`) the stack's flattened tree.
pub fn stacked_lowers(
    layout: &Layout,
    stack: &LayerStack,
    cache: &Path,
    privilege: Privilege,
    overlay: bool,
    reporter: &dyn Reporter,
) -> Result<StackedLowers, UnpackError> {
    // `SOLUM_BUILD_NO_STACK=1` keeps to flattened trees (to compare, or to rule stacking out).
    let stack_allowed = std::env::var_os("SOLUM_BUILD_NO_STACK").is_none_or(|v| v != "1");
    let diff_ids = stack.verified_diff_ids()?;
    if !overlay || !stack_allowed || diff_ids.len() < 2 {
        return flattened(layout, stack, cache, privilege, reporter);
    }
    let stacker = Stacker {
        layout,
        stack,
        chains: chain_ids(&diff_ids),
        diff_ids,
        cache,
        privilege,
        reporter,
    };
    stacker.lowers(stack.layers.len(), 0)
}

/// The flattened tree of `stack`, held.
fn flattened(
    layout: &Layout,
    stack: &LayerStack,
    cache: &Path,
    privilege: Privilege,
    reporter: &dyn Reporter,
) -> Result<StackedLowers, UnpackError> {
    let (tree, hold) = held_rootfs(layout, stack, cache, privilege, reporter)?;
    Ok(StackedLowers {
        lowers: vec![tree],
        holds: vec![hold],
    })
}

/// One image's stack, with what stacking it needs at every level.
struct Stacker<'a> {
    layout: &'a Layout,
    stack: &'a LayerStack,
    diff_ids: Vec<crate::image::Digest>,
    chains: Vec<crate::image::Digest>,
    cache: &'a Path,
    privilege: Privilege,
    reporter: &'a dyn Reporter,
}

impl Stacker<'_> {
    /// The flattened tree of `prefix`, held.
    fn flattened(&self, prefix: &LayerStack) -> Result<StackedLowers, UnpackError> {
        flattened(
            self.layout,
            prefix,
            self.cache,
            self.privilege,
            self.reporter,
        )
    }

    /// The first `count` layers as held lowers: their flattened tree when it is cached
    /// (or `count` is 1, or `depth` layers are stacked already), else the tree of layer
    /// `count` above the lowers of the layers below it; a layer that does not stack
    /// faithfully is flattened with those below it.
    fn lowers(&self, count: usize, depth: usize) -> Result<StackedLowers, UnpackError> {
        let prefix = LayerStack {
            layers: self.stack.layers[..count].to_vec(),
            diff_ids: self.stack.diff_ids[..count].to_vec(),
        };
        let chain = &self.chains[count - 1];
        if count == 1 || depth >= MAX_STACKED || self.cache.join(chain.hex()).is_dir() {
            return self.flattened(&prefix);
        }
        // The view below first: while it is held, gc leaves it, and the layer's tree made
        // next is checked against the view it will stand on.
        let below = self.lowers(count - 1, depth + 1)?;
        let name = format!("{TOP_PREFIX}{}", chain.hex());
        let index = count - 1;
        let held = hold_tree(|| {
            let made = cached_tree(self.cache, &name, |temp| {
                let report = apply_layers(
                    self.layout,
                    &self.stack.layers[index..count],
                    &self.diff_ids[index..count],
                    temp,
                    self.privilege,
                    self.reporter,
                )?;
                if report.whiteouts > 0 {
                    return Ok(false);
                }
                let taken = take_unlisted_from_below(
                    &below.lowers,
                    temp,
                    &report.unlisted_dirs,
                    self.privilege,
                );
                Ok(taken.is_ok())
            });
            match made {
                Ok(made) => Ok(made),
                // The flattened unpack tells the layer's own faults; a layer's tree only
                // declines.
                Err(UnpackError::Io(_) | UnpackError::Layer { .. }) => Ok(None),
                Err(other) => Err(other),
            }
        })?;
        let Some((top, top_hold)) = held else {
            drop(below);
            return self.flattened(&prefix);
        };
        let mut lowers = vec![top];
        lowers.extend(below.lowers);
        let mut holds = vec![top_hold];
        holds.extend(below.holds);
        Ok(StackedLowers { lowers, holds })
    }
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
/// and times of the same directory in the view of `below` (lowers, top-most first).
fn take_unlisted_from_below(
    below: &[PathBuf],
    top: &Path,
    unlisted: &[Vec<u8>],
    privilege: Privilege,
) -> Result<(), Unfaithful> {
    let below_roots = below
        .iter()
        .map(|lower| open_root(lower))
        .collect::<Result<Vec<_>, _>>()?;
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
        let Some((there, stat)) = view_lookup(&below_roots, path)? else {
            continue;
        };
        copy_dir_metadata(&there, &here, &stat, privilege)?;
    }
    Ok(())
}

/// `path` in the overlay view of `lowers` (top-most first), as a directory: the top-most
/// lower that holds the path decides (a directory there gives its attributes to the merged
/// one). Lowers of this module have no whiteouts, so a lower without the path passes the
/// lookup down; a non-directory on the path, or on the way in any lower looked at, is
/// unfaithful (the flattened unpack would have gone through it, or replaced it).
fn view_lookup(lowers: &[OwnedFd], path: &[u8]) -> Result<Option<(OwnedFd, FileStat)>, Unfaithful> {
    for lower in lowers {
        if let Some(found) = lookup(lower, path)? {
            let stat = fstat(&found)?;
            if !is_dir(&stat) {
                return Err(Unfaithful::NotADirectoryBelow);
            }
            return Ok(Some((found, stat)));
        }
    }
    Ok(None)
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
