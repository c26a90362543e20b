//! Images inside a layout: resolving a name (or the only image) to its manifest and config,
//! picking a platform from an index, tagging, untagging, listing and garbage collection.
//! Every document read here is verified against its descriptor's digest and size, and an
//! unknown media type is an error that names it.

use super::layout::{Layout, LayoutError};
use super::lease::{ExclusiveLease, Swept};
use super::referrers::is_referrer_entry;
use crate::error_class::{Classify, ErrorClass};
use crate::image::platform::{self, Platform};
use crate::image::{media, Digest, DigestError};
use crate::io_at::IoAt;
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::PathBuf;

/// The annotation that names an image in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Manifests, indexes and configs are small; anything larger is refused rather than read
/// (containerd's bound: a manifest of `MAX_LAYERS` layers is about 150 KiB).
pub const DOCUMENT_LIMIT: u64 = 4 << 20;
/// The most layers an image may have. Docker and podman stop at 125-127 (the overlay mount
/// of that many lower folders fills a page of mount options), so no image they build or
/// run comes near; the bound keeps a hostile manifest from costing a blob, a verification
/// pass and a cache chain step per entry by the tens of thousands.
pub const MAX_LAYERS: usize = 1000;
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
    #[error("manifest {digest} in {layout} has {count} layers; at most {limit} are supported")]
    TooManyLayers {
        layout: PathBuf,
        digest: Digest,
        count: usize,
        limit: usize,
    },
    #[error("cannot name {name:?} in {layout}: blob {digest} it reaches is missing (removed by a concurrent gc, or never written)")]
    Incomplete {
        layout: PathBuf,
        name: String,
        digest: Digest,
    },
    #[error("{subject} in {layout} has more than {limit} referrers; refused")]
    TooManyReferrers {
        layout: PathBuf,
        subject: Digest,
        limit: usize,
    },
    #[error("manifest {digest} in {layout} names no subject, so it refers to nothing")]
    NotAReferrer { layout: PathBuf, digest: Digest },
    #[error("referrer manifest {digest} in {layout} has an artifact type that is not a media type (TYPE/SUBTYPE, printable, at most 255 characters)")]
    BadArtifactType { layout: PathBuf, digest: Digest },
}

impl Classify for ImageError {
    fn class(&self) -> ErrorClass {
        match self {
            ImageError::Layout(inner) => inner.class(),
            ImageError::NotFound { .. }
            | ImageError::Ambiguous { .. }
            | ImageError::Empty { .. }
            | ImageError::UnknownMediaType { .. }
            | ImageError::BadDigest { .. }
            | ImageError::BadDocument { .. }
            | ImageError::NoPlatform { .. }
            | ImageError::IndexTooDeep { .. }
            | ImageError::TooManyLayers { .. }
            | ImageError::TooManyReferrers { .. }
            | ImageError::NotAReferrer { .. }
            | ImageError::BadArtifactType { .. } => ErrorClass::Input,
            // The store lost a blob: not the user's input.
            ImageError::Incomplete { .. } => ErrorClass::Failure,
        }
    }
}

