//! Images the server makes or takes in: `/v1/badgers` (list, search with `?q=`, show, and
//! POST a tarball of a badger folder to build it), `/v1/dus` (list, and POST a reference
//! to register a ready-made DU: workflow c), and `/v1/apps/{app}/artifacts` (POST a tarball
//! of binaries, built on the app's badger as a queued workflow: workflow c).
//!
//! Badger builds and DU registrations run on blocking threads and take one of the build
//! slots the workers use, so `--workers` bounds every sandbox the server runs. Uploads are
//! bounded by the upload limit, and a compressed tarball by four times that once expanded.

use super::records::{self, DuRecord, NewWorkflow};
use super::routes_workflows::{checked_actions, enqueue};
use super::runner::error_chain;
use super::{ApiError, Shared};
use crate::image::{ImageConfig, ImageReference};
use crate::io_at::IoAt;
use crate::manifest::{AppFile, DuInputs, DuManifest, DU_ANNOTATION};
use crate::pipeline::badger_image::{build_badger, list_badgers, BadgerRequest};
use crate::report::Reporter;
use crate::report::State as WorkflowState;
use crate::store::Layout;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::io::Read;
use std::sync::{Arc, Mutex};

pub fn routes(max_upload: usize) -> Router<Arc<Shared>> {
    let uploads = Router::new()
        .route("/v1/badgers", post(create_badger))
        .route("/v1/apps/{app}/artifacts", post(upload_artifact))
        .layer(axum::extract::DefaultBodyLimit::max(max_upload))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(max_upload));
    Router::new()
        .route("/v1/badgers", get(badgers))
        .route("/v1/badgers/{name}", get(badger))
        .route("/v1/dus", get(dus).post(register_du))
        .merge(uploads)
}

/// Collects the lines of a badger build or a registration, for the answer.
#[derive(Default)]
struct Collected(Mutex<Vec<String>>);

impl Collected {
    fn push(&self, line: String) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(line);
    }
    fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Reporter for Collected {
    fn status(&self, verb: &str, subject: &str) {
        self.push(format!("{verb} {subject}"));
    }
    fn warning(&self, message: &str) {
        self.push(format!("warning: {message}"));
    }
    fn stage(&self, state: WorkflowState, detail: &str) {
        self.push(format!("==> {state} {detail}"));
    }
    fn output_line(&self, _state: WorkflowState, line: &str, _stderr: bool) {
        self.push(format!("    | {line}"));
    }
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    q: Option<String>,
}

fn badger_view(badger: &crate::pipeline::badger_image::StoredBadger) -> Value {
    json!({
        "name": badger.manifest.name,
        "version": badger.manifest.version,
        "description": badger.manifest.description,
        "from": badger.manifest.from,
        "packages": badger.manifest.packages,
        "store_name": badger.store_name,
        "digest": badger.image.manifest_digest.to_string(),
    })
}

fn stored_badgers(shared: &Shared) -> Result<Vec<Value>, ApiError> {
    let found = list_badgers(&shared.store).map_err(|e| ApiError::Failed {
        what: "listing badgers".into(),
        reason: error_chain(&e),
    })?;
    Ok(found.iter().map(badger_view).collect())
}

async fn badgers(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<SearchQuery>,
) -> Result<Json<Value>, ApiError> {
    let term = query.q.unwrap_or_default().to_lowercase();
    let all = tokio::task::spawn_blocking(move || stored_badgers(&shared))
        .await
        .map_err(|e| ApiError::Failed {
            what: "listing badgers".into(),
            reason: e.to_string(),
        })??;
    // Search the name, description and packaged software, as `badger search` does.
    let matching: Vec<Value> = all
        .into_iter()
        .filter(|b| {
            term.is_empty()
                || [&b["name"], &b["description"], &b["packages"]]
                    .iter()
                    .any(|v| v.to_string().to_lowercase().contains(&term))
        })
        .collect();
    Ok(Json(json!({ "badgers": matching })))
}

async fn badger(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let all = tokio::task::spawn_blocking(move || stored_badgers(&shared))
        .await
        .map_err(|e| ApiError::Failed {
            what: "listing badgers".into(),
            reason: e.to_string(),
        })??;
    all.into_iter()
        .find(|b| b["name"] == name.as_str())
        .map(Json)
        .ok_or(ApiError::NotFound {
            what: "badger",
            id: name,
        })
}

