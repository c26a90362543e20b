//! The attachments every DU gets once it is built and named in the store, before any push:
//! in this order, the two SBOMs (SPDX, CycloneDX), the SLSA provenance (a DSSE envelope
//! signed with the build's key, or the bare statement without one) naming the SBOMs and
//! the build log as byproducts, and with a key one cosign signature per identity the DU
//! will be pulled as. Each is an OCI 1.1 referrer of the DU in the store, so `push` carries
//! them wherever the DU goes.
//!
//! A DU that already has them (a build-cache hit) keeps what it has: the SBOMs and the
//! provenance describe the build that made it; only a signature for a new identity is
//! added. A provenance made now (none yet, or a key for one that was not signed) names
//! only SBOMs made now from the image, never ones that came with a pulled copy. Everything here is deterministic for the same inputs (SBOMs from the image, RFC
//! 6979 signatures) except the provenance's times and invocation id, so a rebuild of the
//! same DU adds nothing twice.

use super::keys::SigningKey;
use super::provenance::{self, BuildOptions, Builder, Byproduct, ProvenanceInputs, ResolvedBadger};
use super::referrers::{self, Attachment, Referrer};
use super::{
    cosign, dsse, sbom, COSIGN_SIGNATURE_ANNOTATION, COSIGN_SIGNATURE_ARTIFACT, CYCLONEDX_JSON,
    DSSE_ENVELOPE, IN_TOTO_JSON, PREDICATE_TYPE_ANNOTATION, SPDX_JSON,
};
use crate::image::Digest;
use crate::manifest::{DuManifest, ManifestError, DU_ANNOTATION};
use crate::report::Reporter;
use crate::store::{ImageError, Layout, ResolvedImage};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What went wrong while attaching; the DU stays in the store, named, either way.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("the DU {name} has no readable {DU_ANNOTATION} annotation")]
    NoDuManifest {
        name: String,
        #[source]
        source: Option<ManifestError>,
    },
    #[error("cannot make the SBOM of {name}")]
    Sbom {
        name: String,
        #[source]
        source: sbom::SbomError,
    },
    #[error("cannot store the attachments of {name}")]
    Referrers {
        name: String,
        #[source]
        source: referrers::ReferrerError,
    },
}

impl crate::error_class::Classify for AttestError {
    fn class(&self) -> crate::error_class::ErrorClass {
        match self {
            AttestError::Image(inner) => inner.class(),
            _ => crate::error_class::ErrorClass::Failure,
        }
    }
}

/// What a caller asks for, the same for every build of a run (the command line's flags,
/// the server's options).
#[derive(Clone, Default)]
pub struct AttestSettings {
    /// `--no-attestations`: attach nothing (the bench's baseline; users keep the default).
    pub disabled: bool,
    /// `--sign-key FILE`: sign the provenance and the DU.
    pub sign_key: Option<Arc<SigningKey>>,
}

impl std::fmt::Debug for AttestSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttestSettings")
            .field("disabled", &self.disabled)
            .field("sign_key", &self.sign_key.as_ref().map(|_| "(a key)"))
            .finish()
    }
}

/// One DU's run, as the delivery saw it.
pub struct DuRun<'a> {
    pub tag: &'a str,
    pub builder: Builder,
    pub options: BuildOptions,
    pub app_file: Option<(String, Digest)>,
    pub invocation_id: String,
    pub started_on: String,
    pub finished_on: String,
    /// The SHA-256 of every line the build reported.
    pub log_digest: Digest,
    /// Who the DU will be pulled as (`HOST/REPO` of each push destination, else the
    /// store name): one cosign signature each, with a key.
    pub identities: Vec<String>,
}

/// What was attached (or found attached) to the DU.
#[derive(Debug, Default)]
pub struct Attached {
    pub referrers: Vec<Referrer>,
    /// Attachments made by this run (0 on a cache hit that had them all).
    pub added: usize,
}

