//! The store lease: how writers and `gc` share a layout without losing data. A writer
//! (import, build, badger build, a copy into the store) writes blobs first and names them
//! last; between the two, nothing in `index.json` reaches those blobs, so a `gc` running
//! then would take them. Writers therefore hold a *shared* `flock` on `blobs.lock` from
//! before their first blob until their name is written, and every blob being written holds
//! one too; `gc` takes the lock *exclusive*, so it waits until no writer is between its
//! first blob and its name (and writers that start meanwhile wait for it).
//!
//! The same lock tells a live temp file from a dead one: whoever holds the lock
//! exclusively knows no writer is alive, so everything in the layout's `.tmp` (blobs and
//! tarball trees of writers that were killed) is stale and goes. `gc` sweeps it; so does a
//! writer that starts when no other writer holds a lease. A `flock` dies with its
//! process, so a `kill -9` never leaves the store locked.

use super::layout::{Layout, LayoutError};
use crate::io_at::IoAt;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

/// The lock file, in the layout's root. It is never removed.
const LEASE_FILE: &str = "blobs.lock";

/// The lease slot of a layout handle: every lease taken through one handle (and its
/// clones) shares one open file, so a copy of thousands of blobs holds one descriptor.
#[derive(Debug, Default)]
pub(super) struct LeaseSlot(Mutex<Weak<File>>);

/// A shared hold on the layout's blobs: while any lease is alive, `gc` waits.
#[derive(Clone, Debug)]
pub struct StoreLease {
    /// Held, not read: the shared lock lasts as long as the last clone keeps it open.
    #[cfg_attr(not(test), allow(dead_code))]
    file: Arc<File>,
}

/// The exclusive hold `gc` takes: no writer is between its first blob and its name.
#[derive(Debug)]
pub struct ExclusiveLease {
    /// Held, not read: the exclusive lock lasts as long as it is open.
    #[allow(dead_code)]
    file: File,
}

/// What a sweep of `.tmp` removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub entries: usize,
    pub bytes: u64,
}

fn open_lock(root: &Path) -> Result<File, LayoutError> {
    let path = root.join(LEASE_FILE);
    let lock_error = |source| {
        LayoutError::Io(IoAt::new(
            path.clone(),
            "open the store's lock file",
            source,
        ))
    };
    // A member of a store's group may not create files in its root, but can lock the file
    // its owner made (a shared or exclusive flock needs no write access).
    match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
    {
        Ok(file) => Ok(file),
        Err(error) if error.kind() == io::ErrorKind::PermissionDenied => {
            File::open(&path).map_err(lock_error)
        }
        Err(error) => Err(lock_error(error)),
    }
}

impl Layout {
    /// A shared lease on the layout's blobs, held until every clone of it drops. When no
    /// other process holds one, stale temp files of dead writers are swept first.
    pub fn lease(&self) -> Result<StoreLease, LayoutError> {
        let mut slot = self
            .lease_slot()
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(file) = slot.upgrade() {
            return Ok(StoreLease { file });
        }
        let file = open_lock(self.root())?;
        let lock_error = |source| {
            LayoutError::Io(IoAt::new(
                self.root().join(LEASE_FILE),
                "lock the store",
                source,
            ))
        };
        // Alone (the exclusive lock is free): sweep, then hold the lock shared. Linux
        // converts by dropping and re-taking, so a `gc` may slip in between; it then only
        // delays us, as it would have anyway.
        if file.try_lock().is_ok() {
            self.sweep_temp();
        }
        file.lock_shared().map_err(lock_error)?;
        let file = Arc::new(file);
        *slot = Arc::downgrade(&file);
        Ok(StoreLease { file })
    }

    /// The exclusive lease `gc` holds. When writers hold leases, `on_wait` is called once
    /// and the call blocks until they are done.
    pub fn exclusive_lease(&self, on_wait: &dyn Fn()) -> Result<ExclusiveLease, LayoutError> {
        let file = open_lock(self.root())?;
        let lock_error = |source| {
            LayoutError::Io(IoAt::new(
                self.root().join(LEASE_FILE),
                "lock the store",
                source,
            ))
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                on_wait();
                file.lock().map_err(lock_error)?;
            }
            Err(std::fs::TryLockError::Error(error)) => return Err(lock_error(error)),
        }
        Ok(ExclusiveLease { file })
    }

    /// The exclusive lease if no writer holds the store now, else `None` (for a `gc` that
    /// may as well run later, such as the server's after each workflow).
    pub fn try_exclusive_lease(&self) -> Result<Option<ExclusiveLease>, LayoutError> {
        let file = open_lock(self.root())?;
        match file.try_lock() {
            Ok(()) => Ok(Some(ExclusiveLease { file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(error)) => Err(LayoutError::Io(IoAt::new(
                self.root().join(LEASE_FILE),
                "lock the store",
                error,
            ))),
        }
    }

    /// Removes everything in the layout's temp folder. Only for a caller that holds the
    /// lock exclusively: then no live writer owns anything there.
    pub(super) fn sweep_temp(&self) -> Swept {
        let dir: PathBuf = self.root().join(super::layout::TEMP_DIR);
        let mut swept = Swept::default();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return swept;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let bytes = tree_size(&path);
            if super::cache::remove_tree(&path).is_ok() {
                swept.entries += 1;
                swept.bytes += bytes;
            }
        }
        swept
    }
}

/// The bytes of the files under `path` (not following symlinks).
fn tree_size(path: &Path) -> u64 {
    walkdir::WalkDir::new(path)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_of_one_handle_share_one_descriptor_and_block_gc_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open_or_create(dir.path()).unwrap();
        let first = layout.lease().unwrap();
        let second = layout.clone().lease().unwrap();
        assert!(Arc::ptr_eq(&first.file, &second.file));
        let probe = open_lock(dir.path()).unwrap();
        assert!(probe.try_lock().is_err(), "a lease must keep gc out");
        drop(first);
        assert!(probe.try_lock().is_err(), "one lease is still alive");
        drop(second);
        assert!(probe.try_lock().is_ok());
    }

    #[test]
    fn a_writer_alone_sweeps_stale_temp_files_but_not_while_another_holds_a_lease() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open_or_create(dir.path()).unwrap();
        let temp = layout.temp_dir().unwrap();
        // Another process's lease (another open file description) keeps it.
        let other = Layout::open(dir.path()).unwrap();
        let held = other.lease().unwrap();
        std::fs::write(temp.join("blob-dead"), b"left by a killed writer").unwrap();
        let mine = layout.lease().unwrap();
        assert!(temp.join("blob-dead").exists());
        drop((held, mine));
        let _mine = layout.lease().unwrap();
        assert!(!temp.join("blob-dead").exists());
    }
}
