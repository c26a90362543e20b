//! An OCI image layout on disk (`oci-layout`, `index.json`, `blobs/sha256/…`): the local
//! store and every `oci:DIR` reference are one of these. It owns atomic, verified blob
//! writes, verified blob reads, and serialized `index.json` updates. It knows nothing of
//! layers' contents, registries or the command line.

use super::lease::{LeaseSlot, StoreLease};
use crate::error_class::{Classify, ErrorClass};
use crate::image::{Digest, HashingReader, HashingWriter};
use crate::io_at::IoAt;
use oci_spec::image::ImageIndex;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The `oci-layout` file's content.
const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
/// The largest `index.json` read: some 50,000 named images. (Manifests and configs have
/// their own, smaller bound, `image::DOCUMENT_LIMIT`.)
pub const INDEX_LIMIT: u64 = 16 << 20;
/// The lock that serializes writers of `index.json`. Readers need no lock: the index is
/// replaced by rename, so a reader sees the old or the new file, never half of one.
const INDEX_LOCK: &str = "index.json.lock";
/// Where blobs are written before they are verified and renamed into `blobs/`. It sits on
/// the same filesystem as `blobs/` so that the rename is atomic, and outside `blobs/` so
/// that no reader ever mistakes a partial file for a blob.
pub(super) const TEMP_DIR: &str = ".tmp";

/// What went wrong with a layout, naming the layout and the blob.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{path} is not an OCI image layout (no oci-layout file, and the folder is not empty); name an empty or new folder, or an existing layout")]
    NotALayout { path: PathBuf },
    #[error("{path}: unsupported oci-layout {content:?} (expected imageLayoutVersion 1.0.0)")]
    UnsupportedVersion { path: PathBuf, content: String },
    #[error("blob {digest} is missing from {layout}")]
    MissingBlob { layout: PathBuf, digest: Digest },
    #[error("blob {expected} in {layout} is corrupt: its content hashes to {actual}")]
    DigestMismatch {
        layout: PathBuf,
        expected: Digest,
        actual: Digest,
    },
    #[error("blob {digest} in {layout} has {actual} bytes where its descriptor says {expected}")]
    SizeMismatch {
        layout: PathBuf,
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("blob {digest} in {layout} is larger than {limit} bytes, too large for a manifest or config")]
    TooLarge {
        layout: PathBuf,
        digest: Digest,
        limit: u64,
    },
    #[error("{path} is larger than {limit} bytes; refusing to read it as an image index")]
    IndexTooLarge { path: PathBuf, limit: u64 },
    #[error("{path}: index.json is not a valid OCI image index")]
    BadIndex {
        path: PathBuf,
        #[source]
        source: oci_spec::OciSpecError,
    },
    #[error(transparent)]
    Io(#[from] IoAt),
}

impl Classify for LayoutError {
    fn class(&self) -> ErrorClass {
        match self {
            // A layout that is not one, or whose blobs do not match their digests, came from
            // whoever made it: the user named it.
            LayoutError::NotALayout { .. }
            | LayoutError::UnsupportedVersion { .. }
            | LayoutError::MissingBlob { .. }
            | LayoutError::DigestMismatch { .. }
            | LayoutError::SizeMismatch { .. }
            | LayoutError::TooLarge { .. }
            | LayoutError::IndexTooLarge { .. }
            | LayoutError::BadIndex { .. } => ErrorClass::Input,
            LayoutError::Io(_) => ErrorClass::Failure,
        }
    }
}

/// An OCI image layout directory.
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
    /// Shared by clones: the leases taken through this handle (see `lease`).
    leases: Arc<LeaseSlot>,
}

