//! `solum-build serve`: the REST API that runs Solum's three workflows — (a) build an app
//! from its git URL on request, (b) build what is pushed to the app's managed git
//! repository, (c) build uploaded binaries or register a ready-made DU — with records in
//! a database (SQLite on one host, PostgreSQL on many) and a queue of build workers.
//!
//! Roles (`--role`): `all` is one host doing everything; `api` nodes answer requests and
//! build nothing; `worker` nodes claim queued workflows (`queue`) and answer only health.
//! Nodes share nothing but the database, the registry (`--push-to`: DUs and badgers) and,
//! for managed git repositories, `--git-root`; each keeps its own data folder and store,
//! which are caches.
//!
//! This module owns the server's startup (data folder, token, database, recovery of
//! interrupted work, the listener), the shared state, the worker loop with its heartbeat
//! and reaper, and the HTTP error mapping. Routes live in `routes_*`, `git`, `triggers`; the build itself is the
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
pub mod db;
mod git;
mod listener;
mod logs;
mod notify;
mod openapi;
mod policy;
mod queue;
pub mod records;
mod registry_scope;
mod routes_apps;
mod routes_images;
mod routes_ops;
mod routes_workflows;
mod runner;
mod shared_images;
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
    /// `--database`: `sqlite://PATH` or `postgres://…`; none: `sqlite://DATA/solum.db`.
    pub database: Option<String>,
    /// `--role`: what this node does.
    pub role: Role,
    /// `--worker-id`: this node's name in the queue (default HOST-PID).
    pub worker_id: Option<String>,
    /// `--lease`: how long a worker holds a workflow without a heartbeat.
    pub lease: Duration,
    /// `--max-attempts`: claims of one workflow before a lost worker's workflow is ERROR.
    pub max_attempts: u32,
    /// `--git-root`: the managed repositories (default DATA/git; shared on many hosts).
    pub git_root: Option<PathBuf>,
}

