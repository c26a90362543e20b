//! The OCI distribution client: pull an image from a registry into a layout, push an image
//! of a layout to a registry, and `login`/`logout` against the credential files podman and
//! docker share. It owns the wire protocol (blob HEAD/mount/upload, manifest GET/PUT), auth
//! (anonymous, basic, Bearer tokens), TLS settings and retries. It never prints (progress
//! goes through [`TransferProgress`]), never passes a secret anywhere but a registry's or a
//! token server's `Authorization` header, and never writes outside the layout it is given
//! and the auth file it is told to write.
//!
//! **Why our own client over oci-client.** The design named oci-client 0.18. It is used
//! nowhere here, for reasons each of which alone rules it out for a part of the issue:
//! its push takes every blob as a `Vec<u8>` (a 1 GiB layer would be 1 GiB of RAM, and the
//! issue caps peak RSS at 64 MiB); it does not read `auth.json`/`config.json` nor run
//! credential helpers; it exposes no hook to renew a token when a 401 arrives in the middle
//! of a push; and it is async, so every CLI call would start a tokio runtime to push a few
//! files. What remains of the protocol once those parts are replaced is small (a dozen
//! requests), so it is written here on a blocking HTTP/1.1 client, `ureq` 3 with rustls:
//! blobs stream from the file on disk with an explicit `Content-Length`, layers go up in
//! parallel on plain threads (three at a time), and the CLI calls these functions directly.
//! Manifests and descriptors are oci-spec 0.10 types, the same ones oci-client would use.
//!
//! Order of a push, chosen so that a registry never holds a manifest whose blobs are
//! missing and an interrupted push, rerun, uploads only what is missing: HEAD each blob,
//! mount or upload what is missing (config first, then layers), and PUT the manifest last.
//! The image's referrers follow it (`referrers`): their blobs, their manifests by digest,
//! then the fallback tags a registry without the referrers API needs.

pub(crate) mod auth;
mod bridge;
mod client;
pub mod credentials;
mod pull;
mod push;
mod rate;
mod referrers;
mod target;
mod tls;

pub use bridge::{ClientPerRegistry, RegistryClient, ReporterProgress};
pub use credentials::{login, logout, CredentialError, Credentials};
pub use pull::pull;
pub use push::push;
pub use rate::TransferLimits;
pub use referrers::{pull_referrers, push_referrers};
pub use target::RegistryTarget;
pub use tls::TlsError;

use crate::error_class::{Classify, ErrorClass};
use crate::image::Digest;
use crate::store::{ImageError, LayoutError};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// How to reach a registry and whom to present as.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// `USER:PASS` from `--creds`; wins over every credential file.
    pub creds: Option<Credentials>,
    /// `--authfile`: the only credential file read when given.
    pub authfile: Option<PathBuf>,
    /// `--tls-verify=false` sets this to `Some(false)`: certificates are not checked, and a
    /// registry that does not speak TLS is reached over plain HTTP. `None` means verify.
    pub tls_verify: Option<bool>,
    /// `--cert-dir`: `ca.crt` (and any `*.crt`) are trusted, `*.cert` + `*.key` is the
    /// client certificate. Default `/etc/containers/certs.d/HOST[:PORT]` if it exists.
    pub cert_dir: Option<PathBuf>,
    /// Talk plain HTTP. Also done, as docker does, for `localhost` and `127.0.0.1` when
    /// they do not answer TLS.
    pub plain_http: bool,
    /// `os/arch[/variant]` to pick from an index; linux/amd64 when unset.
    pub platform: Option<String>,
    /// A repository on the same registry that holds the blobs already: they are mounted
    /// (`POST ?mount=&from=`) instead of uploaded.
    pub mount_from: Option<String>,
    /// Blobs in flight at once during a push or pull (0 means the default, 3).
    pub parallel: usize,
    /// Upload every blob in chunks of this many bytes (PATCH) instead of one streamed PUT.
    /// Unset: monolithic, with chunked as the fallback when the registry refuses a large
    /// body (413).
    pub chunk_size: Option<u64>,
    pub retry: RetryPolicy,
    /// Minimum rate, idle timeout and overall deadline of transfers.
    pub transfer: TransferLimits,
}

