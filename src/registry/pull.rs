//! Pulling one image into a layout: the manifest (narrowed to one platform when the
//! reference names an index or a Docker manifest list), its config and its layers. Every
//! document and blob is verified against its digest while it streams to disk, and only
//! verified content ever lands under `blobs/` (that is `Layout::put_blob`'s contract). It
//! does not tag: the caller names the manifest descriptor it gets back.
//!
//! Order: manifest (and index) first to learn the blobs, blobs next (a few at a time,
//! skipping those the layout has), the manifest blob last, so a layout never holds a
//! pulled manifest whose blobs are missing. Docker v2 schema 2 manifests are stored byte
//! for byte, under their Docker media type.

use super::client::{Call, Client, Payload};
use super::push::for_each_bounded;
use super::{RegistryError, RegistryOptions, RegistryTarget, TransferLimits, TransferProgress};
use crate::image::platform::{self, Platform};
use crate::image::{media, Digest};
use crate::store::image::DOCUMENT_LIMIT;
use crate::store::{Layout, LayoutError};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};
use std::collections::BTreeSet;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use ureq::http;

/// What `GET /manifests/…` accepts: OCI and Docker v2s2, manifests and indexes.
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// Pulls `source` into `layout` and returns the descriptor of the platform manifest (media
/// type, digest, size), ready to be tagged. Blobs the layout has already are not fetched.
pub fn pull(
    source: &RegistryTarget,
    layout: &Layout,
    options: &RegistryOptions,
    progress: &dyn TransferProgress,
) -> Result<Descriptor, RegistryError> {
    let platform = Platform::parse(options.platform.as_deref()).map_err(
        |platform::PlatformError::Malformed { platform }| RegistryError::BadPlatform { platform },
    )?;
    let client = Client::connect(source, options, progress)?;
    let scopes = format!("repository:{}:pull", source.repository);
    let puller = Puller {
        client: &client,
        layout,
        scopes: &scopes,
    };

    let reference = source.reference();
    let mut document = puller.manifest(&reference, source.digest.as_ref())?;
    if media::is_index(&document.media_type) {
        let index = ImageIndex::from_reader(&document.bytes[..])
            .map_err(|e| puller.bad_document("index", &reference, e))?;
        let chosen =
            platform::select(&index, &platform, options.platform.is_none()).ok_or_else(|| {
                RegistryError::NoPlatform {
                    registry: client.registry.clone(),
                    repository: client.repository.clone(),
                    reference: reference.clone(),
                    platform: platform.to_string(),
                    available: index
                        .manifests()
                        .iter()
                        .filter_map(|d| d.platform().as_ref())
                        .map(|p| Platform::of(p).to_string())
                        .collect(),
                }
            })?;
        let child = Digest::try_from(chosen.digest()).map_err(|_| RegistryError::BadDocument {
            registry: client.registry.clone(),
            repository: client.repository.clone(),
            what: "index",
            reference: reference.clone(),
            source: oci_spec::OciSpecError::Other(format!("malformed digest {}", chosen.digest())),
        })?;
        // The index is kept too, so that a later push of the whole index can find it.
        layout.put_bytes(&document.bytes)?;
        document = puller.manifest(&child.to_string(), Some(&child))?;
    }
    if !media::is_manifest(&document.media_type) {
        return Err(RegistryError::UnsupportedMediaType {
            registry: client.registry.clone(),
            repository: client.repository.clone(),
            reference,
            media_type: document.media_type,
        });
    }
    let manifest = ImageManifest::from_reader(&document.bytes[..])
        .map_err(|e| puller.bad_document("manifest", &reference, e))?;
    let mut seen = BTreeSet::new();
    let mut blobs = vec![manifest.config().clone()];
    blobs.extend(manifest.layers().iter().cloned());
    blobs.retain(|d| seen.insert(d.digest().to_string()));
    let parallel = options.parallelism();
    for_each_bounded(&blobs, parallel, |blob| puller.blob(blob))?;
    layout.put_bytes(&document.bytes)?;
    progress.on_manifest(&document.digest, &document.media_type);
    Ok(Descriptor::new(
        MediaType::from(document.media_type.as_str()),
        document.bytes.len() as u64,
        &document.digest,
    ))
}

