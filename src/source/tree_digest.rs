//! A stable digest of a directory tree, for the build cache key: two trees have the same
//! digest exactly when they hold the same paths with the same types, permission bits,
//! symlink targets, device numbers and file contents. Times, owners, xattrs and hard-link
//! structure are left out — they do not change what a build sees as its source.
//!
//! Entries named `.git` and sockets are skipped at every depth, the same rules as the
//! directory copy, so a source directory and its copy in `/app` have one digest (unless it
//! holds device nodes, which the copy leaves out). The digest is taken of the fetched
//! tree, after the ignore file was applied: a change to an ignored file changes nothing. The root's own mode is not part of the
//! digest (the destination's root is made by the caller, not copied).

use crate::io_at::IoAt;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::SourceError;
use crate::image::digest::{Digest, HashingWriter};

/// The digest of the tree under `root`. Each entry, in a walk that visits siblings in byte
/// order of their names, adds one record: a kind letter, the permission bits, the
/// length-prefixed path relative to `root`, then for a file its size and content digest,
/// for a symlink its length-prefixed target, for a device its number. Lengths are prefixed
/// so that no two different trees can produce the same byte stream.
pub fn tree_digest(root: &Path) -> Result<Digest, SourceError> {
    Ok(tree_summary(root)?.0)
}

/// [`tree_digest`] and, from the same walk, the newest mtime (seconds) of the tree's
/// files and symlinks — not of folders, whose mtimes change when entries are copied in.
/// `None` for a tree without files.
pub fn tree_summary(root: &Path) -> Result<(Digest, Option<i64>), SourceError> {
    let mut newest: Option<i64> = None;
    let mut hasher = Sha256::new();
    hasher.update(b"solum-build tree v1\0");
    for entry in super::folder::walk(root) {
        let entry = entry.map_err(|error| {
            let path = error.path().unwrap_or(root).to_path_buf();
            IoAt::at(&path, "walk the tree at")(error.into())
        })?;
        let path = entry.path();
        let meta = entry
            .metadata()
            .map_err(|error| IoAt::at(path, "read the metadata of")(error.into()))?;
        let kind = meta.file_type();
        let letter = if kind.is_dir() {
            b'd'
        } else if kind.is_file() {
            b'f'
        } else if kind.is_symlink() {
            b'l'
        } else if kind.is_fifo() {
            b'p'
        } else if kind.is_socket() {
            // No source format carries a socket; a copy leaves it out.
            continue;
        } else if kind.is_char_device() {
            b'c'
        } else {
            b'b'
        };
        let relative = path
            .strip_prefix(root)
            .expect("walkdir yields paths under its root");
        if !kind.is_dir() {
            newest = newest.max(Some(meta.mtime()));
        }
        hasher.update([letter]);
        let mode = if kind.is_symlink() {
            0
        } else {
            meta.mode() & 0o7777
        };
        hasher.update(mode.to_le_bytes());
        put_bytes(&mut hasher, relative.as_os_str().as_bytes());
        if kind.is_file() {
            let digest = file_digest(path)?;
            hasher.update(meta.len().to_le_bytes());
            hasher.update(digest.hex().as_bytes());
        } else if kind.is_symlink() {
            let target = std::fs::read_link(path).map_err(IoAt::at(path, "read the symlink"))?;
            put_bytes(&mut hasher, target.as_os_str().as_bytes());
        } else if kind.is_char_device() || kind.is_block_device() {
            hasher.update(meta.rdev().to_le_bytes());
        }
    }
    let hex = hex::encode(hasher.finalize());
    let digest = format!("sha256:{hex}")
        .parse()
        .expect("a sha256 hash formats as a valid digest");
    Ok((digest, newest))
}

fn put_bytes(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

fn file_digest(path: &Path) -> Result<Digest, SourceError> {
    let mut file = File::open(path).map_err(IoAt::at(path, "open the file"))?;
    let mut writer = HashingWriter::new(io::sink());
    io::copy(&mut file, &mut writer).map_err(IoAt::at(path, "read the file"))?;
    Ok(writer.finish().0)
}
