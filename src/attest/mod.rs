//! Supply-chain attachments of a DU: SBOMs, SLSA provenance, signatures, and the OCI 1.1
//! referrers that carry them in layouts and registries.

pub mod cosign;
pub mod dsse;
pub mod keys;
pub mod provenance;

/// The media type of a cosign signature layer: the simple signing payload it signs.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The `artifactType` of a cosign signature manifest kept as an OCI 1.1 referrer.
pub const COSIGN_SIGNATURE_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// The layer annotation that holds the base64 signature of the layer's payload.
pub const COSIGN_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
