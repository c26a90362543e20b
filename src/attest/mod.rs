//! Supply-chain attachments of a DU: SBOMs, SLSA provenance, signatures, and the OCI 1.1
//! referrers that carry them in layouts and registries.

pub mod provenance;
