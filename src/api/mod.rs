//! `solum-build serve`: the REST API that runs Solum's three workflows — (a) build an app
//! from its git URL on request, (b) build what is pushed to the app's managed git
//! repository, (c) build uploaded binaries or register a ready-made DU — with records in
//! SQLite and a queue of build workers.
//!
//! This module owns the server's startup (data folder, token, database, recovery of
//! interrupted work, the listener), the shared state, the worker loop and the HTTP error
//! mapping. Routes live in `routes_*`, `git`, `triggers`; the build itself is the
//! pipeline's, run by `runner` on blocking threads (the sandbox is blocking and re-executes
//! the binary, which is safe from a threaded process). It never prints: the CLI shows
//! what [`prepare`] returns.
//!
//! The data folder: `solum.db` (records), `token` (0600, when no --token-file), `store/`
//! (the image store, with its caches), `git/{app}.git` (managed repositories), `logs/{id}.log`,
//! `uploads/` (artifacts), `work/` (scratch folders, emptied at start).
//!
//! Pushing: the server option `push_to` (`docker://HOST[:PORT]/PREFIX`) is where the
//! `push` action sends each DU, as `PREFIX/APP:wf-ID`. It is a server setting, not an app
//! file key, so that an app file posted by a user cannot aim the server's registry
//! credentials anywhere else.

mod auth;
mod git;
mod listener;
mod openapi;
mod policy;
pub mod records;
mod registry_scope;
mod routes_apps;
mod routes_images;
mod routes_workflows;
mod runner;
mod triggers;

use crate::error_class::{Classify, ErrorClass};
use crate::io_at::IoAt;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use records::{RecordError, Records};
use runtime::CancelHandle;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::webhook::signature;
pub use listener::ConnectionLimits;
pub use runner::push_destination;

/// Everything `serve` is started with.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub data: PathBuf,
    pub token_file: Option<PathBuf>,
    pub workers: usize,
    /// `docker://HOST[:PORT]/PREFIX`: where the `push` action sends DUs.
    pub push_to: Option<String>,
    pub registry: crate::registry::RegistryClient,
    pub build_timeout: Duration,
    pub network_host: bool,
    /// How builds are contained (`--isolation`).
    pub isolation: runtime::Isolation,
    /// The largest upload (artifact, badger tarball, git push), in bytes.
    pub max_upload: usize,
    /// Local folders an app's `source.repository` may name (none: remote URLs only).
    pub allow_local_source: Vec<PathBuf>,
    /// `--registry-creds HOST=USER:PASS`: credentials for one more registry host. The
    /// server's other credentials go to the `push_to` registry only.
    pub registry_creds: Vec<(String, crate::registry::Credentials)>,
    /// Open connections at most, and the deadline for a request head.
    pub connections: ConnectionLimits,
    /// `--public-url`: the base of the URLs the API hands out (git, trigger); else the
    /// request's `Host`.
    pub public_url: Option<String>,
    /// `--keep N`: the workflow DUs (`APP:wf-N`) kept in the store per app; 0 keeps all.
    pub keep: usize,
    /// `--ca-cert FILE`…: CA certificates every build's steps trust besides the image's.
    /// Requests carry no secrets or certificates of their own.
    pub ca_certificates: Option<crate::pipeline::build_inputs::CaCertificates>,
    /// `--cache-from`, `--cache-to`, `--cache-mounts`: the registry cache of every build.
    pub registry_cache: crate::pipeline::registry_cache::RegistryCache,
    /// `--sign-key`, `--no-attestations`: what every DU gets attached (see `attest::du`).
    pub attest: crate::attest::du::AttestSettings,
}

/// The base (`http://HOST[:PORT]`, no trailing slash) of the absolute URLs an answer names:
/// `--public-url` when the operator gave one (behind a proxy), else the `Host` the client
/// itself used, else the listening address.
pub fn public_base(options: &ServeOptions, headers: &axum::http::HeaderMap) -> String {
    if let Some(url) = &options.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        // A Host header is the client's own text, echoed to that client; still, only what
        // a host[:port] may hold goes into a URL.
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
        })
        .map_or_else(|| options.listen.to_string(), str::to_owned);
    format!("http://{host}")
}