/// How long a [`fetch_manifest`] may take, retries included, when the options allow longer.
pub const LOOKUP_DEADLINE: Duration = Duration::from_secs(30);

/// The manifest (or index) `source` names, read whole and checked against `source.digest`
/// when it has one: its bytes and digest. No blob is fetched and nothing is stored. A
/// lookup (a cache entry that may not be there), so it ends within [`LOOKUP_DEADLINE`]:
/// a registry that does not answer costs that long, not a transfer's retries.
pub fn fetch_manifest(
    source: &RegistryTarget,
    options: &RegistryOptions,
    progress: &dyn TransferProgress,
) -> Result<(Vec<u8>, Digest), RegistryError> {
    let deadline = (options.transfer.deadline).map_or(LOOKUP_DEADLINE, |d| d.min(LOOKUP_DEADLINE));
    let options = RegistryOptions {
        transfer: TransferLimits {
            deadline: Some(deadline),
            ..options.transfer.clone()
        },
        ..options.clone()
    };
    let client = Client::connect(source, &options, progress)?;
    let scopes = format!("repository:{}:pull", source.repository);
    let document = get_manifest(
        &client,
        &scopes,
        &source.reference(),
        source.digest.as_ref(),
    )?;
    Ok((document.bytes, document.digest))
}

/// A manifest or index as fetched.
pub(super) struct Document {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

pub(super) struct Puller<'a, 'p> {
    pub client: &'a Client<'p>,
    pub layout: &'a Layout,
    pub scopes: &'a str,
}

impl Puller<'_, '_> {
    fn bad_document(
        &self,
        what: &'static str,
        reference: &str,
        source: oci_spec::OciSpecError,
    ) -> RegistryError {
        RegistryError::BadDocument {
            registry: self.client.registry.clone(),
            repository: self.client.repository.clone(),
            what,
            reference: reference.to_string(),
            source,
        }
    }

    fn manifest(
        &self,
        reference: &str,
        expected: Option<&Digest>,
    ) -> Result<Document, RegistryError> {
        get_manifest(self.client, self.scopes, reference, expected)
    }