/// What `gc` did.
#[derive(Debug, Default)]
pub struct GcReport {
    /// The blobs removed.
    pub removed: Vec<Digest>,
    /// Their bytes.
    pub freed: u64,
    /// Temp files and folders of dead writers.
    pub swept: Swept,
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
            // Referrers (SBOMs, signatures) are not images: "the only image" ignores them.
            None => match index
                .manifests()
                .iter()
                .filter(|d| !is_referrer_entry(d))
                .collect::<Vec<_>>()
                .as_slice()
            {
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
        let reference =
            ref_name(descriptor).map_or_else(|| descriptor.digest().to_string(), str::to_owned);
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
            // The store is never asked for a platform: the default one, else a lone entry.
            descriptor = platform::select(&index, &Platform::default(), true)
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
        if manifest.layers().len() > MAX_LAYERS {
            return Err(ImageError::TooManyLayers {
                layout: self.root().to_path_buf(),
                digest,
                count: manifest.layers().len(),
                limit: MAX_LAYERS,
            });
        }
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

    /// Points `name` at a manifest (replacing what the name pointed at before). Every blob
    /// the manifest reaches must be stored: that is checked under the index lock, which
    /// `gc` holds while it marks and sweeps, so a name never points at missing blobs.
    pub fn tag(&self, name: &str, manifest: &Descriptor) -> Result<(), ImageError> {
        let mut entry = manifest.clone();
        let mut annotations = entry.annotations().clone().unwrap_or_default();
        annotations.insert(REF_NAME.to_string(), name.to_string());
        entry.set_annotations(Some(annotations));
        self.add_entry(entry, Some(name))
    }

    /// Adds `entry` to `index.json` once every blob it reaches is stored. With a name, the
    /// entry replaces what the name pointed at; without one, it replaces unnamed entries of
    /// the same digest and kind (as skopeo does for `oci:DIR`): a referrer entry replaces
    /// referrer entries, an image entry image entries.
    pub fn add_entry(&self, entry: Descriptor, name: Option<&str>) -> Result<(), ImageError> {
        let _lock = self.lock()?;
        self.check_complete(&entry, name.unwrap_or("(unnamed)"))?;
        let digest = entry.digest().to_string();
        let referrer = is_referrer_entry(&entry);
        self.update_index_locked(|index| {
            let mut manifests = index.manifests().clone();
            match name {
                Some(name) => manifests.retain(|d| ref_name(d) != Some(name)),
                None => {
                    manifests.retain(|d| {
                        d.digest().to_string() != digest
                            || ref_name(d).is_some()
                            || is_referrer_entry(d) != referrer
                    });
                }
            }
            manifests.push(entry);
            index.set_manifests(manifests);
        })?;
        Ok(())
    }

    /// Every blob `descriptor` reaches is stored, and no manifest exceeds `MAX_LAYERS`.
    fn check_complete(&self, descriptor: &Descriptor, name: &str) -> Result<(), ImageError> {
        let reached = self.reach([descriptor], true)?;
        for digest in &reached {
            if !self.has_blob(digest) {
                return Err(ImageError::Incomplete {
                    layout: self.root().to_path_buf(),
                    name: name.to_string(),
                    digest: digest.clone(),
                });
            }
        }
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

    /// Removes every blob that no entry of `index.json` reaches, and the temp files of
    /// writers that died. Referrer entries count only while their subject is reached (see
    /// `referrers`): the others leave `index.json` first, and their blobs go with them. The caller holds the store exclusively (no writer is between its
    /// first blob and its name); the index lock is held too, so no name is added while
    /// blobs are marked and swept. Linear in the blobs: reachable digests are a set.
    pub fn gc(&self, _held: &ExclusiveLease) -> Result<GcReport, ImageError> {
        let _lock = self.lock()?;
        let index = self.read_index()?;
        let images = index.manifests().iter().filter(|d| !is_referrer_entry(d));
        let mut reachable = self.reach(images, false)?;
        let dead = self.dead_referrers(&index, &mut reachable)?;
        if !dead.is_empty() {
            self.update_index_locked(|index| {
                let mut manifests = index.manifests().clone();
                manifests.retain(|d| !dead.contains(d));
                index.set_manifests(manifests);
            })?;
        }
        let mut report = GcReport::default();
        let blobs = self.root().join("blobs").join("sha256");
        let entries = fs::read_dir(&blobs).map_err(|source| {
            LayoutError::Io(IoAt::new(blobs.clone(), "list the blobs in", source))
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(digest) = format!("sha256:{name}").parse::<Digest>() else {
                continue;
            };
            if reachable.contains(&digest) {
                continue;
            }
            report.freed += entry.metadata().map_or(0, |m| m.len());
            fs::remove_file(entry.path()).map_err(|source| {
                LayoutError::Io(IoAt::new(entry.path(), "remove blob", source))
            })?;
            report.removed.push(digest);
        }
        report.swept = self.sweep_temp();
        Ok(report)
    }

    /// What `roots` reach, as `gc` walks it (unreadable documents are skipped).
    pub(super) fn reach_documents<'a>(
        &self,
        roots: impl IntoIterator<Item = &'a Descriptor>,
    ) -> Result<HashSet<Digest>, ImageError> {
        self.reach(roots, false)
    }

    /// The digests `roots` reach: indexes, manifests, configs, layers. A worklist, not
    /// recursion, so a deeply nested index costs memory for its digests, not stack. For
    /// `gc` (`strict` false) an unreadable document keeps what was reached so far, and an
    /// index's children that were never fetched are skipped (a multi-platform index
    /// names manifests of other platforms). For `tag` (`strict` true) a manifest must be
    /// readable and within `MAX_LAYERS`; an index's absent children are still allowed.
    fn reach<'a>(
        &self,
        roots: impl IntoIterator<Item = &'a Descriptor>,
        strict: bool,
    ) -> Result<HashSet<Digest>, ImageError> {
        let mut reached = HashSet::new();
        // Documents already walked, as what they were walked. Apart from `reached`: one
        // digest may be listed under several media types (an index naming a manifest once
        // as an opaque blob, once as a manifest; or once as an index, once as a manifest),
        // and each listing as a document says to walk it as that kind: a manifest walked as
        // an index (which fails to parse) must still be walked as a manifest.
        let mut walked: HashSet<(Digest, bool)> = HashSet::new();
        // Each entry carries how many indexes stand above it.
        let mut work: Vec<(Descriptor, usize)> =
            roots.into_iter().map(|d| (d.clone(), 0)).collect();
        while let Some((descriptor, depth)) = work.pop() {
            let digest = descriptor_digest(self, &descriptor)?;
            reached.insert(digest.clone());
            let media_type = descriptor.media_type().to_string();
            let is_index = media::is_index(&media_type);
            if !is_index && !media::is_manifest(&media_type) {
                continue;
            }
            if !walked.insert((digest.clone(), is_index)) {
                continue;
            }
            // A chain deeper than any real image is hostile: refused (gc then removes
            // nothing), as resolution refuses it.
            if is_index && depth >= MAX_INDEX_DEPTH {
                return Err(ImageError::IndexTooDeep {
                    layout: self.root().to_path_buf(),
                    reference: "an image of index.json".to_string(),
                    digest,
                    depth: depth + 1,
                    limit: MAX_INDEX_DEPTH,
                });
            }
            let bytes = match self.read_blob(&digest, None, DOCUMENT_LIMIT) {
                Ok(bytes) => bytes,
                Err(LayoutError::MissingBlob { .. }) if strict => continue, // reported by the caller
                Err(error) if strict => return Err(error.into()),
                Err(_) => continue,
            };
            let bad = |source| ImageError::BadDocument {
                layout: self.root().to_path_buf(),
                what: if is_index { "index" } else { "manifest" },
                digest: digest.clone(),
                source,
            };
            if is_index {
                let index = match ImageIndex::from_reader(&bytes[..]) {
                    Ok(index) => index,
                    Err(source) if strict => return Err(bad(source)),
                    Err(_) => continue,
                };
                for child in index.manifests() {
                    if self.has_blob(&descriptor_digest(self, child)?) {
                        work.push((child.clone(), depth + 1));
                    }
                }
                continue;
            }
            let manifest = match ImageManifest::from_reader(&bytes[..]) {
                Ok(manifest) => manifest,
                Err(source) if strict => return Err(bad(source)),
                Err(_) => continue,
            };
            if strict && manifest.layers().len() > MAX_LAYERS {
                return Err(ImageError::TooManyLayers {
                    layout: self.root().to_path_buf(),
                    digest,
                    count: manifest.layers().len(),
                    limit: MAX_LAYERS,
                });
            }
            reached.insert(descriptor_digest(self, manifest.config())?);
            for layer in manifest.layers() {
                reached.insert(descriptor_digest(self, layer)?);
            }
        }
        Ok(reached)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A manifest (stored) naming a config (stored) and `layers` layer digests.
    fn manifest_naming(layout: &Layout, layers: &[Digest]) -> Descriptor {
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let config_digest = layout.put_bytes(config).unwrap();
        let layers: Vec<_> = layers
            .iter()
            .map(
                |d| json!({"mediaType": media::OCI_LAYER_GZIP, "digest": d.to_string(), "size": 3}),
            )
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest).unwrap();
        layout.put_bytes(&bytes).unwrap();
        manifest_descriptor(&bytes, None)
    }

    #[test]
    fn a_name_is_never_given_to_a_manifest_whose_blobs_are_missing() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open_or_create(dir.path()).unwrap();
        let present = layout.put_bytes(b"abc").unwrap();
        let missing = Digest::of_bytes(b"never stored");
        let descriptor = manifest_naming(&layout, &[present.clone(), missing.clone()]);
        let before = std::fs::read(dir.path().join("index.json")).unwrap();
        match layout.tag("broken", &descriptor) {
            Err(ImageError::Incomplete { digest, name, .. }) => {
                assert_eq!(digest, missing);
                assert_eq!(name, "broken");
            }
            other => panic!("expected Incomplete, got {other:?}"),
        }
        assert_eq!(
            std::fs::read(dir.path().join("index.json")).unwrap(),
            before
        );
        let complete = manifest_naming(&layout, &[present]);
        layout.tag("whole", &complete).unwrap();
        assert_eq!(layout.names().unwrap(), vec!["whole".to_string()]);
    }

