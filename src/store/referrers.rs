//! Referrers in a layout: artifact manifests (an SBOM, a provenance statement, a signature)
//! whose `subject` is an image manifest of the same layout. They sit in `index.json` as
//! unnamed entries whose descriptor carries `artifactType`, as ORAS and the OCI 1.1 image
//! layout keep them, so that skopeo, umoci and oci-image-tool still read the layout.
//!
//! Everything that picks *images* from `index.json` (resolving with no name, listing,
//! replacing unnamed entries) skips these entries; `gc` keeps the referrers of what a
//! named or unnamed image entry reaches (and referrers of those, a few levels deep) and
//! drops the entries whose subject is gone. A referrer entry is never named: an
//! `org.opencontainers.image.ref.name` in a manifest's annotations is not carried into
//! its entry, so a hostile artifact cannot pose as an image name.

use super::image::{descriptor_digest, ImageError, DOCUMENT_LIMIT, REF_NAME};
use super::layout::Layout;
use crate::attest::EMPTY_CONFIG;
use crate::image::{media, Digest};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The most referrers one subject may have in a layout (or take from a registry): a
/// DU carries a handful (two SBOMs, a provenance, a signature or two); thousands are
/// hostile and would cost a manifest read each.
pub const MAX_REFERRERS: usize = 256;
/// How many referrer levels are followed (a signature of an SBOM of an image is two).
pub const MAX_REFERRER_DEPTH: usize = 4;

/// The most annotation bytes (keys and values) a referrer's `index.json` entry carries.
pub const MAX_ENTRY_ANNOTATIONS: usize = 16 << 10;
/// The largest referrer layer (an SBOM of a large image is a few MiB).
pub const MAX_REFERRER_BLOB: u64 = 64 << 20;
/// The most referrer blob bytes one pull takes, over every referrer and level: without
/// it, [`MAX_REFERRERS`] referrers of many [`MAX_REFERRER_BLOB`] blobs each would be a
/// terabyte.
pub const MAX_REFERRER_BYTES: u64 = 4 * MAX_REFERRER_BLOB;
/// The digest of `{}`, the empty config of artifacts.
pub const EMPTY_CONFIG_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// The one layer of an artifact manifest.
pub struct ArtifactLayer<'a> {
    pub media_type: &'a str,
    pub digest: &'a Digest,
    pub size: u64,
    pub annotations: &'a BTreeMap<String, String>,
}

/// The bytes of an artifact manifest: `schemaVersion` 2, the image manifest media type,
/// `artifactType`, the empty config (`{}`, its data inline), one layer, `subject`, and
/// `annotations` when there are any. Canonical JSON (sorted keys), so the same artifact
/// of the same subject always has the same digest, whoever builds it (an attachment, or
/// a signature pulled from a `.sig` tag).
pub fn artifact_manifest(
    subject: &Descriptor,
    artifact_type: &str,
    layer: &ArtifactLayer,
    annotations: &BTreeMap<String, String>,
) -> Vec<u8> {
    let mut subject_json = json!({
        "mediaType": subject.media_type().to_string(),
        "digest": subject.digest().to_string(),
        "size": subject.size(),
    });
    if let Some(artifact_type) = subject.artifact_type() {
        subject_json["artifactType"] = json!(artifact_type.to_string());
    }
    let mut layer_json = json!({
        "mediaType": layer.media_type,
        "digest": layer.digest.to_string(),
        "size": layer.size,
    });
    if !layer.annotations.is_empty() {
        layer_json["annotations"] = json!(layer.annotations);
    }
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": EMPTY_CONFIG, "digest": EMPTY_CONFIG_DIGEST, "size": 2, "data": "e30="},
        "layers": [layer_json],
        "subject": subject_json,
    });
    if !annotations.is_empty() {
        manifest["annotations"] = json!(annotations);
    }
    serde_json::to_vec(&manifest).expect("a JSON value serializes")
}

