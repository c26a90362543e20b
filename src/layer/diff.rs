//! A build's filesystem changes as a list of [`Change`]s, found in one of two ways that
//! give the same list for the same build.
//!
//! [`overlay_changes`] reads the upper directory of an overlay mount after the build:
//! everything in it is an addition, except overlay's own records of deletions (a 0/0
//! character device, or a zero-size file with an `overlay.whiteout` xattr) and of
//! directories that hide their lower content (`overlay.opaque = "y"`). [`walk_changes`]
//! compares the untouched base with a copy of it that the build ran in (made by
//! [`copy_tree`](super::copy_tree)), and follows overlay's copy-up rules so that both lists
//! agree: a changed entry brings its parent directories with it, a hard link to an
//! unchanged file brings that file, and a directory that lost every lower child and
//! gained new ones is opaque.
//!
//! This module only reads both trees; it never changes contents. Rootless, an entry of our
//! own user without the owner's read bit (mode 0000, 0311) is opened up for as long as it
//! takes to read its xattrs or list it, and its mode put back at once, as `write` does.
//! It does not write layers (that is `write_changes`) and knows nothing of mounts.

use crate::io_at::IoAt;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::write::{grant_owner_bits, is_host_xattr, ModeGuard};
use super::{Change, LayerError};

/// The xattrs overlay puts on a directory that hides all lower content (value `y`), with
/// `userxattr` (rootless mounts) and without it.
const OPAQUE_XATTRS: [&str; 2] = ["user.overlay.opaque", "trusted.overlay.opaque"];
/// The xattrs that mark a zero-size regular file as a whiteout (the form newer kernels
/// accept in layers that cannot hold device nodes).
const WHITEOUT_XATTRS: [&str; 2] = ["user.overlay.whiteout", "trusted.overlay.whiteout"];

/// The changes an overlay build left in its upper directory, sorted by path.
pub fn overlay_changes(upper: &Path) -> Result<Vec<Change>, LayerError> {
    let mut reader = Reader::new();
    let mut changes = Vec::new();
    overlay_dir(&mut reader, upper, PathBuf::new(), &mut changes)?;
    sort_changes(&mut changes);
    refuse_whiteout_names(&changes)?;
    Ok(changes)
}

/// A file the build named `.wh.x` would be written as is and read back by every
/// unpacker as a whiteout of `x` (ours refuses the layer, umoci drops the file): the
/// build is refused instead, naming the path.
pub fn refuse_whiteout_names(changes: &[Change]) -> Result<(), LayerError> {
    for change in changes {
        if let Change::Add(path) = change {
            let whiteout_like = path
                .file_name()
                .is_some_and(|name| name.as_bytes().starts_with(super::WHITEOUT_PREFIX));
            if whiteout_like {
                return Err(LayerError::WhiteoutName {
                    path: Path::new("/").join(path),
                });
            }
        }
    }
    Ok(())
}

fn overlay_dir(
    reader: &mut Reader,
    upper: &Path,
    rel: PathBuf,
    out: &mut Vec<Change>,
) -> Result<(), LayerError> {
    for name in reader.list(&upper.join(&rel))? {
        let child = rel.join(&name);
        let full = upper.join(&child);
        let stat = lstat(&full)?;
        let file_type = stat.file_type();
        // A whiteout is a device node: it is never opened or read as a file. The xattr
        // form is an empty regular file, so only those are asked for xattrs.
        let device_whiteout = file_type.is_char_device() && stat.rdev() == 0;
        if device_whiteout
            || (file_type.is_file()
                && stat.len() == 0
                && reader.has_any_xattr(&full, &stat, &WHITEOUT_XATTRS, None)?)
        {
            out.push(Change::Whiteout(child));
        } else if file_type.is_dir() {
            if reader.has_any_xattr(&full, &stat, &OPAQUE_XATTRS, Some(b"y"))? {
                out.push(Change::Opaque(child.clone()));
            }
            out.push(Change::Add(child.clone()));
            overlay_dir(reader, upper, child, out)?;
        } else {
            out.push(Change::Add(child));
        }
    }
    Ok(())
}

