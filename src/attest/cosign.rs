//! Cosign-compatible image signatures ("simple signing"), the kind podman and skopeo
//! verify with a `sigstoreSigned` policy and `use-sigstore-attachments: true`.
//!
//! A signature is a JSON payload naming the image (its repository as `docker-reference`
//! and its manifest digest), written exactly as cosign writes it ([`payload`]), and the
//! base64 DER ECDSA signature of those bytes, which goes in the
//! [`COSIGN_SIGNATURE_ANNOTATION`] of the layer that holds the payload. Such layers
//! ([`SIMPLE_SIGNING`]) are gathered in one OCI image manifest under the tag
//! `sha256-<hex>.sig` of the signed manifest's digest ([`attachment_tag`]): this is where
//! containers/image looks (it asks for that tag, requires the OCI manifest media type,
//! and reads each layer's media type, payload and annotations; it never reads the
//! config). The config is what containers/image writes when it signs: an image config
//! with empty fields whose `rootfs.diff_ids` lists the layers. Several signatures (keys)
//! of one image are layers of the same manifest: [`sign_in_registry`] appends ours and
//! keeps the others, as cosign and containers/image do.
//!
//! The identity signed is `HOST/REPO` without a tag, as cosign signs: a policy reads it
//! with `"signedIdentity": {"type": "matchRepository"}` (the default, `matchRepoDigestOrExact`,
//! wants the tag too when the image is pulled by tag).
//!
//! What [`signature_attachment`] returns is plain data in the shape of an OCI 1.1 referrer
//! (artifact type, layer media type, bytes, layer annotations), for a layout to keep; the
//! registry side here writes the `.sig` tag form that podman and skopeo read.

use super::keys::{KeyError, SigningKey, VerifyingKey};
use super::referrers::Attachment;
use super::{COSIGN_SIGNATURE_ANNOTATION, COSIGN_SIGNATURE_ARTIFACT, SIMPLE_SIGNING};
use crate::image::{canonical_json, Digest, ImageReference};
use crate::report::Reporter;
use crate::store::{Layout, ResolvedImage};
use crate::transport::RegistryTransport;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use oci_spec::image::{
    Descriptor, DescriptorBuilder, ImageManifest, ImageManifestBuilder, MediaType,
};
use std::collections::{BTreeMap, HashMap};

/// The `critical.type` of a simple signing payload.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";
/// The most layers (signatures) of a `.sig` manifest that are kept when one is added.
pub const MAX_SIGNATURES: usize = 64;
/// The largest signature layer read from a registry (containers/image's own bound).
pub const SIGNATURE_LAYER_LIMIT: u64 = 4 << 20;
/// The most bytes of blobs (config and layers together) copied from an existing `.sig`
/// image. A simple signing payload is a few hundred bytes, so 64 of them stay far below;
/// without this bound 63 layers at the per-layer limit would be 252 MiB to download.
pub const SIGNATURE_IMAGE_LIMIT: u64 = 4 << 20;