impl RegistryOptions {
    /// Blobs in flight at once: `parallel`, or the default when it is 0.
    pub(crate) fn parallelism(&self) -> usize {
        match self.parallel {
            0 => push::DEFAULT_PARALLEL,
            n => n,
        }
    }
}

/// How often and how patiently to retry 5xx, 429 and broken connections.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts per request or blob, the first included.
    pub attempts: u32,
    /// Delay before the first retry; doubled each time.
    pub base_delay: Duration,
    /// Cap on one delay, also on a registry's `Retry-After`.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// Progress of blob transfers, rendered by the CLI. Called from several threads at once.
/// Every method has an empty default.
pub trait TransferProgress: Sync {
    /// A blob transfer starts (again, after a retry: the byte count restarts at zero).
    fn on_blob_start(&self, _digest: &Digest, _size: u64) {}
    /// `n` more bytes of the blob went over the wire.
    fn on_blob_bytes(&self, _digest: &Digest, _n: u64) {}
    /// The blob is on the other side: `skipped` when nothing was transferred (it was there
    /// already, or was mounted from another repository).
    fn on_blob_done(&self, _digest: &Digest, _skipped: bool) {}
    /// A request failed in a way worth retrying; the next attempt comes after `delay`.
    fn on_retry(&self, _what: &str, _attempt: u32, _delay: Duration, _reason: &str) {}
    /// The manifest was written (push) or read (pull).
    fn on_manifest(&self, _digest: &Digest, _media_type: &str) {}
    /// Something was left out or replaced, and the transfer goes on (a registry's
    /// referrer that names another subject, a fallback tag that is not an index).
    fn on_warning(&self, _message: &str) {}
}

/// A [`TransferProgress`] that ignores everything.
pub struct NoProgress;

impl TransferProgress for NoProgress {}

/// One entry of the distribution error envelope (`{"errors":[{"code","message"}]}`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct ErrorEntry {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// The error envelope of a failed response, possibly empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorEnvelope(pub Vec<ErrorEntry>);

impl ErrorEnvelope {
    /// Parses a response body; a body that is not the envelope keeps its first 200
    /// characters as the message, so the user sees what the registry said.
    pub fn parse(body: &[u8]) -> ErrorEnvelope {
        #[derive(serde::Deserialize)]
        struct Envelope {
            errors: Vec<ErrorEntry>,
        }
        if let Ok(envelope) = serde_json::from_slice::<Envelope>(body) {
            ErrorEnvelope(envelope.errors)
        } else {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                ErrorEnvelope(Vec::new())
            } else {
                ErrorEnvelope(vec![ErrorEntry {
                    code: String::new(),
                    message: text.chars().take(200).collect(),
                }])
            }
        }
    }

    pub fn has_code(&self, code: &str) -> bool {
        self.0.iter().any(|e| e.code == code)
    }
}

impl fmt::Display for ErrorEnvelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, entry) in self.0.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { "; " })?;
            match (entry.code.is_empty(), entry.message.is_empty()) {
                (false, false) => write!(f, "{} ({})", entry.code, entry.message)?,
                (false, true) => f.write_str(&entry.code)?,
                _ => f.write_str(&entry.message)?,
            }
        }
        Ok(())
    }
}

