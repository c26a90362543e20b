//! `import`: a root filesystem (a directory, or a tarball of one) becomes a single-layer
//! base image in the store. The layer is written by `layer::write_tree` (sorted, PAX,
//! numeric owners, mtimes clamped to `SOURCE_DATE_EPOCH`), and the config's `created` comes
//! from the same clock, so the same tree and epoch give the same digest. A tarball is
//! unpacked first (with the hostile-entry checks of `layer::unpack_layer`) into the store's
//! temp folder, so that what is imported is exactly what an unpack would produce. Blobs are
//! written before the name, which is set last under the index lock.

use crate::error_class::{Classify, ErrorClass};
use crate::image::config::{self, HistoryEntry, ImageConfig};
use crate::image::{canonical_json, media, Digest, ImageReference};
use crate::layer::{self, LayerCompression, LayerDigests, LayerError, UnpackOptions, WriteOptions};
use crate::privilege::Privilege;
use crate::report::Reporter;
use crate::store::image::manifest_descriptor;
use crate::store::{ImageError, Layout, LayoutError};
use serde_json::json;
use std::path::{Path, PathBuf};

/// What went wrong importing a root filesystem.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path} does not exist")]
    Missing { path: PathBuf },
    #[error("cannot open {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot unpack the tarball {path}")]
    Unpack {
        path: PathBuf,
        #[source]
        source: LayerError,
    },
    #[error("cannot write a layer from {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: LayerError,
    },
    #[error("--env {entry:?} is not KEY=VALUE")]
    BadEnv { entry: String },
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("invalid --tag")]
    BadTag(#[source] crate::image::ReferenceError),
    #[error("--tag {tag:?} reads as a transport reference; a store name is NAME[:TAG]")]
    TagNotAStoreName { tag: String },
}

impl Classify for ImportError {
    fn class(&self) -> ErrorClass {
        match self {
            ImportError::Missing { .. }
            | ImportError::BadEnv { .. }
            | ImportError::BadTag(_)
            | ImportError::TagNotAStoreName { .. } => ErrorClass::Input,
            ImportError::Unpack { source, .. } | ImportError::Write { source, .. } => {
                source.class()
            }
            ImportError::Layout(inner) => inner.class(),
            ImportError::Image(inner) => inner.class(),
            ImportError::Open { .. } => ErrorClass::Failure,
        }
    }
}

/// What to import and how.
#[derive(Clone, Debug)]
pub struct ImportRequest {
    /// A directory, or a tar / tar.gz / tar.zst of a root filesystem.
    pub source: PathBuf,
    /// The store name to give the image.
    pub tag: String,
    /// The config's `Cmd` (empty: none).
    pub cmd: Vec<String>,
    /// `KEY=VALUE` entries added to (or replacing in) the default `PATH`.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub compression: LayerCompression,
    /// `SOURCE_DATE_EPOCH`: clamps mtimes and sets `created`.
    pub epoch: Option<i64>,
    /// Decided at the edge: how the tarball is unpacked and the layer written.
    pub privilege: Privilege,
}

/// What an import produced.
#[derive(Clone, Debug)]
pub struct Imported {
    pub manifest_digest: Digest,
    pub layer: LayerDigests,
}

/// The config `Env`: the default `PATH`, then each `KEY=VALUE` (a later key replaces an
/// earlier one, in place). An entry without a key is refused.
fn import_env(extra: &[String]) -> Result<Vec<String>, ImportError> {
    if let Some(entry) = extra.iter().find(|e| config::env_key(e).is_none()) {
        return Err(ImportError::BadEnv {
            entry: entry.clone(),
        });
    }
    let mut env = Vec::new();
    config::ensure_path(&mut env);
    config::merge_env(&mut env, extra);
    Ok(env)
}

