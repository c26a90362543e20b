//! The flags that choose a DU's attachments, shared by `build` and `serve`: the signing
//! key, and the switch that leaves them out. The key is read once, at the edge, so a wrong
//! path or a malformed key fails before any build starts.

use crate::attest::du::AttestSettings;
use crate::attest::keys::SigningKey;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone, Debug, Default, clap::Args)]
pub struct AttestFlags {
    /// Sign every DU: its cosign signature (podman and skopeo verify it with a
    /// `sigstoreSigned` policy) and its SLSA provenance (a DSSE envelope). A P-256 private
    /// key in PEM, as `solum-build keygen` writes it.
    #[arg(long, value_name = "FILE", env = "SOLUM_BUILD_SIGN_KEY")]
    pub sign_key: Option<PathBuf>,
    /// Attach nothing to the DU: no SBOMs, no provenance, no signature.
    #[arg(long, conflicts_with = "sign_key")]
    pub no_attestations: bool,
}

impl AttestFlags {
    /// The settings, with the key loaded.
    pub fn settings(&self) -> anyhow::Result<AttestSettings> {
        let sign_key = match &self.sign_key {
            Some(path) => Some(Arc::new(SigningKey::load(path)?)),
            None => None,
        };
        Ok(AttestSettings {
            disabled: self.no_attestations,
            sign_key,
        })
    }
}
