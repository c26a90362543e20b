//! The build cache in a registry, for runners whose store is empty at every job
//! (`build --cache-from docker://REG/REPO --cache-to docker://REG/REPO`, and the same
//! `serve` options). A build key (the one the local cache uses, see `build_cache`) is the
//! tag `cache-<key hex>` of the cache repository, and that tag names the DU manifest the
//! key made, pushed there whole. An identical build on another runner finds the tag, checks
//! that what it names is a DU of this key, pulls it into the store (blobs the store has
//! are not fetched again) and names it: the build is a hit. A later push of the DU to the
//! same registry then copies nothing (the blobs exist, or are mounted from the cache
//! repository).
//!
//! Everything the cache repository holds is hostile, and a cache entry can only cost a
//! rebuild, never fail one: a missing tag, a manifest that does not parse, is too large,
//! or is not a DU of this key and badger, a blob that is missing or does not match its
//! digest, are each a miss with a warning. Before any blob is fetched the manifest is read
//! whole (bounded by `DOCUMENT_LIMIT`) and checked; the DU is then pulled by the digest
//! just checked, so a tag moved in between is not followed, and every blob is verified as
//! it lands. Then, before the name is written, the image pulled must be that manifest, its
//! lower layers the badgers' own, and each layer above them must uncompress to its
//! diff_id. What the app layer holds cannot be checked without building it: a cache
//! repository is trusted as far as those who may push to it are. Credentials are the registry client's own: the ones for the cache's registry
//! go to it alone.
//!
//! In order, in a build: the local record (`build_cache`), then each `--cache-from`
//! repository, before the sandbox is prepared; after the DU is named (built or found),
//! the push to `--cache-to`. Dependency layers are kept the same way, by their own key
//! ([`super::dependency_cache`]); the download caches (`--cache-mounts`) are in
//! [`super::cache_mounts`].

use super::badger_stack::{self, Badger};
use super::build::Built;
use super::build_cache;
use super::delivery::error_chain;
use super::unpack::LayerStack;
use crate::image::{media, Digest, HashingReader, ImageReference};
use crate::layer::{decompressing_reader, UnpackLimits};
use crate::manifest::{BUILD_KEY_ANNOTATION, DU_ANNOTATION};
use crate::report::{Reporter, State};
use crate::store::image::MAX_LAYERS;
use crate::store::{ImageError, Layout, LayoutError, ResolvedImage};
use crate::transport::{RegistryTransport, TransportError};
use oci_spec::image::{Descriptor, ImageManifest};
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

/// The largest DU (config and layers together) or layer a cache hit pulls: 16 GiB.
pub(super) const MAX_ENTRY_BYTES: u64 = 16 << 30;

/// The annotation a DU's manifest names its first badger's digest with.
const BASE_DIGEST_ANNOTATION: &str = "org.opencontainers.image.base.digest";

/// Where a build's cache lives besides the store.
#[derive(Clone, Debug, Default)]
pub struct RegistryCache {
    /// Asked in this order after the store's own record.
    pub from: Vec<CacheRepository>,
    /// Where a DU (and, with `mounts`, the download caches) goes after the build.
    pub to: Option<CacheRepository>,
    /// Restore `/solum/cache` from `from` and save it to `to` (see `cache_mounts`).
    pub mounts: bool,
}

impl RegistryCache {
    pub fn is_empty(&self) -> bool {
        self.from.is_empty() && self.to.is_none()
    }
}

/// A repository of a registry that holds cache entries: `docker://HOST[:PORT]/REPO`,
/// without tag or digest (the entries are its tags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheRepository {
    pub registry: String,
    pub repository: String,
}

impl CacheRepository {
    /// The entry `tag` of this repository.
    pub fn tagged(&self, tag: &str) -> ImageReference {
        ImageReference::Registry {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }

    /// The manifest `digest` of this repository.
    pub fn pinned(&self, digest: &Digest) -> ImageReference {
        ImageReference::Registry {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest.to_string()),
        }
    }
}

impl FromStr for CacheRepository {
    type Err = RegistryCacheError;

