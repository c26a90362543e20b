//! Unpacking an image's layer stack into a directory (`solum-build unpack`, like `umoci
//! unpack`) and into the rootfs cache the sandbox runs on. Each layer blob is read through
//! the store's verifying reader, decompressed here and hashed on the way into
//! `layer::unpack_layer`, bottom first: the compressed blob must match its digest and the
//! uncompressed stream must match the config's `diff_id`, so the tree on disk is the one
//! the config names. The cache holds one flattened tree per layer chain
//! (`cache/rootfs/<chain id>`) keyed by those diff_ids: a tree is made in a temp folder and
//! renamed into place only once every layer has been checked against its diff_id, so a
//! reader never sees a half-made tree, and an image that lies about its diff_ids cannot
//! fill the tree another image will run on. The cache folder is private to its user
//! (`store::cache`).

use crate::error_class::{Classify, ErrorClass};
use crate::image::{media, Digest, DigestError, HashingReader};
use crate::io_at::IoAt;
use crate::layer::{self, LayerCompression, LayerError, UnpackOptions, UnpackReport};
use crate::privilege::Privilege;
use crate::report::Reporter;
use crate::store::cache::{private_dir, CacheError};
use crate::store::image::descriptor_digest;
use crate::store::scratch::OwnedTempDir;
use crate::store::{ImageError, Layout, LayoutError, ResolvedImage};
use oci_spec::image::Descriptor;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What went wrong unpacking an image.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("{path} exists and is not an empty directory; unpack needs a new or empty one")]
    NotEmpty { path: PathBuf },
    #[error(transparent)]
    Io(#[from] IoAt),
    #[error("layer {digest}")]
    Layer {
        digest: Digest,
        #[source]
        source: LayerError,
    },
    #[error("layer {digest} does not match the image config: its uncompressed content is {actual}, the config's diff_id says {expected}")]
    DiffIdMismatch {
        digest: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("the image config lists {diff_ids} diff_ids for {layers} layers; each layer needs exactly one")]
    DiffIdCount { diff_ids: usize, layers: usize },
    #[error("diff_id {index} of the image config, {value:?}, is not a sha256 digest")]
    BadDiffId {
        index: usize,
        value: String,
        #[source]
        source: DigestError,
    },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Image(#[from] ImageError),
}

impl Classify for UnpackError {
    fn class(&self) -> ErrorClass {
        match self {
            UnpackError::NotEmpty { .. }
            | UnpackError::DiffIdMismatch { .. }
            | UnpackError::DiffIdCount { .. }
            | UnpackError::BadDiffId { .. } => ErrorClass::Input,
            UnpackError::Layer { source, .. } => source.class(),
            UnpackError::Cache(inner) => inner.class(),
            UnpackError::Layout(inner) => inner.class(),
            UnpackError::Image(inner) => inner.class(),
            UnpackError::Io(_) => ErrorClass::Failure,
        }
    }
}

/// Applies `layers` (bottom first, blobs in `layout`) onto `root`, which must exist, checking
/// each layer's uncompressed content against its entry of `diff_ids` (one per layer).
/// Returns the summed report. On error `root` holds a partial tree the caller removes.
pub fn apply_layers(
    layout: &Layout,
    layers: &[Descriptor],
    diff_ids: &[Digest],
    root: &Path,
    privilege: Privilege,
    reporter: &dyn Reporter,
) -> Result<UnpackReport, UnpackError> {
    if diff_ids.len() != layers.len() {
        return Err(UnpackError::DiffIdCount {
            diff_ids: diff_ids.len(),
            layers: layers.len(),
        });
    }
    let options = UnpackOptions::new(privilege);
    let mut total = UnpackReport::default();
    for (index, (descriptor, diff_id)) in layers.iter().zip(diff_ids).enumerate() {
        let digest = descriptor_digest(layout, descriptor)?;
        reporter.status(
            "Unpacking",
            &format!("layer {}/{} {}", index + 1, layers.len(), digest.short()),
        );
        let report = apply_layer(layout, descriptor, &digest, diff_id, root, &options)?;
        total.entries += report.entries;
        total.whiteouts += report.whiteouts;
        total.skipped_devices.extend(report.skipped_devices);
        total.unlisted_dirs.extend(report.unlisted_dirs);
    }
    Ok(total)
}

/// One layer onto `root`: blob digest and size checked by the store's reader, the
/// uncompressed stream hashed on its way into the unpacker and compared with `diff_id`.
fn apply_layer(
    layout: &Layout,
    descriptor: &Descriptor,
    digest: &Digest,
    diff_id: &Digest,
    root: &Path,
    options: &UnpackOptions,
) -> Result<UnpackReport, UnpackError> {
    let layer_error = |source| UnpackError::Layer {
        digest: digest.clone(),
        source,
    };
    let declared = media::layer_compression(descriptor.media_type().as_ref());
    let mut blob = layout.open_blob(digest, Some(descriptor.size()))?;
    let (report, actual) = {
        let (compression, stream) = layer::decompressing_reader(
            std::io::BufReader::with_capacity(1 << 20, &mut blob),
            declared,
        )
        .map_err(layer_error)?;
        let mut hashed = HashingReader::new(stream);
        // The unpacker sees a plain tar; it reads its stream to the end (the compressed
        // trailer is checked by the decompressor), so the hash covers the whole layer.
        let report = layer::unpack_layer(&mut hashed, Some(LayerCompression::None), root, options)
            .map_err(|error| decompression_fault(error, compression))
            .map_err(layer_error)?;
        std::io::copy(&mut hashed, &mut std::io::sink())
            .map_err(|source| decompression_fault(LayerError::Read { source }, compression))
            .map_err(layer_error)?;
        (report, hashed.finish().0)
    };
    blob.finish()?;
    if &actual != diff_id {
        return Err(UnpackError::DiffIdMismatch {
            digest: digest.clone(),
            expected: diff_id.clone(),
            actual,
        });
    }
    Ok(report)
}

/// The unpacker was handed an already decompressed stream, so it reports a failing
/// decompressor as a failed read; say what it was. A read error that carries a store error
/// (the blob is corrupt or short) stays what it is.
fn decompression_fault(error: LayerError, compression: LayerCompression) -> LayerError {
    match error {
        LayerError::Read { source }
            if compression != LayerCompression::None
                && !source.get_ref().is_some_and(
                    <dyn std::error::Error + std::marker::Send + std::marker::Sync + 'static>::is::<
                        LayoutError,
                    >,
                ) =>
        {
            LayerError::CorruptCompression {
                compression,
                source,
            }
        }
        other => other,
    }
}

/// `solum-build unpack`: the image's root filesystem in `dir` (new, or an empty
/// directory). On failure, what this call created is removed again.
pub fn unpack_image(
    layout: &Layout,
    image: &ResolvedImage,
    dir: &Path,
    privilege: Privilege,
    reporter: &dyn Reporter,
) -> Result<UnpackReport, UnpackError> {
    let created = match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() || !dir.is_dir() {
                return Err(UnpackError::NotEmpty {
                    path: dir.to_path_buf(),
                });
            }
            false
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(IoAt::at(dir, "create"))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
                .map_err(IoAt::at(dir, "chmod"))?;
            true
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotADirectory => {
            return Err(UnpackError::NotEmpty {
                path: dir.to_path_buf(),
            })
        }
        Err(error) => return Err(IoAt::at(dir, "read")(error).into()),
    };
    let result = LayerStack::of(image)
        .verified_diff_ids()
        .and_then(|diff_ids| {
            apply_layers(layout, image.layers(), &diff_ids, dir, privilege, reporter)
        });
    if result.is_err() {
        if created {
            let _ = remove_tree(dir);
        } else {
            let _ = empty_dir(dir);
        }
    }
    result
}