impl Layout {
    /// Opens an existing layout; a folder without `oci-layout` is an error.
    pub fn open(root: &Path) -> Result<Layout, LayoutError> {
        let marker = root.join("oci-layout");
        let content = match fs::read_to_string(&marker) {
            Ok(content) => content,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(LayoutError::NotALayout {
                    path: root.to_path_buf(),
                })
            }
            Err(e) => return Err(IoAt::at(&marker, "read")(e).into()),
        };
        let version_ok = serde_json::from_str::<serde_json::Value>(&content)
            .ok()
            .and_then(|v| v.get("imageLayoutVersion")?.as_str().map(str::to_owned))
            .is_some_and(|v| v == "1.0.0");
        if !version_ok {
            return Err(LayoutError::UnsupportedVersion {
                path: root.to_path_buf(),
                content,
            });
        }
        Ok(Layout {
            root: root.to_path_buf(),
            leases: Arc::default(),
        })
    }

    /// Opens a layout, creating it when the folder is missing or empty. A non-empty folder
    /// that is not a layout is refused and left untouched. Creators serialize on an
    /// exclusive `flock` of the folder itself, so two processes making the same store at
    /// once neither see each other's half-made layout nor overwrite each other's index.
    pub fn open_or_create(root: &Path) -> Result<Layout, LayoutError> {
        if root.join("oci-layout").exists() {
            return Layout::open(root);
        }
        fs::create_dir_all(root).map_err(IoAt::at(root, "create the folder"))?;
        let folder = File::open(root).map_err(IoAt::at(root, "open the folder"))?;
        folder.lock().map_err(IoAt::at(root, "lock the folder"))?;
        if root.join("oci-layout").exists() {
            return Layout::open(root);
        }
        let mut entries = fs::read_dir(root).map_err(IoAt::at(root, "read the folder"))?;
        if entries.next().is_some() {
            return Err(LayoutError::NotALayout {
                path: root.to_path_buf(),
            });
        }
        let layout = Layout {
            root: root.to_path_buf(),
            leases: Arc::default(),
        };
        let blobs = layout.blobs_dir();
        fs::create_dir_all(&blobs).map_err(IoAt::at(&blobs, "create"))?;
        // index.json first, oci-layout last: a folder with oci-layout is a complete layout.
        layout.write_file_atomic("index.json", br#"{"schemaVersion":2,"manifests":[]}"#)?;
        layout.write_file_atomic("oci-layout", OCI_LAYOUT.as_bytes())?;
        Ok(layout)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(super) fn lease_slot(&self) -> &LeaseSlot {
        &self.leases
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    /// Where a blob lives (whether or not it is there).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Whether the stored blob `digest` has `size` bytes (stored blobs were verified when
    /// they were committed, so a descriptor that says otherwise lies); `SizeMismatch` when
    /// it has not.
    pub fn check_blob_size(&self, digest: &Digest, size: u64) -> Result<(), LayoutError> {
        let path = self.blob_path(digest);
        let actual = fs::metadata(&path)
            .map_err(IoAt::at(&path, "read blob"))?
            .len();
        if actual != size {
            return Err(LayoutError::SizeMismatch {
                layout: self.root.clone(),
                digest: digest.clone(),
                expected: size,
                actual,
            });
        }
        Ok(())
    }

    /// The folder for temporary files of this layout, created on demand.
    pub fn temp_dir(&self) -> Result<PathBuf, LayoutError> {
        let dir = self.root.join(TEMP_DIR);
        fs::create_dir_all(&dir).map_err(IoAt::at(&dir, "create the temp folder"))?;
        Ok(dir)
    }

    /// Starts a blob whose digest is not known yet; `BlobWriter::commit` names it. The
    /// writer holds a lease on the store until it is committed or dropped.
    pub fn begin_blob(&self) -> Result<BlobWriter, LayoutError> {
        let lease = self.lease()?;
        let dir = self.temp_dir()?;
        let (file, path) = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&dir)
            .map_err(IoAt::at(&dir, "create a temp blob"))?
            .into_parts();
        Ok(BlobWriter {
            layout: self.clone(),
            file: Some(file),
            path,
            _lease: lease,
        })
    }

    /// Streams a blob in, verifying it against `expected` (digest and size) when given.
    /// Nothing appears under `blobs/` unless the content is verified.
    pub fn put_blob(
        &self,
        reader: &mut dyn Read,
        expected: Option<(&Digest, u64)>,
    ) -> Result<(Digest, u64), LayoutError> {
        let (blob, digest, size) = self.stage_blob(reader, expected)?;
        blob.commit(&digest)?;
        Ok((digest, size))
    }

    /// Like [`Layout::put_blob`], but leaves the verified blob in the temp folder until the
    /// caller commits it: a copy of several blobs commits none unless all verify, so a
    /// failed copy leaves the layout as it was.
    pub fn stage_blob(
        &self,
        reader: &mut dyn Read,
        expected: Option<(&Digest, u64)>,
    ) -> Result<(BlobWriter, Digest, u64), LayoutError> {
        let mut blob = self.begin_blob()?;
        let temp_path = blob.path.to_path_buf();
        let mut writer = HashingWriter::new(BufWriter::with_capacity(1 << 20, blob.file()?));
        io::copy(reader, &mut writer).map_err(|error| {
            // A verifying source (another layout's blob) reports corruption as an I/O
            // error; that is the source's fault, so say so rather than blame the write.
            if error.get_ref().is_some_and(
                <dyn std::error::Error + std::marker::Send + std::marker::Sync + 'static>::is::<
                    LayoutError,
                >,
            ) {
                if let Ok(inner) = error.into_inner().unwrap().downcast::<LayoutError>() {
                    return *inner;
                }
                unreachable!("checked above");
            }
            IoAt::at(&temp_path, "write blob")(error).into()
        })?;
        let (digest, size, mut inner) = writer.finish();
        inner.flush().map_err(IoAt::at(&temp_path, "write blob"))?;
        drop(inner);
        if let Some((expected_digest, expected_size)) = expected {
            if &digest != expected_digest {
                return Err(LayoutError::DigestMismatch {
                    layout: self.root.clone(),
                    expected: expected_digest.clone(),
                    actual: digest,
                });
            }
            if size != expected_size {
                return Err(LayoutError::SizeMismatch {
                    layout: self.root.clone(),
                    digest,
                    expected: expected_size,
                    actual: size,
                });
            }
        }
        // A staged blob keeps no descriptor open: a copy of thousands of layers stages
        // them all before committing any.
        blob.close()?;
        Ok((blob, digest, size))
    }

    /// Stores bytes already in memory (manifests, configs).
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, LayoutError> {
        let digest = Digest::of_bytes(bytes);
        if !self.has_blob(&digest) {
            self.put_blob(&mut &bytes[..], Some((&digest, bytes.len() as u64)))?;
        }
        Ok(digest)
    }

    /// Opens a blob for reading; the reader fails at its end if the content does not match
    /// the digest or the expected size.
    pub fn open_blob(
        &self,
        digest: &Digest,
        expected_size: Option<u64>,
    ) -> Result<VerifiedBlob, LayoutError> {
        let path = self.blob_path(digest);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(LayoutError::MissingBlob {
                    layout: self.root.clone(),
                    digest: digest.clone(),
                })
            }
            Err(e) => return Err(IoAt::at(&path, "open blob")(e).into()),
        };
        Ok(VerifiedBlob {
            reader: Some(HashingReader::new(file)),
            path,
            layout: self.root.clone(),
            digest: digest.clone(),
            expected_size,
        })
    }

    /// Reads a small blob (manifest, index, config) whole, verified.
    pub fn read_blob(
        &self,
        digest: &Digest,
        expected_size: Option<u64>,
        limit: u64,
    ) -> Result<Vec<u8>, LayoutError> {
        let path = self.blob_path(digest);
        let mut blob = self.open_blob(digest, expected_size)?;
        let length = fs::metadata(&path)
            .map_err(IoAt::at(&path, "read blob"))?
            .len();
        if length > limit {
            return Err(LayoutError::TooLarge {
                layout: self.root.clone(),
                digest: digest.clone(),
                limit,
            });
        }
        let mut bytes = Vec::with_capacity(length as usize);
        blob.read_to_end(&mut bytes)
            .map_err(|e| VerifiedBlob::explain(e, &path))?;
        Ok(bytes)
    }

    /// Reads `index.json`, refusing one larger than `INDEX_LIMIT` before parsing it (the
    /// parsed index takes about twice its size in memory).
    pub fn read_index(&self) -> Result<ImageIndex, LayoutError> {
        let path = self.root.join("index.json");
        let file = File::open(&path).map_err(IoAt::at(&path, "open"))?;
        let mut bytes = Vec::new();
        // Read at most one byte past the bound: a file that grows meanwhile is caught too.
        file.take(INDEX_LIMIT + 1)
            .read_to_end(&mut bytes)
            .map_err(IoAt::at(&path, "read"))?;
        if bytes.len() as u64 > INDEX_LIMIT {
            return Err(LayoutError::IndexTooLarge {
                path,
                limit: INDEX_LIMIT,
            });
        }
        ImageIndex::from_reader(&bytes[..]).map_err(|source| LayoutError::BadIndex { path, source })
    }

    /// Changes `index.json` under the layout's lock: read, change, write to a temp file,
    /// fsync, rename. Two processes tagging at once never lose a name.
    pub fn update_index<T>(
        &self,
        change: impl FnOnce(&mut ImageIndex) -> T,
    ) -> Result<T, LayoutError> {
        let _lock = self.lock()?;
        self.update_index_locked(change)
    }

    /// [`Layout::update_index`] for a caller that holds the layout's lock already.
    pub(super) fn update_index_locked<T>(
        &self,
        change: impl FnOnce(&mut ImageIndex) -> T,
    ) -> Result<T, LayoutError> {
        let mut index = self.read_index()?;
        let outcome = change(&mut index);
        let bytes = crate::image::canonical_json(&index);
        self.write_file_atomic("index.json", &bytes)?;
        Ok(outcome)
    }

    /// Takes the layout's writer lock (an exclusive `flock` on `index.json.lock`), held
    /// until the guard drops.
    pub fn lock(&self) -> Result<LayoutLock, LayoutError> {
        let path = self.root.join(INDEX_LOCK);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(IoAt::at(&path, "open the lock file"))?;
        file.lock().map_err(IoAt::at(&path, "lock"))?;
        Ok(LayoutLock { _file: file })
    }

    fn write_file_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), LayoutError> {
        let target = self.root.join(name);
        let mut temp = tempfile::Builder::new()
            .prefix(&format!(".{name}-"))
            .tempfile_in(&self.root)
            .map_err(IoAt::at(&self.root, "create a temp file"))?;
        temp.write_all(bytes)
            .and_then(|()| temp.as_file().sync_all())
            .map_err(IoAt::at(&target, "write"))?;
        set_readable_mode(temp.as_file(), &target)?;
        temp.persist(&target)
            .map_err(|e| IoAt::at(&target, "replace")(e.error))?;
        Ok(())
    }
}

