//! A folder that is a git checkout, built as `docker build .` builds it: its working tree
//! — tracked and untracked files, uncommitted edits included — copied like any folder
//! (less `.git` and what `.solumignore` / `.dockerignore` name), not its last commit.
//! `--revision` (or `source.revision`) builds a commit instead, through the mirror, and
//! so does a server's bounded fetch (see [`super::FetchRules::limit`]).
//!
//! `.gitignore` is not applied: Docker does not apply it either, and what git is told to
//! keep out of commits is often what a build needs (a `wheelhouse/` of downloaded wheels,
//! a generated `.env.production`); a source that wants them out names them in its
//! `.solumignore`.
//!
//! The working tree is not a commit, yet the DU should say where it came from. In order:
//! the repository is fetched into its mirror like any git source (git never runs in the
//! checkout itself), its `HEAD` commit is listed there, the folder is copied, and the copy
//! is compared with that listing by object id and mode. No difference: the DU records the
//! `HEAD` commit and its time, as a commit build would. Any difference: the revision is
//! `SHA-dirty` (`git describe --dirty`'s mark) and the created time is the newest file's,
//! the rule of a plain folder.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sha1::Digest;

use super::ignore_rules::IgnoreRules;
use super::SourceError;
use crate::io_at::IoAt;

/// The suffix of a revision built from a working tree that differs from its `HEAD`.
pub const DIRTY_MARK: &str = "-dirty";

/// How a copied working tree differs from its `HEAD` commit.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Changes {
    /// Tracked files whose content or mode differs.
    pub(super) modified: u64,
    /// Files that `HEAD` does not have (untracked, or ignored by git).
    pub(super) added: u64,
    /// Files of `HEAD` missing from the working tree (and not left out by `rules`).
    pub(super) deleted: u64,
}

impl Changes {
    pub(super) fn total(&self) -> u64 {
        self.modified + self.added + self.deleted
    }
}

/// One blob of the `HEAD` listing.
struct Tracked {
    /// `100644`, `100755` or `120000`.
    mode: String,
    oid: String,
}

/// Compares `copy` (the working tree as copied, ignore rules applied) with `listing`
/// (`git ls-tree -r -z` of `HEAD`), of which only what lies under `prefix` (the
/// `source.path` folder, relative to the repository; empty for all) counts. Tracked paths
/// that `rules` leave out are not counted as deleted; what lies in a submodule is not
/// compared.
pub(super) fn compare(
    copy: &Path,
    listing: &[u8],
    prefix: &Path,
    rules: &IgnoreRules,
) -> Result<Changes, SourceError> {
    let prefix = prefix.as_os_str().as_bytes();
    let mut tracked: BTreeMap<Vec<u8>, Tracked> = BTreeMap::new();
    let mut submodules: Vec<Vec<u8>> = Vec::new();
    for record in listing.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let Some(tab) = record.iter().position(|&b| b == b'\t') else {
            continue;
        };
        let (head, path) = (&record[..tab], &record[tab + 1..]);
        let path = if prefix.is_empty() {
            path
        } else {
            match path.strip_prefix(prefix) {
                Some(rest) if rest.first() == Some(&b'/') => &rest[1..],
                _ => continue,
            }
        };
        let fields: Vec<&[u8]> = head.split(|&b| b == b' ').collect();
        let [mode, kind, oid] = fields[..] else {
            continue;
        };
        match kind {
            b"blob" => {
                tracked.insert(
                    path.to_vec(),
                    Tracked {
                        mode: String::from_utf8_lossy(mode).into_owned(),
                        oid: String::from_utf8_lossy(oid).into_owned(),
                    },
                );
            }
            b"commit" => submodules.push(path.to_vec()),
            _ => {}
        }
    }
    let sha256 = tracked.values().next().is_some_and(|t| t.oid.len() == 64);
    let in_submodule = |path: &[u8]| {
        submodules
            .iter()
            .any(|s| path.starts_with(s) && path.get(s.len()) == Some(&b'/'))
    };

    let mut changes = Changes::default();
    for entry in super::folder::walk(copy) {
        let entry = entry.map_err(|error| {
            let path = error.path().unwrap_or(copy).to_path_buf();
            IoAt::at(&path, "walk the tree at")(error.into())
        })?;
        let kind = entry.file_type();
        if !kind.is_file() && !kind.is_symlink() {
            continue;
        }
        let path = entry.path();
        let relative = path
            .strip_prefix(copy)
            .expect("walkdir yields paths under its root")
            .as_os_str()
            .as_bytes();
        if in_submodule(relative) {
            continue;
        }
        let Some(head) = tracked.remove(relative) else {
            changes.added += 1;
            continue;
        };
        let (mode, oid) = if kind.is_symlink() {
            let target = fs::read_link(path).map_err(IoAt::at(path, "read the symlink"))?;
            let target = target.as_os_str().as_bytes();
            ("120000", blob_id(target, target.len() as u64, sha256))
        } else {
            let meta = entry
                .metadata()
                .map_err(|error| IoAt::at(path, "read the metadata of")(error.into()))?;
            let mode = if meta.mode() & 0o100 != 0 {
                "100755"
            } else {
                "100644"
            };
            // Streamed: a working tree may hold files far larger than memory.
            let file = fs::File::open(path).map_err(IoAt::at(path, "open the file"))?;
            (mode, blob_id(file, meta.len(), sha256))
        };
        let oid = oid.map_err(IoAt::at(path, "read the file"))?;
        if head.mode != mode || head.oid != oid {
            changes.modified += 1;
        }
    }
    changes.deleted = tracked
        .keys()
        .filter(|path| {
            let path = Path::new(std::ffi::OsStr::from_bytes(path));
            !rules.covers(path)
        })
        .count() as u64;
    Ok(changes)
}

