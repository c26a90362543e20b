//! Layers: turning OCI layer tarballs into directory trees and back.
//!
//! This module owns the tar format as the OCI image spec uses it: unpacking a (possibly
//! compressed) layer on top of a root directory with whiteouts, ownership and hostile-entry
//! checks ([`unpack_layer`]), and writing a tree or a list of changes as one reproducible,
//! compressed layer with its digests computed in the same pass ([`write_tree`],
//! [`write_changes`]). It never touches the network, the image store or any path outside the
//! root it is given: every file it creates is created relative to a directory file
//! descriptor that was opened with `openat2(RESOLVE_IN_ROOT)` (see `safe_path`).

mod compress;
mod diff;
mod estimate;
mod fallback_copy;
mod fsops;
mod limits;
mod metadata;
mod ownership;
mod safe_path;
mod tar_guard;
mod unpack;
mod whiteout;
mod write;

use crate::error_class::{Classify, ErrorClass};
use crate::io_at::IoAt;
use std::io;
use std::path::PathBuf;

pub use crate::image::media::LayerCompression;
pub use compress::decompressing_reader;
pub use diff::{overlay_changes, refuse_whiteout_names, sort_changes, walk_changes};
pub use fallback_copy::copy_tree;
pub use limits::{Exceeded, UnpackLimits, RATIO_ALLOWANCE};
pub use ownership::{RootlessOwner, ROOTLESS_XATTR};
pub use tar_guard::{refusal, ExtensionKind, TarGuard, TarGuardError, EXTENSION_LIMIT};
pub use unpack::unpack_layer;
pub use write::{write_changes, write_tree};

use crate::image::digest::Digest;
use crate::privilege::Privilege;