/// Temp files are created 0600; layout files are meant to be read by other tools and users
/// (a store shared through a group, a layout handed to skopeo), so they get 0644.
fn set_readable_mode(file: &File, path: &Path) -> Result<(), LayoutError> {
    use std::os::unix::fs::PermissionsExt;
    Ok(file
        .set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(IoAt::at(path, "set the permissions of"))?)
}

/// The writer lock of a layout; released on drop.
pub struct LayoutLock {
    _file: File,
}

/// A blob being written: a temp file that becomes `blobs/sha256/<hex>` on `commit`, and is
/// removed if dropped uncommitted. It holds a lease on the store so that `gc` leaves it be.
pub struct BlobWriter {
    layout: Layout,
    /// Open while the blob is being written; closed (synced, made readable) once staged.
    file: Option<File>,
    path: tempfile::TempPath,
    _lease: StoreLease,
}

impl BlobWriter {
    /// A handle on the temp file to write through (it shares the file's offset).
    pub fn file(&self) -> Result<File, LayoutError> {
        let Some(file) = &self.file else {
            return Err(IoAt::new(
                &self.path,
                "reopen the temp blob",
                io::Error::other("the blob is already closed"),
            )
            .into());
        };
        Ok(file
            .try_clone()
            .map_err(IoAt::at(&self.path, "reopen the temp blob"))?)
    }

