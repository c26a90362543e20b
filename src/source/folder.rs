//! Directory sources: copying a tree into the destination as it is — modes (setuid and
//! sticky bits included), mtimes, symlinks as links (never followed, wherever they point:
//! inside the sandbox an outward link is harmless), hard links as hard links, fifos —
//! leaving out every `.git` (a repository's metadata never belongs in an image) and what
//! the source's ignore file names (see `ignore_rules`).
//!
//! Owners are not copied: what lands in `/app` belongs to the user running the build, which
//! is root inside the sandbox. Sockets and device nodes are skipped and reported. Directory
//! modes and times are applied last, deepest first, so that a read-only source directory
//! can still be filled and its mtime is not disturbed by the entries written into it.

use crate::io_at::IoAt;
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{utimensat, Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;
use walkdir::WalkDir;

use super::ignore_rules::IgnoreRules;
use super::SourceError;
use crate::report::Reporter;

/// The entries of a source tree below `root`, in byte order of their names, links not
/// followed, every `.git` left out: the one walk of the copy and of the tree digest, so that
/// a folder and its copy have one digest.
pub(super) fn walk(root: &Path) -> impl Iterator<Item = walkdir::Result<walkdir::DirEntry>> {
    walk_except(root, None)
}

/// [`walk`] that also leaves out what `rules` ignore (an ignored folder is not entered).
pub(super) fn walk_except<'a>(
    root: &Path,
    rules: Option<&'a IgnoreRules>,
) -> impl Iterator<Item = walkdir::Result<walkdir::DirEntry>> + 'a {
    let prefix = root.to_path_buf();
    WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1)
        .into_iter()
        .filter_entry(move |entry| {
            if entry.file_name() == ".git" {
                return false;
            }
            let Some(rules) = rules else { return true };
            let relative = entry
                .path()
                .strip_prefix(&prefix)
                .expect("walkdir yields paths under its root");
            !rules.ignores(relative, entry.file_type().is_dir())
        })
}

/// Copies the tree under `source` into the existing, empty `dest`, without what `rules`
/// ignore; returns the number of entries written.
pub(super) fn copy_folder(
    source: &Path,
    dest: &Path,
    rules: &IgnoreRules,
    cancel: &runtime::CancelHandle,
    reporter: &dyn Reporter,
) -> Result<u64, SourceError> {
    let source_real = source
        .canonicalize()
        .map_err(IoAt::at(source, "open the source directory"))?;
    let dest_real = dest
        .canonicalize()
        .map_err(IoAt::at(dest, "open the destination"))?;
    // A destination inside the source would be walked while it is being filled.
    if dest_real.starts_with(&source_real) {
        return Err(SourceError::DestInsideSource {
            dest: dest.to_path_buf(),
            source_dir: source.to_path_buf(),
        });
    }

    let mut dirs: Vec<(PathBuf, fs::Metadata)> = Vec::new();
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut entries = 0;
    for entry in walk_except(&source_real, Some(rules)) {
        if cancel.is_cancelled() {
            return Err(SourceError::Cancelled);
        }
        let entry = entry.map_err(|error| {
            let path = error.path().unwrap_or(source).to_path_buf();
            IoAt::at(&path, "read the source directory")(error.into())
        })?;
        let from = entry.path();
        let relative = from
            .strip_prefix(&source_real)
            .expect("walkdir yields paths under its root");
        let to = dest.join(relative);
        let meta = entry
            .metadata()
            .map_err(|error| IoAt::at(from, "read the metadata of")(error.into()))?;
        let kind = meta.file_type();
        if kind.is_dir() {
            // Owner-writable until the final pass gives it its real mode.
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&to)
                .map_err(IoAt::at(&to, "create the directory"))?;
            dirs.push((to, meta));
            entries += 1;
            continue;
        }
        if kind.is_file() {
            let inode = (meta.dev(), meta.ino());
            if meta.nlink() > 1 {
                if let Some(first) = links.get(&inode) {
                    fs::hard_link(first, &to).map_err(IoAt::at(&to, "create the hard link"))?;
                    entries += 1;
                    continue;
                }
                links.insert(inode, to.clone());
            }
            fs::copy(from, &to).map_err(IoAt::at(from, "copy the file"))?;
        } else if kind.is_symlink() {
            let target = fs::read_link(from).map_err(IoAt::at(from, "read the symlink"))?;
            std::os::unix::fs::symlink(&target, &to)
                .map_err(IoAt::at(&to, "create the symlink"))?;
        } else if kind.is_fifo() {
            nix::unistd::mkfifo(&to, Mode::from_bits_truncate(0o600))
                .map_err(|errno| IoAt::at(&to, "create the fifo")(errno.into()))?;
        } else {
            let reason = if kind.is_socket() {
                "a socket cannot be copied"
            } else {
                "device nodes are not copied from a source directory"
            };
            reporter.warning(&format!("skipping {}: {reason}", from.display()));
            continue;
        }
        if !kind.is_symlink() {
            set_mode(&to, &meta)?;
        }
        set_times(&to, &meta)?;
        entries += 1;
    }
    for (dir, meta) in dirs.iter().rev() {
        set_mode(dir, meta)?;
        set_times(dir, meta)?;
    }
    Ok(entries)
}

fn set_mode(path: &Path, meta: &fs::Metadata) -> Result<(), SourceError> {
    fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(IoAt::at(path, "set the mode of"))?;
    Ok(())
}

/// Access and modification times of `meta`, set on `path` itself (a symlink's own times).
fn set_times(path: &Path, meta: &fs::Metadata) -> Result<(), SourceError> {
    let atime = TimeSpec::new(meta.atime(), meta.atime_nsec());
    let mtime = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &atime,
        &mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|errno| IoAt::new(path, "set the times of", errno.into()).into())
}