/// Unpacks an uploaded tarball (plain, gzip or zstd) into `dir`. The tar reader refuses
/// `..`, absolute paths and writes through symlinks out of `dir`.
fn unpack_upload(body: &[u8], dir: &std::path::Path, limit: u64) -> Result<(), ApiError> {
    let invalid =
        |e: &dyn std::fmt::Display| ApiError::invalid("body", format!("not a tarball: {e}"));
    let (_, reader) =
        crate::layer::decompressing_reader(body, None).map_err(|e| invalid(&error_chain(&e)))?;
    let mut archive = tar::Archive::new(crate::layer::TarGuard::new(reader.take(limit)));
    archive.set_preserve_permissions(false);
    archive.set_overwrite(false);
    // The tar reader's own error names only the step; the chain carries the cause.
    archive.unpack(dir).map_err(|e| invalid(&error_chain(&e)))
}

/// The folder holding `badger.yaml`: the top of the tarball or its only folder.
/// Neither the folder nor `badger.yaml` is followed through a symlink: the tarball could
/// name any server folder that way.
fn badger_dir(root: &std::path::Path) -> Option<std::path::PathBuf> {
    let holds_manifest =
        |dir: &std::path::Path| std::fs::symlink_metadata(dir.join("badger.yaml")).is_ok();
    if holds_manifest(root) {
        return Some(root.to_path_buf());
    }
    let entries: Vec<_> = std::fs::read_dir(root).ok()?.flatten().collect();
    match entries.as_slice() {
        [only] if only.file_type().is_ok_and(|t| t.is_dir()) && holds_manifest(&only.path()) => {
            Some(only.path())
        }
        _ => None,
    }
}

async fn take_slot(shared: &Shared) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
    shared
        .build_slots
        .acquire()
        .await
        .map_err(|_| ApiError::Stopping)
}

async fn create_badger(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let _slot = take_slot(&shared).await?;
    let task_shared = shared.clone();
    tokio::task::spawn_blocking(move || -> Result<(StatusCode, Json<Value>), ApiError> {
        let shared = task_shared;
        let work = shared.data.join("work");
        let scratch = tempfile::Builder::new()
            .prefix("badger-")
            .tempdir_in(&work)
            .map_err(IoAt::at(&work, "create a folder in"))?;
        unpack_upload(&body, scratch.path(), 4 * shared.options.max_upload as u64)?;
        let dir = badger_dir(scratch.path())
            .ok_or_else(|| ApiError::invalid("body", "the tarball holds no badger.yaml"))?;
        // `from` is resolved by the server: it must not name a server file either.
        let text = crate::pipeline::badger_files::read_badger_file(&dir, "badger.yaml")
            .map_err(|e| ApiError::invalid("body", error_chain(&e)))?
            .ok_or_else(|| ApiError::invalid("body", "the tarball holds no badger.yaml"))?;
        let text = String::from_utf8(text)
            .map_err(|_| ApiError::invalid("badger.yaml", "it is not UTF-8 text"))?;
        let manifest = crate::manifest::BadgerManifest::parse(&text, "badger.yaml")
            .map_err(|e| ApiError::invalid("badger.yaml", error_chain(&e)))?;
        super::policy::check_reference("from", &manifest.from)?;
        let collected = Collected::default();
        let built = build_badger(
            &BadgerRequest {
                dir,
                tag: None,
                compression: crate::layer::LayerCompression::Gzip,
                epoch: crate::pipeline::source_date_epoch(),
                timeout: Some(shared.options.build_timeout),
                privilege: shared.privilege,
            },
            &shared.store,
            Some(&shared.registry),
            &runtime::CancelHandle::new(),
            &collected,
        );
        match built {
            Ok(built) => {
                // With a push registry, every node's workers find the badger there.
                let shared_at = super::shared_images::publish_badger(
                    &shared, &built.tag, &collected,
                )
                .map_err(|reason| ApiError::Failed {
                    what: "sharing the badger through the registry".into(),
                    reason,
                })?;
                Ok((
                    StatusCode::CREATED,
                    Json(json!({
                        "store_name": built.tag,
                        "digest": built.manifest_digest.to_string(),
                        "shared": shared_at,
                        "log": collected.lines(),
                    })),
                ))
            }
            Err(e) => Err(ApiError::Failed {
                what: "the badger build".into(),
                reason: format!("{}\n{}", error_chain(&e), collected.lines().join("\n")),
            }),
        }
    })
    .await
    .map_err(|e| ApiError::Failed {
        what: "the badger build".into(),
        reason: e.to_string(),
    })?
}

