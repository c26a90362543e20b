//! What one layer does to the filesystem below it, as the catalogers see it — the paths it
//! hides (whiteouts, replaced paths) and the candidate files it holds, in tar order — and
//! a cache of those records by layer digest in the store's private cache folder
//! (`STORE/cache/sbom/`). A DU shares its badger's layers with every other DU built on the
//! badger, so the SBOM of a new DU reads only the layers made by its build; the others are
//! replayed from their records.
//!
//! Trust: a record is written only after its layer's blob matched its digest (the blob is
//! read to its end and checked), into a folder private to the user (0700, checked on every
//! use), by a temp file and a rename; it is keyed by the layer digest, the record format
//! and the catalogers' limits. A record that cannot be read or parsed is a miss, never an
//! error: the layer is read again.

use super::layers::Content;
use super::{Limits, Skipped};
use crate::image::Digest;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Raised when what a record holds, or how it is read, changes.
const RECORD_VERSION: u32 = 2;
/// The largest record read back: far above a real layer's (a dpkg database of a few
/// thousand packages is a few MiB of findings).
const RECORD_LIMIT: u64 = 64 << 20;

/// One step of a layer, in the order its tar holds them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) enum Op {
    /// `.wh..wh..opq` in the folder: what lower layers put under it is gone.
    HideBelow(String),
    /// `.wh.NAME`, or a non-directory entry: the path and all under it from below are gone.
    Hide(String),
    /// A directory entry: a lower non-directory at the path is gone.
    RemoveExact(String),
    /// A candidate file and what it says.
    Found(String, Content),
}

/// A layer's steps and what it skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct LayerRecord {
    pub ops: Vec<Op>,
    pub skipped: Skipped,
}

/// The file a record is kept in, with what it was made under.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredRecord {
    version: u32,
    layer: String,
    limits: String,
    record: LayerRecord,
}

/// The records of one user's store.
pub struct RecordCache {
    dir: PathBuf,
}

impl RecordCache {
    /// The cache in `dir` (made private on first use).
    pub fn new(dir: &Path) -> RecordCache {
        RecordCache {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, layer: &Digest) -> PathBuf {
        self.dir.join(format!("{}.json", layer.hex()))
    }

    /// The record of `layer` made under these limits, if one was kept and reads back whole.
    pub(super) fn load(&self, layer: &Digest, limits: &Limits) -> Option<LayerRecord> {
        crate::store::cache::private_dir(&self.dir).ok()?;
        let file = open_no_follow(&self.path(layer))?;
        let mut bytes = Vec::new();
        file.take(RECORD_LIMIT + 1).read_to_end(&mut bytes).ok()?;
        if bytes.len() as u64 > RECORD_LIMIT {
            return None;
        }
        let stored: StoredRecord = serde_json::from_slice(&bytes).ok()?;
        (stored.version == RECORD_VERSION
            && stored.layer == layer.to_string()
            && stored.limits == limits_key(limits))
        .then_some(stored.record)
    }

    /// Keeps the record of `layer`; a failure to write only costs the next SBOM a read.
    pub(super) fn save(&self, layer: &Digest, limits: &Limits, record: &LayerRecord) {
        if crate::store::cache::private_dir(&self.dir).is_err() {
            return;
        }
        let stored = StoredRecord {
            version: RECORD_VERSION,
            layer: layer.to_string(),
            limits: limits_key(limits),
            record: record.clone(),
        };
        let Ok(bytes) = serde_json::to_vec(&stored) else {
            return;
        };
        if bytes.len() as u64 > RECORD_LIMIT {
            return;
        }
        let Ok(mut temp) = tempfile::NamedTempFile::new_in(&self.dir) else {
            return;
        };
        if temp.write_all(&bytes).is_ok() {
            let _ = temp.persist(self.path(layer));
        }
    }
}

/// The limits a record was made under, as text: another bound may find other files.
fn limits_key(limits: &Limits) -> String {
    format!("{limits:?}")
}

/// Opens a regular file without following a symlink at its last component.
fn open_no_follow(path: &Path) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    file.metadata().ok()?.is_file().then_some(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::sbom::{Ecosystem, Package};

    #[test]
    fn a_record_round_trips_and_another_layer_or_limit_or_a_broken_file_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = RecordCache::new(&dir.path().join("sbom"));
        let layer: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let other: Digest = format!("sha256:{}", "b".repeat(64)).parse().unwrap();
        let limits = Limits::default();
        let record = LayerRecord {
            ops: vec![
                Op::HideBelow("etc".into()),
                Op::Found(
                    "usr/lib/python3/dist-packages/x.dist-info/METADATA".into(),
                    Content::Packages(vec![Package::new(Ecosystem::Python, None, "x", "1")]),
                ),
            ],
            skipped: Skipped {
                too_large: 1,
                malformed: 2,
            },
        };
        assert_eq!(cache.load(&layer, &limits), None);
        cache.save(&layer, &limits, &record);
        assert_eq!(cache.load(&layer, &limits), Some(record.clone()));
        // Kept under its own digest only, and only for the limits it was made under.
        std::fs::copy(cache.path(&layer), cache.path(&other)).unwrap();
        assert_eq!(cache.load(&other, &limits), None);
        let tighter = Limits {
            packages: 10,
            ..Limits::default()
        };
        assert_eq!(cache.load(&layer, &tighter), None);
        // A broken record is a miss; the folder is private.
        std::fs::write(cache.path(&layer), b"{\"version\": 1,").unwrap();
        assert_eq!(cache.load(&layer, &limits), None);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("sbom"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
