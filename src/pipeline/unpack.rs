//! Unpacking an image's layer stack into a directory (`solum-build unpack`, like `umoci
//! unpack`) and into the shared rootfs cache the sandbox runs on. Each layer blob is read
//! through the store's verifying reader and applied with `layer::unpack_layer`, bottom
//! first; the blob's digest is checked even when the tar ends before the compressed stream
//! does. The cache holds one flattened tree per layer chain (`cache/rootfs/<chain id>`),
//! made in a temp folder and renamed into place, so a reader never sees a half-made tree
//! and two processes making the same one do not collide.

use crate::image::{media, Digest};
use crate::layer::{self, LayerError, UnpackOptions, UnpackReport};
use crate::report::Reporter;
use crate::store::image::descriptor_digest;
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
    #[error("cannot {action} {path}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("layer {digest}")]
    Layer {
        digest: Digest,
        #[source]
        source: LayerError,
    },
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Image(#[from] ImageError),
}

fn io_error(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> UnpackError {
    let path = path.to_path_buf();
    move |source| UnpackError::Io {
        path,
        action,
        source,
    }
}

/// Applies `layers` (bottom first, blobs in `layout`) onto `root`, which must exist.
/// Returns the summed report.
pub fn apply_layers(
    layout: &Layout,
    layers: &[Descriptor],
    root: &Path,
    reporter: &dyn Reporter,
) -> Result<UnpackReport, UnpackError> {
    let options = UnpackOptions::for_current_user();
    let mut total = UnpackReport::default();
    for (index, descriptor) in layers.iter().enumerate() {
        let digest = descriptor_digest(layout, descriptor)?;
        reporter.status(
            "Unpacking",
            &format!("layer {}/{} {}", index + 1, layers.len(), digest.short()),
        );
        let compression = media::layer_compression(descriptor.media_type().as_ref());
        let mut blob = layout.open_blob(&digest, Some(descriptor.size()))?;
        let layer_error = |source| UnpackError::Layer {
            digest: digest.clone(),
            source,
        };
        let report = layer::unpack_layer(
            std::io::BufReader::with_capacity(1 << 20, &mut blob),
            compression,
            root,
            &options,
        )
        .map_err(layer_error)?;
        blob.finish()?;
        total.entries += report.entries;
        total.whiteouts += report.whiteouts;
        total.skipped_devices.extend(report.skipped_devices);
    }
    Ok(total)
}

/// `solum-build unpack`: the image's root filesystem in `dir` (new, or an empty
/// directory). On failure, what this call created is removed again.
pub fn unpack_image(
    layout: &Layout,
    image: &ResolvedImage,
    dir: &Path,
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
            fs::create_dir_all(dir).map_err(io_error(dir, "create"))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
                .map_err(io_error(dir, "chmod"))?;
            true
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotADirectory => {
            return Err(UnpackError::NotEmpty {
                path: dir.to_path_buf(),
            })
        }
        Err(error) => return Err(io_error(dir, "read")(error)),
    };
    let result = apply_layers(layout, image.layers(), dir, reporter);
    if result.is_err() {
        if created {
            let _ = remove_tree(dir);
        } else {
            let _ = empty_dir(dir);
        }
    }
    result
}

/// A stack of layers to unpack: descriptors (bottom first) with their diff_ids when known.
#[derive(Clone, Debug)]
pub struct LayerStack {
    pub layers: Vec<Descriptor>,
    /// One per layer, or empty when unknown (layer digests then stand in).
    pub diff_ids: Vec<String>,
}

impl LayerStack {
    pub fn of(image: &ResolvedImage) -> LayerStack {
        let diff_ids = image.config.rootfs().diff_ids();
        LayerStack {
            layers: image.layers().to_vec(),
            diff_ids: if diff_ids.len() == image.layers().len() {
                diff_ids.clone()
            } else {
                Vec::new()
            },
        }
    }
}