/// Attaches what the DU `run.tag` lacks (see the module doc) and returns every referrer
/// it has afterwards.
pub fn attach_to_du(
    layout: &Layout,
    run: &DuRun<'_>,
    settings: &AttestSettings,
    reporter: &dyn Reporter,
) -> Result<Attached, AttestError> {
    if settings.disabled {
        return Ok(Attached::default());
    }
    let name = run.tag.to_string();
    let image = layout.resolve(Some(run.tag))?;
    let stored = |source| AttestError::Referrers {
        name: name.clone(),
        source,
    };
    let existing = referrers::list(layout, &image.manifest_digest).map_err(stored)?;
    let mut added = 0;
    let mut attach = |attachment: &Attachment| -> Result<Digest, AttestError> {
        referrers::attach(layout, &image.descriptor, attachment).map_err(stored)?;
        added += 1;
        Ok(layer_digest_of(attachment))
    };
    let has = |artifact_type: &str| existing.iter().find(|r| r.artifact_type == artifact_type);

    // The provenance: kept when there is one; with a key, when there is one this key
    // signed (a pulled copy may carry another party's, which says nothing for ours).
    let provenances: Vec<&Referrer> = existing
        .iter()
        .filter(|r| r.artifact_type == IN_TOTO_JSON)
        .collect();
    let wants_new = match &settings.sign_key {
        None => provenances.is_empty(),
        Some(key) => !provenances
            .iter()
            .any(|r| signed_by(layout, r, &key.verifying_key())),
    };

    // The SBOMs first: the provenance names them.
    let mut byproducts = vec![Byproduct {
        name: "build.log".into(),
        media_type: "text/plain".into(),
        digest: run.log_digest.clone(),
    }];
    let sbom_digests = match (has(SPDX_JSON), has(CYCLONEDX_JSON)) {
        // Kept as they are while nothing new names them.
        (Some(spdx), Some(cyclonedx)) if !wants_new => {
            [single_layer_digest(spdx), single_layer_digest(cyclonedx)]
        }
        // A new provenance vouches for the SBOMs it names, so they are made here from
        // the image: SBOMs a pulled copy of the same digest brought along may say
        // anything. They are deterministic, so ones made here before are found again
        // and not added twice.
        _ => {
            reporter.status("Cataloguing", &format!("{name}: SBOM (SPDX, CycloneDX)"));
            // The store's layer records: a badger's layers are read once for all its DUs.
            let records = crate::store::cache::cache_root(layout.root())
                .ok()
                .map(|root| sbom::RecordCache::new(&root.join("sbom")));
            let (sboms, _) =
                sbom::generate_with(layout, &image, &sbom::Limits::default(), records.as_ref())
                    .map_err(|source| AttestError::Sbom {
                        name: name.clone(),
                        source,
                    })?;
            let mut attach_new = |artifact_type: &str, bytes: Vec<u8>| {
                let made = plain(artifact_type, bytes);
                let digest = layer_digest_of(&made);
                let present = existing.iter().any(|r| {
                    r.artifact_type == artifact_type
                        && single_layer_digest(r).as_ref() == Some(&digest)
                });
                if present {
                    Ok(digest)
                } else {
                    attach(&made)
                }
            };
            [
                Some(attach_new(SPDX_JSON, sboms.spdx)?),
                Some(attach_new(CYCLONEDX_JSON, sboms.cyclonedx)?),
            ]
        }
    };
    for ((file, media_type), digest) in [
        ("sbom.spdx.json", SPDX_JSON),
        ("sbom.cdx.json", CYCLONEDX_JSON),
    ]
    .into_iter()
    .zip(sbom_digests)
    {
        if let Some(digest) = digest {
            byproducts.push(Byproduct {
                name: file.into(),
                media_type: media_type.into(),
                digest,
            });
        }
    }

    if wants_new {
        let du = du_manifest(&image, &name)?;
        let inputs = ProvenanceInputs {
            subject_name: run.tag,
            subject_digest: &image.manifest_digest,
            du: &du,
            app_file: run.app_file.clone(),
            badgers: resolve_badgers(layout, &du),
            options: run.options.clone(),
            builder: run.builder,
            invocation_id: run.invocation_id.clone(),
            started_on: run.started_on.clone(),
            finished_on: run.finished_on.clone(),
            byproducts,
        };
        let statement = provenance::statement(&inputs);
        let (media_type, bytes) = match &settings.sign_key {
            Some(key) => (
                DSSE_ENVELOPE,
                dsse::seal(provenance::PAYLOAD_TYPE, &statement, key),
            ),
            None => (IN_TOTO_JSON, statement),
        };
        let mut attachment = plain(IN_TOTO_JSON, bytes);
        attachment.media_type = media_type.to_string();
        attachment.annotations.insert(
            PREDICATE_TYPE_ANNOTATION.to_string(),
            provenance::PREDICATE_TYPE.to_string(),
        );
        attach(&attachment)?;
    }

    // A signature per identity, with a key.
    if let Some(key) = &settings.sign_key {
        for identity in &run.identities {
            let signature = cosign::signature_attachment(identity, &image.manifest_digest, key);
            // The payload names only the identity and the digest, so another key's
            // signature has the same layer: the signature itself tells them apart.
            let ours = signature.layer_annotations.get(COSIGN_SIGNATURE_ANNOTATION);
            let already = existing.iter().any(|r| {
                r.artifact_type == COSIGN_SIGNATURE_ARTIFACT
                    && r.manifest.layers().iter().any(|layer| {
                        layer.digest().to_string() == layer_digest_of(&signature).to_string()
                            && layer
                                .annotations()
                                .as_ref()
                                .and_then(|a| a.get(COSIGN_SIGNATURE_ANNOTATION))
                                == ours
                    })
            });
            if !already {
                attach(&signature)?;
            }
        }
    }
    let referrers = referrers::list(layout, &image.manifest_digest).map_err(stored)?;
    Ok(Attached { referrers, added })
}

/// An attachment of one blob with no annotations of its own.
fn plain(artifact_type: &str, bytes: Vec<u8>) -> Attachment {
    Attachment {
        artifact_type: artifact_type.to_string(),
        media_type: artifact_type.to_string(),
        bytes,
        annotations: BTreeMap::new(),
        layer_annotations: BTreeMap::new(),
    }
}

