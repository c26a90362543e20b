//! Images inside a layout: resolving a name (or the only image) to its manifest and config,
//! picking a platform from an index, tagging, untagging, listing and garbage collection.
//! Every document read here is verified against its descriptor's digest and size, and an
//! unknown media type is an error that names it.

use super::layout::{Layout, LayoutError};
use crate::image::{media, Digest, DigestError};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::PathBuf;

/// The annotation that names an image in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Manifests, indexes and configs are small; anything larger is refused rather than read.
pub const DOCUMENT_LIMIT: u64 = 8 << 20;
/// How many indexes may stand between a name and its manifest. Real images use one (a
/// multi-platform index), rarely two; containerd and go-containerregistry stop at a
/// handful. A deeper chain is hostile (each level costs a read, and a recursive walk of
/// thousands of levels would overflow the stack), so it is refused.
pub const MAX_INDEX_DEPTH: usize = 8;

/// What went wrong resolving or changing images in a layout.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("no image named {name:?} in {layout}{}", hint(.names))]
    NotFound {
        layout: PathBuf,
        name: String,
        names: Vec<String>,
    },
    #[error("{layout} holds {count} images; name one (known: {})", .names.join(", "))]
    Ambiguous {
        layout: PathBuf,
        count: usize,
        names: Vec<String>,
    },
    #[error("{layout} holds no image")]
    Empty { layout: PathBuf },
    #[error("{what} {digest} in {layout} has unknown media type {media_type:?}")]
    UnknownMediaType {
        layout: PathBuf,
        what: &'static str,
        digest: String,
        media_type: String,
    },
    #[error("descriptor in {layout} has a malformed digest")]
    BadDigest {
        layout: PathBuf,
        #[source]
        source: DigestError,
    },
    #[error("{what} {digest} in {layout} is not valid JSON of its kind")]
    BadDocument {
        layout: PathBuf,
        what: &'static str,
        digest: Digest,
        #[source]
        source: oci_spec::OciSpecError,
    },
    #[error("index {digest} in {layout} has no linux/amd64 manifest")]
    NoPlatform { layout: PathBuf, digest: Digest },
    #[error(
        "{reference} in {layout} nests indexes more than {limit} deep (index {digest} at depth {depth}); refused"
    )]
    IndexTooDeep {
        layout: PathBuf,
        /// The name or digest resolution started from.
        reference: String,
        /// The index found past the limit.
        digest: Digest,
        depth: usize,
        limit: usize,
    },
}

fn hint(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" (known: {})", names.join(", "))
    }
}

/// One image, resolved down to a single manifest, with its documents' bytes kept exactly
/// as stored so that copying them keeps their digests.
#[derive(Clone, Debug)]
pub struct ResolvedImage {
    /// The name it was found under, if any.
    pub name: Option<String>,
    /// The manifest's descriptor (media type, digest, size).
    pub descriptor: Descriptor,
    pub manifest_digest: Digest,
    pub manifest_bytes: Vec<u8>,
    pub manifest: ImageManifest,
    pub config_digest: Digest,
    pub config_bytes: Vec<u8>,
    pub config: ImageConfiguration,
}

impl ResolvedImage {
    /// The layer descriptors, bottom first.
    pub fn layers(&self) -> &[Descriptor] {
        self.manifest.layers()
    }

    /// All blobs the manifest names: the config, then the layers.
    pub fn blobs(&self) -> Vec<Descriptor> {
        let mut blobs = vec![self.manifest.config().clone()];
        blobs.extend(self.manifest.layers().iter().cloned());
        blobs
    }
}

/// The digest of a descriptor, validated.
pub fn descriptor_digest(layout: &Layout, descriptor: &Descriptor) -> Result<Digest, ImageError> {
    Digest::try_from(descriptor.digest()).map_err(|source| ImageError::BadDigest {
        layout: layout.root().to_path_buf(),
        source,
    })
}

/// The name an `index.json` entry carries, if any.
pub fn ref_name(descriptor: &Descriptor) -> Option<&str> {
    descriptor
        .annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .map(String::as_str)
}

impl Layout {
    /// The named images, in `index.json` order.
    pub fn names(&self) -> Result<Vec<String>, ImageError> {
        Ok(self
            .read_index()?
            .manifests()
            .iter()
            .filter_map(|d| ref_name(d).map(str::to_owned))
            .collect())
    }