/// A stack of layers to unpack: descriptors (bottom first) with the config's diff_ids.
#[derive(Clone, Debug)]
pub struct LayerStack {
    pub layers: Vec<Descriptor>,
    /// One per layer when the config is well-formed; checked by
    /// [`LayerStack::verified_diff_ids`] before anything trusts them.
    pub diff_ids: Vec<String>,
}

impl LayerStack {
    pub fn of(image: &ResolvedImage) -> LayerStack {
        LayerStack {
            layers: image.layers().to_vec(),
            diff_ids: image.config.rootfs().diff_ids().clone(),
        }
    }

    /// The diff_ids as digests, one per layer. A config with a missing, extra or malformed
    /// diff_id is refused: such an image has no chain id of its own, and a default key
    /// would let unrelated images share one cached tree.
    pub fn verified_diff_ids(&self) -> Result<Vec<Digest>, UnpackError> {
        if self.diff_ids.len() != self.layers.len() {
            return Err(UnpackError::DiffIdCount {
                diff_ids: self.diff_ids.len(),
                layers: self.layers.len(),
            });
        }
        self.diff_ids
            .iter()
            .enumerate()
            .map(|(index, value)| {
                value.parse().map_err(|source| UnpackError::BadDiffId {
                    index,
                    value: value.clone(),
                    source,
                })
            })
            .collect()
    }
}