/// The changes that turn the tree `lower` into the tree `current`, sorted by path, by
/// overlay's rules (see the module documentation and the comments below).
///
/// Known differences from an overlay build of the same script, where the walk cannot see
/// what overlay recorded:
/// - an entry that overlay copied up without changing it (opened for writing but not
///   written, `chown` to the same owner, a new atime) is in the upper dir, not in the walk;
/// - `rm -rf d/*` followed by new files in `d` is opaque for the walk, whiteouts of each
///   old child for overlay; `rm -rf d && mkdir d` with nothing put back is the reverse
///   (whiteouts for the walk, opaque for overlay). Unpacked, both give the same tree;
/// - a regular file rewritten with the same size and its mtime put back is unchanged for
///   the walk (and for every mtime-based diff), copied up by overlay.
pub fn walk_changes(lower: &Path, current: &Path) -> Result<Vec<Change>, LayerError> {
    let mut walker = Walker {
        lower: lower.to_path_buf(),
        current: current.to_path_buf(),
        reader: Reader::new(),
        adds: BTreeSet::new(),
        whiteouts: BTreeSet::new(),
        opaques: BTreeSet::new(),
        links: HashMap::new(),
    };
    walker.compare_dir(Path::new(""))?;
    walker.close_links();
    let changes = walker.finish();
    refuse_whiteout_names(&changes)?;
    Ok(changes)
}

/// One canonical order for change lists, so that the two ways of diffing can be compared
/// as lists: by path, then opaque before add before whiteout.
pub fn sort_changes(changes: &mut [Change]) {
    fn key(change: &Change) -> (&Path, u8) {
        match change {
            Change::Opaque(path) => (path, 0),
            Change::Add(path) => (path, 1),
            Change::Whiteout(path) => (path, 2),
        }
    }
    changes.sort_by(|a, b| key(a).cmp(&key(b)));
}

struct Walker {
    lower: PathBuf,
    current: PathBuf,
    reader: Reader,
    adds: BTreeSet<PathBuf>,
    whiteouts: BTreeSet<PathBuf>,
    opaques: BTreeSet<PathBuf>,
    /// Paths of `current` whose inode has more than one link, by (device, inode).
    links: HashMap<(u64, u64), Vec<PathBuf>>,
}

/// What the walk compares of one entry. Not compared: atime and ctime (a copy has a new
/// ctime everywhere), the inode and the link count (the copy does not keep the base's
/// hard links, just as overlay's copy-up does not; see `copy_tree`).
#[derive(PartialEq, Eq)]
struct Entry {
    kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
    /// Size of a regular file, 0 for others (a directory's size is filesystem noise).
    size: u64,
    mtime: (i64, i64),
    /// Symlink target.
    target: Option<OsString>,
    /// Device number of a character or block device.
    rdev: u64,
    /// Xattrs other than the host's (SELinux labels, overlay records), sorted. The
    /// `user.rootlesscontainers` ownership record is one of them, so a rootless owner
    /// change is a change.
    xattrs: Vec<(OsString, Vec<u8>)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
    Fifo,
    Char,
    Block,
    Socket,
}