/// Everything that can go wrong talking to a registry; each variant names the registry
/// and, where there is one, the repository.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{registry}/{repository}: {action} failed: HTTP {status}{errors}{}", status_hint(*.status))]
    Status {
        registry: String,
        repository: String,
        action: String,
        status: u16,
        errors: ErrorEnvelope,
    },
    #[error("{registry}: the registry refused the user name or password (HTTP {status}{errors})")]
    LoginRefused {
        registry: String,
        status: u16,
        errors: ErrorEnvelope,
    },
    #[error("{registry}/{repository}: {action} failed after {attempts} attempt(s)")]
    Transport {
        registry: String,
        repository: String,
        action: String,
        attempts: u32,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("{registry}: cannot understand its authentication challenge {challenge:?}")]
    BadChallenge { registry: String, challenge: String },
    #[error("{registry}: token server {realm} refused the token request: HTTP {status}{errors}")]
    TokenRefused {
        registry: String,
        realm: String,
        status: u16,
        errors: ErrorEnvelope,
    },
    #[error("{registry}: token server {realm} is plain HTTP on another origin: credentials are not sent there in clear text (use --tls-verify=false only if that is intended)")]
    CleartextRealm { registry: String, realm: String },
    #[error("{registry}: token server {realm} answered without a token")]
    BadToken { registry: String, realm: String },
    #[error("{registry}/{repository}: upload of {digest} answered with an unusable Location {location:?}")]
    BadLocation {
        registry: String,
        repository: String,
        digest: Digest,
        location: String,
    },
    #[error("{registry}/{repository}: {what} {reference} has content {actual}, not the digest it was asked for")]
    DigestMismatch {
        registry: String,
        repository: String,
        what: &'static str,
        reference: String,
        actual: Digest,
    },
    #[error("{registry}/{repository}: {what} {reference} is larger than {limit} bytes")]
    TooLarge {
        registry: String,
        repository: String,
        what: &'static str,
        reference: String,
        limit: u64,
    },
    #[error("{registry}/{repository}: {reference} has unsupported media type {media_type:?} (OCI and Docker v2 schema 2 manifests and indexes are supported)")]
    UnsupportedMediaType {
        registry: String,
        repository: String,
        reference: String,
        media_type: String,
    },
    #[error("{registry}/{repository}: {what} {reference} is not valid JSON of its kind")]
    BadDocument {
        registry: String,
        repository: String,
        what: &'static str,
        reference: String,
        #[source]
        source: oci_spec::OciSpecError,
    },
    #[error("{registry}/{repository}: index {reference} has no {platform} manifest (it has: {})", .available.join(", "))]
    NoPlatform {
        registry: String,
        repository: String,
        reference: String,
        platform: String,
        available: Vec<String>,
    },
    #[error("{registry}/{repository}: blob {digest} failed to stream into the layout")]
    PullBlob {
        registry: String,
        repository: String,
        digest: Digest,
        #[source]
        source: Box<LayoutError>,
    },
    #[error("{path}: cannot read blob {digest} to upload it")]
    ReadBlob {
        path: PathBuf,
        digest: Digest,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{reference}: not a registry reference (expected docker://HOST[:PORT]/REPO[:TAG|@DIGEST])"
    )]
    NotARegistry { reference: String },
    #[error("invalid platform {platform:?}: expected OS/ARCH[/VARIANT], e.g. linux/arm64/v8")]
    BadPlatform { platform: String },
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl Classify for RegistryError {
    fn class(&self) -> ErrorClass {
        // Everything a registry transfer meets counts as the transfer failing, the store it
        // writes into and the credentials it sends included.
        match self {
            RegistryError::Status { .. }
            | RegistryError::LoginRefused { .. }
            | RegistryError::Transport { .. }
            | RegistryError::BadChallenge { .. }
            | RegistryError::TokenRefused { .. }
            | RegistryError::CleartextRealm { .. }
            | RegistryError::BadToken { .. }
            | RegistryError::BadLocation { .. }
            | RegistryError::DigestMismatch { .. }
            | RegistryError::TooLarge { .. }
            | RegistryError::UnsupportedMediaType { .. }
            | RegistryError::BadDocument { .. }
            | RegistryError::NoPlatform { .. }
            | RegistryError::PullBlob { .. }
            | RegistryError::ReadBlob { .. }
            | RegistryError::NotARegistry { .. }
            | RegistryError::BadPlatform { .. }
            | RegistryError::Layout(_)
            | RegistryError::Image(_)
            | RegistryError::Credentials(_)
            | RegistryError::Tls(_) => ErrorClass::Failure,
        }
    }
}

fn status_hint(status: u16) -> &'static str {
    match status {
        401 => " (check the credentials: --creds, --authfile or `solum-build login`)",
        403 => " (the credentials lack permission for this repository)",
        _ => "",
    }
}
