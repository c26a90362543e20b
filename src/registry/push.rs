//! Pushing one image of a layout: every blob the manifest names, then the manifest. It
//! reads blobs from the layout as they are sent (never a whole blob in memory) and writes
//! nothing locally.
//!
//! Per blob, in this order: `HEAD` (present: done, nothing sent); a cross-repository
//! mount when `mount_from` names another repository of the same registry (201: done; 202:
//! the registry could not mount and opened an upload session instead, which is used);
//! otherwise `POST` opens a session and one `PUT …?digest=` streams the file with its
//! `Content-Length`. When chunked uploads are asked for, or the registry refuses the one
//! large body with 413, the file goes in `PATCH` chunks instead; a chunk that fails is
//! resumed from the offset the registry reports (`GET` on the session, `Range: 0-N`).
//! Any other failure of a blob (a connection cut mid-stream, a 5xx) restarts that blob from
//! its `HEAD`, with backoff, a bounded number of times. The config goes first, then the
//! layers, a few at a time, and the manifest only once every blob is there.

use super::client::{Call, Client, Payload};
use super::{RegistryError, RegistryOptions, RegistryTarget, TransferProgress};
use crate::image::{media, Digest};
use crate::store::{Layout, LayoutError, ResolvedImage};
use oci_spec::image::Descriptor;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use ureq::http::{self, Response};
use ureq::Body;

/// Blobs in flight at once when the options do not say.
pub(crate) const DEFAULT_PARALLEL: usize = 3;

/// Pushes `image` (stored in `layout`) to `dest` and returns the manifest digest. The tag
/// is `dest.tag`, else `latest`; with `dest.digest` the manifest is put by digest, which
/// must then be the image's.
pub fn push(
    layout: &Layout,
    image: &ResolvedImage,
    dest: &RegistryTarget,
    options: &RegistryOptions,
    progress: &dyn TransferProgress,
) -> Result<Digest, RegistryError> {
    let client = Client::connect(dest, options, progress)?;
    let mount_from = options
        .mount_from
        .as_deref()
        .filter(|from| *from != dest.repository);
    let mut scopes = format!("repository:{}:pull,push", dest.repository);
    if let Some(from) = mount_from {
        let _ = write!(scopes, " repository:{from}:pull");
    }
    let pusher = Pusher {
        client: &client,
        layout,
        scopes: &scopes,
        mount_from,
        chunk_size: options.chunk_size,
    };

    // Every blob must be in the layout before anything is sent: a push that would stop
    // half way for a missing local blob is refused up front.
    let blobs = image.blobs();
    for blob in &blobs {
        let digest = descriptor_digest(blob, layout)?;
        if !layout.has_blob(&digest) {
            return Err(LayoutError::MissingBlob {
                layout: layout.root().to_path_buf(),
                digest,
            }
            .into());
        }
    }
    let (config, layers) = blobs.split_first().expect("blobs() starts with the config");
    pusher.blob(config)?;
    let mut seen = BTreeSet::new();
    let layers: Vec<&Descriptor> = layers
        .iter()
        .filter(|d| seen.insert(d.digest().to_string()))
        .collect();
    let parallel = options.parallelism();
    for_each_bounded(&layers, parallel, |layer| pusher.blob(layer))?;
    pusher.manifest(image, dest)
}

/// Runs `work` on every item with at most `parallel` at a time; the first error stops the
/// items not yet started and is returned once the running ones finish.
pub(crate) fn for_each_bounded<T: Sync>(
    items: &[T],
    parallel: usize,
    work: impl Fn(&T) -> Result<(), RegistryError> + Sync,
) -> Result<(), RegistryError> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..parallel.clamp(1, items.len().max(1)) {
            scope.spawn(|| {
                while !failed.load(Ordering::SeqCst) {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(index) else { break };
                    if let Err(error) = work(item) {
                        failed.store(true, Ordering::SeqCst);
                        first_error
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .get_or_insert(error);
                    }
                }
            });
        }
    });
    match first_error
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

fn descriptor_digest(descriptor: &Descriptor, layout: &Layout) -> Result<Digest, RegistryError> {
    Ok(crate::store::image::descriptor_digest(layout, descriptor)?)
}