/// Whether an `index.json` entry is a referrer rather than an image: it carries
/// `artifactType` and no name.
pub fn is_referrer_entry(descriptor: &Descriptor) -> bool {
    descriptor.artifact_type().is_some() && super::image::ref_name(descriptor).is_none()
}

/// A referrer as stored: its `index.json` entry, its manifest and the manifest's bytes.
#[derive(Clone, Debug)]
pub struct StoredReferrer {
    pub descriptor: Descriptor,
    pub manifest: ImageManifest,
    pub manifest_bytes: Vec<u8>,
}

impl StoredReferrer {
    /// The manifest's digest.
    pub fn digest(&self) -> Digest {
        Digest::of_bytes(&self.manifest_bytes)
    }

    /// The config and layer descriptors the manifest names.
    pub fn blobs(&self) -> Vec<Descriptor> {
        let mut blobs = vec![self.manifest.config().clone()];
        blobs.extend(self.manifest.layers().iter().cloned());
        blobs
    }
}

/// The `index.json` entry of a referrer manifest: its media type, digest, size,
/// `artifactType` and the manifest's annotations (without a name).
pub fn referrer_entry(manifest_bytes: &[u8], manifest: &ImageManifest) -> Descriptor {
    let artifact_type = artifact_type_of(manifest);
    let mut entry = Descriptor::new(
        MediaType::ImageManifest,
        manifest_bytes.len() as u64,
        &Digest::of_bytes(manifest_bytes),
    );
    entry.set_artifact_type(Some(MediaType::from(artifact_type.as_str())));
    let annotations: HashMap<String, String> = manifest
        .annotations()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(key, _)| key != REF_NAME)
        .collect();
    // `index.json` is read whole on every lookup and refused past `INDEX_LIMIT`: a few
    // hostile manifests with megabytes of annotations must not make the store unreadable.
    // Larger annotations stay in the manifest alone.
    let bytes: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
    let carried = !annotations.is_empty() && bytes <= MAX_ENTRY_ANNOTATIONS;
    entry.set_annotations(carried.then_some(annotations));
    entry
}

/// A manifest's artifact type: its `artifactType`, else (OCI 1.1) its config's media type.
pub fn artifact_type_of(manifest: &ImageManifest) -> String {
    manifest.artifact_type().as_ref().map_or_else(
        || manifest.config().media_type().to_string(),
        ToString::to_string,
    )
}

impl Layout {
    /// The referrers of `subject` listed in `index.json`, in index order. An entry whose
    /// manifest is missing or unreadable is skipped (gc drops it); more than
    /// [`MAX_REFERRERS`] is refused.
    pub fn referrers_of(&self, subject: &Digest) -> Result<Vec<StoredReferrer>, ImageError> {
        let index = self.read_index()?;
        let mut found: Vec<StoredReferrer> = Vec::new();
        // An entry listed again is not read again: a hostile `index.json` can name one
        // manifest of megabytes thousands of times, and each read hashes it whole.
        let mut read = HashSet::new();
        for entry in index.manifests().iter().filter(|d| is_referrer_entry(d)) {
            if !read.insert((entry.digest().to_string(), entry.size())) {
                continue;
            }
            let Ok(referrer) = self.read_referrer(entry) else {
                continue;
            };
            let names_subject = referrer
                .manifest
                .subject()
                .as_ref()
                .is_some_and(|s| s.digest().to_string() == subject.to_string());
            if !names_subject
                || found
                    .iter()
                    .any(|f| f.descriptor.digest() == entry.digest())
            {
                continue;
            }
            if found.len() == MAX_REFERRERS {
                return Err(ImageError::TooManyReferrers {
                    layout: self.root().to_path_buf(),
                    subject: subject.clone(),
                    limit: MAX_REFERRERS,
                });
            }
            found.push(referrer);
        }
        Ok(found)
    }

    /// Reads the manifest a referrer entry points at, verified and bounded.
    pub fn read_referrer(&self, entry: &Descriptor) -> Result<StoredReferrer, ImageError> {
        let digest = descriptor_digest(self, entry)?;
        let manifest_bytes = self.read_blob(&digest, Some(entry.size()), DOCUMENT_LIMIT)?;
        let manifest = self.parse_referrer(&manifest_bytes, &digest)?;
        Ok(StoredReferrer {
            descriptor: entry.clone(),
            manifest,
            manifest_bytes,
        })
    }

