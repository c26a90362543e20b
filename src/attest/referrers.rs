//! Attaching files to an image as OCI 1.1 referrers, and reading them back.
//!
//! An attachment becomes an artifact manifest: `schemaVersion` 2, the image manifest media
//! type, `artifactType`, the empty descriptor (`{}`, [`EMPTY_CONFIG`](super::EMPTY_CONFIG))
//! as config, one layer
//! holding the file, `subject` = the image's manifest descriptor, and the annotations. The
//! manifest is written as canonical JSON, so the same attachment of the same image always
//! has the same digest and is stored once. It is listed in `index.json` as an unnamed entry
//! carrying `artifactType` (see `store::referrers`), where the transports, `gc` and the
//! registry client find it.
//!
//! A cosign signature is a referrer like any other: `artifactType`
//! [`COSIGN_SIGNATURE_ARTIFACT`], one [`SIMPLE_SIGNING`](super::SIMPLE_SIGNING) layer with
//! the signature in the [`COSIGN_SIGNATURE_ANNOTATION`](super::COSIGN_SIGNATURE_ANNOTATION)
//! layer annotation.

use crate::error_class::{Classify, ErrorClass};
use crate::image::Digest;
use crate::store::image::descriptor_digest;
pub use crate::store::referrers::EMPTY_CONFIG_DIGEST;
use crate::store::referrers::{
    artifact_manifest, artifact_type_of, is_media_type, is_subject_type, ArtifactLayer,
    MAX_REFERRER_BLOB,
};
use crate::store::{ImageError, Layout, LayoutError, StoredReferrer};
use oci_spec::image::{Descriptor, ImageManifest};
use std::collections::BTreeMap;

/// The largest attachment stored or read back whole (an SBOM of a large image is a few
/// MiB).
pub const CONTENT_LIMIT: u64 = MAX_REFERRER_BLOB;

/// Why an attachment could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum ReferrerError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("{media_type:?} is not a media type (expected TYPE/SUBTYPE, printable, at most 255 characters)")]
    BadMediaType { media_type: String },
    #[error("the subject {digest} has media type {media_type:?}; only image manifests and indexes can be referred to")]
    BadSubject { digest: String, media_type: String },
    #[error("the attachment has {size} bytes; at most {limit} are supported")]
    TooLarge { size: u64, limit: u64 },
    #[error("referrer {digest} has {count} layers; exactly one was expected")]
    NotOneLayer { digest: Digest, count: usize },
}

impl Classify for ReferrerError {
    fn class(&self) -> ErrorClass {
        match self {
            ReferrerError::Image(inner) => inner.class(),
            ReferrerError::Layout(inner) => inner.class(),
            ReferrerError::BadMediaType { .. }
            | ReferrerError::BadSubject { .. }
            | ReferrerError::TooLarge { .. }
            | ReferrerError::NotOneLayer { .. } => ErrorClass::Input,
        }
    }
}

/// A file to attach to an image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attachment {
    /// The manifest's `artifactType` (e.g. [`SPDX_JSON`](super::SPDX_JSON)).
    pub artifact_type: String,
    /// The media type of the one layer (the file).
    pub media_type: String,
    pub bytes: Vec<u8>,
    /// On the manifest.
    pub annotations: BTreeMap<String, String>,
    /// On the one layer (cosign puts the signature here).
    pub layer_annotations: BTreeMap<String, String>,
}

/// A referrer of an image, as stored.
#[derive(Clone, Debug)]
pub struct Referrer {
    /// The referrer manifest's descriptor (as in `index.json`).
    pub descriptor: Descriptor,
    pub artifact_type: String,
    pub manifest: ImageManifest,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Stores the blob, the `{}` empty config and an artifact manifest (`subject` = subject,
/// `artifactType`), adds it to `index.json` as an unnamed entry carrying `artifactType`,
/// and returns the manifest descriptor. Same bytes → same digest → stored once.
pub fn attach(
    layout: &Layout,
    subject: &Descriptor,
    attachment: &Attachment,
) -> Result<Descriptor, ReferrerError> {
    check_media_type(&attachment.artifact_type)?;
    check_media_type(&attachment.media_type)?;
    let subject_type = subject.media_type().to_string();
    if !is_subject_type(&subject_type) {
        return Err(ReferrerError::BadSubject {
            digest: subject.digest().to_string(),
            media_type: subject_type,
        });
    }
    descriptor_digest(layout, subject)?;
    let size = attachment.bytes.len() as u64;
    if size > CONTENT_LIMIT {
        return Err(ReferrerError::TooLarge {
            size,
            limit: CONTENT_LIMIT,
        });
    }
    // From the first blob until the entry is written, `gc` must wait.
    let _lease = layout.lease()?;
    let config_digest = layout.put_bytes(b"{}")?;
    debug_assert_eq!(config_digest.to_string(), EMPTY_CONFIG_DIGEST);
    let layer_digest = layout.put_bytes(&attachment.bytes)?;
    let layer = ArtifactLayer {
        media_type: &attachment.media_type,
        digest: &layer_digest,
        size,
        annotations: &attachment.layer_annotations,
    };
    let bytes = artifact_manifest(
        subject,
        &attachment.artifact_type,
        &layer,
        &attachment.annotations,
    );
    layout.put_bytes(&bytes)?;
    Ok(layout.add_referrer(&bytes)?)
}

/// A media type as RFC 6838 shapes it, loosely (see [`is_media_type`]).
fn check_media_type(media_type: &str) -> Result<(), ReferrerError> {
    if is_media_type(media_type) {
        Ok(())
    } else {
        Err(ReferrerError::BadMediaType {
            media_type: media_type.to_string(),
        })
    }
}

/// The referrers of `subject` stored in `layout`, in `index.json` order.
pub fn list(layout: &Layout, subject: &Digest) -> Result<Vec<Referrer>, ReferrerError> {
    Ok(layout
        .referrers_of(subject)?
        .into_iter()
        .map(Referrer::from)
        .collect())
}

impl From<StoredReferrer> for Referrer {
    fn from(stored: StoredReferrer) -> Referrer {
        Referrer {
            artifact_type: artifact_type_of(&stored.manifest),
            annotations: stored
                .manifest
                .annotations()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            descriptor: stored.descriptor,
            manifest: stored.manifest,
        }
    }
}

/// The bytes of the referrer's single layer, verified against its digest and size, at
/// most [`CONTENT_LIMIT`].
pub fn content(layout: &Layout, referrer: &Referrer) -> Result<Vec<u8>, ReferrerError> {
    let [layer] = referrer.manifest.layers().as_slice() else {
        return Err(ReferrerError::NotOneLayer {
            digest: descriptor_digest(layout, &referrer.descriptor)?,
            count: referrer.manifest.layers().len(),
        });
    };
    let digest = descriptor_digest(layout, layer)?;
    if layer.size() > CONTENT_LIMIT {
        return Err(ReferrerError::TooLarge {
            size: layer.size(),
            limit: CONTENT_LIMIT,
        });
    }
    Ok(layout.read_blob(&digest, Some(layer.size()), CONTENT_LIMIT)?)
}

#[cfg(test)]
mod tests;