/// The digest the attachment's one layer will have.
fn layer_digest_of(attachment: &Attachment) -> Digest {
    Digest::of_bytes(&attachment.bytes)
}

/// The digest of a stored referrer's one layer, if it has exactly one.
fn single_layer_digest(referrer: &Referrer) -> Option<Digest> {
    match referrer.manifest.layers().as_slice() {
        [layer] => Digest::try_from(layer.digest()).ok(),
        _ => None,
    }
}

/// A provenance referrer that is a DSSE envelope `key` signed.
fn signed_by(layout: &Layout, referrer: &Referrer, key: &super::keys::VerifyingKey) -> bool {
    let is_envelope = referrer
        .manifest
        .layers()
        .first()
        .is_some_and(|layer| layer.media_type().to_string() == DSSE_ENVELOPE);
    is_envelope
        && referrers::content(layout, referrer)
            .ok()
            .is_some_and(|envelope| dsse::open(&envelope, key).is_ok())
}

/// The DU manifest of `image`, from its annotation.
pub fn du_manifest(image: &ResolvedImage, name: &str) -> Result<DuManifest, AttestError> {
    let json = image
        .manifest
        .annotations()
        .as_ref()
        .and_then(|a| a.get(DU_ANNOTATION))
        .ok_or_else(|| AttestError::NoDuManifest {
            name: name.to_string(),
            source: None,
        })?;
    DuManifest::from_json(json).map_err(|source| AttestError::NoDuManifest {
        name: name.to_string(),
        source: Some(source),
    })
}

/// The DU's badgers by digest, each with the base image its manifest names (when the
/// badger image is in the store; a badger pulled by digest alone may have gone since).
fn resolve_badgers(layout: &Layout, du: &DuManifest) -> Vec<ResolvedBadger> {
    du.badgers
        .iter()
        .filter_map(|badger| {
            let digest: Digest = badger.digest.parse().ok()?;
            let base = base_of(layout, &digest);
            Some(ResolvedBadger {
                name: badger.name.clone(),
                version: badger.version.clone(),
                digest,
                base,
            })
        })
        .collect()
}

/// `org.opencontainers.image.base.name` and `.digest` of a stored badger manifest.
fn base_of(layout: &Layout, badger: &Digest) -> Option<(String, Digest)> {
    let bytes = layout
        .read_blob(badger, None, crate::store::image::DOCUMENT_LIMIT)
        .ok()?;
    let manifest = oci_spec::image::ImageManifest::from_reader(&bytes[..]).ok()?;
    let annotations = manifest.annotations().as_ref()?;
    let name = annotations.get("org.opencontainers.image.base.name")?;
    let digest = annotations
        .get("org.opencontainers.image.base.digest")?
        .parse()
        .ok()?;
    Some((name.clone(), digest))
}

/// A reporter that passes everything on and keeps the SHA-256 of the build's log: every
/// status, warning, stage and output line, one per line, as the user saw them. Its digest
/// is the provenance's `build.log` byproduct.
pub struct LogDigest<'a> {
    pub inner: &'a dyn Reporter,
    hasher: std::sync::Mutex<sha2::Sha256>,
}

impl<'a> LogDigest<'a> {
    pub fn new(inner: &'a dyn Reporter) -> LogDigest<'a> {
        LogDigest {
            inner,
            hasher: std::sync::Mutex::new(sha2::Sha256::default()),
        }
    }

    fn line(&self, parts: &[&str]) {
        use sha2::Digest as _;
        let mut hasher = self
            .hasher
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (index, part) in parts.iter().enumerate() {
            if index > 0 {
                hasher.update(b" ");
            }
            hasher.update(part.as_bytes());
        }
        hasher.update(b"\n");
    }

    /// The digest of the lines so far.
    pub fn digest(&self) -> Digest {
        use sha2::Digest as _;
        let hasher = self
            .hasher
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        format!("sha256:{}", hex::encode(hasher.finalize()))
            .parse()
            .expect("a SHA-256 digest")
    }
}

impl Reporter for LogDigest<'_> {
    fn status(&self, verb: &str, subject: &str) {
        self.line(&[verb, subject]);
        self.inner.status(verb, subject);
    }
    fn blob_start(&self, digest: &Digest, size: Option<u64>) {
        self.inner.blob_start(digest, size);
    }
    fn blob_progress(&self, digest: &Digest, bytes: u64) {
        self.inner.blob_progress(digest, bytes);
    }
    fn blob_done(&self, digest: &Digest, skipped: bool) {
        self.inner.blob_done(digest, skipped);
    }
    fn warning(&self, message: &str) {
        self.line(&["warning:", message]);
        self.inner.warning(message);
    }
    fn stage(&self, state: crate::report::State, detail: &str) {
        self.line(&[&state.to_string(), detail]);
        self.inner.stage(state, detail);
    }
    fn output_line(&self, state: crate::report::State, line: &str, stderr: bool) {
        self.line(&[&state.to_string(), line]);
        self.inner.output_line(state, line, stderr);
    }
}