    fn from_str(text: &str) -> Result<CacheRepository, RegistryCacheError> {
        let refused = |reason| RegistryCacheError::BadRepository {
            given: text.to_string(),
            reason,
        };
        // The reference parser checks host and repository the way every pull and push does.
        match text.parse::<ImageReference>() {
            Ok(ImageReference::Registry {
                registry,
                repository,
                tag: None,
                digest: None,
            }) => Ok(CacheRepository {
                registry,
                repository,
            }),
            Ok(ImageReference::Registry { .. }) => Err(refused(
                "a cache repository has no tag or digest: its entries are its tags",
            )),
            _ => Err(refused("expected docker://HOST[:PORT]/REPO")),
        }
    }
}

impl fmt::Display for CacheRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "docker://{}/{}", self.registry, self.repository)
    }
}

/// Why a cache entry was not used or not written. Never a build failure: each one is
/// reported as a warning.
#[derive(Debug, thiserror::Error)]
pub enum RegistryCacheError {
    #[error("{given:?} is not a cache repository: {reason}")]
    BadRepository { given: String, reason: &'static str },
    #[error("no registry client is configured")]
    NoClient,
    #[error("{reference} is not a cache entry of this build: {reason}")]
    NotOurs {
        reference: String,
        reason: &'static str,
    },
    #[error("{reference} names {size} bytes, more than the {limit} a cache entry may have")]
    TooLarge {
        reference: String,
        size: u64,
        limit: u64,
    },
    #[error("{reference} is not a cache entry of this build: its layer {layer} does not uncompress to the diff_id its config gives, {diff_id}")]
    DiffIdMismatch {
        reference: String,
        layer: Digest,
        diff_id: Digest,
    },
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Layer(#[from] crate::layer::LayerError),
    #[error(transparent)]
    Io(#[from] crate::io_at::IoAt),
    #[error(transparent)]
    Cache(#[from] crate::store::CacheError),
}

/// The registry cache of one build: its settings, the client to reach them, and the
/// build's key.
pub(super) struct RemoteCache<'a> {
    pub settings: &'a RegistryCache,
    pub registry: Option<&'a dyn RegistryTransport>,
    pub layout: &'a Layout,
    pub key: &'a Digest,
    pub reporter: &'a dyn Reporter,
}

impl RemoteCache<'_> {
    /// The tag of this build's entry.
    fn tag(&self) -> String {
        format!("cache-{}", self.key.hex())
    }

    pub(super) fn client(&self) -> Result<&dyn RegistryTransport, RegistryCacheError> {
        self.registry.ok_or(RegistryCacheError::NoClient)
    }

    /// A miss (or a failed save) said once, with its causes.
    pub(super) fn warn(&self, repository: &CacheRepository, error: &RegistryCacheError) {
        self.reporter.warning(&format!(
            "registry cache {repository}: {}",
            error_chain(error)
        ));
    }

    /// The DU recorded for this key in the store, else in the first `--cache-from`
    /// repository that has a usable entry (pulled, named `tag`, and recorded in the store
    /// so the next build here is a local hit).
    pub(super) fn reuse(
        &self,
        record: &Path,
        tag: &str,
        badgers: &[Badger],
    ) -> Result<Option<Built>, super::build::BuildError> {
        if let Some(built) = build_cache::reuse_cached(self.layout, record, tag, self.reporter)? {
            return Ok(Some(built));
        }
        for repository in &self.settings.from {
            match self.pull_entry(repository, tag, badgers) {
                Ok(Some(digest)) => {
                    build_cache::write_record(record, &digest);
                    self.reporter.stage(
                        State::Built,
                        &format!("{tag} (cached in {repository}, {})", digest.short()),
                    );
                    return Ok(Some(Built {
                        manifest_digest: digest,
                        tag: tag.to_string(),
                        cache_hit: true,
                        du: None,
                        asks_deploy: false,
                    }));
                }
                Ok(None) => self
                    .reporter
                    .status("Cache", &format!("no entry for this build in {repository}")),
                Err(error) => self.warn(repository, &error),
            }
        }
        Ok(None)
    }

    /// This key's entry of `repository`: `None` when it has none; the DU's manifest
    /// digest when it was checked, pulled and named `tag` in the store.
    fn pull_entry(
        &self,
        repository: &CacheRepository,
        tag: &str,
        badgers: &[Badger],
    ) -> Result<Option<Digest>, RegistryCacheError> {
        let client = self.client()?;
        let Some((reference, bytes, digest)) = self.entry(repository, &self.tag())? else {
            return Ok(None);
        };
        self.check_entry(&reference, &bytes, badgers)?;
        self.reporter.status(
            "Cache",
            &format!("hit in {repository} ({}): pulling the DU", digest.short()),
        );
        let descriptor = client.pull(&repository.pinned(&digest), self.layout, self.reporter)?;
        // The store's own checks (media types, config) before the name is written.
        let resolved = self.layout.resolve_descriptor(&descriptor)?;
        self.check_content(&reference, &digest, &resolved, badgers)?;
        self.layout.tag(tag, &resolved.descriptor)?;
        Ok(Some(resolved.manifest_digest))
    }

    /// The manifest tagged `tag` in `repository` (its reference, bytes and digest), read
    /// whole and bounded; `None` when the registry has no such tag.
    pub(super) fn entry(
        &self,
        repository: &CacheRepository,
        tag: &str,
    ) -> Result<Option<(ImageReference, Vec<u8>, Digest)>, RegistryCacheError> {
        let reference = repository.tagged(tag);
        match self.client()?.manifest(&reference) {
            Ok((bytes, digest)) => Ok(Some((reference, bytes, digest))),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Whether the manifest `bytes` is a DU of this build: an OCI image manifest whose
    /// annotations name this key and the first badger, within the size bounds.
    fn check_entry(
        &self,
        reference: &ImageReference,
        bytes: &[u8],
        badgers: &[Badger],
    ) -> Result<(), RegistryCacheError> {
        let not_ours = |reason| RegistryCacheError::NotOurs {
            reference: reference.to_string(),
            reason,
        };
        let manifest = ImageManifest::from_reader(bytes)
            .map_err(|_| not_ours("it is not an OCI image manifest"))?;
        if manifest
            .media_type()
            .as_ref()
            .is_some_and(|m| m.to_string() != media::OCI_MANIFEST)
        {
            return Err(not_ours("it is not an OCI image manifest"));
        }
        let annotations = manifest.annotations().clone().unwrap_or_default();
        if annotations.get(BUILD_KEY_ANNOTATION) != Some(&self.key.to_string()) {
            return Err(not_ours("its build key annotation is not this build's key"));
        }
        if !annotations.contains_key(DU_ANNOTATION) {
            return Err(not_ours("it has no DU manifest annotation"));
        }
        let base = badgers.first().map(|b| b.digest().to_string());
        if annotations.get(BASE_DIGEST_ANNOTATION) != base.as_ref() {
            return Err(not_ours("it was not built on this badger"));
        }
        if manifest.layers().len() > MAX_LAYERS {
            return Err(not_ours("it has more layers than an image may have"));
        }
        let size = manifest
            .layers()
            .iter()
            .chain(std::iter::once(manifest.config()))
            .fold(0u64, |sum, d| sum.saturating_add(d.size()));
        if size > MAX_ENTRY_BYTES {
            return Err(RegistryCacheError::TooLarge {
                reference: reference.to_string(),
                size,
                limit: MAX_ENTRY_BYTES,
            });
        }
        Ok(())
    }

    /// Whether the pulled image is the one checked and a DU of these badgers: the manifest
    /// checked (not one an index led to), the badgers' layers and diff_ids below, and each
    /// layer above them (the app's, the dependencies') matching its diff_id. The key names
    /// an app layer no one can check without building, so whoever may push to a cache
    /// repository is trusted with that layer; what can be checked here is.
    fn check_content(
        &self,
        reference: &ImageReference,
        checked: &Digest,
        resolved: &ResolvedImage,
        badgers: &[Badger],
    ) -> Result<(), RegistryCacheError> {
        let not_ours = |reason| RegistryCacheError::NotOurs {
            reference: reference.to_string(),
            reason,
        };
        if &resolved.manifest_digest != checked {
            return Err(not_ours("what it names is not the manifest checked"));
        }
        let (base, _) = badger_stack::stack(badgers).map_err(|_| not_ours("no badger stack"))?;
        let layers = LayerStack::of(resolved);
        let diff_ids = layers
            .verified_diff_ids()
            .map_err(|_| not_ours("its config does not give one diff_id per layer"))?;
        let below = base.layers.len();
        let same_badgers = layers.layers.len() > below
            && (base.layers.iter().zip(&layers.layers)).all(|(a, b)| a.digest() == b.digest())
            && (base.diff_ids.len() != below
                || (base.diff_ids.iter().zip(&diff_ids)).all(|(a, b)| *a == b.to_string()));
        if !same_badgers {
            return Err(not_ours("its layers are not the badgers' layers and more"));
        }
        for (descriptor, diff_id) in layers.layers.iter().zip(&diff_ids).skip(below) {
            self.check_diff_id(reference, descriptor, diff_id)?;
        }
        Ok(())
    }

    /// Whether the layer blob uncompresses to `diff_id`, read no further than an unpack
    /// would go (its content and entry limits, with a tar header per entry).
    pub(super) fn check_diff_id(
        &self,
        reference: &ImageReference,
        descriptor: &Descriptor,
        diff_id: &Digest,
    ) -> Result<(), RegistryCacheError> {
        let digest = crate::store::image::descriptor_digest(self.layout, descriptor)?;
        let limits = UnpackLimits::from_env();
        let bound = (limits.max_bytes).saturating_add(limits.max_entries.saturating_mul(1536));
        let blob = self.layout.open_blob(&digest, Some(descriptor.size()))?;
        let declared = media::layer_compression(descriptor.media_type().as_ref());
        let (_, stream) = decompressing_reader(std::io::BufReader::new(blob), declared)?;
        let mut hashed = HashingReader::new(stream.take(bound.saturating_add(1)));
        std::io::copy(&mut hashed, &mut std::io::sink())
            .map_err(|source| crate::layer::LayerError::Read { source })?;
        let (actual, read) = hashed.finish();
        if read > bound || &actual != diff_id {
            return Err(RegistryCacheError::DiffIdMismatch {
                reference: reference.to_string(),
                layer: digest,
                diff_id: diff_id.clone(),
            });
        }
        Ok(())
    }

    /// Pushes the DU named `tag` to `--cache-to` as this key's entry. Blobs the cache
    /// repository has are not sent again; a failure is a warning.
    pub(super) fn store(&self, tag: &str) {
        let Some(repository) = &self.settings.to else {
            return;
        };
        let pushed = || -> Result<Digest, RegistryCacheError> {
            let client = self.client()?;
            let image = self.layout.resolve(Some(tag))?;
            Ok(client.push(
                self.layout,
                &image,
                &repository.tagged(&self.tag()),
                self.reporter,
            )?)
        };
        match pushed() {
            Ok(digest) => self.reporter.status(
                "Cached",
                &format!("{tag} in {repository} ({})", digest.short()),
            ),
            Err(error) => self.warn(repository, &error),
        }
    }
}

/// Whether a registry answered that the tag does not exist (404 on the manifest).
fn is_not_found(error: &TransportError) -> bool {
    let TransportError::Registry { source, .. } = error else {
        return false;
    };
    source
        .downcast_ref::<crate::registry::RegistryError>()
        .is_some_and(|e| {
            matches!(
                e,
                crate::registry::RegistryError::Status { status: 404, .. }
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_repository_is_a_registry_repository_without_tag_or_digest() {
        let repository: CacheRepository = "docker://127.0.0.1:5000/ci/cache".parse().unwrap();
        assert_eq!(repository.registry, "127.0.0.1:5000");
        assert_eq!(repository.repository, "ci/cache");
        assert_eq!(repository.to_string(), "docker://127.0.0.1:5000/ci/cache");
        let key = Digest::of_bytes(b"key");
        assert_eq!(
            repository.tagged("cache-1").to_string(),
            "docker://127.0.0.1:5000/ci/cache:cache-1"
        );
        assert_eq!(
            repository.pinned(&key).to_string(),
            format!("docker://127.0.0.1:5000/ci/cache@{key}")
        );
        for refused in [
            "docker://127.0.0.1:5000/ci/cache:latest",
            &format!("docker://127.0.0.1:5000/ci/cache@{key}"),
            "ci/cache",
            "oci:/tmp/layout",
            "docker://127.0.0.1:5000/a/../b",
        ] {
            assert!(refused.parse::<CacheRepository>().is_err(), "{refused}");
        }
    }
}