/// The chain id of the stack's top layer (OCI image spec: `chainid(L0) = diffid(L0)`,
/// `chainid(Ln) = sha256(chainid(Ln-1) + " " + diffid(Ln))`); layer digests stand in when
/// the diff_ids are not known one to one.
pub fn chain_id(stack: &LayerStack) -> Digest {
    let ids: Vec<String> = if stack.diff_ids.len() == stack.layers.len() {
        stack.diff_ids.clone()
    } else {
        stack
            .layers
            .iter()
            .map(|l| l.digest().to_string())
            .collect()
    };
    let mut chain: Option<String> = None;
    for id in ids {
        chain = Some(match chain {
            None => id,
            Some(previous) => Digest::of_bytes(format!("{previous} {id}").as_bytes()).to_string(),
        });
    }
    chain
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| Digest::of_bytes(b""))
}

/// The rootfs cache folder of a store.
pub fn rootfs_cache_dir(store: &Path) -> PathBuf {
    store.join("cache").join("rootfs")
}

/// The stack's flattened root filesystem in the store's rootfs cache, unpacked on first
/// use. The returned folder is shared and must be treated as read-only (an overlay lower).
pub fn cached_rootfs(
    layout: &Layout,
    stack: &LayerStack,
    cache: &Path,
    reporter: &dyn Reporter,
) -> Result<PathBuf, UnpackError> {
    let target = cache.join(chain_id(stack).hex());
    if target.is_dir() {
        return Ok(target);
    }
    fs::create_dir_all(cache).map_err(io_error(cache, "create"))?;
    let temp = tempfile::Builder::new()
        .prefix(".unpack-")
        .tempdir_in(cache)
        .map_err(io_error(cache, "create a temp dir in"))?
        .keep();
    let result = (|| {
        fs::set_permissions(&temp, fs::Permissions::from_mode(0o755))
            .map_err(io_error(&temp, "chmod"))?;
        apply_layers(layout, &stack.layers, &temp, reporter)?;
        Ok(())
    })();
    if let Err(error) = result {
        let _ = remove_tree(&temp);
        return Err(error);
    }
    if fs::rename(&temp, &target).is_err() {
        // Another process made the same tree first: keep theirs.
        let _ = remove_tree(&temp);
        if !target.is_dir() {
            return Err(UnpackError::Io {
                path: target,
                action: "move the unpacked tree to",
                source: std::io::Error::other("rename failed"),
            });
        }
    }
    Ok(target)
}

/// Removes a tree that may hold directories without write or search permission (a rootless
/// unpack applies the image's modes, e.g. 0555 on `/usr`): permissions are opened up from
/// the top down before removing.
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
        Ok(meta) if !meta.is_dir() => return fs::remove_file(path),
        Ok(_) => {}
    }
    if fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    for entry in walkdir::WalkDir::new(path).into_iter().flatten() {
        if entry.file_type().is_dir() {
            let _ = fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o700));
        }
    }
    fs::remove_dir_all(path)
}

fn empty_dir(dir: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        remove_tree(&entry?.path())?;
    }
    Ok(())
}

/// Removes unpacked trees of the rootfs cache that no named image of the store reaches
/// (`gc`). A tree is kept when it is the chain of a named image or a prefix of one (a
/// badger's tree under a DU). Returns how many trees went.
pub fn prune_rootfs_cache(layout: &Layout, cache: &Path) -> Result<usize, UnpackError> {
    let mut keep = std::collections::BTreeSet::new();
    for name in layout.names()? {
        let Ok(image) = layout.resolve(Some(&name)) else {
            continue;
        };
        let full = LayerStack::of(&image);
        for depth in 1..=full.layers.len() {
            let prefix = LayerStack {
                layers: full.layers[..depth].to_vec(),
                diff_ids: if full.diff_ids.len() == full.layers.len() {
                    full.diff_ids[..depth].to_vec()
                } else {
                    Vec::new()
                },
            };
            keep.insert(chain_id(&prefix).hex().to_string());
        }
    }
    let mut removed = 0;
    let Ok(entries) = fs::read_dir(cache) else {
        return Ok(0);
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // Trees being made (`.unpack-*`) belong to a running process.
        if name.starts_with('.') || keep.contains(&name) {
            continue;
        }
        remove_tree(&entry.path()).map_err(io_error(&entry.path(), "remove"))?;
        removed += 1;
    }
    Ok(removed)
}