/// Why the server could not start, or why a request failed (with its HTTP status).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Io(#[from] IoAt),
    #[error(transparent)]
    Records(#[from] RecordError),
    #[error("cannot listen on {address}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the token file {path} is empty")]
    EmptyToken { path: PathBuf },
    #[error("--allow-local-source")]
    LocalSource(#[source] crate::source::SourceError),
    #[error("--push-to {value:?} must be docker://HOST[:PORT]/PREFIX")]
    PushTo { value: String },
    #[error("missing or wrong credentials")]
    Unauthorized,
    #[error("no {what} {id}")]
    NotFound { what: &'static str, id: String },
    #[error("{what} {id} already exists")]
    Conflict { what: &'static str, id: String },
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("the app file is not valid")]
    AppFile(#[source] crate::manifest::ManifestError),
    #[error("{what} failed: {reason}")]
    Failed { what: String, reason: String },
    #[error("the server is stopping")]
    Stopping,
    #[error("the server's store")]
    Store(#[source] crate::store::LayoutError),
}

impl Classify for ApiError {
    fn class(&self) -> ErrorClass {
        // The server's start-up and its records; requests get HTTP statuses, not exit codes.
        match self {
            ApiError::LocalSource(inner) => inner.class(),
            ApiError::AppFile(inner) => inner.class(),
            ApiError::Records(inner) => inner.class(),
            ApiError::Io(_)
            | ApiError::Bind { .. }
            | ApiError::EmptyToken { .. }
            | ApiError::PushTo { .. }
            | ApiError::Unauthorized
            | ApiError::NotFound { .. }
            | ApiError::Conflict { .. }
            | ApiError::Invalid { .. }
            | ApiError::Failed { .. }
            | ApiError::Stopping
            | ApiError::Store(_) => ErrorClass::Failure,
        }
    }
}

impl Classify for RecordError {
    fn class(&self) -> ErrorClass {
        match self {
            RecordError::Open { .. } | RecordError::Sql { .. } | RecordError::Corrupt { .. } => {
                ErrorClass::Failure
            }
        }
    }
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Invalid { .. } | ApiError::AppFile(_) => StatusCode::BAD_REQUEST,
            ApiError::Failed { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Stopping => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = serde_json::json!({ "error": runner::error_chain(&self) });
        if let ApiError::AppFile(crate::manifest::ManifestError::Invalid { errors, .. }) = &self {
            body["problems"] = errors
                .iter()
                .map(std::string::ToString::to_string)
                .collect();
        }
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"solum-build\""),
            );
        }
        response
    }
}

/// How far an artifact or a git tree of a request may expand: as far as a badger upload
/// (four times the upload limit), and at most a million entries.
pub(crate) fn source_limit(options: &ServeOptions) -> crate::source::ExpansionLimit {
    crate::source::ExpansionLimit {
        bytes: 4 * options.max_upload as u64,
        entries: 1 << 20,
    }
}

/// What every request and worker shares.
pub struct Shared {
    pub options: ServeOptions,
    pub data: PathBuf,
    pub store: PathBuf,
    pub records: Records,
    /// What a request may name as a source.
    pub sources: crate::source::SourcePolicy,
    /// Every registry access of the server: credentials only for their own hosts.
    pub registry: registry_scope::ScopedRegistry,
    /// Root or rootless, decided once when the server starts.
    pub privilege: crate::privilege::Privilege,
    token: String,
    /// The cancel switch of each running workflow.
    running: Mutex<HashMap<i64, CancelHandle>>,
    wake: tokio::sync::Notify,
    stopping: AtomicBool,
    /// Bounds every blocking build (workflows and badger builds) to `workers`.
    build_slots: tokio::sync::Semaphore,
    /// The address the listener got (the port may have been 0).
    bound: std::sync::OnceLock<SocketAddr>,
}

impl Shared {
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Tells an idle worker that work was queued.
    pub fn wake_worker(&self) {
        self.wake.notify_one();
    }

    /// Cancels a running workflow; `false` when it is not running here.
    pub fn cancel(&self, id: i64) -> bool {
        let running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match running.get(&id) {
            Some(handle) => {
                handle.cancel();
                true
            }
            None => false,
        }
    }
}

/// A server ready to run: its data folder prepared, its port bound.
pub struct Prepared {
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    /// The token, when it was generated by this start (to be shown once).
    pub generated_token: Option<String>,
    pub address: SocketAddr,
    /// Workflows found cut off by a previous stop, now marked ERROR.
    pub interrupted: Vec<i64>,
    /// Where the API token is kept (`--token-file`, else `DATA/token`).
    pub token_file: PathBuf,
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::getrandom(&mut buffer).expect("the kernel's random source");
    hex::encode(buffer)
}

/// Writes `text` to `path` with mode 0600, atomically (a temp file renamed over it).
pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), ApiError> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(IoAt::at(dir, "write in"))?;
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(IoAt::at(path, "chmod"))?;
    temp.write_all(text.as_bytes())
        .and_then(|()| temp.as_file().sync_all())
        .map_err(IoAt::at(path, "write"))?;
    temp.persist(path)
        .map_err(|e| e.error)
        .map_err(IoAt::at(path, "write"))?;
    Ok(())
}