impl Walker {
    /// Compares the directory `rel` of both trees (it is a directory in both) and returns
    /// whether anything below it changed; the directory's own entry is the caller's.
    fn compare_dir(&mut self, rel: &Path) -> Result<bool, LayerError> {
        let lower_names = self.reader.list(&self.lower.join(rel))?;
        let current_names = self.reader.list(&self.current.join(rel))?;
        let lower_set: HashSet<&OsString> = lower_names.iter().collect();
        let current_set: HashSet<&OsString> = current_names.iter().collect();
        // `rm -rf d && mkdir d` then refilled: overlay makes the new `d` opaque, since it
        // was created over a whiteout. The walk cannot see the re-creation; it takes a
        // directory whose every lower child is gone and that has new children for one.
        let survivors = lower_names.iter().any(|name| current_set.contains(name));
        if !lower_names.is_empty() && !survivors && !current_names.is_empty() {
            self.opaques.insert(rel.to_path_buf());
            for name in &current_names {
                self.add_new(&rel.join(name))?;
            }
            return Ok(true);
        }
        let mut changed = false;
        for name in lower_names.iter().filter(|n| !current_set.contains(n)) {
            // Only the top-most deleted path: its children go with it.
            self.whiteouts.insert(rel.join(name));
            changed = true;
        }
        for name in &current_names {
            let child = rel.join(name);
            if !lower_set.contains(name) {
                self.add_new(&child)?;
                changed = true;
                continue;
            }
            let now = self.current_entry(&child)?;
            let before = self.entry(&self.lower.join(&child))?;
            match (now.kind, before.kind) {
                (Kind::Dir, Kind::Dir) => {
                    let inner = self.compare_dir(&child)?;
                    if inner || now != before {
                        self.adds.insert(child);
                        changed = true;
                    }
                }
                (Kind::Dir, _) => {
                    // A directory made where a file was deleted: overlay creates it over
                    // the file's whiteout, so it is opaque.
                    self.opaques.insert(child.clone());
                    self.add_new(&child)?;
                    changed = true;
                }
                // Regular files with equal size and mtime (to the nanosecond) count as
                // unchanged, without reading contents: what overlay and buildah-style
                // diffs do, and what keeps the cost of the walk independent of file sizes.
                _ if now != before => {
                    self.adds.insert(child);
                    changed = true;
                }
                _ => {}
            }
        }
        Ok(changed)
    }

    /// `rel` is new in `current`: it and, for a directory, everything below it.
    fn add_new(&mut self, rel: &Path) -> Result<(), LayerError> {
        let entry = self.current_entry(rel)?;
        self.adds.insert(rel.to_path_buf());
        if entry.kind == Kind::Dir {
            for name in self.reader.list(&self.current.join(rel))? {
                self.add_new(&rel.join(name))?;
            }
        }
        Ok(())
    }

    /// An entry of `current`, remembering multiply-linked inodes for `close_links`.
    fn current_entry(&mut self, rel: &Path) -> Result<Entry, LayerError> {
        let full = self.current.join(rel);
        let stat = lstat(&full)?;
        if !stat.is_dir() && stat.nlink() > 1 {
            self.links
                .entry((stat.dev(), stat.ino()))
                .or_default()
                .push(rel.to_path_buf());
        }
        self.reader.entry(&full, &stat)
    }

    fn entry(&mut self, full: &Path) -> Result<Entry, LayerError> {
        let stat = lstat(full)?;
        self.reader.entry(full, &stat)
    }

    /// Overlay copies a lower file up before it gives it a new hard link, so the upper dir
    /// holds every path of a linked inode that the build touched. The walk sees only the
    /// new name as changed; this adds the other names of the same inode.
    fn close_links(&mut self) {
        let mut extra = Vec::new();
        for paths in self.links.values() {
            if paths.iter().any(|path| self.adds.contains(path)) {
                extra.extend(paths.iter().cloned());
            }
        }
        self.adds.extend(extra);
    }

    /// The sorted list, with every parent directory of a change added: overlay copies up
    /// the parents of whatever it writes, so the upper dir holds them all.
    fn finish(mut self) -> Vec<Change> {
        let mut parents = BTreeSet::new();
        for path in self.adds.iter().chain(&self.whiteouts).chain(&self.opaques) {
            for parent in path.ancestors().skip(1) {
                if parent.as_os_str().is_empty() {
                    break;
                }
                if !parents.insert(parent.to_path_buf()) {
                    // Its ancestors were added with it.
                    break;
                }
            }
        }
        self.adds.extend(parents);
        let mut changes: Vec<Change> = self
            .adds
            .into_iter()
            .map(Change::Add)
            .chain(self.whiteouts.into_iter().map(Change::Whiteout))
            .chain(self.opaques.into_iter().map(Change::Opaque))
            .collect();
        sort_changes(&mut changes);
        changes
    }
}

fn lstat(path: &Path) -> Result<fs::Metadata, LayerError> {
    Ok(fs::symlink_metadata(path).map_err(IoAt::at(path, "stat"))?)
}

/// Reads listings and xattrs, opening up our own unreadable entries for the moment it
/// takes (see the module documentation).
pub(super) struct Reader {
    euid: u32,
}

impl Reader {
    pub(super) fn new() -> Reader {
        Reader {
            euid: nix::unistd::geteuid().as_raw(),
        }
    }