    /// Finds an image by name; with no name, the only image of the layout.
    pub fn resolve(&self, name: Option<&str>) -> Result<ResolvedImage, ImageError> {
        let index = self.read_index()?;
        let names: Vec<String> = index
            .manifests()
            .iter()
            .filter_map(|d| ref_name(d).map(str::to_owned))
            .collect();
        let descriptor = match name {
            Some(name) => index
                .manifests()
                .iter()
                .rev()
                .find(|d| ref_name(d) == Some(name))
                .ok_or_else(|| ImageError::NotFound {
                    layout: self.root().to_path_buf(),
                    name: name.to_string(),
                    names: names.clone(),
                })?,
            None => match index.manifests().as_slice() {
                [] => {
                    return Err(ImageError::Empty {
                        layout: self.root().to_path_buf(),
                    })
                }
                [only] => only,
                many => {
                    return Err(ImageError::Ambiguous {
                        layout: self.root().to_path_buf(),
                        count: many.len(),
                        names,
                    })
                }
            },
        };
        let mut image = self.resolve_descriptor(descriptor)?;
        image.name = name
            .map(str::to_owned)
            .or_else(|| ref_name(descriptor).map(str::to_owned));
        Ok(image)
    }

    /// Reads the manifest a descriptor points at; an index is narrowed to linux/amd64.
    /// Index inside index is followed in a loop, at most [`MAX_INDEX_DEPTH`] levels.
    pub fn resolve_descriptor(&self, descriptor: &Descriptor) -> Result<ResolvedImage, ImageError> {
        let reference = ref_name(descriptor)
            .map(str::to_owned)
            .unwrap_or_else(|| descriptor.digest().to_string());
        let mut descriptor = descriptor.clone();
        let mut depth = 0;
        loop {
            let media_type = descriptor.media_type().to_string();
            if !media::is_index(&media_type) {
                return self.resolve_manifest(&descriptor);
            }
            let digest = descriptor_digest(self, &descriptor)?;
            depth += 1;
            if depth > MAX_INDEX_DEPTH {
                return Err(ImageError::IndexTooDeep {
                    layout: self.root().to_path_buf(),
                    reference,
                    digest,
                    depth,
                    limit: MAX_INDEX_DEPTH,
                });
            }
            let bytes = self.read_blob(&digest, Some(descriptor.size()), DOCUMENT_LIMIT)?;
            let index =
                ImageIndex::from_reader(&bytes[..]).map_err(|source| ImageError::BadDocument {
                    layout: self.root().to_path_buf(),
                    what: "index",
                    digest: digest.clone(),
                    source,
                })?;
            descriptor = pick_platform(&index)
                .ok_or_else(|| ImageError::NoPlatform {
                    layout: self.root().to_path_buf(),
                    digest,
                })?
                .clone();
        }
    }

    /// Reads a manifest (not an index) and its config, checking every media type.
    fn resolve_manifest(&self, descriptor: &Descriptor) -> Result<ResolvedImage, ImageError> {
        let media_type = descriptor.media_type().to_string();
        let digest = descriptor_digest(self, descriptor)?;
        if !media::is_manifest(&media_type) {
            return Err(ImageError::UnknownMediaType {
                layout: self.root().to_path_buf(),
                what: "manifest",
                digest: digest.to_string(),
                media_type,
            });
        }
        let manifest_bytes = self.read_blob(&digest, Some(descriptor.size()), DOCUMENT_LIMIT)?;
        let bad = |what, digest: &Digest| {
            let layout = self.root().to_path_buf();
            let digest = digest.clone();
            move |source| ImageError::BadDocument {
                layout,
                what,
                digest,
                source,
            }
        };
        let manifest =
            ImageManifest::from_reader(&manifest_bytes[..]).map_err(bad("manifest", &digest))?;
        let config_type = manifest.config().media_type().to_string();
        let config_digest = descriptor_digest(self, manifest.config())?;
        if !media::is_config(&config_type) {
            return Err(ImageError::UnknownMediaType {
                layout: self.root().to_path_buf(),
                what: "config",
                digest: config_digest.to_string(),
                media_type: config_type,
            });
        }
        for layer in manifest.layers() {
            let layer_type = layer.media_type().to_string();
            if media::layer_compression(&layer_type).is_none() {
                return Err(ImageError::UnknownMediaType {
                    layout: self.root().to_path_buf(),
                    what: "layer",
                    digest: layer.digest().to_string(),
                    media_type: layer_type,
                });
            }
            descriptor_digest(self, layer)?;
        }
        let config_bytes = self.read_blob(
            &config_digest,
            Some(manifest.config().size()),
            DOCUMENT_LIMIT,
        )?;
        let config = ImageConfiguration::from_reader(&config_bytes[..])
            .map_err(bad("config", &config_digest))?;
        Ok(ResolvedImage {
            name: None,
            descriptor: descriptor.clone(),
            manifest_digest: digest,
            manifest_bytes,
            manifest,
            config_digest,
            config_bytes,
            config,
        })
    }

    /// Points `name` at a manifest (replacing what the name pointed at before). The
    /// manifest blob must already be stored.
    pub fn tag(&self, name: &str, manifest: &Descriptor) -> Result<(), ImageError> {
        let mut entry = manifest.clone();
        let mut annotations = entry.annotations().clone().unwrap_or_default();
        annotations.insert(REF_NAME.to_string(), name.to_string());
        entry.set_annotations(Some(annotations));
        self.update_index(|index| {
            let mut manifests = index.manifests().clone();
            manifests.retain(|d| ref_name(d) != Some(name));
            manifests.push(entry);
            index.set_manifests(manifests);
        })?;
        Ok(())
    }