/// What went wrong making, checking or publishing a signature.
#[derive(Debug, thiserror::Error)]
pub enum CosignError {
    #[error(
        "{reference}: signing needs a registry reference (docker://HOST[:PORT]/REPO[:TAG|@DIGEST])"
    )]
    NotARegistry { reference: String },
    #[error("{reference}: cannot read what the reference points at")]
    Resolve {
        reference: String,
        #[source]
        source: Box<crate::transport::TransportError>,
    },
    #[error("{reference}: the signature manifest there is not one this tool can add to: {reason}")]
    BadSignatureManifest { reference: String, reason: String },
    #[error("{reference}: cannot write the signature")]
    Publish {
        reference: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the signature payload is not a cosign simple signing payload: {0}")]
    BadPayload(String),
    #[error("the signature annotation is not base64")]
    BadAnnotation,
    #[error("the signature signs manifest {signed}, not {expected}")]
    WrongDigest { signed: String, expected: Digest },
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl crate::error_class::Classify for CosignError {
    fn class(&self) -> crate::error_class::ErrorClass {
        use crate::error_class::ErrorClass;
        match self {
            CosignError::NotARegistry { .. } => ErrorClass::Input,
            CosignError::Resolve { source, .. } => source.class(),
            CosignError::Key(error) => error.class(),
            CosignError::BadSignatureManifest { .. }
            | CosignError::Publish { .. }
            | CosignError::BadPayload(_)
            | CosignError::BadAnnotation
            | CosignError::WrongDigest { .. } => ErrorClass::Failure,
        }
    }
}

/// The simple signing payload of `manifest_digest` under `identity` (`HOST/REPO`), byte
/// for byte as cosign writes it: keys in this order, no spaces, `"optional":null`.
pub fn payload(identity: &str, manifest_digest: &Digest) -> Vec<u8> {
    // Structs, not maps: serde keeps the field order, which is cosign's.
    #[derive(serde::Serialize)]
    struct Payload<'a> {
        critical: Critical<'a>,
        optional: Option<()>,
    }
    #[derive(serde::Serialize)]
    struct Critical<'a> {
        identity: Identity<'a>,
        image: Image,
        #[serde(rename = "type")]
        kind: &'static str,
    }
    #[derive(serde::Serialize)]
    struct Identity<'a> {
        #[serde(rename = "docker-reference")]
        docker_reference: &'a str,
    }
    #[derive(serde::Serialize)]
    struct Image {
        #[serde(rename = "docker-manifest-digest")]
        docker_manifest_digest: String,
    }
    serde_json::to_vec(&Payload {
        critical: Critical {
            identity: Identity {
                docker_reference: identity,
            },
            image: Image {
                docker_manifest_digest: manifest_digest.to_string(),
            },
            kind: SIGNATURE_TYPE,
        },
        optional: None,
    })
    .expect("a payload always serializes")
}

/// Signs `manifest_digest` under `identity` with `key`.
pub fn signature_attachment(
    identity: &str,
    manifest_digest: &Digest,
    key: &SigningKey,
) -> Attachment {
    let bytes = payload(identity, manifest_digest);
    let signature = STANDARD.encode(key.sign(&bytes));
    Attachment {
        artifact_type: COSIGN_SIGNATURE_ARTIFACT.to_string(),
        media_type: SIMPLE_SIGNING.to_string(),
        bytes,
        annotations: BTreeMap::new(),
        layer_annotations: BTreeMap::from([(COSIGN_SIGNATURE_ANNOTATION.to_string(), signature)]),
    }
}

/// What a valid signature says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedIdentity {
    /// `critical.identity.docker-reference`.
    pub docker_reference: String,
}

/// Checks a signature layer: `signature` (the annotation's base64) verifies `payload` with
/// `key`, the payload is a simple signing payload, and it signs `expected`.
///
/// The identity signed is returned, not checked: as with cosign, a signature stays valid
/// for a copy of the image in another repository. A caller that pins the repository (a
/// `matchRepository` policy) compares [`SignedIdentity::docker_reference`] itself.
pub fn verify(
    payload: &[u8],
    signature: &str,
    key: &VerifyingKey,
    expected: &Digest,
) -> Result<SignedIdentity, CosignError> {
    let signature = STANDARD
        .decode(signature.trim())
        .map_err(|_| CosignError::BadAnnotation)?;
    // The signature first: nothing of an unsigned payload is read.
    key.verify(payload, &signature)?;
    let payload: SignedPayload =
        serde_json::from_slice(payload).map_err(|e| CosignError::BadPayload(e.to_string()))?;
    let critical = payload.critical;
    if critical.kind != SIGNATURE_TYPE {
        return Err(CosignError::BadPayload(format!(
            "critical.type is not {SIGNATURE_TYPE:?}"
        )));
    }
    let signed = critical.image.docker_manifest_digest;
    if signed != expected.to_string() {
        return Err(CosignError::WrongDigest {
            signed,
            expected: expected.clone(),
        });
    }
    Ok(SignedIdentity {
        docker_reference: critical.identity.docker_reference,
    })
}