/// Everything that can go wrong while reading or writing a layer.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The entry would write outside the root, or is otherwise malicious. Nothing of this
    /// entry was written.
    #[error("refusing hostile layer entry {entry:?}: {reason}")]
    HostileEntry { entry: String, reason: &'static str },
    /// A filesystem operation for one entry failed.
    #[error("layer entry {entry:?}: {op} failed")]
    Entry {
        entry: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// The entry's type is one that a layer may not carry (or that we cannot create).
    #[error("layer entry {entry:?} has an unsupported tar type {kind:?}")]
    UnsupportedEntry { entry: String, kind: char },
    /// The tar stream ended before its end-of-archive marker, or inside an entry.
    #[error("the layer tar is truncated (at entry {entry:?})")]
    TruncatedTar { entry: String },
    /// The tar structure itself is malformed (bad checksum, bad number field, ...).
    #[error("the layer tar is malformed")]
    MalformedTar {
        #[source]
        source: io::Error,
    },
    /// The gzip or zstd stream is truncated or corrupt.
    #[error("the {compression:?}-compressed layer stream is truncated or corrupt")]
    CorruptCompression {
        compression: LayerCompression,
        #[source]
        source: io::Error,
    },
    /// Reading the (compressed) layer from its source failed.
    #[error("reading the layer stream failed")]
    Read {
        #[source]
        source: io::Error,
    },
    /// A `user.rootlesscontainers` record that cannot be decoded.
    #[error("{path}: malformed user.rootlesscontainers ownership record")]
    OwnershipRecord { path: PathBuf },
    /// A filesystem operation on the root to unpack into or pack from, or on a file of
    /// the tree that is being written or copied, failed.
    #[error(transparent)]
    Io(#[from] IoAt),
    /// A path in the tree cannot be represented in a layer.
    #[error("{path}: {reason}")]
    Unrepresentable { path: PathBuf, reason: &'static str },
    /// A build made a file whose name starts with `.wh.`: a layer cannot carry it, every
    /// unpacker reads it as a whiteout. The build failed (not its input).
    #[error("{path}: a file name starting with `.wh.` is a whiteout in a layer; rename it")]
    WhiteoutName { path: PathBuf },
    /// The layer expands past one of its [`UnpackLimits`]; what was written so far stays
    /// for the caller to remove with the rest of its root.
    #[error("refusing layer entry {entry:?}: the layer exceeds its limit of {limit}")]
    TooLarge { entry: String, limit: Exceeded },
    /// An extension header (GNU long name or link, PAX records) declares a body too large
    /// to read; nothing of the entry it describes was written.
    #[error("refusing the layer: {0}")]
    OversizedHeader(TarGuardError),
    /// A PAX record of the entry cannot be used (an unparseable or overflowing size).
    #[error("layer entry {entry:?}: bad PAX record {key}={value:?}")]
    BadPax {
        entry: String,
        key: &'static str,
        value: String,
    },
    /// Compressing, or writing the compressed layer to its destination, failed.
    #[error("writing the {compression:?} layer failed")]
    Write {
        compression: LayerCompression,
        #[source]
        source: io::Error,
    },
}

impl Classify for LayerError {
    fn class(&self) -> ErrorClass {
        match self {
            // What the tarball itself says is wrong with it.
            LayerError::HostileEntry { .. }
            | LayerError::UnsupportedEntry { .. }
            | LayerError::TruncatedTar { .. }
            | LayerError::MalformedTar { .. }
            | LayerError::CorruptCompression { .. }
            | LayerError::Unrepresentable { .. }
            | LayerError::TooLarge { .. }
            | LayerError::BadPax { .. }
            | LayerError::OversizedHeader(_) => ErrorClass::Input,
            // The filesystem, the stream's source, or what a build made.
            LayerError::Entry { .. }
            | LayerError::Read { .. }
            | LayerError::OwnershipRecord { .. }
            | LayerError::Io(_)
            | LayerError::WhiteoutName { .. }
            | LayerError::Write { .. } => ErrorClass::Failure,
        }
    }
}

/// How to unpack a layer.
#[derive(Clone, Debug)]
pub struct UnpackOptions {
    /// Running without root: ownership is recorded in `user.rootlesscontainers` instead of
    /// applied, device nodes are skipped, directories are kept writable until the end.
    pub rootless: bool,
    /// How far the layer may expand; see [`UnpackLimits`].
    pub limits: UnpackLimits,
}

impl UnpackOptions {
    /// Rootless as `privilege` says; limits from the environment, else the defaults.
    pub fn new(privilege: Privilege) -> UnpackOptions {
        UnpackOptions {
            rootless: privilege.is_rootless(),
            limits: UnpackLimits::from_env(),
        }
    }
}

/// What an unpack did.
#[derive(Debug, Default)]
pub struct UnpackReport {
    /// Entries created or updated (whiteouts not counted).
    pub entries: u64,
    /// Whiteout entries (`.wh.NAME` and opaque markers) applied.
    pub whiteouts: u64,
    /// Bytes of file content written (sparse holes included).
    pub bytes: u64,
    /// Device nodes that a rootless unpack could not create (layer paths).
    pub skipped_devices: Vec<String>,
    /// Directories that hold this layer's entries without being listed by it: the root
    /// (`""`) unless the layer has a `./` entry, and the parents it had to create (as
    /// `0755`). Relative paths, sorted. On a tree that already held them this says what a
    /// stacked tree must take from the tree below (see `pipeline::stacked`).
    pub unlisted_dirs: Vec<Vec<u8>>,
}

/// How to write a layer.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    pub compression: LayerCompression,
    /// Clamp mtimes to this (`SOURCE_DATE_EPOCH`): each entry gets `min(mtime, epoch)`.
    pub epoch: Option<i64>,
    /// Owners come from the `user.rootlesscontainers` xattr (else 0:0) instead of the
    /// files' real owners, which are all the unprivileged user.
    pub rootless: bool,
    /// Rootless with a subordinate id range (`newuidmap`): a file the sandbox gave to a
    /// non-root owner belongs on the host to `start + id - 1`; such owners are mapped back
    /// to image ids. Files of the user itself keep the rule above.
    pub subordinate_ids: Option<SubordinateIds>,
}

/// The subordinate ranges of the sandbox's id map: container ids `1..=count` are host ids
/// `start..start+count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubordinateIds {
    pub uid_start: u32,
    pub uid_count: u32,
    pub gid_start: u32,
    pub gid_count: u32,
}

impl SubordinateIds {
    /// The container uid of a host uid in the range.
    pub fn uid(&self, host: u32) -> Option<u32> {
        (host >= self.uid_start && host - self.uid_start < self.uid_count)
            .then(|| host - self.uid_start + 1)
    }

    /// The container gid of a host gid in the range.
    pub fn gid(&self, host: u32) -> Option<u32> {
        (host >= self.gid_start && host - self.gid_start < self.gid_count)
            .then(|| host - self.gid_start + 1)
    }
}

/// The identity of a written layer.
#[derive(Clone, Debug)]
pub struct LayerDigests {
    /// Digest of the compressed blob.
    pub digest: Digest,
    /// Size of the compressed blob.
    pub size: u64,
    /// Digest of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    pub uncompressed_size: u64,
    pub media_type: &'static str,
}

/// One change of a diff, relative to the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The path as it is in the root now. For a directory, only the directory entry itself.
    Add(PathBuf),
    /// The path was deleted: written as `dir/.wh.name`.
    Whiteout(PathBuf),
    /// The directory replaces all lower content: written as `dir/.wh..wh..opq`.
    Opaque(PathBuf),
}

/// The whiteout prefix of the OCI layer spec (from AUFS).
pub(crate) const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The name of the opaque-directory marker.
pub(crate) const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// A layer path for error messages: lossy UTF-8 is fine there.
pub(crate) fn display_path(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

#[cfg(test)]
mod diff_tests;
#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;