    /// Grants the owner `bits` on `path` while the guard lives, when we are that owner,
    /// not root, and lack them.
    pub(super) fn readable(
        &self,
        path: &Path,
        stat: &fs::Metadata,
        bits: u32,
    ) -> Result<ModeGuard, LayerError> {
        grant_owner_bits(self.euid, path, stat, bits)
    }

    /// The names in a directory, sorted by bytes.
    pub(super) fn list(&self, dir: &Path) -> Result<Vec<OsString>, LayerError> {
        let error = |action| IoAt::at(dir, action);
        let stat = fs::symlink_metadata(dir).map_err(error("stat"))?;
        let _guard = self.readable(dir, &stat, 0o500)?;
        let mut names = fs::read_dir(dir)
            .and_then(|entries| {
                entries
                    .map(|entry| entry.map(|e| e.file_name()))
                    .collect::<io::Result<Vec<_>>>()
            })
            .map_err(error("read the directory"))?;
        names.sort();
        Ok(names)
    }

    /// Whether `path` has one of `names`, with the value `value` if one is given.
    fn has_any_xattr(
        &self,
        path: &Path,
        stat: &fs::Metadata,
        names: &[&str],
        value: Option<&[u8]>,
    ) -> Result<bool, LayerError> {
        let _guard = self.readable(path, stat, 0o400)?;
        for name in names {
            match xattr::get(path, name) {
                Ok(Some(found)) if value.is_none_or(|v| v == found.as_slice()) => return Ok(true),
                Ok(_) => {}
                // trusted.* is invisible to an unprivileged reader; no xattrs at all on
                // some filesystems.
                Err(error)
                    if matches!(
                        error.raw_os_error(),
                        Some(libc::ENOTSUP | libc::EPERM | libc::EACCES)
                    ) => {}
                Err(source) => return Err(IoAt::new(path, "read an xattr of", source).into()),
            }
        }
        Ok(false)
    }

    fn entry(&self, path: &Path, stat: &fs::Metadata) -> Result<Entry, LayerError> {
        let file_type = stat.file_type();
        let kind = if file_type.is_dir() {
            Kind::Dir
        } else if file_type.is_file() {
            Kind::File
        } else if file_type.is_symlink() {
            Kind::Symlink
        } else if file_type.is_fifo() {
            Kind::Fifo
        } else if file_type.is_char_device() {
            Kind::Char
        } else if file_type.is_block_device() {
            Kind::Block
        } else {
            Kind::Socket
        };
        let target = match kind {
            Kind::Symlink => Some(
                fs::read_link(path)
                    .map_err(IoAt::at(path, "read the symlink"))?
                    .into_os_string(),
            ),
            _ => None,
        };
        Ok(Entry {
            kind,
            mode: stat.mode() & 0o7777,
            uid: stat.uid(),
            gid: stat.gid(),
            size: if kind == Kind::File { stat.len() } else { 0 },
            mtime: (stat.mtime(), stat.mtime_nsec()),
            target,
            rdev: if matches!(kind, Kind::Char | Kind::Block) {
                stat.rdev()
            } else {
                0
            },
            xattrs: self.image_xattrs(path, stat)?,
        })
    }

    /// The image's xattrs of one entry, sorted by name.
    pub(super) fn image_xattrs(
        &self,
        path: &Path,
        stat: &fs::Metadata,
    ) -> Result<Vec<(OsString, Vec<u8>)>, LayerError> {
        let error = |action| IoAt::at(path, action);
        let names = match xattr::list(path) {
            Ok(names) => names.collect::<Vec<_>>(),
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(error("list the xattrs of")(e).into()),
        };
        let names: Vec<OsString> = names
            .into_iter()
            .filter(|name| !is_host_xattr(name.as_bytes()))
            .collect();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        // user.* values need the read bit; a symlink has none to grant (and no user.*).
        let _guard = if stat.file_type().is_symlink() {
            ModeGuard::none()
        } else {
            self.readable(path, stat, 0o400)?
        };
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if let Some(value) = xattr::get(path, &name).map_err(error("read an xattr of"))? {
                out.push((name, value));
            }
        }
        out.sort();
        Ok(out)
    }
}