    #[test]
    fn a_manifest_with_too_many_layers_is_neither_named_nor_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open_or_create(dir.path()).unwrap();
        let layer = layout.put_bytes(b"abc").unwrap();
        let layers = vec![layer; MAX_LAYERS + 1];
        let descriptor = manifest_naming(&layout, &layers);
        assert!(matches!(
            layout.tag("deep", &descriptor),
            Err(ImageError::TooManyLayers { count, .. }) if count == MAX_LAYERS + 1
        ));
        assert!(matches!(
            layout.resolve_descriptor(&descriptor),
            Err(ImageError::TooManyLayers { .. })
        ));
    }

    /// A named image whose manifest `index.json` lists a second time under `other` (named
    /// `other`), first or last in gc's worklist; gc must keep the image whole.
    fn gc_keeps_a_manifest_listed_twice(other: &MediaType) {
        for other_first in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let layout = Layout::open_or_create(dir.path()).unwrap();
            let layer = layout.put_bytes(b"layer").unwrap();
            let real = manifest_naming(&layout, std::slice::from_ref(&layer));
            layout.tag("real", &real).unwrap();
            let mut listing = Descriptor::new(other.clone(), real.size(), real.digest().clone());
            listing.set_annotations(Some(HashMap::from([(
                REF_NAME.to_string(),
                "other".to_string(),
            )])));
            layout
                .update_index(|index| {
                    let mut entries = index.manifests().clone();
                    // gc's worklist takes the last entry first.
                    if other_first {
                        entries.push(listing);
                    } else {
                        entries.insert(0, listing);
                    }
                    index.set_manifests(entries);
                })
                .unwrap();
            let held = layout.exclusive_lease(&|| {}).unwrap();
            layout.gc(&held).unwrap();
            drop(held);
            let image = layout.resolve(Some("real")).unwrap();
            let case = format!("{other} first: {other_first}");
            assert!(layout.has_blob(&layer), "{case}");
            assert!(layout.has_blob(&image.config_digest), "{case}");
        }
    }

    /// Found by the `layout_resolve` fuzz target: an index listing one manifest digest twice,
    /// once under a media type that is no document's, made gc skip the real listing and
    /// delete the config and layers of a named image.
    #[test]
    fn gc_walks_a_manifest_listed_also_as_an_opaque_blob() {
        gc_keeps_a_manifest_listed_twice(&MediaType::Other("application/octet-stream".into()));
    }

    /// Found by the `layout_resolve` fuzz target in CI: the digest listed once as an index
    /// (which does not parse as one) and once as a manifest. gc marked the digest walked at
    /// the first listing and skipped the second, so the named image lost its config and
    /// layers.
    #[test]
    fn gc_walks_a_manifest_listed_also_as_an_index() {
        gc_keeps_a_manifest_listed_twice(&MediaType::ImageIndex);
    }
}