/// The chain id of every prefix of a layer stack, bottom first (OCI image spec:
/// `chainid(L0) = diffid(L0)`, `chainid(Ln) = sha256(chainid(Ln-1) + " " + diffid(Ln))`).
/// One hash per layer: the chain of a prefix is a step of the chain of the whole.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut chain: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match chain.last() {
            None => diff_id.clone(),
            Some(previous) => Digest::of_bytes(format!("{previous} {diff_id}").as_bytes()),
        };
        chain.push(next);
    }
    chain
}

/// Marks a rootfs cache whose trees were all checked against their diff_ids.
const CHECKED_MARKER: &str = ".diff-ids-checked";

/// Trees cached before layers were checked against their diff_ids may hold another
/// image's files under a genuine chain id; a cache without the marker is emptied once
/// (they are unpacked again, checked, on next use). Under a lock of the cache folder, so
/// that a second process never empties the cache after the first has refilled it.
fn forget_unchecked_trees(cache: &Path) -> Result<(), UnpackError> {
    let marker = cache.join(CHECKED_MARKER);
    if marker.exists() {
        return Ok(());
    }
    let folder = fs::File::open(cache).map_err(IoAt::at(cache, "open"))?;
    folder.lock().map_err(IoAt::at(cache, "lock"))?;
    if marker.exists() {
        return Ok(());
    }
    for entry in fs::read_dir(cache).map_err(IoAt::at(cache, "read"))? {
        let entry = entry.map_err(IoAt::at(cache, "read"))?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            remove_tree(&entry.path()).map_err(IoAt::at(&entry.path(), "remove"))?;
        }
    }
    fs::File::create(&marker).map_err(IoAt::at(&marker, "create"))?;
    Ok(())
}

/// The name prefix of a tree being unpacked into the cache.
const UNPACK_PREFIX: &str = ".unpack-";

/// The rootfs cache folder of a store.
pub fn rootfs_cache_dir(store: &Path) -> PathBuf {
    store.join("cache").join("rootfs")
}

/// The stack's flattened root filesystem in the store's rootfs cache, unpacked on first
/// use. The returned folder is shared and must be treated as read-only (an overlay lower).
/// The cache folder and its parent are made private first; a new tree is checked layer by
/// layer against the diff_ids that name it before it is moved into place.
pub fn cached_rootfs(
    layout: &Layout,
    stack: &LayerStack,
    cache: &Path,
    privilege: Privilege,
    reporter: &dyn Reporter,
) -> Result<PathBuf, UnpackError> {
    let diff_ids = stack.verified_diff_ids()?;
    // An image without layers runs on an empty tree, the same for every such image.
    let name = chain_ids(&diff_ids)
        .pop()
        .map_or_else(|| "empty".to_string(), |chain| chain.hex().to_string());
    let made = cached_tree(cache, &name, |temp| {
        apply_layers(layout, &stack.layers, &diff_ids, temp, privilege, reporter)?;
        Ok(true)
    })?;
    Ok(made.expect("a flattened tree is always kept"))
}

