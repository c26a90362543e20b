//! The store watched while a step runs in place (`--isolation none`). There the build
//! script runs as the tool's own user, so nothing keeps it from writing into the store:
//! replacing a blob the DU names, retagging a badger, planting a build-cache record that
//! the next build on this store (a CI cache restored on another runner) would trust.
//! Files cannot be kept from their owner; a change can be seen. So each step is bracketed
//! by two metadata snapshots of the store (see [`super::snapshot`]: no symlink followed,
//! bounded), and a step that changed anything in it fails the build, naming what it
//! changed. The tool itself writes nothing into the store while a step runs.

use super::snapshot::{self, Snapshot, SnapshotError, SnapshotRules};
use crate::layer::Change;
use std::path::{Path, PathBuf};

/// What went wrong watching the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreGuardError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("the build changed the store {store} ({count} entries, e.g. {example}): at --isolation none the build runs as this user and can reach the store, and this build tried to alter it; the build is refused and the store must not be trusted (remove it)")]
    Changed {
        store: PathBuf,
        count: usize,
        example: PathBuf,
    },
}

impl crate::error_class::Classify for StoreGuardError {
    fn class(&self) -> crate::error_class::ErrorClass {
        // What the build did, or the store's filesystem: the work failed.
        crate::error_class::ErrorClass::Failure
    }
}

/// The store as it was before a step.
pub struct StoreGuard {
    store: PathBuf,
    rules: SnapshotRules,
    before: Snapshot,
}

impl StoreGuard {
    /// Snapshots `store` (every entry of it, mounts below it left out).
    pub fn watch(store: &Path) -> Result<StoreGuard, StoreGuardError> {
        let store = std::fs::canonicalize(store).unwrap_or_else(|_| store.to_path_buf());
        let rules = SnapshotRules::for_root(&store, &[], &[]);
        let before = snapshot::take(&store, &rules)?;
        Ok(StoreGuard {
            store,
            rules,
            before,
        })
    }

    /// Fails when the store differs from what [`StoreGuard::watch`] saw.
    pub fn check(&self) -> Result<(), StoreGuardError> {
        let after = snapshot::take(&self.store, &self.rules)?;
        let changed = snapshot::changes(&self.before, &after);
        // The deepest path says most: the others are its parents.
        let Some(example) = changed
            .iter()
            .map(|change| match change {
                Change::Add(path) | Change::Whiteout(path) | Change::Opaque(path) => path,
            })
            .max_by_key(|path| path.components().count())
        else {
            return Ok(());
        };
        Err(StoreGuardError::Changed {
            store: self.store.clone(),
            count: changed.len(),
            example: self.store.join(example),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_left_alone_passes_and_any_write_into_it_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        std::fs::create_dir_all(store.join("blobs/sha256")).unwrap();
        std::fs::write(store.join("blobs/sha256/aa"), "layer").unwrap();
        std::fs::write(store.join("index.json"), "{}").unwrap();
        let guard = StoreGuard::watch(&store).unwrap();
        guard.check().unwrap();

        std::fs::write(store.join("blobs/sha256/aa"), "other").unwrap();
        let error = guard.check().unwrap_err().to_string();
        assert!(
            error.contains("the build changed the store") && error.contains("blobs/sha256/aa"),
            "{error}"
        );

        let guard = StoreGuard::watch(&store).unwrap();
        std::fs::remove_file(store.join("index.json")).unwrap();
        assert!(guard
            .check()
            .unwrap_err()
            .to_string()
            .contains("index.json"));
    }
}