/// A simple signing payload as [`verify`] reads it, as strictly as containers/image does:
/// a key twice (`{"critical":…,"critical":…}`) or a key it does not know, anywhere but in
/// `optional`, refuses the payload. A lenient reader would take the last of two keys while
/// another verifier of the same bytes takes the first or refuses: the bytes signed must
/// mean one thing to every verifier. serde's derived structs refuse duplicate fields.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedPayload {
    critical: SignedCritical,
    /// Not read: creator, timestamp or anything a signer adds.
    #[serde(rename = "optional")]
    _optional: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedCritical {
    identity: SignedIdentityField,
    image: SignedImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedIdentityField {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedImage {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// The tag cosign and containers/image keep the signatures of `digest` under.
pub fn attachment_tag(digest: &Digest) -> String {
    format!("{}-{}.sig", digest.algorithm(), digest.hex())
}

/// The identity cosign signs for a registry repository: `HOST[:PORT]/REPO`.
pub fn identity(registry: &str, repository: &str) -> String {
    format!("{registry}/{repository}")
}

/// The documents of a `.sig` image: its config and manifest bytes.
pub struct SignatureImage {
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
}

/// The `.sig` image holding `layers` (earlier signatures, kept as they are) and then the
/// layer of `attachment`, unless one with the same digest, size, media type and annotations
/// is there already (then `None`: nothing to write). The size counts too: a copy of our
/// layer whose size is wrong cannot be read by a verifier, so it is not ours.
pub fn signature_image(layers: &[Descriptor], attachment: &Attachment) -> Option<SignatureImage> {
    let ours = layer_descriptor(attachment);
    let already = layers.iter().any(|layer| {
        layer.digest() == ours.digest()
            && layer.size() == ours.size()
            && layer.media_type() == ours.media_type()
            && layer.annotations().clone().unwrap_or_default()
                == ours.annotations().clone().unwrap_or_default()
    });
    if already {
        return None;
    }
    let mut layers = layers.to_vec();
    layers.push(ours);
    let diff_ids: Vec<String> = layers.iter().map(|l| l.digest().to_string()).collect();
    // containers/image's `imgspecv1.Image{}` with only the rootfs filled in.
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("a config always serializes");
    let config_descriptor = DescriptorBuilder::default()
        .media_type(MediaType::ImageConfig)
        .size(config.len() as u64)
        .digest(oci_digest(&Digest::of_bytes(&config)))
        .build()
        .expect("a descriptor with every field set");
    let manifest: ImageManifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_descriptor)
        .layers(layers)
        .build()
        .expect("a manifest with every field set");
    Some(SignatureImage {
        config,
        manifest: canonical_json(&manifest),
    })
}

/// The layer descriptor of an attachment's bytes.
fn layer_descriptor(attachment: &Attachment) -> Descriptor {
    DescriptorBuilder::default()
        .media_type(MediaType::Other(attachment.media_type.clone()))
        .size(attachment.bytes.len() as u64)
        .digest(oci_digest(&Digest::of_bytes(&attachment.bytes)))
        .annotations(
            attachment
                .layer_annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        )
        .build()
        .expect("a descriptor with every field set")
}

fn oci_digest(digest: &Digest) -> oci_spec::image::Digest {
    digest
        .to_string()
        .parse()
        .expect("our digests are valid OCI digests")
}

/// What [`sign_in_registry`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrySignature {
    /// The digest signed: the manifest (or index) the reference resolved to.
    pub signed: Digest,
    /// `HOST/REPO`, the identity in the payload.
    pub identity: String,
    /// `docker://HOST/REPO:sha256-<hex>.sig`.
    pub signature_reference: String,
    /// The `.sig` manifest now there.
    pub signature_manifest: Digest,
    /// False when this key's signature of this digest was there already.
    pub added: bool,
}

/// Signs the manifest `reference` (`docker://HOST/REPO[:TAG|@DIGEST]`) resolves to and
/// writes the signature to the `sha256-<hex>.sig` tag of the same repository, keeping the
/// signatures already there.
///
/// Order: resolve the digest; read the `.sig` manifest if there is one (bounded: at most
/// [`MAX_SIGNATURES`] layers of at most [`SIGNATURE_LAYER_LIMIT`] bytes each and
/// [`SIGNATURE_IMAGE_LIMIT`] with the config, checked before any of them is fetched); copy
/// its blobs, pulled by the digest checked, into a scratch layout, since a push sends only
/// blobs it holds; add our layer and a new config; push, manifest last. Two signers at once
/// can each write a manifest without the other's layer: the registry has no
/// compare-and-swap on tags, and cosign has the same race.
pub fn sign_in_registry(
    reference: &ImageReference,
    key: &SigningKey,
    registry: &dyn RegistryTransport,
    reporter: &dyn Reporter,
) -> Result<RegistrySignature, CosignError> {
    let ImageReference::Registry {
        registry: host,
        repository,
        ..
    } = reference
    else {
        return Err(CosignError::NotARegistry {
            reference: reference.to_string(),
        });
    };
    let (_, signed) = registry
        .manifest(reference)
        .map_err(|source| CosignError::Resolve {
            reference: reference.to_string(),
            source: Box::new(source),
        })?;
    let identity = identity(host, repository);
    let attachment = signature_attachment(&identity, &signed, key);
    let signature_reference = ImageReference::Registry {
        registry: host.clone(),
        repository: repository.clone(),
        tag: Some(attachment_tag(&signed)),
        digest: None,
    };
    let sig_name = signature_reference.to_string();
    let publish = |source: Box<dyn std::error::Error + Send + Sync>| CosignError::Publish {
        reference: sig_name.clone(),
        source,
    };
    let scratch = tempfile::tempdir().map_err(|e| publish(e.into()))?;
    let layout = Layout::open_or_create(scratch.path()).map_err(|e| publish(e.into()))?;

    let existing = existing_signatures(
        registry,
        &signature_reference,
        &layout,
        &attachment,
        reporter,
    )?;
    let Some(image) = signature_image(&existing.layers, &attachment) else {
        return Ok(RegistrySignature {
            signed,
            identity,
            signature_reference: sig_name,
            signature_manifest: existing
                .manifest
                .expect("a layer was found, so there was a manifest"),
            added: false,
        });
    };
    layout
        .put_bytes(&attachment.bytes)
        .map_err(|e| publish(e.into()))?;
    let config_digest = layout
        .put_bytes(&image.config)
        .map_err(|e| publish(e.into()))?;
    let manifest_digest = layout
        .put_bytes(&image.manifest)
        .map_err(|e| publish(e.into()))?;
    let manifest =
        ImageManifest::from_reader(&image.manifest[..]).map_err(|e| publish(e.into()))?;
    let config = oci_spec::image::ImageConfiguration::from_reader(&image.config[..])
        .map_err(|e| publish(e.into()))?;
    // Built here rather than resolved from the layout: the store's resolver takes only
    // filesystem layers, and these are signatures.
    let resolved = ResolvedImage {
        name: None,
        descriptor: DescriptorBuilder::default()
            .media_type(MediaType::ImageManifest)
            .size(image.manifest.len() as u64)
            .digest(oci_digest(&manifest_digest))
            .build()
            .expect("a descriptor with every field set"),
        manifest_digest: manifest_digest.clone(),
        manifest_bytes: image.manifest,
        manifest,
        config_digest,
        config_bytes: image.config,
        config,
    };
    registry
        .push(&layout, &resolved, &signature_reference, reporter)
        .map_err(|e| publish(e.into()))?;
    Ok(RegistrySignature {
        signed,
        identity,
        signature_reference: sig_name,
        signature_manifest: manifest_digest,
        added: true,
    })
}

/// The signatures already under a `.sig` tag.
struct Existing {
    manifest: Option<Digest>,
    layers: Vec<Descriptor>,
}

/// Reads the `.sig` manifest at `reference` (none: no signature yet) and copies its blobs
/// into `layout`, unless `ours` is among its layers already (then nothing is written).
fn existing_signatures(
    registry: &dyn RegistryTransport,
    reference: &ImageReference,
    layout: &Layout,
    ours: &Attachment,
    reporter: &dyn Reporter,
) -> Result<Existing, CosignError> {
    let bad = |reason: String| CosignError::BadSignatureManifest {
        reference: reference.to_string(),
        reason,
    };
    let (bytes, digest) = match registry.manifest(reference) {
        Ok(found) => found,
        Err(error) if is_not_found(&error) => {
            return Ok(Existing {
                manifest: None,
                layers: Vec::new(),
            })
        }
        Err(source) => {
            return Err(CosignError::Resolve {
                reference: reference.to_string(),
                source: Box::new(source),
            })
        }
    };
    let manifest = parse_signature_manifest(&bytes).map_err(bad)?;
    if signature_image(manifest.layers(), ours).is_none() {
        return Ok(Existing {
            manifest: Some(digest),
            layers: manifest.layers().clone(),
        });
    }
    // Pulled by the digest just checked, not by the tag: a tag that moves between the two
    // reads (a registry answering the second differently) would otherwise have its blobs
    // fetched before any bound was checked.
    let pinned = pinned_to(reference, &digest);
    let pulled =
        registry
            .pull(&pinned, layout, reporter)
            .map_err(|source| CosignError::Resolve {
                reference: pinned.to_string(),
                source: Box::new(source),
            })?;
    let pulled_digest = Digest::try_from(pulled.digest()).map_err(|e| bad(e.to_string()))?;
    if pulled_digest != digest {
        return Err(bad(format!(
            "{pinned} was pulled as {pulled_digest}, another manifest"
        )));
    }
    Ok(Existing {
        manifest: Some(digest),
        layers: manifest.layers().clone(),
    })
}

/// `reference` with its digest set to `digest`: a pull of it reads exactly that manifest
/// (the registry client checks the bytes against the digest).
fn pinned_to(reference: &ImageReference, digest: &Digest) -> ImageReference {
    match reference {
        ImageReference::Registry {
            registry,
            repository,
            tag,
            ..
        } => ImageReference::Registry {
            registry: registry.clone(),
            repository: repository.clone(),
            tag: tag.clone(),
            digest: Some(digest.to_string()),
        },
        other => other.clone(),
    }
}

/// Reads a `.sig` manifest and checks it with [`check_signature_manifest`]. What is not an
/// OCI image manifest is named by its media type when it has one (an index, a Docker
/// manifest), and otherwise by what the JSON parser found wrong.
fn parse_signature_manifest(bytes: &[u8]) -> Result<ImageManifest, String> {
    let manifest = ImageManifest::from_reader(bytes).map_err(|error| {
        let media_type = serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|value| value.get("mediaType")?.as_str().map(str::to_owned));
        match media_type {
            Some(media_type) if media_type != MediaType::ImageManifest.to_string() => {
                format!(
                    "its media type is {media_type:?}, not the OCI image manifest podman and \
                     skopeo read"
                )
            }
            // oci-spec's own message is only "serde failed": the parser's is the one
            // that says what and where.
            _ => match std::error::Error::source(&error) {
                Some(cause) => format!("not an OCI image manifest ({cause})"),
                None => format!("not an OCI image manifest ({error})"),
            },
        }
    })?;
    check_signature_manifest(&manifest)?;
    Ok(manifest)
}