    /// One blob into the layout, restarted when the stream breaks or does not verify.
    pub(super) fn blob(&self, descriptor: &Descriptor) -> Result<(), RegistryError> {
        let digest = crate::store::image::descriptor_digest(self.layout, descriptor)?;
        let size = descriptor.size();
        let progress = self.client.progress;
        if self.layout.has_blob(&digest) {
            // Skipping the download must not skip the check a download would have had.
            self.layout.check_blob_size(&digest, size)?;
            progress.on_blob_done(&digest, true);
            return Ok(());
        }
        let attempts = self.client.retry.attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut retryable = false;
            match self.try_blob(&digest, size, &mut retryable) {
                Ok(()) => {
                    progress.on_blob_done(&digest, false);
                    return Ok(());
                }
                Err(error) if retryable && attempt < attempts && !self.client.past_deadline() => {
                    let delay = self.client.backoff(attempt);
                    progress.on_retry(
                        &format!("download blob {digest}"),
                        attempt,
                        delay,
                        &error.to_string(),
                    );
                    std::thread::sleep(delay);
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// One attempt; on failure `retryable` says whether another attempt could do better.
    fn try_blob(
        &self,
        digest: &Digest,
        size: u64,
        retryable: &mut bool,
    ) -> Result<(), RegistryError> {
        let action = format!("GET blob {digest}");
        let response = self
            .client
            .send(&Call {
                method: "GET",
                url: self.client.url(&format!("/blobs/{digest}")),
                scopes: self.scopes,
                headers: Vec::new(),
                payload: Payload::Empty,
                retry: true,
                action: action.clone(),
            })
            .inspect_err(|e| *retryable = matches!(e, RegistryError::Transport { .. }))?;
        if response.status().as_u16() != 200 {
            let status = response.status().as_u16();
            *retryable = status == 429 || status >= 500;
            return Err(self.client.failure(&action, response));
        }
        self.client.progress.on_blob_start(digest, size);
        let network_failed = AtomicBool::new(false);
        // One byte more than the descriptor says is read, so that an oversized blob is
        // caught as a size mismatch instead of being cut to fit.
        let mut reader = NetworkReader {
            inner: self.client.guarded_reader(response).take(size + 1),
            digest,
            progress: self.client.progress,
            failed: &network_failed,
        };
        match self.layout.put_blob(&mut reader, Some((digest, size))) {
            Ok(_) => Ok(()),
            Err(source) => {
                // A broken or short stream, or content that does not match, may be the
                // network's fault; a disk that cannot be written is not.
                *retryable = network_failed.load(Ordering::SeqCst)
                    || matches!(
                        source,
                        LayoutError::DigestMismatch { .. } | LayoutError::SizeMismatch { .. }
                    );
                Err(RegistryError::PullBlob {
                    registry: self.client.registry.clone(),
                    repository: self.client.repository.clone(),
                    digest: digest.clone(),
                    source: Box::new(source),
                })
            }
        }
    }
}

/// Reports bytes as they arrive and remembers whether the network failed (as opposed to
/// the disk the layout writes to).
struct NetworkReader<'a, R> {
    inner: R,
    digest: &'a Digest,
    progress: &'a dyn TransferProgress,
    failed: &'a AtomicBool,
}

impl<R: Read> Read for NetworkReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                if n > 0 {
                    self.progress.on_blob_bytes(self.digest, n as u64);
                }
                Ok(n)
            }
            Err(e) => {
                self.failed.store(true, Ordering::SeqCst);
                Err(e)
            }
        }
    }
}

/// `GET /manifests/{reference}`, read whole (it is small, at most `DOCUMENT_LIMIT`),
/// checked against `expected`.
pub(super) fn get_manifest(
    client: &Client<'_>,
    scopes: &str,
    reference: &str,
    expected: Option<&Digest>,
) -> Result<Document, RegistryError> {
    let action = format!("GET manifest {reference}");
    let response = client.send(&Call {
        method: "GET",
        url: client.url(&format!("/manifests/{reference}")),
        scopes,
        headers: vec![("Accept", ACCEPT.to_string())],
        payload: Payload::Empty,
        retry: true,
        action: action.clone(),
    })?;
    if response.status().as_u16() != 200 {
        return Err(client.failure(&action, response));
    }
    let header_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_string());
    let mut bytes = Vec::new();
    let read = client
        .guarded_reader(response)
        .take(DOCUMENT_LIMIT + 1)
        .read_to_end(&mut bytes);
    if let Err(source) = read {
        return Err(RegistryError::Transport {
            registry: client.registry.clone(),
            repository: client.repository.clone(),
            action: action.clone(),
            attempts: 1,
            source: Box::new(ureq::Error::Io(source)),
        });
    }
    if bytes.len() as u64 > DOCUMENT_LIMIT {
        return Err(RegistryError::TooLarge {
            registry: client.registry.clone(),
            repository: client.repository.clone(),
            what: "manifest",
            reference: reference.to_string(),
            limit: DOCUMENT_LIMIT,
        });
    }
    let digest = Digest::of_bytes(&bytes);
    if let Some(expected) = expected {
        if &digest != expected {
            return Err(RegistryError::DigestMismatch {
                registry: client.registry.clone(),
                repository: client.repository.clone(),
                what: "manifest",
                reference: reference.to_string(),
                actual: digest,
            });
        }
    }
    // The document's own mediaType field is what its digest covers; a registry's
    // Content-Type is the fallback (and the only source for old Docker lists).
    let field = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("mediaType")?.as_str().map(str::to_owned));
    let media_type = field
        .or(header_type)
        .unwrap_or_else(|| media::OCI_MANIFEST.to_string());
    Ok(Document {
        bytes,
        media_type,
        digest,
    })
}
