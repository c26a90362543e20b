//! Dependency layers in the registry cache: a dependency step's key (see
//! `dependency_layer`) is the tag `deps-<key hex>` of the cache repository, a one-layer
//! image whose layer is the step's layer and whose manifest carries the store's record of
//! it (digest, diff_id, size, media type, history line). A build that misses its DU but
//! whose dependency inputs did not change (a code change on another runner) then pulls
//! that layer instead of running the step again.
//!
//! Checked like every cache entry (see `registry_cache`): the manifest names this key, its
//! one layer is the record's blob with the record's size and the media type this build
//! writes, the record is small, the blob is pulled by the manifest's digest and verified,
//! and it must uncompress to the record's diff_id. The store's own check of a record (`record_fits`) runs on it afterwards like
//! on any record. A miss, or any failure, costs only the step.

use super::cache_mounts::one_layer_image;
use super::dependency_layer::{DependencyContext, LayerRecord, MAX_RECORD_BYTES};
use super::registry_cache::{CacheRepository, RegistryCacheError, RemoteCache, MAX_ENTRY_BYTES};
use crate::image::media::oci_layer_type;
use crate::image::Digest;
use crate::layer::LayerDigests;
use oci_spec::image::ImageManifest;
use serde_json::json;

/// The manifest annotation naming the dependency key of the entry.
const KEY_ANNOTATION: &str = "org.solum.dependencies.key";
/// The manifest annotation holding the store's record of the layer (JSON).
const RECORD_ANNOTATION: &str = "org.solum.dependencies.record";

fn remote<'a>(context: &'a DependencyContext<'_>, key: &'a Digest) -> RemoteCache<'a> {
    RemoteCache {
        settings: &context.request.registry_cache,
        registry: context.registry,
        layout: context.layout,
        key,
        reporter: context.reporter,
    }
}

fn tag(key: &Digest) -> String {
    format!("deps-{}", key.hex())
}

/// The record of this key's layer from the first `--cache-from` repository that has a
/// usable one, its blob pulled into the store.
pub(super) fn reuse(context: &DependencyContext<'_>, key: &Digest) -> Option<LayerRecord> {
    if context.request.no_cache {
        return None;
    }
    let remote = remote(context, key);
    for repository in &context.request.registry_cache.from {
        match pull_layer(&remote, repository, context) {
            Ok(Some(record)) => {
                context
                    .reporter
                    .status("dependencies:", &format!("layer found in {repository}"));
                return Some(record);
            }
            Ok(None) => {}
            Err(error) => remote.warn(repository, &error),
        }
    }
    None
}

fn pull_layer(
    remote: &RemoteCache<'_>,
    repository: &CacheRepository,
    context: &DependencyContext<'_>,
) -> Result<Option<LayerRecord>, RegistryCacheError> {
    let Some((reference, bytes, digest)) = remote.entry(repository, &tag(remote.key))? else {
        return Ok(None);
    };
    let not_ours = |reason| RegistryCacheError::NotOurs {
        reference: reference.to_string(),
        reason,
    };
    let manifest = ImageManifest::from_reader(&bytes[..])
        .map_err(|_| not_ours("it is not an OCI image manifest"))?;
    let annotations = manifest.annotations().clone().unwrap_or_default();
    if annotations.get(KEY_ANNOTATION) != Some(&remote.key.to_string()) {
        return Err(not_ours("it is not this dependency step's layer"));
    }
    let text = annotations
        .get(RECORD_ANNOTATION)
        .map_or("", String::as_str);
    if text.len() as u64 > MAX_RECORD_BYTES {
        return Err(not_ours("its layer record is too large"));
    }
    let record: LayerRecord =
        serde_json::from_str(text).map_err(|_| not_ours("it has no layer record"))?;
    let [layer] = manifest.layers().as_slice() else {
        return Err(not_ours("a dependency entry is one layer"));
    };
    let media_type = oci_layer_type(context.request.compression);
    if layer.digest().to_string() != record.digest
        || layer.size() != record.size
        || layer.media_type().to_string() != media_type
        || record.media_type != media_type
    {
        return Err(not_ours("its layer is not the one its record describes"));
    }
    if layer.size() > MAX_ENTRY_BYTES {
        return Err(RegistryCacheError::TooLarge {
            reference: reference.to_string(),
            size: layer.size(),
            limit: MAX_ENTRY_BYTES,
        });
    }
    let diff_id: Digest = record
        .diff_id
        .parse()
        .map_err(|_| not_ours("its record has a malformed diff_id"))?;
    remote
        .client()?
        .pull(&repository.pinned(&digest), remote.layout, remote.reporter)?;
    // The record's diff_id is the entry's word: the layer must uncompress to it, or a DU
    // made with this layer would carry a config that lies about it.
    remote.check_diff_id(&reference, layer, &diff_id)?;
    Ok(Some(record))
}

/// Pushes this key's layer to `--cache-to`; a failure is a warning.
pub(super) fn store(context: &DependencyContext<'_>, key: &Digest, record: &LayerRecord) {
    let Some(repository) = &context.request.registry_cache.to else {
        return;
    };
    let remote = remote(context, key);
    let pushed = || -> Result<(), RegistryCacheError> {
        let parse = |text: &str| {
            text.parse::<Digest>()
                .map_err(|_| RegistryCacheError::NotOurs {
                    reference: "the dependency layer made here".into(),
                    reason: "its record has a malformed digest",
                })
        };
        let layer = LayerDigests {
            digest: parse(&record.digest)?,
            size: record.size,
            diff_id: parse(&record.diff_id)?,
            uncompressed_size: 0,
            media_type: oci_layer_type(context.request.compression),
        };
        let annotations = json!({
            KEY_ANNOTATION: key.to_string(),
            RECORD_ANNOTATION: serde_json::to_string(record).unwrap_or_default(),
        });
        let image = one_layer_image(context.layout, &layer, annotations)?;
        remote.client()?.push(
            context.layout,
            &image,
            &repository.tagged(&tag(key)),
            context.reporter,
        )?;
        Ok(())
    };
    match pushed() {
        Ok(()) => context
            .reporter
            .status("dependencies:", &format!("layer cached in {repository}")),
        Err(error) => remote.warn(repository, &error),
    }
}
