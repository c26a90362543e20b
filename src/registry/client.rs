//! One registry connection: the HTTP agent with its TLS settings, the choice of https or
//! plain http, the authentication of every request, and the retry loop. Requests are
//! described by a [`Call`]; what a response means is for `push` and `pull` to decide, so
//! this file knows nothing of blobs or manifests beyond streaming a file as a body.
//!
//! Order inside [`Client::send`]: add the `Authorization` the registry asked for (a cached
//! Bearer token, fetched on demand), send, and on a 401 learn the new challenge, drop the
//! refused token and send again (at most twice: a token that expired in the middle of a
//! push is renewed this way). Around each send, 5xx, 429 and broken connections are retried
//! with exponential backoff and the registry's `Retry-After`, when the call allows it.

use super::auth::{parse_challenge, Challenge, TokenCache};
use super::credentials::{self, Credentials};
use super::target::{is_loopback, RegistryTarget};
use super::{tls, ErrorEnvelope, RegistryError, RegistryOptions, RetryPolicy, TransferProgress};
use crate::image::Digest;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use ureq::http::{self, Response};
use ureq::{Body, SendBody};

/// The body of a request.
pub(crate) enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// `len` bytes of a file from `offset`, read as they are sent; each byte sent is
    /// reported to `progress` under `digest`.
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
        digest: &'a Digest,
        progress: &'a dyn TransferProgress,
    },
}

/// One request to the registry.
pub(crate) struct Call<'a> {
    pub method: &'static str,
    pub url: String,
    /// The token scopes the request needs, space-separated (`repository:a/b:pull,push`).
    pub scopes: &'a str,
    pub headers: Vec<(&'static str, String)>,
    pub payload: Payload<'a>,
    /// Retry 5xx/429/broken connections here. Off for requests whose retry must restart a
    /// larger unit (the PUT that ends an upload session).
    pub retry: bool,
    /// For messages: `PUT manifest 1.0`, `HEAD blob sha256:…`.
    pub action: String,
}

pub(crate) struct Client<'p> {
    agent: ureq::Agent,
    pub registry: String,
    pub repository: String,
    /// `https://host[:port]` or `http://host[:port]`.
    base: String,
    credentials: Option<Credentials>,
    /// The user accepted clear text for this registry (`--tls-verify=false`, plain http,
    /// or a loopback registry reached over http): an `http://` token realm may then get
    /// the credentials.
    cleartext_ok: bool,
    challenge: Mutex<Option<Challenge>>,
    tokens: TokenCache,
    pub retry: RetryPolicy,
    pub transfer: super::TransferLimits,
    /// When the whole operation must be over (from `transfer.deadline`).
    pub deadline: Option<Instant>,
    pub progress: &'p dyn TransferProgress,
}

/// What to do after a failed attempt.
enum Verdict {
    Retry(String, Option<Duration>),
    Stop,
}

