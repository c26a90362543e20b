//! Supply-chain attachments of a DU: SBOMs, SLSA provenance, signatures, and the OCI 1.1
//! referrers that carry them in layouts and registries.

pub mod sbom;

/// The media type (and referrer `artifactType`) of an SPDX 2.3 JSON document.
pub const SPDX_JSON: &str = "application/spdx+json";
/// The media type (and referrer `artifactType`) of a CycloneDX JSON document.
pub const CYCLONEDX_JSON: &str = "application/vnd.cyclonedx+json";