    /// Removes a name. The blobs stay until `gc`.
    pub fn untag(&self, name: &str) -> Result<bool, ImageError> {
        Ok(self.update_index(|index| {
            let before = index.manifests().len();
            let mut manifests = index.manifests().clone();
            manifests.retain(|d| ref_name(d) != Some(name));
            index.set_manifests(manifests);
            before != index.manifests().len()
        })?)
    }

    /// Removes every blob that no entry of `index.json` reaches, and stale temp files.
    /// Returns the removed digests and the bytes freed.
    pub fn gc(&self) -> Result<(Vec<Digest>, u64), ImageError> {
        let _lock = self.lock()?;
        let mut reachable = BTreeSet::new();
        for descriptor in self.read_index()?.manifests() {
            self.mark(descriptor, &mut reachable, 0)?;
        }
        let mut removed = Vec::new();
        let mut freed = 0;
        let blobs = self.root().join("blobs").join("sha256");
        let entries = fs::read_dir(&blobs).map_err(|source| LayoutError::Io {
            path: blobs.clone(),
            action: "cannot list blobs",
            source,
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(digest) = format!("sha256:{name}").parse::<Digest>() else {
                continue;
            };
            if reachable.contains(&digest) {
                continue;
            }
            freed += entry.metadata().map(|m| m.len()).unwrap_or(0);
            fs::remove_file(entry.path()).map_err(|source| LayoutError::Io {
                path: entry.path(),
                action: "cannot remove blob",
                source,
            })?;
            removed.push(digest);
        }
        // Temp blobs of writers that died; a live writer holds the lock only when it tags,
        // so only files older than an hour are taken.
        if let Ok(entries) = fs::read_dir(self.root().join(".tmp")) {
            for entry in entries.flatten() {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > 3600);
                if old {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        Ok((removed, freed))
    }

    /// Marks what `descriptor` reaches. `depth` counts the indexes above it: a chain
    /// deeper than [`MAX_INDEX_DEPTH`] stops gc with an error (removing nothing) rather
    /// than recursing as deep as a hostile index asks.
    fn mark(
        &self,
        descriptor: &Descriptor,
        reachable: &mut BTreeSet<Digest>,
        depth: usize,
    ) -> Result<(), ImageError> {
        let digest = descriptor_digest(self, descriptor)?;
        if !reachable.insert(digest.clone()) {
            return Ok(());
        }
        let media_type = descriptor.media_type().to_string();
        if media::is_index(&media_type) {
            if depth >= MAX_INDEX_DEPTH {
                return Err(ImageError::IndexTooDeep {
                    layout: self.root().to_path_buf(),
                    reference: "an image of index.json".to_string(),
                    digest,
                    depth: depth + 1,
                    limit: MAX_INDEX_DEPTH,
                });
            }
            let bytes = self.read_blob(&digest, None, DOCUMENT_LIMIT)?;
            if let Ok(index) = ImageIndex::from_reader(&bytes[..]) {
                for child in index.manifests() {
                    // A multi-platform index may list manifests we never fetched.
                    if self.has_blob(&descriptor_digest(self, child)?) {
                        self.mark(child, reachable, depth + 1)?;
                    }
                }
            }
        } else if media::is_manifest(&media_type) {
            let bytes = self.read_blob(&digest, None, DOCUMENT_LIMIT)?;
            if let Ok(manifest) = ImageManifest::from_reader(&bytes[..]) {
                reachable.insert(descriptor_digest(self, manifest.config())?);
                for layer in manifest.layers() {
                    reachable.insert(descriptor_digest(self, layer)?);
                }
            }
        }
        Ok(())
    }
}

/// linux/amd64 if the index has it, else its only manifest.
fn pick_platform(index: &ImageIndex) -> Option<&Descriptor> {
    let wanted = |d: &&Descriptor| {
        d.platform().as_ref().is_some_and(|p| {
            p.os().to_string() == "linux" && p.architecture().to_string() == "amd64"
        })
    };
    index
        .manifests()
        .iter()
        .find(wanted)
        .or(match index.manifests().as_slice() {
            [only] => Some(only),
            _ => None,
        })
}

/// A manifest descriptor for bytes about to be stored.
pub fn manifest_descriptor(
    bytes: &[u8],
    annotations: Option<HashMap<String, String>>,
) -> Descriptor {
    let mut descriptor = Descriptor::new(
        MediaType::ImageManifest,
        bytes.len() as u64,
        &Digest::of_bytes(bytes),
    );
    descriptor.set_annotations(annotations);
    descriptor
}