/// The bounds a `.sig` manifest read from a registry must keep before its layers are
/// fetched: podman and skopeo read it with a manifest media type of OCI, and a signature is
/// small.
fn check_signature_manifest(manifest: &ImageManifest) -> Result<(), String> {
    if manifest.media_type().as_ref() != Some(&MediaType::ImageManifest) {
        return Err(format!(
            "its media type is {:?}, not the OCI image manifest podman and skopeo read",
            manifest.media_type().as_ref().map(ToString::to_string)
        ));
    }
    if manifest.layers().len() >= MAX_SIGNATURES {
        return Err(format!(
            "it has {} signatures already (at most {MAX_SIGNATURES} are kept)",
            manifest.layers().len()
        ));
    }
    if manifest.config().size() > SIGNATURE_LAYER_LIMIT {
        return Err(format!(
            "its config is larger than {SIGNATURE_LAYER_LIMIT} bytes"
        ));
    }
    if let Some(layer) = manifest
        .layers()
        .iter()
        .find(|layer| layer.size() > SIGNATURE_LAYER_LIMIT)
    {
        return Err(format!(
            "layer {} is larger than {SIGNATURE_LAYER_LIMIT} bytes",
            layer.digest()
        ));
    }
    // Sizes are the manifest's word, so they are added without overflow; the blobs are
    // then fetched checked against them.
    let total = manifest
        .layers()
        .iter()
        .fold(manifest.config().size(), |sum, layer| {
            sum.saturating_add(layer.size())
        });
    if total > SIGNATURE_IMAGE_LIMIT {
        return Err(format!(
            "its config and signatures are {total} bytes together, more than the \
             {SIGNATURE_IMAGE_LIMIT} copied"
        ));
    }
    Ok(())
}

/// Whether a registry answered that the manifest does not exist (404).
fn is_not_found(error: &crate::transport::TransportError) -> bool {
    let crate::transport::TransportError::Registry { source, .. } = error else {
        return false;
    };
    matches!(
        source.downcast_ref::<crate::registry::RegistryError>(),
        Some(crate::registry::RegistryError::Status { status: 404, .. })
    )
}

#[cfg(test)]
#[path = "cosign_tests.rs"]
mod tests;