/// Makes the data folder private to the server's user (0700, also when it existed with
/// a wider mode: it holds every trigger secret) and the database, its WAL and shared
/// memory, the token and the logs 0600. The database is created empty with mode 0600 when
/// missing, so it is never readable by others even for a moment.
fn make_private(data: &Path, database: &Path) -> Result<(), ApiError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let private = |path: &Path, mode: u32| -> Result<(), ApiError> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_file() || meta.is_dir() => {
                if meta.permissions().mode() & 0o7777 != mode {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                        .map_err(IoAt::at(path, "set the mode of"))?;
                }
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(IoAt::at(path, "set the mode of")(e).into()),
        }
    };
    private(data, 0o700)?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(database)
        .map_err(IoAt::at(database, "create"))?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = database.as_os_str().to_owned();
        name.push(suffix);
        private(Path::new(&name), 0o600)?;
    }
    private(&data.join("token"), 0o600)?;
    let logs = data.join("logs");
    private(&logs, 0o700)?;
    if let Ok(entries) = std::fs::read_dir(&logs) {
        for entry in entries.flatten() {
            private(&entry.path(), 0o600)?;
        }
    }
    Ok(())
}

/// The API token: from `--token-file`, else `DATA/token`, else a new one written there.
/// Where the token is read from, and whether it may be made there.
fn token_path(options: &ServeOptions) -> (PathBuf, bool) {
    match &options.token_file {
        Some(path) => (path.clone(), false),
        None => (options.data.join("token"), true),
    }
}

fn load_token(options: &ServeOptions) -> Result<(String, bool), ApiError> {
    let (path, may_create) = token_path(options);
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().is_empty() => Err(ApiError::EmptyToken { path }),
        Ok(text) => Ok((text.trim().to_string(), false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && may_create => {
            let token = random_hex(32);
            write_private(&path, &token)?;
            Ok((token, true))
        }
        Err(e) => Err(IoAt::at(&path, "read the token file")(e).into()),
    }
}

/// Prepares the data folder, the token and the records, marks interrupted workflows
/// ERROR, and binds the listener. Nothing runs yet.
pub fn prepare(options: ServeOptions) -> Result<Prepared, ApiError> {
    let mut push_host = None;
    if let Some(push_to) = &options.push_to {
        let sample = push_destination(push_to, "app", 1);
        match sample.parse() {
            Ok(crate::image::ImageReference::Registry { registry, .. })
                if push_to.starts_with("docker://") =>
            {
                push_host = Some(registry);
            }
            _ => {
                return Err(ApiError::PushTo {
                    value: push_to.clone(),
                })
            }
        }
    }
    let sources = crate::source::SourcePolicy::new(&options.allow_local_source)
        .map_err(ApiError::LocalSource)?;
    let data = &options.data;
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data)
            .map_err(IoAt::at(data, "create"))?;
    }
    for sub in ["git", "logs", "uploads", "work", "store"] {
        let dir = data.join(sub);
        std::fs::create_dir_all(&dir).map_err(IoAt::at(&dir, "create"))?;
    }
    // The store is made now, not by the first workflow: `store/` is empty on a new server,
    // and every later reader finds a layout.
    crate::store::Layout::open_or_create(&data.join("store")).map_err(ApiError::Store)?;
    // Scratch folders of builds cut off by a stop: nothing refers to them any more.
    let work = data.join("work");
    if let Ok(entries) = std::fs::read_dir(&work) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let (token, generated) = load_token(&options)?;
    let token_file = token_path(&options).0;
    let database = data.join("solum.db");
    make_private(data, &database)?;
    let records = Records::open(&database)?;
    // SQLite gives the WAL and shared-memory files the database's mode; older ones are
    // tightened here all the same.
    make_private(data, &database)?;
    let interrupted = records.fail_interrupted()?;
    let listener =
        std::net::TcpListener::bind(options.listen).map_err(|source| ApiError::Bind {
            address: options.listen,
            source,
        })?;
    let address = listener.local_addr().map_err(|source| ApiError::Bind {
        address: options.listen,
        source,
    })?;
    // Never created: as the only credential file it means "no credentials".
    let no_credentials = data.join("no-credentials.json");
    let registry = registry_scope::ScopedRegistry::new(
        options.registry.clone(),
        push_host.as_deref(),
        &options.registry_creds,
        &no_credentials,
    );
    let workers = options.workers.max(1);
    let shared = Arc::new(Shared {
        store: data.join("store"),
        data: data.clone(),
        records,
        sources,
        registry,
        privilege: crate::privilege::Privilege::of_this_process(),
        token,
        running: Mutex::new(HashMap::new()),
        wake: tokio::sync::Notify::new(),
        stopping: AtomicBool::new(false),
        build_slots: tokio::sync::Semaphore::new(workers),
        bound: std::sync::OnceLock::new(),
        options: ServeOptions { workers, ..options },
    });
    git::install_hooks(&shared, address)?;
    let generated_token = generated.then(|| shared.token.clone());
    Ok(Prepared {
        shared,
        listener,
        generated_token,
        address,
        interrupted,
        token_file,
    })
}