/// Git's object id of a blob of `len` bytes read from `content` (SHA-1, or SHA-256 for a
/// repository of that object format). A file that changed length while it was read gets
/// an id no commit has: it counts as modified.
fn blob_id(content: impl Read, len: u64, sha256: bool) -> std::io::Result<String> {
    fn hash<H: sha1::Digest + Write>(mut content: impl Read, len: u64) -> std::io::Result<String> {
        let mut hasher = H::new();
        Digest::update(&mut hasher, format!("blob {len}\0").as_bytes());
        std::io::copy(&mut content, &mut hasher)?;
        Ok(hex::encode(hasher.finalize()))
    }
    if sha256 {
        hash::<sha2::Sha256>(content, len)
    } else {
        hash::<sha1::Sha1>(content, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_ids_are_gits() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            blob_id(&b"hello\n"[..], 6, false).unwrap(),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        // `git init --object-format=sha256`, the same blob.
        assert_eq!(
            blob_id(&b"hello\n"[..], 6, true).unwrap(),
            "2cf8d83d9ee29543b34a87727421fdecb7e3f3a183d337639025de576db9ebb4"
        );
    }

    #[test]
    fn changes_are_counted_against_the_listing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("same"), "hello\n").unwrap();
        fs::write(root.join("edited"), "new\n").unwrap();
        fs::write(root.join("untracked"), "x").unwrap();
        let hello = blob_id(&b"hello\n"[..], 6, false).unwrap();
        let listing = format!(
            "100644 blob {hello}\tsame\0100644 blob {hello}\tedited\0\
             100644 blob {hello}\tgone\0100644 blob {hello}\t.env\0"
        );
        fs::write(root.join(".solumignore"), ".env\n").unwrap();
        let rules = IgnoreRules::load(root).unwrap();
        let changes = compare(root, listing.as_bytes(), Path::new(""), &rules).unwrap();
        // `.solumignore` itself is untracked here: two files added.
        assert_eq!(
            changes,
            Changes {
                modified: 1,
                added: 2,
                deleted: 1
            }
        );
    }
}