async fn dus(State(shared): State<Arc<Shared>>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "dus": shared.records.dus()? })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterRequest {
    /// Where the DU is: docker://…, oci:…, oci-archive:…, or a store name.
    reference: String,
    /// The DU's name (an app name).
    name: String,
    /// Also push it to the server's --push-to destination.
    #[serde(default)]
    push: bool,
}

/// A DU manifest for an image that came without one, from its config.
fn derived_du(name: &str, reference: &str, config: &ImageConfig) -> Result<DuManifest, ApiError> {
    let ports: Vec<u16> = config
        .exposed_ports()
        .iter()
        .filter_map(|p| p.strip_suffix("/tcp").and_then(|n| n.parse().ok()))
        .collect();
    // JSON is YAML: the app file is written as JSON, so no value needs quoting rules.
    let document = json!({
        "version": 1,
        "name": name,
        "badger": reference,
        "source": { "artifact": reference },
        "ports": ports,
    });
    let app =
        AppFile::parse(&document.to_string(), "the registered DU").map_err(ApiError::AppFile)?;
    let command = config.command();
    DuManifest::new(&DuInputs {
        app: &app,
        badgers: Vec::new(),
        badger_environment: std::collections::BTreeMap::default(),
        default_command: command,
        revision: None,
        image: name,
        tests_passed: false,
    })
    .map_err(ApiError::AppFile)
}

/// Copies the image into the store as `dus/NAME:ID`, with a DU manifest annotation (its
/// own, checked, or one derived from its config). Returns the store name and digest.
fn register(
    shared: &Shared,
    request: &RegisterRequest,
    reporter: &dyn Reporter,
) -> Result<(String, String), ApiError> {
    let failed = |e: &dyn std::error::Error| ApiError::Failed {
        what: format!("registering {}", request.reference),
        reason: error_chain(e),
    };
    let reference: ImageReference =
        request
            .reference
            .parse()
            .map_err(|e: crate::image::reference::ReferenceError| {
                ApiError::invalid("reference", error_chain(&e))
            })?;
    let registry = Some(&shared.registry as &dyn crate::transport::RegistryTransport);
    let opened = crate::transport::open_image(&reference, &shared.store, registry, reporter)
        .map_err(|e| failed(&e))?;
    let store = Layout::open_or_create(&shared.store).map_err(|e| failed(&e))?;
    // Held from the first blob to the name, as every writer does: gc waits meanwhile.
    let _lease = store.lease().map_err(|e| failed(&e))?;
    crate::transport::copy_blobs(&opened.layout, &opened.image, &store, reporter)
        .map_err(|e| failed(&e))?;
    let mut manifest: Value = serde_json::from_slice(&opened.image.manifest_bytes)
        .map_err(|e| ApiError::invalid("reference", format!("the manifest is not JSON: {e}")))?;
    let existing = manifest["annotations"][DU_ANNOTATION]
        .as_str()
        .map(str::to_string);
    if let Some(json) = existing {
        DuManifest::from_json(&json).map_err(ApiError::AppFile)?;
    } else {
        let config = ImageConfig::parse(&opened.image.config_bytes)
            .map_err(|e| ApiError::invalid("reference", format!("the config is not JSON: {e}")))?;
        let du = derived_du(&request.name, &request.reference, &config)?;
        if !manifest["annotations"].is_object() {
            manifest["annotations"] = json!({});
        }
        manifest["annotations"][DU_ANNOTATION] =
            Value::String(du.to_json().map_err(ApiError::AppFile)?);
    }
    let bytes =
        serde_json::to_vec(&manifest).map_err(|e| ApiError::invalid("reference", e.to_string()))?;
    let digest = store.put_bytes(&bytes).map_err(|e| failed(&e))?;
    let store_name = format!("dus/{}:{}", request.name, &digest.hex()[..12]);
    store
        .tag(
            &store_name,
            &crate::store::image::manifest_descriptor(&bytes, None),
        )
        .map_err(|e| failed(&e))?;
    Ok((store_name, digest.to_string()))
}

