//! A size bound for the rootfs cache (`gc --cache-max SIZE`, or `SOLUM_BUILD_CACHE_MAX`):
//! trees are removed least recently used first until the cache fits. Every tree is only a
//! cache of blobs the store keeps, so any tree may go; the next run or build on it unpacks
//! it again. A tree in use (held by a live run or build, see `unpack::TreeHold`) stays.
//!
//! The last use of a tree is the mtime of its hold file, which every hold sets; a tree
//! never held counts by its own mtime. Sizes are the blocks the tree's files take on disk,
//! each inode counted once; the walk reads metadata only and follows no symlink, so a
//! hostile tree cannot lead it elsewhere.

use super::unpack::{hold_path, remove_unheld, UnpackError};
use crate::io_at::IoAt;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One tree of the cache, as the bound sees it.
struct CachedTree {
    path: PathBuf,
    bytes: u64,
    last_use: SystemTime,
}

/// What bounding the cache did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BoundReport {
    /// Trees removed.
    pub removed: usize,
    /// Their size on disk.
    pub freed: u64,
    /// The size of the cache's trees afterwards.
    pub remaining: u64,
}

/// Removes trees of `cache`, least recently used first, until their total size is at most
/// `max_bytes` (or only held trees are left).
pub fn bound_cache(cache: &Path, max_bytes: u64) -> Result<BoundReport, UnpackError> {
    let mut trees = cached_trees(cache)?;
    trees.sort_by_key(|tree| tree.last_use);
    let mut total: u64 = trees.iter().map(|tree| tree.bytes).sum();
    let mut report = BoundReport::default();
    for tree in &trees {
        if total <= max_bytes {
            break;
        }
        if !remove_unheld(&tree.path).map_err(IoAt::at(&tree.path, "remove"))? {
            continue;
        }
        total = total.saturating_sub(tree.bytes);
        report.removed += 1;
        report.freed += tree.bytes;
    }
    report.remaining = total;
    Ok(report)
}

/// The trees of the cache (not the dot-files and temp folders beside them).
fn cached_trees(cache: &Path) -> Result<Vec<CachedTree>, UnpackError> {
    let entries = match std::fs::read_dir(cache) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(IoAt::at(cache, "read")(error).into()),
    };
    let mut trees = Vec::new();
    for entry in entries {
        let entry = entry.map_err(IoAt::at(cache, "read"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if name.starts_with('.') || !meta.is_dir() {
            continue;
        }
        let last_use = std::fs::symlink_metadata(hold_path(&path))
            .and_then(|hold| hold.modified())
            .or_else(|_| meta.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        trees.push(CachedTree {
            bytes: size_on_disk(&path),
            path,
            last_use,
        });
    }
    Ok(trees)
}

/// The blocks the files of `tree` take, each inode once; what cannot be read is not counted.
fn size_on_disk(tree: &Path) -> u64 {
    let mut seen = HashSet::new();
    walkdir::WalkDir::new(tree)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|entry| entry.metadata().ok())
        .filter(|meta| meta.nlink() < 2 || seen.insert((meta.dev(), meta.ino())))
        .map(|meta| meta.blocks() * 512)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A tree of `bytes` in one file, last used `age` ago.
    fn tree(cache: &Path, name: &str, bytes: usize, age: u64) {
        let path = cache.join(name);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("data"), vec![7u8; bytes]).unwrap();
        let hold = hold_path(&path);
        let file = std::fs::File::create(&hold).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(age))
            .unwrap();
    }

    #[test]
    fn least_recently_used_trees_go_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path();
        tree(cache, "aaaa", 400_000, 300);
        tree(cache, "d-cccc", 40_000, 10);
        tree(cache, "bbbb", 400_000, 200);
        tree(cache, "eeee", 400_000, 5);
        let total: u64 = cached_trees(cache).unwrap().iter().map(|t| t.bytes).sum();
        // Room for all but one big tree: the oldest goes.
        let report = bound_cache(cache, total - 400_000).unwrap();
        assert_eq!(report.removed, 1, "{report:?}");
        let left: HashSet<String> = cached_trees(cache)
            .unwrap()
            .into_iter()
            .map(|t| t.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            left,
            ["bbbb", "d-cccc", "eeee"]
                .iter()
                .map(ToString::to_string)
                .collect()
        );
        assert!(report.remaining <= total - 400_000);
        // Already within the bound: nothing goes.
        assert_eq!(bound_cache(cache, u64::MAX).unwrap().removed, 0);
    }

    #[test]
    fn a_held_tree_stays_over_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path();
        tree(cache, "aaaa", 100_000, 100);
        let hold = std::fs::File::open(hold_path(&cache.join("aaaa"))).unwrap();
        hold.lock_shared().unwrap();
        let report = bound_cache(cache, 0).unwrap();
        assert_eq!(report.removed, 0);
        assert!(cache.join("aaaa").is_dir());
        drop(hold);
        assert_eq!(bound_cache(cache, 0).unwrap().removed, 1);
        assert!(!cache.join("aaaa").exists());
    }
}