pub(super) struct Pusher<'a, 'p> {
    pub client: &'a Client<'p>,
    pub layout: &'a Layout,
    pub scopes: &'a str,
    pub mount_from: Option<&'a str>,
    pub chunk_size: Option<u64>,
}

/// How a blob got to the registry.
enum Sent {
    /// It was there, or was mounted: nothing transferred.
    Skipped,
    Uploaded,
}

impl Pusher<'_, '_> {
    fn call<'c>(&'c self, method: &'static str, url: String, action: String) -> Call<'c> {
        Call {
            method,
            url,
            scopes: self.scopes,
            headers: Vec::new(),
            payload: Payload::Empty,
            retry: true,
            action,
        }
    }

    /// One blob, restarted from its HEAD when an attempt fails in a retryable way.
    pub(super) fn blob(&self, descriptor: &Descriptor) -> Result<(), RegistryError> {
        let digest = descriptor_digest(descriptor, self.layout)?;
        let size = descriptor.size();
        let attempts = self.client.retry.attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_blob(&digest, size) {
                Ok(sent) => {
                    let skipped = matches!(sent, Sent::Skipped);
                    self.client.progress.on_blob_done(&digest, skipped);
                    return Ok(());
                }
                Err(error) if attempt < attempts && blob_retryable(&error) => {
                    let delay = self.client.backoff(attempt);
                    self.client.progress.on_retry(
                        &format!("upload blob {digest}"),
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

    fn try_blob(&self, digest: &Digest, size: u64) -> Result<Sent, RegistryError> {
        let blob_url = self.client.url(&format!("/blobs/{digest}"));
        let response =
            self.client
                .send(&self.call("HEAD", blob_url, format!("HEAD blob {digest}")))?;
        match response.status().as_u16() {
            200 => return Ok(Sent::Skipped),
            404 => {}
            _ => {
                return Err(self
                    .client
                    .failure(&format!("HEAD blob {digest}"), response))
            }
        }

        let session = match self.mount_from {
            Some(from) => {
                let url = self.client.url(&format!(
                    "/blobs/uploads/?mount={digest}&from={}",
                    super::auth::encode_query(from)
                ));
                let action = format!("mount blob {digest} from {from}");
                let response = self.client.send(&self.call("POST", url, action.clone()))?;
                match response.status().as_u16() {
                    201 => return Ok(Sent::Skipped),
                    202 => self.location(&response, digest)?,
                    _ => return Err(self.client.failure(&action, response)),
                }
            }
            None => self.open_session(digest)?,
        };

        self.client.progress.on_blob_start(digest, size);
        match self.chunk_size {
            Some(chunk) => self.upload_chunked(session, digest, size, chunk),
            None => match self.upload_monolithic(&session, digest, size)? {
                Some(()) => Ok(Sent::Uploaded),
                // 413: the registry (or a proxy before it) will not take one large body.
                None => {
                    let session = self.open_session(digest)?;
                    self.client.progress.on_blob_start(digest, size);
                    self.upload_chunked(session, digest, size, FALLBACK_CHUNK)
                }
            },
        }
    }

    fn open_session(&self, digest: &Digest) -> Result<String, RegistryError> {
        let url = self.client.url("/blobs/uploads/");
        let action = format!("start upload of {digest}");
        let response = self.client.send(&self.call("POST", url, action.clone()))?;
        match response.status().as_u16() {
            202 => self.location(&response, digest),
            _ => Err(self.client.failure(&action, response)),
        }
    }

    fn location(
        &self,
        response: &Response<Body>,
        digest: &Digest,
    ) -> Result<String, RegistryError> {
        let location = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        self.client
            .resolve_location(location)
            .ok_or_else(|| RegistryError::BadLocation {
                registry: self.client.registry.clone(),
                repository: self.client.repository.clone(),
                digest: digest.clone(),
                location: location.to_string(),
            })
    }

    /// One streamed PUT of the whole blob. `None` when the registry refused the size (413).
    fn upload_monolithic(
        &self,
        session: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<Option<()>, RegistryError> {
        let path = self.layout.blob_path(digest);
        let action = format!("upload blob {digest}");
        let response = self.client.send(&Call {
            method: "PUT",
            url: with_digest(session, digest),
            scopes: self.scopes,
            headers: vec![("Content-Type", "application/octet-stream".to_string())],
            payload: Payload::File {
                path: &path,
                offset: 0,
                len: size,
                digest,
                progress: self.client.progress,
            },
            // A failed PUT leaves the session in an unknown state: the whole blob restarts.
            retry: false,
            action: action.clone(),
        })?;
        match response.status().as_u16() {
            201 | 204 => Ok(Some(())),
            413 => Ok(None),
            _ => Err(self.client.failure(&action, response)),
        }
    }

    /// PATCH chunks, resuming from the registry's offset after a failed chunk, then PUT.
    fn upload_chunked(
        &self,
        mut session: String,
        digest: &Digest,
        size: u64,
        chunk: u64,
    ) -> Result<Sent, RegistryError> {
        let path = self.layout.blob_path(digest);
        let chunk = chunk.max(1);
        let mut offset = 0u64;
        let mut resumes = 0;
        while offset < size {
            let len = chunk.min(size - offset);
            let action = format!("upload chunk {offset}-{} of {digest}", offset + len - 1);
            let sent = self.client.send(&Call {
                method: "PATCH",
                url: session.clone(),
                scopes: self.scopes,
                headers: vec![
                    ("Content-Type", "application/octet-stream".to_string()),
                    ("Content-Range", format!("{offset}-{}", offset + len - 1)),
                ],
                payload: Payload::File {
                    path: &path,
                    offset,
                    len,
                    digest,
                    progress: self.client.progress,
                },
                retry: false,
                action: action.clone(),
            });
            let failed = match sent {
                Ok(response) if response.status().as_u16() == 202 => {
                    session = self.location(&response, digest)?;
                    offset += len;
                    continue;
                }
                Ok(response) => self.client.failure(&action, response),
                Err(error) => error,
            };
            if resumes >= self.client.retry.attempts || !blob_retryable(&failed) {
                return Err(failed);
            }
            resumes += 1;
            let delay = self.client.backoff(resumes);
            self.client
                .progress
                .on_retry(&action, resumes, delay, &failed.to_string());
            std::thread::sleep(delay);
            // Ask the registry how much it kept; a session it lost restarts the blob.
            let (next_session, kept) = self.upload_status(&session, digest)?;
            session = next_session;
            offset = kept;
        }
        let action = format!("finish upload of {digest}");
        let response = self.client.send(&Call {
            method: "PUT",
            url: with_digest(&session, digest),
            scopes: self.scopes,
            headers: Vec::new(),
            payload: Payload::Empty,
            retry: false,
            action: action.clone(),
        })?;
        match response.status().as_u16() {
            201 | 204 => Ok(Sent::Uploaded),
            _ => Err(self.client.failure(&action, response)),
        }
    }

    /// `GET` on an upload session: its current location and how many bytes it holds.
    fn upload_status(
        &self,
        session: &str,
        digest: &Digest,
    ) -> Result<(String, u64), RegistryError> {
        let action = format!("upload status of {digest}");
        let response = self
            .client
            .send(&self.call("GET", session.to_string(), action.clone()))?;
        if response.status().as_u16() != 204 {
            return Err(self.client.failure(&action, response));
        }
        // `Range: 0-N` means N+1 bytes are stored; `0-0` is ambiguous in the spec and
        // distribution sends it for an empty session too, so it is read as nothing kept.
        let kept = response
            .headers()
            .get(http::header::RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once('-'))
            .and_then(|(_, end)| end.trim().parse::<u64>().ok())
            .map_or(0, |end| if end == 0 { 0 } else { end + 1 });
        let next = match response.headers().get(http::header::LOCATION) {
            Some(_) => self.location(&response, digest)?,
            None => session.to_string(),
        };
        Ok((next, kept))
    }

    fn manifest(
        &self,
        image: &ResolvedImage,
        dest: &RegistryTarget,
    ) -> Result<Digest, RegistryError> {
        let digest = image.manifest_digest.clone();
        if let Some(wanted) = &dest.digest {
            if wanted != &digest {
                return Err(RegistryError::DigestMismatch {
                    registry: dest.registry.clone(),
                    repository: dest.repository.clone(),
                    what: "manifest",
                    reference: wanted.to_string(),
                    actual: digest,
                });
            }
        }
        let reference = match (&dest.tag, &dest.digest) {
            (Some(tag), _) => tag.clone(),
            (None, Some(digest)) => digest.to_string(),
            (None, None) => "latest".to_string(),
        };
        // The manifest's own mediaType field wins: a Docker v2s2 manifest stored as it is
        // must be put under its Docker type or the registry rejects it.
        let media_type = image.manifest.media_type().as_ref().map_or_else(
            || image.descriptor.media_type().to_string(),
            std::string::ToString::to_string,
        );
        let media_type = if media::is_manifest(&media_type) {
            media_type
        } else {
            media::OCI_MANIFEST.to_string()
        };
        let action = format!("PUT manifest {reference}");
        let attempts = self.client.retry.attempts.max(1);
        let mut attempt = 1;
        loop {
            let response = self.client.send(&Call {
                method: "PUT",
                url: self.client.url(&format!("/manifests/{reference}")),
                scopes: self.scopes,
                headers: vec![("Content-Type", media_type.clone())],
                payload: Payload::Bytes(&image.manifest_bytes),
                retry: true,
                action: action.clone(),
            })?;
            if response.status().as_u16() == 201 {
                break;
            }
            let failed = self.client.failure(&action, response);
            // Every blob was confirmed before the PUT; a registry whose storage other
            // clients are writing the same blobs to at that moment (docker-registry's
            // filesystem driver rewrites a blob's link in place) may not see one for an
            // instant (or reads its half-written link as an invalid digest). Asked again a
            // little later, it does; any other refusal stands.
            let unseen_blob = matches!(
                &failed,
                RegistryError::Status { status: 400, errors, .. }
                    if errors.has_code("MANIFEST_BLOB_UNKNOWN") || errors.has_code("DIGEST_INVALID")
            );
            if !unseen_blob || attempt >= attempts {
                return Err(failed);
            }
            let delay = self.client.backoff(attempt);
            self.client
                .progress
                .on_retry(&action, attempt, delay, &failed.to_string());
            std::thread::sleep(delay);
            attempt += 1;
        }
        self.client.progress.on_manifest(&digest, &media_type);
        Ok(digest)
    }
}

/// The chunk size used when the registry refuses a monolithic upload.
const FALLBACK_CHUNK: u64 = 16 << 20;

/// `session` with `digest=` added to its query.
fn with_digest(session: &str, digest: &Digest) -> String {
    let separator = if session.contains('?') { '&' } else { '?' };
    format!(
        "{session}{separator}digest={}",
        super::auth::encode_query(&digest.to_string())
    )
}

/// Whether a failed blob upload is worth restarting: broken connections, 5xx, 429, and
/// the 400/404 a registry answers when a cut stream left its session short or gone.
fn blob_retryable(error: &RegistryError) -> bool {
    match error {
        RegistryError::Transport { .. } => true,
        RegistryError::Status { status, errors, .. } => match status {
            429 | 500..=599 => true,
            400 | 404 | 416 => {
                errors.0.is_empty()
                    || [
                        "BLOB_UPLOAD_INVALID",
                        "BLOB_UPLOAD_UNKNOWN",
                        "DIGEST_INVALID",
                        "SIZE_INVALID",
                    ]
                    .iter()
                    .any(|code| errors.has_code(code))
            }
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_joins_the_session_query_either_way() {
        let digest = Digest::of_bytes(b"x");
        let hex = digest.hex();
        assert_eq!(
            with_digest("http://r/v2/a/blobs/uploads/u1", &digest),
            format!("http://r/v2/a/blobs/uploads/u1?digest=sha256%3A{hex}")
        );
        assert_eq!(
            with_digest("http://r/v2/a/blobs/uploads/u1?_state=abc", &digest),
            format!("http://r/v2/a/blobs/uploads/u1?_state=abc&digest=sha256%3A{hex}")
        );
    }

    #[test]
    fn bounded_parallel_work_runs_every_item_and_reports_the_first_error() {
        let seen = Mutex::new(Vec::new());
        for_each_bounded(&[1, 2, 3, 4, 5], 3, |n| {
            seen.lock().unwrap().push(*n);
            Ok(())
        })
        .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, [1, 2, 3, 4, 5]);
        let error = for_each_bounded(&[1, 2, 3], 2, |n| {
            if *n == 2 {
                Err(RegistryError::BadPlatform {
                    platform: n.to_string(),
                })
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert!(matches!(error, RegistryError::BadPlatform { platform } if platform == "2"));
    }
}