impl<'p> Client<'p> {
    /// Builds the agent for the target's registry and pings `/v2/`, which settles https
    /// versus plain http and tells how the registry wants to be authenticated.
    pub(crate) fn connect(
        target: &RegistryTarget,
        options: &RegistryOptions,
        progress: &'p dyn TransferProgress,
    ) -> Result<Client<'p>, RegistryError> {
        let host = target.api_host().to_string();
        let credentials = credentials::lookup(target, options)?;
        let tls = tls::tls_config(&target.registry, options)?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls)
            .user_agent(concat!("solum-build/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(300)))
            .timeout_per_read(Some(options.transfer.idle_timeout))
            // No single request outlives the operation's deadline, whatever it reads.
            .timeout_global(options.transfer.deadline)
            .max_idle_connections_per_host(8)
            .build()
            .into();
        let mut client = Client {
            agent,
            registry: target.registry.clone(),
            repository: target.repository.clone(),
            base: format!("https://{host}"),
            credentials,
            cleartext_ok: false,
            challenge: Mutex::new(None),
            tokens: TokenCache::default(),
            retry: options.retry.clone(),
            transfer: options.transfer.clone(),
            deadline: options.transfer.deadline.map(|d| Instant::now() + d),
            progress,
        };
        let insecure_allowed = is_loopback(&host) || options.tls_verify == Some(false);
        let ping = if options.plain_http {
            client.base = format!("http://{host}");
            client.ping(true)
        } else if insecure_allowed {
            // One try over TLS; a registry that does not speak it is reached over plain
            // http, as docker does for loopback and podman for --tls-verify=false.
            match client.ping(false) {
                Err(RegistryError::Transport { .. }) => {
                    client.base = format!("http://{host}");
                    client.ping(true)
                }
                other => other,
            }
        } else {
            client.ping(true)
        };
        *client
            .challenge
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = ping?;
        client.cleartext_ok = options.plain_http
            || options.tls_verify == Some(false)
            || (is_loopback(&host) && client.base.starts_with("http://"));
        Ok(client)
    }

    /// `GET /v2/`: 200 means no auth, 401 carries the challenge.
    fn ping(&self, retry: bool) -> Result<Option<Challenge>, RegistryError> {
        let url = format!("{}/v2/", self.base);
        let action = format!("GET {url}");
        let response = self.with_retries(&action, retry, || self.agent.get(&url).call())?;
        match response.status().as_u16() {
            401 => self.challenge_of(&response).map(Some),
            200..=299 => Ok(None),
            _ => Err(self.failure(&action, response)),
        }
    }

    fn challenge_of(&self, response: &Response<Body>) -> Result<Challenge, RegistryError> {
        let header = response
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        parse_challenge(header).ok_or_else(|| RegistryError::BadChallenge {
            registry: self.registry.clone(),
            challenge: header.to_string(),
        })
    }

    /// `{base}/v2/{repository}{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/v2/{}{}", self.base, self.repository, path)
    }

    /// Resolves a `Location` header against the registry: absolute URLs are kept, paths
    /// are joined to the base.
    pub(crate) fn resolve_location(&self, location: &str) -> Option<String> {
        if location.starts_with("http://") || location.starts_with("https://") {
            Some(location.to_string())
        } else if location.starts_with('/') {
            Some(format!("{}{location}", self.base))
        } else if !location.is_empty() {
            // Relative to the uploads folder the request was sent to.
            Some(format!(
                "{}/v2/{}/blobs/uploads/{location}",
                self.base, self.repository
            ))
        } else {
            None
        }
    }

    /// Whether `url` has the registry's scheme, host and port.
    pub(crate) fn is_own_origin(&self, url: &str) -> bool {
        match (origin(url), origin(&self.base)) {
            (Some(theirs), Some(ours)) => theirs == ours,
            _ => false,
        }
    }

    /// The `Authorization` header for `scopes`, fetching a token when needed.
    fn authorization(&self, scopes: &str) -> Result<Option<String>, RegistryError> {
        let challenge = self
            .challenge
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self
                .credentials
                .as_ref()
                .map(super::credentials::Credentials::basic_header)),
            Some(Challenge::Bearer { realm, service }) => {
                let token = match self.tokens.get(scopes) {
                    Some(token) => token,
                    None => self.tokens.fetch(
                        &self.agent,
                        (&self.registry, &self.repository),
                        &realm,
                        service.as_deref(),
                        scopes,
                        self.credentials.as_ref(),
                        self.cleartext_ok,
                    )?,
                };
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Sends a call (see the module doc for the order of auth and retries). Any status that
    /// is not retried comes back as a response for the caller to judge.
    pub(crate) fn send(&self, call: &Call) -> Result<Response<Body>, RegistryError> {
        let mut auth_rounds = 0;
        loop {
            let authorization = self.authorization(call.scopes)?;
            let response = self.with_retries(&call.action, call.retry, || {
                self.attempt(call, authorization.as_deref())
            })?;
            if response.status().as_u16() != 401 || auth_rounds == 2 {
                return Ok(response);
            }
            auth_rounds += 1;
            let challenge = self.challenge_of(&response)?;
            let previous = self
                .challenge
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .replace(challenge.clone());
            self.tokens.invalidate(call.scopes);
            // Basic auth refused twice with the same credentials will not get better.
            if challenge == Challenge::Basic && previous == Some(Challenge::Basic) {
                return Ok(response);
            }
            if self.credentials.is_none() && challenge == Challenge::Basic {
                return Ok(response);
            }
        }
    }

    fn attempt(
        &self,
        call: &Call,
        authorization: Option<&str>,
    ) -> Result<Response<Body>, ureq::Error> {
        let mut builder = http::Request::builder().method(call.method).uri(&call.url);
        for (name, value) in &call.headers {
            builder = builder.header(*name, value);
        }
        // Credentials and tokens are the registry's: a URL on another origin (an upload
        // `Location` pointing elsewhere) gets none.
        if let Some(authorization) = authorization.filter(|_| self.is_own_origin(&call.url)) {
            builder = builder.header(http::header::AUTHORIZATION, authorization);
        }
        match &call.payload {
            Payload::Empty if matches!(call.method, "GET" | "HEAD" | "DELETE") => {
                self.agent.run(builder.body(())?)
            }
            Payload::Empty => self.agent.run(builder.body(&[][..])?),
            Payload::Bytes(bytes) => self.agent.run(builder.body(*bytes)?),
            Payload::File {
                path,
                offset,
                len,
                digest,
                progress,
            } => {
                let mut file = File::open(path)?;
                file.seek(SeekFrom::Start(*offset))?;
                let mut reader = ProgressReader {
                    inner: file.take(*len),
                    digest: (*digest).clone(),
                    progress: *progress,
                };
                let request = builder
                    .header(http::header::CONTENT_LENGTH, len.to_string())
                    .body(SendBody::from_reader(&mut reader))?;
                self.agent.run(request)
            }
        }
    }

    /// Runs `attempt` until it gives a response that is not worth retrying, or the
    /// attempts run out (then the last response, or the last transport error).
    fn with_retries(
        &self,
        action: &str,
        retry: bool,
        mut attempt: impl FnMut() -> Result<Response<Body>, ureq::Error>,
    ) -> Result<Response<Body>, RegistryError> {
        let attempts = if retry { self.retry.attempts.max(1) } else { 1 };
        let mut number = 0;
        loop {
            number += 1;
            let outcome = attempt();
            let verdict = match &outcome {
                Ok(response) => verdict_for_status(response, self.retry.max_delay),
                Err(error) => verdict_for_error(error),
            };
            match verdict {
                Verdict::Retry(reason, after) if number < attempts && !self.past_deadline() => {
                    let delay = after.unwrap_or_else(|| self.backoff(number));
                    self.progress.on_retry(action, number, delay, &reason);
                    std::thread::sleep(delay);
                }
                _ => {
                    return outcome.map_err(|source| RegistryError::Transport {
                        registry: self.registry.clone(),
                        repository: self.repository.clone(),
                        action: action.to_string(),
                        attempts: number,
                        source: Box::new(source),
                    })
                }
            }
        }
    }

    /// Whether the operation's deadline has passed (then nothing is retried).
    pub(crate) fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// A response body guarded by the minimum rate and the deadline.
    pub(crate) fn guarded_reader(&self, response: Response<Body>) -> impl Read + 'static {
        super::rate::RateGuard::new(
            response.into_body().into_reader(),
            &self.transfer,
            self.deadline,
        )
    }

    /// The delay before retry number `n` (1-based): base × 2^(n-1), capped.
    pub(crate) fn backoff(&self, n: u32) -> Duration {
        let factor = 1u32 << (n - 1).min(16);
        (self.retry.base_delay * factor).min(self.retry.max_delay)
    }

    /// The error for an unexpected response, with the registry's error envelope.
    pub(crate) fn failure(&self, action: &str, mut response: Response<Body>) -> RegistryError {
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(64 << 10)
            .read_to_vec()
            .unwrap_or_default();
        RegistryError::Status {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            action: action.to_string(),
            status,
            errors: ErrorEnvelope::parse(&body),
        }
    }

    /// Checks that the client's credentials are accepted: a token for no scope from the
    /// token server, then `GET /v2/` with it (or with basic auth).
    pub(crate) fn verify_login(&self) -> Result<(), RegistryError> {
        let url = format!("{}/v2/", self.base);
        let response = self.send(&Call {
            method: "GET",
            url: url.clone(),
            scopes: "",
            headers: Vec::new(),
            payload: Payload::Empty,
            retry: true,
            action: format!("login check GET {url}"),
        })?;
        match response.status().as_u16() {
            200..=299 => Ok(()),
            // The check names no repository: say what was refused, not a pseudo reference.
            status @ (401 | 403) => match self.failure("", response) {
                RegistryError::Status { errors, .. } => Err(RegistryError::LoginRefused {
                    registry: self.registry.clone(),
                    status,
                    errors,
                }),
                other => Err(other),
            },
            _ => Err(self.failure(&format!("login check GET {url}"), response)),
        }
    }
}

