//! The download caches of `/solum/cache` (pip, npm, maven…) kept in the registry cache
//! (`--cache-mounts`), so that ephemeral runners do not download everything at every job.
//! The app's cache folder (`STORE/cache/apps/APP`, mounted at `/solum/cache`) is one gzip
//! layer of a small OCI image, tagged `mounts-<hex>` in the cache repository, where hex
//! is a digest of the badgers' digests and the app's name. It is restored from the first
//! `--cache-from` repository that has it, before the build steps and only into an empty
//! folder (a runner's own cache is never overwritten), and saved to `--cache-to` after a
//! build.
//!
//! The entry is hostile like every cache entry: its manifest is checked (one layer, the
//! marker annotation with this key, sizes within [`mounts_limit`]) before its blobs are
//! pulled by digest and verified; the layer is unpacked by the layer codec (every path
//! resolved inside the folder, bounded in bytes and entries) into a fresh private folder
//! that replaces the empty one only when the whole unpack succeeded. A save larger than
//! the bound is skipped. Any failure is a warning: the build goes on with what it has.

use super::badger_stack::Badger;
use super::registry_cache::{CacheRepository, RegistryCacheError, RemoteCache};
use crate::image::{canonical_json, Digest};
use crate::io_at::IoAt;
use crate::layer::LayerCompression;
use crate::layer::{unpack_layer, write_tree, UnpackLimits, UnpackOptions, WriteOptions};
use crate::privilege::Privilege;
use crate::store::image::manifest_descriptor;
use crate::store::ResolvedImage;
use oci_spec::image::{ImageConfiguration, ImageManifest};
use serde_json::json;
use std::path::{Path, PathBuf};

/// The manifest annotation that marks a download-cache entry and names its key.
const MOUNTS_ANNOTATION: &str = "org.solum.cache.mounts";

/// Files a cache entry may hold.
const MAX_ENTRIES: u64 = 1_000_000;

/// The largest download cache saved or restored, in bytes of file content (the layer is
/// bounded by the same number): `SOLUM_BUILD_CACHE_MOUNTS_MAX`, else 2 GiB.
pub fn mounts_limit() -> u64 {
    std::env::var("SOLUM_BUILD_CACHE_MOUNTS_MAX")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(2 << 30)
}

/// The app's cache folder, mounted at `/solum/cache` in its builds.
pub fn app_cache_dir(cache_root: &Path, app_name: &str) -> PathBuf {
    cache_root.join("apps").join(app_name)
}

/// The key of an app's download cache: its badgers and its name.
fn mounts_key(badgers: &[Badger], app_name: &str) -> Digest {
    let document = json!({
        "kind": "cache-mounts",
        "version": 1,
        "badgers": badgers.iter().map(|b| b.digest().to_string()).collect::<Vec<_>>(),
        "app": app_name,
    });
    Digest::of_bytes(&canonical_json(&document))
}

/// What the download caches of one build need besides the registry cache.
pub(super) struct MountsContext<'a> {
    pub cache_root: &'a Path,
    pub app_name: &'a str,
    pub badgers: &'a [Badger],
    pub privilege: Privilege,
}

impl MountsContext<'_> {
    pub(super) fn new<'a>(
        cache_root: &'a Path,
        app_name: &'a str,
        badgers: &'a [Badger],
        request: &super::build::BuildRequest,
    ) -> MountsContext<'a> {
        MountsContext {
            cache_root,
            app_name,
            badgers,
            privilege: request.privilege,
        }
    }

    fn tag(&self) -> String {
        format!("mounts-{}", mounts_key(self.badgers, self.app_name).hex())
    }

    fn folder(&self) -> PathBuf {
        app_cache_dir(self.cache_root, self.app_name)
    }
}

