//! Committing a build: the changes become one new layer on top of the base's layers (reused
//! by digest, never re-compressed), the base config is extended (diff_id, history, Env,
//! Cmd, WorkingDir, ports), and the manifest carries the annotations. Blobs are written
//! before the name, which is set last. Documents are canonical JSON, and every timestamp
//! comes from the build's epoch, so the same inputs give the same digest.

use crate::error_class::{Classify, ErrorClass};
use crate::image::{canonical_json, media, Digest};
use crate::layer::{self, Change, LayerCompression, LayerDigests, LayerError, WriteOptions};
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
    #[error("the base config is not a JSON object")]
    BaseConfig,
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
            CommitError::BaseConfig | CommitError::Layout(_) | CommitError::Image(_) => {
                ErrorClass::Failure
            }
        }
    }
}

/// The image a build starts from: its layers, their diff_ids and its config document.
#[derive(Clone, Debug)]
pub struct Base {
    pub layers: Vec<Descriptor>,
    pub diff_ids: Vec<String>,
    pub config: Value,
}

/// What to commit on top of a base.
pub struct Commit<'a> {
    pub base: &'a Base,
    /// The folder the changes are read from (overlay upper or the copied root).
    pub root: &'a Path,
    pub changes: Vec<Change>,
    pub compression: LayerCompression,
    pub epoch: i64,
    /// Config `Env` entries (`KEY=VALUE`) set on top of the base's.
    pub env: Vec<String>,
    /// Replaces `Cmd` (and clears `Entrypoint`) when given.
    pub cmd: Option<Vec<String>>,
    pub working_dir: Option<String>,
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

/// Sets `KEY=VALUE` entries in an Env list, replacing an existing key in place.
pub fn set_env(env: &mut Vec<String>, entries: &[String]) {
    for entry in entries {
        let key = entry.split('=').next().unwrap_or_default();
        let prefix = format!("{key}=");
        match env.iter_mut().find(|e| e.starts_with(&prefix)) {
            Some(existing) => *existing = entry.clone(),
            None => env.push(entry.clone()),
        }
    }
}

/// Writes the layer, config and manifest into `store`. Does not tag.
pub fn commit(store: &Layout, request: Commit<'_>) -> Result<Committed, CommitError> {
    let blob = store.begin_blob()?;
    let options = WriteOptions {
        compression: request.compression,
        epoch: Some(request.epoch),
        rootless: !nix::unistd::geteuid().is_root(),
        subordinate_ids: request.subordinate_ids,
    };
    let digests = layer::write_changes(request.root, request.changes, &options, blob.file()?)
        .map_err(|source| CommitError::Layer {
            root: request.root.to_path_buf(),
            source,
        })?;
    blob.commit(&digests.digest)?;

    let created = super::timestamp(Some(request.epoch));
    let mut config = request.base.config.clone();
    let object = config.as_object_mut().ok_or(CommitError::BaseConfig)?;
    object.insert("created".into(), json!(created));
    object
        .entry("architecture")
        .or_insert(json!(super::host_architecture()));
    object.entry("os").or_insert(json!("linux"));
    let container = object
        .entry("config")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or(CommitError::BaseConfig)?;
    let mut env: Vec<String> = container
        .get("Env")
        .and_then(|e| serde_json::from_value(e.clone()).ok())
        .unwrap_or_default();
    set_env(&mut env, &request.env);
    container.insert("Env".into(), json!(env));
    if let Some(cmd) = &request.cmd {
        container.insert("Cmd".into(), json!(cmd));
        container.remove("Entrypoint");
    }
    if let Some(dir) = &request.working_dir {
        container.insert("WorkingDir".into(), json!(dir));
    }
    if !request.exposed_ports.is_empty() {
        let ports = container.entry("ExposedPorts").or_insert_with(|| json!({}));
        if let Some(ports) = ports.as_object_mut() {
            for port in &request.exposed_ports {
                ports.insert(port.clone(), json!({}));
            }
        }
    }
    let mut diff_ids = request.base.diff_ids.clone();
    diff_ids.push(digests.diff_id.to_string());
    object.insert(
        "rootfs".into(),
        json!({ "type": "layers", "diff_ids": diff_ids }),
    );
    let history = object.entry("history").or_insert_with(|| json!([]));
    if let Some(history) = history.as_array_mut() {
        let mut entry = json!({ "created": created, "created_by": request.created_by });
        if let Some(comment) = &request.comment {
            entry["comment"] = json!(comment);
        }
        history.push(entry);
    }
    let config_bytes = canonical_json(&config);
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

/// The OCI media type for a base layer: Docker's gzip layer types name the same bytes as
/// OCI's, and an OCI manifest must not mix the two.
fn oci_layer_type(media_type: &str) -> String {
    match media_type {
        media::DOCKER_LAYER_GZIP | media::DOCKER_LAYER_FOREIGN => media::OCI_LAYER_GZIP.to_string(),
        other => other.to_string(),
    }
}
