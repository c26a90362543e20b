//! Supply-chain attachments of a DU: SBOMs, SLSA provenance, signatures, and the OCI 1.1
//! referrers that carry them in layouts and registries.

pub mod cosign;
pub mod dsse;
pub mod du;
pub mod keys;
pub mod provenance;
pub mod referrers;
pub mod sbom;

/// SPDX 2.3 JSON (an SBOM's artifact type).
pub const SPDX_JSON: &str = "application/spdx+json";
/// CycloneDX JSON (an SBOM's artifact type).
pub const CYCLONEDX_JSON: &str = "application/vnd.cyclonedx+json";
/// The artifact type of a provenance statement.
pub const IN_TOTO_JSON: &str = "application/vnd.in-toto+json";
/// The layer media type of a signed statement.
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The layer media type of a cosign signature.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The artifact type of a cosign signature manifest.
pub const COSIGN_SIGNATURE_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// The layer annotation that holds a cosign signature (base64).
pub const COSIGN_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The manifest annotation naming an attestation's predicate type.
pub const PREDICATE_TYPE_ANNOTATION: &str = "in-toto.io/predicate-type";
/// The `{}` config of artifacts.
pub const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