/// The tree `name` of the rootfs cache, made by `fill` on first use: `fill` gets a new
/// empty folder (mode 0755) in the cache and says whether to keep what it made there. Kept,
/// it is renamed into place in one step (a reader never sees a half-made tree); not kept
/// or failed, it is removed and the answer is `None` or the error. The cache folder and
/// its parent are made private first.
pub(super) fn cached_tree(
    cache: &Path,
    name: &str,
    fill: impl FnOnce(&Path) -> Result<bool, UnpackError>,
) -> Result<Option<PathBuf>, UnpackError> {
    if let Some(parent) = cache.parent() {
        private_dir(parent)?;
    }
    private_dir(cache)?;
    forget_unchecked_trees(cache)?;
    let target = cache.join(name);
    if target.is_dir() {
        return Ok(Some(target));
    }
    // Owned by this process (a killed unpack's tree is swept by the next one and by gc);
    // only its inner folder is renamed into place.
    let owner =
        OwnedTempDir::new(cache, UNPACK_PREFIX).map_err(IoAt::at(cache, "create a temp dir in"))?;
    let temp = owner.path().to_path_buf();
    let result = fs::set_permissions(&temp, fs::Permissions::from_mode(0o755))
        .map_err(|e| IoAt::at(&temp, "chmod")(e).into())
        .and_then(|()| fill(&temp));
    match result {
        Ok(true) => {}
        Ok(false) => {
            let _ = remove_tree(&temp);
            return Ok(None);
        }
        Err(error) => {
            let _ = remove_tree(&temp);
            return Err(error);
        }
    }
    if fs::rename(&temp, &target).is_err() {
        // Another process made (and checked) the same tree first: keep theirs.
        let _ = remove_tree(&temp);
        if !target.is_dir() {
            return Err(UnpackError::Io(IoAt::new(
                target,
                "move the unpacked tree to",
                std::io::Error::other("rename failed"),
            )));
        }
    }
    Ok(Some(target))
}

/// A shared `flock` on a cached tree, held by a process that runs on it: `gc` leaves a held
/// tree be, whatever names the store has by then (the image may be renamed or removed
/// while it runs). The lock is on a file beside the tree (`.hold-<name>`), not on the tree,
/// whose root may carry the image's mode (0000 keeps even its owner from opening it).
/// Released on drop.
#[derive(Debug)]
pub struct TreeHold {
    _lock: fs::File,
}

/// The hold file of a tree of the cache.
pub(super) fn hold_path(tree: &Path) -> PathBuf {
    let name = tree.file_name().unwrap_or_default().to_string_lossy();
    tree.with_file_name(format!(".hold-{name}"))
}

fn open_hold(tree: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(hold_path(tree))
}

/// Like [`cached_rootfs`], with a hold on the tree.
pub fn held_rootfs(
    layout: &Layout,
    stack: &LayerStack,
    cache: &Path,
    privilege: Privilege,
    reporter: &dyn Reporter,
) -> Result<(PathBuf, TreeHold), UnpackError> {
    let held = hold_tree(|| cached_rootfs(layout, stack, cache, privilege, reporter).map(Some))?;
    Ok(held.expect("a flattened tree is always made"))
}

/// Runs `make` (which finds or makes a tree of the cache, or declines with `None`) and holds
/// the tree. The hold file is locked and then checked to be still the one at its name,
/// with the tree beside it: a `gc` that took the tree meanwhile removed both, and the tree
/// is made again. Each hold also marks the tree as used now, for `gc --cache-max`.
pub(super) fn hold_tree(
    make: impl Fn() -> Result<Option<PathBuf>, UnpackError>,
) -> Result<Option<(PathBuf, TreeHold)>, UnpackError> {
    use std::os::unix::fs::MetadataExt;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let Some(target) = make()? else {
            return Ok(None);
        };
        let hold = hold_path(&target);
        let lock = open_hold(&target).map_err(IoAt::at(&hold, "open"))?;
        lock.lock_shared().map_err(IoAt::at(&hold, "lock"))?;
        let held = lock.metadata().map_err(IoAt::at(&hold, "inspect"))?;
        let current = fs::symlink_metadata(&hold)
            .is_ok_and(|now| now.dev() == held.dev() && now.ino() == held.ino());
        if current && target.is_dir() {
            // The last use, for the least-recently-used order of a bounded cache.
            let _ = lock.set_modified(std::time::SystemTime::now());
            return Ok(Some((target, TreeHold { _lock: lock })));
        }
        if attempts >= 3 {
            return Err(UnpackError::Io(IoAt::new(
                target,
                "hold the unpacked tree at",
                std::io::Error::other("it was removed each time it was made"),
            )));
        }
    }
}