/// The routes, with authentication and body limits.
pub fn router(shared: Arc<Shared>) -> axum::Router {
    use axum::routing::{get, post};
    let protected = axum::Router::new()
        .merge(routes_apps::routes())
        .merge(routes_workflows::routes())
        .merge(routes_images::routes(shared.options.max_upload))
        .route_layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            auth::require_token,
        ));
    // Open to anyone: the landing page, the API's description (static text, the same for
    // every server) and health. Everything else needs the token or a trigger's proof.
    axum::Router::new()
        .route("/", get(openapi::landing_page))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/v1/health", get(health))
        .route("/v1/triggers/{trigger_id}", post(triggers::trigger))
        .merge(git::routes(shared.options.max_upload))
        .merge(protected)
        // JSON and app files: 1 MiB is far more than any app file; uploads raise it.
        .layer(axum::extract::DefaultBodyLimit::max(1 << 20))
        .with_state(shared)
}

async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// One worker: takes queued workflows one at a time and runs each on a blocking thread.
async fn worker(shared: Arc<Shared>) {
    loop {
        if shared.is_stopping() {
            return;
        }
        // A database error (a full disk, say) is treated as no work: retried after the wait.
        let claimed = shared.records.claim_next().unwrap_or_default();
        let Some(workflow) = claimed else {
            // A wake-up may be missed between the claim and the wait: poll now and then.
            let _ = tokio::time::timeout(Duration::from_secs(2), shared.wake.notified()).await;
            continue;
        };
        let Ok(_slot) = shared.build_slots.acquire().await else {
            return;
        };
        let cancel = CancelHandle::new();
        shared
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(workflow.id, cancel.clone());
        let id = workflow.id;
        let task_shared = shared.clone();
        let result = tokio::task::spawn_blocking(move || {
            runner::run_workflow(&task_shared, &workflow, &cancel);
        })
        .await;
        shared
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id);
        if let Err(panic) = result {
            let _ = shared.records.transition(
                id,
                crate::report::State::Error,
                &format!("the build worker failed: {panic}"),
            );
        }
    }
}

/// Runs the server until SIGINT or SIGTERM; then running builds are cancelled (and
/// recorded ERROR, "the server stopped") and the process waits for them to end.
pub fn run(prepared: Prepared) -> Result<(), ApiError> {
    let shared = prepared.shared;
    let address = prepared.address;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
        .map_err(IoAt::at(Path::new("tokio runtime"), "start"))?;
    let result = runtime.block_on(async {
        prepared
            .listener
            .set_nonblocking(true)
            .map_err(|source| ApiError::Bind { address, source })?;
        let listener = tokio::net::TcpListener::from_std(prepared.listener)
            .map_err(|source| ApiError::Bind { address, source })?;
        for _ in 0..shared.options.workers {
            tokio::spawn(worker(shared.clone()));
        }
        let app = router(shared.clone());
        let stop_shared = shared.clone();
        listener::serve(listener, app, shared.options.connections, async move {
            stop_signal().await;
            stop_shared.stopping.store(true, Ordering::SeqCst);
            let running = stop_shared
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for handle in running.values() {
                handle.cancel();
            }
        })
        .await
        .map_err(|source| ApiError::Bind { address, source })
    });
    // Cancelled builds end within a second or two; do not hang on a stuck one.
    runtime.shutdown_timeout(Duration::from_secs(30));
    result
}

async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}