    pub fn temp_path(&self) -> &Path {
        &self.path
    }

    /// Syncs the content, makes it readable and closes the descriptor.
    fn close(&mut self) -> Result<(), LayoutError> {
        if let Some(file) = self.file.take() {
            file.sync_all().map_err(IoAt::at(&self.path, "sync blob"))?;
            set_readable_mode(&file, &self.path)?;
        }
        Ok(())
    }

    /// Syncs the content and renames it into place under its digest. The caller vouches for
    /// the digest (it hashed the bytes while writing them).
    pub fn commit(mut self, digest: &Digest) -> Result<(), LayoutError> {
        let target = self.layout.blob_path(digest);
        self.close()?;
        // Blobs are content-addressed: if another writer got there first, its file has the
        // same bytes and ours is simply dropped.
        if target.exists() {
            return Ok(());
        }
        self.path
            .persist(&target)
            .map_err(|e| IoAt::at(&target, "move a blob into place at")(e.error))?;
        Ok(())
    }
}

/// A blob reader that checks digest and size when the content ends.
pub struct VerifiedBlob {
    reader: Option<HashingReader<File>>,
    path: PathBuf,
    layout: PathBuf,
    digest: Digest,
    expected_size: Option<u64>,
}

impl VerifiedBlob {
    /// Reads to the end, so that the check runs even when the consumer stopped early (a tar
    /// reader ignores trailing padding).
    pub fn finish(&mut self) -> Result<(), LayoutError> {
        let path = self.path.clone();
        io::copy(self, &mut io::sink()).map_err(|e| Self::explain(e, &path))?;
        Ok(())
    }