/// Imports `request.source` into the store at `store` (created if missing).
pub fn import(
    request: &ImportRequest,
    store: &Path,
    reporter: &dyn Reporter,
) -> Result<Imported, ImportError> {
    crate::image::reference::validate_name(&request.tag, &request.tag)
        .map_err(ImportError::BadTag)?;
    // A tag that parses as another transport would be confusing in the store.
    if !matches!(
        request.tag.parse::<ImageReference>(),
        Ok(ImageReference::Store { .. })
    ) {
        return Err(ImportError::TagNotAStoreName {
            tag: request.tag.clone(),
        });
    }
    let env = import_env(&request.env)?;
    let source = &request.source;
    let metadata = std::fs::metadata(source).map_err(|_| ImportError::Missing {
        path: source.clone(),
    })?;
    let layout = Layout::open_or_create(store)?;
    // Held until the name is written: `gc` waits rather than take the new blobs.
    let _lease = layout.lease()?;

    // A tarball is unpacked into a temp folder of the store, which goes away on return.
    let mut staging = None;
    let root: PathBuf = if metadata.is_dir() {
        source.clone()
    } else {
        reporter.status("Unpacking", &source.display().to_string());
        let temp = tempfile::Builder::new()
            .prefix("import-")
            .tempdir_in(layout.temp_dir()?)
            .map_err(|e| ImportError::Open {
                path: layout.root().join(".tmp"),
                source: e,
            })?;
        let file = std::fs::File::open(source).map_err(|e| ImportError::Open {
            path: source.clone(),
            source: e,
        })?;
        layer::unpack_layer(
            std::io::BufReader::with_capacity(1 << 20, file),
            None,
            temp.path(),
            &UnpackOptions::new(request.privilege),
        )
        .map_err(|e| ImportError::Unpack {
            path: source.clone(),
            source: e,
        })?;
        let root = temp.path().to_path_buf();
        staging = Some(temp);
        root
    };

    reporter.status("Writing", &format!("layer of {}", source.display()));
    let blob = layout.begin_blob()?;
    let options = WriteOptions {
        compression: request.compression,
        epoch: request.epoch,
        rootless: request.privilege.is_rootless(),
        subordinate_ids: None,
    };
    let digests =
        layer::write_tree(&root, &options, blob.file()?).map_err(|e| ImportError::Write {
            path: source.clone(),
            source: e,
        })?;
    blob.commit(&digests.digest)?;
    drop(staging);

    let created = super::timestamp(request.epoch);
    let mut config = ImageConfig::new();
    config.set_created(&created);
    config.default_platform(super::host_architecture(), "linux");
    config.set_env(&env);
    if !request.cmd.is_empty() {
        config.set_cmd(&request.cmd);
    }
    if let Some(dir) = &request.working_dir {
        config.set_working_dir(dir);
    }
    config.set_diff_ids(&[digests.diff_id.to_string()]);
    config.push_history(&HistoryEntry {
        created: &created,
        created_by: "solum-build import",
        comment: None,
    });
    let config_bytes = config.to_canonical_json();
    let config_digest = layout.put_bytes(&config_bytes)?;
    let manifest_bytes = one_layer_manifest(
        &config_digest,
        config_bytes.len(),
        &digests,
        json!({ "org.opencontainers.image.created": created }),
    );
    let manifest_digest = layout.put_bytes(&manifest_bytes)?;
    layout.tag(&request.tag, &manifest_descriptor(&manifest_bytes, None))?;
    Ok(Imported {
        manifest_digest,
        layer: digests,
    })
}

/// The canonical bytes of an OCI manifest with one config and one layer.
pub(super) fn one_layer_manifest(
    config_digest: &Digest,
    config_size: usize,
    layer: &LayerDigests,
    annotations: serde_json::Value,
) -> Vec<u8> {
    canonical_json(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {
            "mediaType": media::OCI_CONFIG,
            "digest": config_digest.to_string(),
            "size": config_size,
        },
        "layers": [{
            "mediaType": layer.media_type,
            "digest": layer.digest.to_string(),
            "size": layer.size,
        }],
        "annotations": annotations,
    }))
}