/// Removes a tree of the cache unless a process holds it (see [`TreeHold`]); its hold file
/// goes after it, under the exclusive lock, so a holder that opened the old file sees it
/// gone and makes the tree again. Returns whether the tree went.
///
/// The tree leaves its name in one step (a rename beside it, to a name of this process
/// that sweeps know) before anything in it is removed: a removal cut short (a killed `gc`,
/// an unlink that fails) must never leave a partial tree under the name that the next run
/// or build takes for the whole, checked tree.
pub(super) fn remove_unheld(tree: &Path) -> std::io::Result<bool> {
    let lock = open_hold(tree)?;
    if lock.try_lock().is_err() {
        return Ok(false);
    }
    let doomed = move_aside(tree)?;
    fs::remove_file(hold_path(tree))?;
    drop(lock);
    if let Some(doomed) = doomed {
        remove_tree(&doomed)?;
    }
    Ok(true)
}

/// Renames `tree` to `.unpack-<pid>-gone-<n>` in the same folder (no write permission on
/// the tree's root is needed for that, whatever mode the image gave it): while this
/// process lives sweeps leave it, once it is dead `gc` and the next unpack sweep it.
/// `None` when the tree is gone already.
fn move_aside(tree: &Path) -> std::io::Result<Option<PathBuf>> {
    let pid = std::process::id();
    for attempt in 0u32.. {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let aside = tree.with_file_name(format!("{UNPACK_PREFIX}{pid}-gone-{nanos:x}{attempt}"));
        match fs::rename(tree, &aside) {
            Ok(()) => return Ok(Some(aside)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            // A leftover of a dead process with the same pid holds the name: take another.
            Err(error)
                if attempt < 8
                    && matches!(error.raw_os_error(), Some(libc::EEXIST | libc::ENOTEMPTY)) => {}
            Err(error) => return Err(error),
        }
    }
    unreachable!("the loop returns")
}

pub use crate::store::cache::remove_tree;

fn empty_dir(dir: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        remove_tree(&entry?.path())?;
    }
    Ok(())
}

/// Removes unpacked trees of the rootfs cache that no named image of the store reaches
/// (`gc`). A tree is kept when it is the chain of a named image or a prefix of one (a
/// badger's tree under a DU), and so is a layer's own tree (`stacked`) of such a chain. Returns how many trees went. Linear in the layers of the
/// store's images: `index.json` is read once and each image's prefix chains come from one
/// pass over its diff_ids.
pub fn prune_rootfs_cache(layout: &Layout, cache: &Path) -> Result<usize, UnpackError> {
    let mut keep = std::collections::HashSet::new();
    for descriptor in layout.read_index()?.manifests() {
        if crate::store::image::ref_name(descriptor).is_none() {
            continue;
        }
        let Ok(image) = layout.resolve_descriptor(descriptor) else {
            continue;
        };
        let Ok(diff_ids) = LayerStack::of(&image).verified_diff_ids() else {
            continue;
        };
        keep.extend(chain_ids(&diff_ids).iter().map(|c| c.hex().to_string()));
    }
    let mut removed = 0;
    let Ok(entries) = fs::read_dir(cache) else {
        return Ok(0);
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // Trees being made (`.unpack-*`, `.run-*`) belong to a running process; those of
        // killed ones are swept below.
        if name.starts_with('.') || keep.contains(&name) {
            continue;
        }
        // A layer's own tree (`d-<chain>`) is kept with its chain.
        if name
            .strip_prefix(super::stacked::TOP_PREFIX)
            .is_some_and(|chain| keep.contains(chain))
        {
            continue;
        }
        // A tree a live run stands on stays, though no name reaches it any more.
        if remove_unheld(&entry.path()).map_err(IoAt::at(&entry.path(), "remove"))? {
            removed += 1;
        }
    }
    removed += crate::store::scratch::sweep(cache, UNPACK_PREFIX)
        + crate::store::scratch::sweep(cache, super::run::RUN_PREFIX);
    Ok(removed)
}
