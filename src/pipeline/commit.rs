//! Committing a build: the changes become one new layer on top of the base's layers (reused
//! by digest, never re-compressed), the base config is extended (diff_id, history, Env,
//! Cmd, WorkingDir, ports), and the manifest carries the annotations. Blobs are written
//! before the name, which is set last. Documents are canonical JSON, and every timestamp
//! comes from the build's epoch, so the same inputs give the same digest.

use crate::error_class::{Classify, ErrorClass};
use crate::image::config::{HistoryEntry, ImageConfig};
use crate::image::{canonical_json, media, Digest};
use crate::layer::{self, Change, LayerCompression, LayerDigests, LayerError, WriteOptions};
use crate::privilege::Privilege;
use crate::store::image::manifest_descriptor;
use crate::store::{ImageError, Layout, LayoutError};
use oci_spec::image::Descriptor;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What went wrong writing the new image.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("cannot write the build's layer from {root}")]
    Layer {
        root: PathBuf,
        #[source]
        source: LayerError,
    },
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Image(#[from] ImageError),
}

impl Classify for CommitError {
    fn class(&self) -> ErrorClass {
        match self {
            CommitError::Layer { source, .. } => source.class(),
            // Committing writes the build's result into the store, which the build already
            // read from: a layout error here is the store failing, not the user's input.
            CommitError::Layout(_) | CommitError::Image(_) => ErrorClass::Failure,
        }
    }
}

/// The image a build starts from: its layers, their diff_ids and its config document.
#[derive(Clone, Debug)]
pub struct Base {
    pub layers: Vec<Descriptor>,
    pub diff_ids: Vec<String>,
    pub config: ImageConfig,
}

/// What to commit on top of a base.
pub struct Commit<'a> {
    pub base: &'a Base,
    /// The folder the changes are read from (overlay upper or the copied root).
    pub root: &'a Path,
    /// Rootless, owners come from the `user.rootlesscontainers` record.
    pub privilege: Privilege,
    pub changes: Vec<Change>,
    pub compression: LayerCompression,
    pub epoch: i64,
    /// Config `Env` entries (`KEY=VALUE`) set on top of the base's.
    pub env: Vec<String>,
    /// Replaces `Cmd` (and clears `Entrypoint`) when given.
    pub cmd: Option<Vec<String>>,
    pub working_dir: Option<String>,
    /// Replaces `User` when given (`UID:GID`).
    pub user: Option<String>,
    /// `8080/tcp`-style keys for `ExposedPorts`.
    pub exposed_ports: Vec<String>,
    /// The history entry of the new layer.
    pub created_by: String,
    pub comment: Option<String>,
    pub annotations: BTreeMap<String, String>,
    /// The sandbox's subordinate ranges, when it ran with a range map.
    pub subordinate_ids: Option<layer::SubordinateIds>,
}

/// The committed image.
#[derive(Clone, Debug)]
pub struct Committed {
    pub manifest_digest: Digest,
    pub descriptor: Descriptor,
    pub layer: LayerDigests,
}

/// Writes the layer, config and manifest into `store`. Does not tag.
pub fn commit(store: &Layout, request: Commit<'_>) -> Result<Committed, CommitError> {
    let options = WriteOptions {
        compression: request.compression,
        epoch: Some(request.epoch),
        rootless: request.privilege.is_rootless(),
        subordinate_ids: request.subordinate_ids,
    };
    let digests = write_layer(store, request.root, request.changes, &options)?;

    let created = super::timestamp(Some(request.epoch));
    let mut config = request.base.config.clone();
    config.set_created(&created);
    config.default_platform(super::host_architecture(), "linux");
    config.merge_env(&request.env);
    if let Some(cmd) = &request.cmd {
        config.set_cmd(cmd);
        config.set_entrypoint(None);
    }
    if let Some(dir) = &request.working_dir {
        config.set_working_dir(dir);
    }
    if let Some(user) = &request.user {
        config.set_user(user);
    }
    config.expose_ports(&request.exposed_ports);
    let mut diff_ids = request.base.diff_ids.clone();
    diff_ids.push(digests.diff_id.to_string());
    config.set_diff_ids(&diff_ids);
    config.push_history(&HistoryEntry {
        created: &created,
        created_by: &request.created_by,
        comment: request.comment.as_deref(),
    });
    let config_bytes = config.to_canonical_json();
    let config_digest = store.put_bytes(&config_bytes)?;

    let mut layers: Vec<Value> = request
        .base
        .layers
        .iter()
        .map(|d| {
            json!({
                "mediaType": oci_layer_type(d.media_type().as_ref()),
                "digest": d.digest().to_string(),
                "size": d.size(),
            })
        })
        .collect();
    layers.push(json!({
        "mediaType": digests.media_type,
        "digest": digests.digest.to_string(),
        "size": digests.size,
    }));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {
            "mediaType": media::OCI_CONFIG,
            "digest": config_digest.to_string(),
            "size": config_bytes.len(),
        },
        "layers": layers,
        "annotations": request.annotations,
    });
    let manifest_bytes = canonical_json(&manifest);
    let manifest_digest = store.put_bytes(&manifest_bytes)?;
    Ok(Committed {
        manifest_digest,
        descriptor: manifest_descriptor(&manifest_bytes, None),
        layer: digests,
    })
}

/// Writes `changes` (read from `root`) as one layer blob into the store.
pub fn write_layer(
    store: &Layout,
    root: &Path,
    changes: Vec<Change>,
    options: &WriteOptions,
) -> Result<LayerDigests, CommitError> {
    let blob = store.begin_blob()?;
    let digests = layer::write_changes(root, changes, options, blob.file()?).map_err(|source| {
        CommitError::Layer {
            root: root.to_path_buf(),
            source,
        }
    })?;
    blob.commit(&digests.digest)?;
    Ok(digests)
}

/// The OCI media type for a base layer: Docker's gzip layer types name the same bytes as
/// OCI's, and an OCI manifest must not mix the two.
fn oci_layer_type(media_type: &str) -> String {
    match media_type {
        media::DOCKER_LAYER_GZIP | media::DOCKER_LAYER_FOREIGN => media::OCI_LAYER_GZIP.to_string(),
        other => other.to_string(),
    }
}