impl RemoteCache<'_> {
    /// Fills an empty app cache folder from the first `--cache-from` repository that has
    /// this app's download cache.
    pub(super) fn restore_mounts(&self, context: &MountsContext<'_>) {
        if !self.settings.mounts || self.settings.from.is_empty() {
            return;
        }
        let folder = context.folder();
        let empty = std::fs::read_dir(&folder).map_or(true, |mut e| e.next().is_none());
        if !empty {
            self.reporter.status(
                "Cache",
                "/solum/cache has this runner's own downloads: not restored",
            );
            return;
        }
        for repository in &self.settings.from {
            match self.restore_from(repository, context) {
                Ok(Some(bytes)) => {
                    self.reporter.status(
                        "Restored",
                        &format!("/solum/cache from {repository} ({bytes} bytes)"),
                    );
                    return;
                }
                Ok(None) => {}
                Err(error) => self.warn(repository, &error),
            }
        }
    }

    /// The entry of `repository`, unpacked: `None` when there is none.
    fn restore_from(
        &self,
        repository: &CacheRepository,
        context: &MountsContext<'_>,
    ) -> Result<Option<u64>, RegistryCacheError> {
        let client = self.client()?;
        let Some((reference, bytes, digest)) = self.entry(repository, &context.tag())? else {
            return Ok(None);
        };
        let limit = mounts_limit();
        let not_ours = |reason| RegistryCacheError::NotOurs {
            reference: reference.to_string(),
            reason,
        };
        let manifest = ImageManifest::from_reader(&bytes[..])
            .map_err(|_| not_ours("it is not an OCI image manifest"))?;
        let key = mounts_key(context.badgers, context.app_name).to_string();
        let marked = manifest
            .annotations()
            .as_ref()
            .and_then(|a| a.get(MOUNTS_ANNOTATION));
        if marked != Some(&key) {
            return Err(not_ours("it is not this app's download cache"));
        }
        let [layer] = manifest.layers().as_slice() else {
            return Err(not_ours("a download cache is one layer"));
        };
        if layer.size() > limit || manifest.config().size() > 64 << 10 {
            return Err(RegistryCacheError::TooLarge {
                reference: reference.to_string(),
                size: layer.size(),
                limit,
            });
        }
        let layer_digest = crate::store::image::descriptor_digest(self.layout, layer)?;
        client.pull(&repository.pinned(&digest), self.layout, self.reporter)?;

        // Unpacked beside the empty folder, then put in its place: a failed unpack leaves
        // the folder as it was.
        let apps = context.cache_root.join("apps");
        crate::store::cache::private_dir(&apps)?;
        let staging = tempfile::Builder::new()
            .prefix(".restore-")
            .tempdir_in(&apps)
            .map_err(IoAt::at(&apps, "create a folder in"))?;
        let blob = self.layout.open_blob(&layer_digest, Some(layer.size()))?;
        let options = UnpackOptions {
            limits: UnpackLimits {
                max_bytes: limit,
                max_entries: MAX_ENTRIES,
                ..UnpackLimits::default()
            },
            ..UnpackOptions::new(context.privilege)
        };
        let report = unpack_layer(blob, None, staging.path(), &options)?;
        let folder = context.folder();
        // An empty folder is replaced by the rename; a missing one is created by it.
        std::fs::rename(staging.path(), &folder).map_err(IoAt::at(&folder, "replace"))?;
        Ok(Some(report.bytes))
    }

    /// Saves the app cache folder to `--cache-to` as this app's download cache.
    pub(super) fn save_mounts(&self, context: &MountsContext<'_>) {
        let Some(repository) = self.settings.to.as_ref().filter(|_| self.settings.mounts) else {
            return;
        };
        match self.save_to(repository, context) {
            Ok(Some(bytes)) => self.reporter.status(
                "Cached",
                &format!("/solum/cache in {repository} ({bytes} bytes)"),
            ),
            Ok(None) => {}
            Err(error) => self.warn(repository, &error),
        }
    }

    fn save_to(
        &self,
        repository: &CacheRepository,
        context: &MountsContext<'_>,
    ) -> Result<Option<u64>, RegistryCacheError> {
        let client = self.client()?;
        let folder = context.folder();
        if std::fs::read_dir(&folder).map_or(true, |mut e| e.next().is_none()) {
            return Ok(None);
        }
        let options = WriteOptions {
            compression: LayerCompression::Gzip,
            epoch: None,
            rootless: context.privilege.is_rootless(),
            subordinate_ids: None,
        };
        let blob = self.layout.begin_blob()?;
        let layer = write_tree(&folder, &options, blob.file()?)?;
        let limit = mounts_limit();
        if layer.uncompressed_size > limit || layer.size > limit {
            self.reporter.warning(&format!(
                "/solum/cache holds {} bytes, more than the {limit} a saved download cache may have (SOLUM_BUILD_CACHE_MOUNTS_MAX): not saved",
                layer.uncompressed_size
            ));
            return Ok(None);
        }
        blob.commit(&layer.digest)?;
        let key = mounts_key(context.badgers, context.app_name).to_string();
        let image = one_layer_image(self.layout, &layer, json!({ MOUNTS_ANNOTATION: key }))?;
        client.push(
            self.layout,
            &image,
            &repository.tagged(&context.tag()),
            self.reporter,
        )?;
        Ok(Some(layer.uncompressed_size))
    }
}

/// A one-layer image of `layer` (a blob of `layout`) with `annotations` on its manifest,
/// stored (unnamed) in `layout`: how a download cache or a dependency layer is kept in the
/// registry cache.
pub(super) fn one_layer_image(
    layout: &crate::store::Layout,
    layer: &crate::layer::LayerDigests,
    annotations: serde_json::Value,
) -> Result<ResolvedImage, RegistryCacheError> {
    let config_bytes = canonical_json(&json!({
        "architecture": super::host_architecture(),
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id.to_string()]},
    }));
    let config_digest = layout.put_bytes(&config_bytes)?;
    let manifest_bytes =
        super::import::one_layer_manifest(&config_digest, config_bytes.len(), layer, annotations);
    let manifest_digest = layout.put_bytes(&manifest_bytes)?;
    let parse_error = |what| {
        move |_| RegistryCacheError::NotOurs {
            reference: format!("the cache {what} made here"),
            reason: "it does not parse",
        }
    };
    Ok(ResolvedImage {
        name: None,
        descriptor: manifest_descriptor(&manifest_bytes, None),
        manifest_digest,
        manifest: ImageManifest::from_reader(&manifest_bytes[..])
            .map_err(parse_error("manifest"))?,
        manifest_bytes,
        config_digest,
        config: ImageConfiguration::from_reader(&config_bytes[..])
            .map_err(parse_error("config"))?,
        config_bytes,
    })
}