    /// Parses a referrer manifest; one whose artifact type is not a media type is refused
    /// (see [`is_media_type`]), so it never reaches `index.json` or a listing.
    fn parse_referrer(&self, bytes: &[u8], digest: &Digest) -> Result<ImageManifest, ImageError> {
        let manifest =
            ImageManifest::from_reader(bytes).map_err(|source| ImageError::BadDocument {
                layout: self.root().to_path_buf(),
                what: "referrer manifest",
                digest: digest.clone(),
                source,
            })?;
        if !is_media_type(&artifact_type_of(&manifest)) {
            return Err(ImageError::BadArtifactType {
                layout: self.root().to_path_buf(),
                digest: digest.clone(),
            });
        }
        Ok(manifest)
    }

    /// Adds a referrer whose manifest bytes and blobs are stored: its entry (see
    /// [`referrer_entry`]) goes into `index.json`, replacing an entry of the same digest.
    /// The manifest must name a subject.
    pub fn add_referrer(&self, manifest_bytes: &[u8]) -> Result<Descriptor, ImageError> {
        let digest = Digest::of_bytes(manifest_bytes);
        let manifest = self.parse_referrer(manifest_bytes, &digest)?;
        if manifest.subject().is_none() {
            return Err(ImageError::NotAReferrer {
                layout: self.root().to_path_buf(),
                digest,
            });
        }
        let entry = referrer_entry(manifest_bytes, &manifest);
        self.add_entry(entry.clone(), None)?;
        Ok(entry)
    }

    /// For `gc`: which referrer entries of `index` live. `reached` holds what the image
    /// entries reach; a referrer whose subject is in it lives and what it reaches is
    /// added, level by level ([`MAX_REFERRER_DEPTH`] levels). Returns the entries that do
    /// not live (their subject is gone, or their manifest is unreadable).
    pub(super) fn dead_referrers(
        &self,
        index: &ImageIndex,
        reached: &mut HashSet<Digest>,
    ) -> Result<Vec<Descriptor>, ImageError> {
        let mut pending: Vec<(Descriptor, Option<Digest>)> = Vec::new();
        for entry in index.manifests().iter().filter(|d| is_referrer_entry(d)) {
            // An unreadable manifest names no subject: the entry is dead.
            let subject = self.read_referrer(entry).ok().and_then(|r| {
                r.manifest
                    .subject()
                    .as_ref()
                    .and_then(|s| Digest::try_from(s.digest()).ok())
            });
            pending.push((entry.clone(), subject));
        }
        for _ in 0..MAX_REFERRER_DEPTH {
            let (live, rest): (Vec<_>, Vec<_>) = pending
                .into_iter()
                .partition(|(_, subject)| subject.as_ref().is_some_and(|s| reached.contains(s)));
            pending = rest;
            if live.is_empty() {
                break;
            }
            reached.extend(self.reach_documents(live.iter().map(|(entry, _)| entry))?);
        }
        Ok(pending.into_iter().map(|(entry, _)| entry).collect())
    }
}

/// Whether `media_type` has the shape RFC 6838 gives it, loosely: `type/subtype`,
/// printable ASCII without `,` or `"`, at most 255 bytes. An artifact type is copied into
/// every `index.json` entry and printed by `inspect`: a megabyte of it, or a terminal
/// escape, must not get that far.
pub fn is_media_type(media_type: &str) -> bool {
    media_type.len() <= 255
        && media_type
            .split_once('/')
            .is_some_and(|(kind, sub)| !kind.is_empty() && !sub.is_empty() && !sub.contains('/'))
        && media_type
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b',' && b != b'"')
}

/// Whether a media type is one a referrer's subject can have.
pub fn is_subject_type(media_type: &str) -> bool {
    media::is_manifest(media_type) || media::is_index(media_type)
}