async fn register_du(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // Any content type: clients and curl alike post JSON without always saying so.
    let request: RegisterRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid("body", e.to_string()))?;
    super::policy::check_reference("reference", &request.reference)?;
    if !crate::manifest::app::valid_name(&request.name) {
        return Err(ApiError::invalid(
            "name",
            format!("{:?} is not an app name", request.name),
        ));
    }
    if request.push && shared.options.push_to.is_none() {
        return Err(ApiError::invalid(
            "push",
            "the server was started without --push-to",
        ));
    }
    let _slot = take_slot(&shared).await?;
    let task_shared = shared.clone();
    tokio::task::spawn_blocking(move || -> Result<(StatusCode, Json<Value>), ApiError> {
        let shared = task_shared;
        let collected = Collected::default();
        let (store_name, digest) = register(&shared, &request, &collected)?;
        let mut pushed_to = None;
        if let (true, Some(push_to)) = (request.push, &shared.options.push_to) {
            let destination = format!(
                "{}/{}:{}",
                push_to.trim_end_matches('/'),
                request.name,
                &digest[7..19]
            );
            super::runner::push(&shared, &store_name, &destination, &collected).map_err(
                |reason| ApiError::Failed {
                    what: format!("pushing to {destination}"),
                    reason,
                },
            )?;
            pushed_to = Some(destination);
        }
        let record = DuRecord {
            id: 0,
            name: request.name.clone(),
            digest: digest.clone(),
            store_name,
            origin: "registered".into(),
            workflow: None,
            pushed_to,
            created_at: records::now(),
        };
        let id = shared.records.add_du(&record)?;
        Ok((
            StatusCode::CREATED,
            Json(json!({ "id": id, "du": DuRecord { id, ..record } })),
        ))
    })
    .await
    .map_err(|e| ApiError::Failed {
        what: "registering the DU".into(),
        reason: e.to_string(),
    })?
}

async fn upload_artifact(
    State(shared): State<Arc<Shared>>,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let app = super::routes_apps::find(&shared, &app)?;
    // An upload is kept in this node's data folder, which a worker on another host cannot
    // read: an API node of many takes none (rather than queue a workflow that must fail).
    if shared.options.role == super::Role::Api {
        return Err(ApiError::Failed {
            what: "the upload".into(),
            reason: "an API node of many hosts keeps no uploads (its workers cannot read \
                     them): build binaries from a git source, or register a ready-made image \
                     as a DU"
                .into(),
        });
    }
    if body.is_empty() {
        return Err(ApiError::invalid("body", "the artifact is empty"));
    }
    let uploads = shared.data.join("uploads");
    // Kept under a name of its own until its workflow has run (the runner removes it).
    let path = tokio::task::spawn_blocking(move || -> Result<std::path::PathBuf, ApiError> {
        use std::io::Write;
        let mut temp = tempfile::Builder::new()
            .prefix("artifact-")
            .suffix(".tar")
            .tempfile_in(&uploads)
            .map_err(IoAt::at(&uploads, "write in"))?;
        temp.write_all(&body)
            .map_err(IoAt::at(&uploads, "write in"))?;
        let (_, path) = temp
            .keep()
            .map_err(|e| IoAt::at(&uploads, "write in")(e.error))?;
        Ok(path)
    })
    .await
    .map_err(|e| ApiError::Failed {
        what: "storing the artifact".into(),
        reason: e.to_string(),
    })??;
    enqueue(
        &shared,
        NewWorkflow {
            app: app.name,
            actions: checked_actions(&shared, None)?,
            revision: None,
            origin: "artifact".into(),
            source: None,
            artifact: Some(path.display().to_string()),
        },
        &super::public_base(&shared.options, &headers),
    )
}