    fn check(&mut self) -> Result<(), LayoutError> {
        let Some(reader) = self.reader.take() else {
            return Ok(());
        };
        let (actual, size) = reader.finish();
        if actual != self.digest {
            return Err(LayoutError::DigestMismatch {
                layout: self.layout.clone(),
                expected: self.digest.clone(),
                actual,
            });
        }
        if let Some(expected) = self.expected_size.filter(|&e| e != size) {
            return Err(LayoutError::SizeMismatch {
                layout: self.layout.clone(),
                digest: self.digest.clone(),
                expected,
                actual: size,
            });
        }
        Ok(())
    }

    /// Turns an I/O error from `read` back into the layout error it carries, if any.
    fn explain(error: io::Error, path: &Path) -> LayoutError {
        if error.get_ref().is_some_and(
            <dyn std::error::Error + std::marker::Send + std::marker::Sync + 'static>::is::<
                LayoutError,
            >,
        ) {
            let inner = error.into_inner().expect("checked above");
            return *inner.downcast::<LayoutError>().expect("checked above");
        }
        IoAt::at(path, "read blob")(error).into()
    }
}

impl Read for VerifiedBlob {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(0);
        };
        let read = reader.read(buf)?;
        if read == 0 && !buf.is_empty() {
            self.check()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_round_trip_and_corruption_is_caught_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open_or_create(&dir.path().join("store")).unwrap();
        let digest = layout.put_bytes(b"hello").unwrap();
        assert_eq!(
            layout.read_blob(&digest, Some(5), 1024).unwrap(),
            b"hello".to_vec()
        );
        assert!(matches!(
            layout.read_blob(&digest, Some(6), 1024),
            Err(LayoutError::SizeMismatch { .. })
        ));
        fs::write(layout.blob_path(&digest), b"jello").unwrap();
        assert!(matches!(
            layout.read_blob(&digest, None, 1024),
            Err(LayoutError::DigestMismatch { .. })
        ));
    }

    #[test]
    fn a_blob_that_does_not_match_its_digest_is_never_stored() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open_or_create(dir.path()).unwrap();
        let wrong = Digest::of_bytes(b"other");
        assert!(layout
            .put_blob(&mut &b"hello"[..], Some((&wrong, 5)))
            .is_err());
        assert!(!layout.has_blob(&wrong));
        assert_eq!(fs::read_dir(layout.blobs_dir()).unwrap().count(), 0);
        assert_eq!(fs::read_dir(layout.temp_dir().unwrap()).unwrap().count(), 0);
    }

    #[test]
    fn a_non_empty_folder_that_is_not_a_layout_is_refused_and_untouched() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
        assert!(matches!(
            Layout::open_or_create(dir.path()),
            Err(LayoutError::NotALayout { .. })
        ));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