/// What a node of the server does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Answers requests and runs builds (one host).
    All,
    /// Answers requests; builds nothing.
    Api,
    /// Runs builds; answers only `/v1/health`.
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Api => "api",
            Role::Worker => "worker",
        }
    }

    fn builds(self) -> bool {
        self != Role::Api
    }
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
    pub records: Arc<Records>,
    /// The managed git repositories (`--git-root`).
    pub git_root: PathBuf,
    /// This node's name in the queue, its host, and when it started.
    pub worker_id: String,
    pub host: String,
    pub started_at: String,
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

    /// Tells an idle worker that work was queued: here, and on every other node
    /// (PostgreSQL's NOTIFY; polling finds it otherwise).
    pub fn wake_worker(&self) {
        self.wake.notify_one();
        self.records.notify(notify::QUEUE, "");
    }

    /// The lease in milliseconds.
    pub fn lease_ms(&self) -> i64 {
        i64::try_from(self.options.lease.as_millis()).unwrap_or(i64::MAX)
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
    /// This node's role, and its database as shown (no password).
    pub role: Role,
    pub database: String,
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
/// a wider mode: it holds every trigger secret) and an SQLite database, its WAL and shared
/// memory, the token and the logs 0600. The database is created empty with mode 0600 when
/// missing, so it is never readable by others even for a moment.
fn make_private(data: &Path, database: Option<&Path>) -> Result<(), ApiError> {
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
    if let Some(database) = database {
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
    for sub in ["logs", "uploads", "work", "store"] {
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
    let git_root = options.git_root.clone().unwrap_or_else(|| data.join("git"));
    std::fs::create_dir_all(&git_root).map_err(IoAt::at(&git_root, "create"))?;
    let (token, generated) = load_token(&options)?;
    let token_file = token_path(&options).0;
    let database = data.join("solum.db");
    let url = options
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", database.display()));
    let sqlite_file = url.strip_prefix("sqlite://").map(PathBuf::from);
    make_private(data, sqlite_file.as_deref())?;
    let records = Arc::new(Records::open_url(&url)?);
    // SQLite gives the WAL and shared-memory files the database's mode; older ones are
    // tightened here all the same.
    make_private(data, sqlite_file.as_deref())?;
    // One host: whatever was running was this server's and ended with its stop. On many,
    // a stopped worker's leases run out and the reaper gives its workflows to another.
    let interrupted = if records.is_single_host() && options.role == Role::All {
        records.fail_interrupted()?
    } else {
        Vec::new()
    };
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
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    let worker_id = options
        .worker_id
        .clone()
        .unwrap_or_else(|| format!("{host}-{}", std::process::id()));
    let shared = Arc::new(Shared {
        store: data.join("store"),
        data: data.clone(),
        records,
        git_root,
        worker_id,
        host,
        started_at: records::now(),
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
        role: shared.options.role,
        database: shared.records.shown_url().to_string(),
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
        .merge(routes_ops::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            auth::require_token,
        ));
    // Open to anyone: the landing page, the API's description (static text, the same for
    // every server) and health. Everything else needs the token or a trigger's proof.
    axum::Router::new()
        .route("/", get(openapi::landing_page))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/v1/health", get(routes_ops::health))
        .route("/v1/triggers/{trigger_id}", post(triggers::trigger))
        .merge(git::routes(shared.options.max_upload))
        .merge(protected)
        // JSON and app files: 1 MiB is far more than any app file; uploads raise it.
        .layer(axum::extract::DefaultBodyLimit::max(1 << 20))
        .with_state(shared)
}

/// A worker node's routes: health only.
fn worker_router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/v1/health", axum::routing::get(routes_ops::health))
        .with_state(shared)
}

/// One worker: takes queued workflows one at a time and runs each on a blocking thread.
async fn worker(shared: Arc<Shared>) {
    loop {
        if shared.is_stopping() {
            return;
        }
        // A database error (a full disk, say) is treated as no work: retried after the wait.
        let claim_shared = shared.clone();
        let claimed = tokio::task::spawn_blocking(move || {
            claim_shared
                .records
                .claim_next(&claim_shared.worker_id, claim_shared.lease_ms())
        })
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
        let Some(workflow) = claimed else {
            // A wake-up may be missed between the claim and the wait: poll now and then.
            let _ = tokio::time::timeout(Duration::from_secs(2), shared.wake.notified()).await;
            continue;
        };
        // Running (its lease renewed by the heartbeat) from the claim on, also while it
        // waits for a build slot.
        let cancel = CancelHandle::new();
        shared
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(workflow.id, cancel.clone());
        let id = workflow.id;
        let Ok(_slot) = shared.build_slots.acquire().await else {
            return;
        };
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
        // A run ends in a terminal state it recorded; when it could not (a panic, or the
        // database refused or lost the final write), ERROR now, or — when that fails too —
        // the lease, no longer renewed, runs out and the reaper requeues it.
        // Except on a stop on many hosts: the run was cut off to be handed back (`run`).
        if shared.is_stopping() && !shared.records.is_single_host() {
            continue;
        }
        let detail = match result {
            Err(panic) => format!("the build worker failed: {panic}"),
            Ok(()) => "the build ended without a recorded outcome".to_string(),
        };
        let end_shared = shared.clone();
        let _ = tokio::task::spawn_blocking(move || {
            end_shared.records.transition(
                id,
                crate::report::State::Error,
                &detail,
                Some(&end_shared.worker_id),
            )
        })
        .await;
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
        if shared.options.role.builds() {
            for _ in 0..shared.options.workers {
                tokio::spawn(worker(shared.clone()));
            }
            tokio::spawn(heartbeat(shared.clone()));
        }
        // NOTIFY wakes idle workers and carries cancels (PostgreSQL; a no-op on SQLite).
        notify::listen(shared.clone());
        let app = if shared.options.role == Role::Worker {
            worker_router(shared.clone())
        } else {
            router(shared.clone())
        };
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
    // On many hosts a stopping worker hands its unfinished workflows back now rather than
    // after its lease (on one host they were recorded ERROR, "the server stopped").
    if !shared.records.is_single_host() && shared.options.role.builds() {
        let why = format!("worker {} stopped", shared.worker_id);
        let _ = shared.records.release(&shared.worker_id, &why);
        shared.records.notify(notify::QUEUE, "");
    }
    result
}

/// The worker node's heartbeat, every third of a lease: renews the leases of what it
/// runs, cancels what was asked to stop on another node, and reaps the workflows of
/// workers that stopped heartbeating. A database that is away is retried at the next beat.
async fn heartbeat(shared: Arc<Shared>) {
    let every = (shared.options.lease / 3).max(Duration::from_millis(100));
    let mut beats: u64 = 0;
    loop {
        if shared.is_stopping() {
            return;
        }
        let beat_shared = shared.clone();
        let beat = tokio::task::spawn_blocking(move || {
            let shared = beat_shared;
            let records = &shared.records;
            let lease = shared.lease_ms();
            let role = shared.options.role.as_str();
            let running: Vec<i64> = shared
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .keys()
                .copied()
                .collect();
            if let Ok(cancels) = records.heartbeat(
                &shared.worker_id,
                role,
                &shared.host,
                &shared.started_at,
                lease,
                &running,
            ) {
                for id in cancels {
                    shared.cancel(id);
                }
            }
            let reaped = records
                .reap_expired(i64::from(shared.options.max_attempts.max(1)))
                .unwrap_or_default();
            if reaped
                .iter()
                .any(|r| matches!(r, queue::Reaped::Requeued { .. }))
            {
                shared.wake_worker();
            }
            // Now and then: forget workers gone for a day that hold nothing.
            if beats.is_multiple_of(1000) {
                let _ = records.forget_workers(24 * 3600 * 1000);
            }
        })
        .await;
        drop(beat);
        beats += 1;
        tokio::time::sleep(every).await;
    }
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