/// `(scheme, host, port)` of an absolute http(s) URL, lowercased, default ports filled in.
pub(crate) fn origin(url: &str) -> Option<(String, String, u16)> {
    let uri: http::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let host = uri.host()?.to_ascii_lowercase();
    Some((scheme, host, uri.port_u16().unwrap_or(default)))
}

fn verdict_for_status(response: &Response<Body>, max_delay: Duration) -> Verdict {
    let status = response.status().as_u16();
    if status == 429 || (500..=599).contains(&status) && status != 501 {
        let after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|secs| Duration::from_secs(secs).min(max_delay));
        Verdict::Retry(format!("HTTP {status}"), after)
    } else {
        Verdict::Stop
    }
}

/// Broken connections and timeouts are worth another try; TLS, DNS and protocol misuse
/// are not.
fn verdict_for_error(error: &ureq::Error) -> Verdict {
    let retry = match error {
        ureq::Error::Io(e) => matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionRefused
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof
                | io::ErrorKind::TimedOut
                | io::ErrorKind::NotConnected
                | io::ErrorKind::Interrupted
        ),
        ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed => true,
        ureq::Error::Protocol(_) => true,
        _ => false,
    };
    if retry {
        Verdict::Retry(error.to_string(), None)
    } else {
        Verdict::Stop
    }
}

/// Counts bytes as they leave, for progress.
struct ProgressReader<'a, R> {
    inner: R,
    digest: Digest,
    progress: &'a dyn TransferProgress,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.progress.on_blob_bytes(&self.digest, n as u64);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::origin;

    /// Issue 10 W07: what counts as the registry's own origin.
    #[test]
    fn origins_compare_scheme_host_and_port() {
        let registry = origin("https://r.example/v2/").unwrap();
        assert_eq!(
            origin("https://R.example:443/v2/a/blobs/uploads/x"),
            Some(registry.clone())
        );
        for other in [
            "http://r.example/v2/",
            "https://r.example:5000/v2/",
            "https://evil.example/v2/",
            "https://r.example.evil.example/v2/",
            "https://r.example@evil.example/v2/",
        ] {
            assert_ne!(origin(other), Some(registry.clone()), "{other}");
        }
        assert_eq!(origin("/v2/relative"), None);
        assert_eq!(origin("ftp://r.example/"), None);
    }
}
