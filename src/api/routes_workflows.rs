//! `/v1/apps/{app}/workflows`: start a workflow (202 with its id), list and show them, stream
//! a workflow's log (following it while the build runs), and cancel one.
//!
//! Starting only records a QUEUED workflow and wakes a worker: the build runs in the queue
//! (`runner`). The log is the chunks the runner appends to the database; a follower reads
//! what is there, then polls for more until the workflow reaches a terminal state and the
//! chunks are drained. Cancel sets a flag any worker sees (`queue`).

use super::records::{self, NewWorkflow};
use super::routes_apps::find;
use super::{ApiError, Shared};
use crate::report::State as WorkflowState;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/apps/{app}/workflows", get(list).post(start))
        .route("/v1/apps/{app}/workflows/{wf}", get(show))
        .route("/v1/apps/{app}/workflows/{wf}/logs", get(logs))
        .route("/v1/apps/{app}/workflows/{wf}/cancel", post(cancel))
}

/// The actions a workflow may ask for.
pub const ACTIONS: &[&str] = &["unittest", "build", "push"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    #[serde(default)]
    pub actions: Option<Vec<String>>,
    #[serde(default)]
    pub revision: Option<String>,
}

/// Checks the actions (default: all that the server can do) and the revision.
pub fn checked_actions(
    shared: &Shared,
    actions: Option<Vec<String>>,
) -> Result<Vec<String>, ApiError> {
    let actions = actions.unwrap_or_else(|| {
        ACTIONS
            .iter()
            .filter(|a| **a != "push" || shared.options.push_to.is_some())
            .map(std::string::ToString::to_string)
            .collect()
    });
    for action in &actions {
        if !ACTIONS.contains(&action.as_str()) {
            return Err(ApiError::invalid(
                "actions",
                format!("{action:?} is not one of {ACTIONS:?}"),
            ));
        }
    }
    if actions.iter().any(|a| a == "push") && shared.options.push_to.is_none() {
        return Err(ApiError::invalid(
            "actions",
            "push: the server was started without --push-to",
        ));
    }
    Ok(actions)
}

/// A revision as git may be given it: a ref name or a commit, never an option.
pub fn check_revision(revision: &str) -> Result<(), ApiError> {
    let ok = !revision.is_empty()
        && revision.len() <= 255
        && !revision.starts_with('-')
        && !revision.contains("..")
        && revision
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "revision",
            format!("{revision:?} is not a branch, tag or commit name"),
        ))
    }
}

/// Records a queued workflow and wakes a worker; the 202 answer, whose `url` is on `base`
/// ([`super::public_base`]).
pub fn enqueue(
    shared: &Shared,
    new: NewWorkflow,
    base: &str,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if shared.is_stopping() {
        return Err(ApiError::Stopping);
    }
    let id = shared.records.create_workflow(&new)?;
    shared.wake_worker();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "id": id,
            "app": new.app,
            "state": WorkflowState::Queued,
            "url": format!("{base}/v1/apps/{}/workflows/{id}", new.app),
        })),
    ))
}

async fn start(
    State(shared): State<Arc<Shared>>,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let app = find(&shared, &app)?;
    let request: StartRequest = if body.iter().all(u8::is_ascii_whitespace) {
        StartRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid("body", e.to_string()))?
    };
    if let Some(revision) = &request.revision {
        check_revision(revision)?;
    }
    let actions = checked_actions(&shared, request.actions)?;
    enqueue(
        &shared,
        NewWorkflow {
            app: app.name,
            actions,
            revision: request.revision,
            origin: "api".into(),
            ..NewWorkflow::default()
        },
        &super::public_base(&shared.options, &headers),
    )
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<u32>,
}

async fn list(
    State(shared): State<Arc<Shared>>,
    Path(app): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    // History stays readable after a soft delete: only the name is checked here.
    if !crate::manifest::app::valid_name(&app) {
        return Err(ApiError::invalid(
            "app",
            format!("{app:?} is not an app name"),
        ));
    }
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let workflows = shared.records.workflows(&app, limit)?;
    Ok(Json(json!({ "workflows": workflows })))
}

fn workflow(shared: &Shared, app: &str, wf: &str) -> Result<records::WorkflowRecord, ApiError> {
    let not_found = || ApiError::NotFound {
        what: "workflow",
        id: format!("{app}/{wf}"),
    };
    let id: i64 = wf.parse().map_err(|_| not_found())?;
    match shared.records.workflow(id)? {
        Some(record) if record.app == app => Ok(record),
        _ => Err(not_found()),
    }
}

async fn show(
    State(shared): State<Arc<Shared>>,
    Path((app, wf)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let record = workflow(&shared, &app, &wf)?;
    let attachments = attachments(&shared, &record);
    let mut document = serde_json::to_value(&record).unwrap_or_else(|_| json!({}));
    document["attachments"] = Value::Array(attachments);
    Ok(Json(document))
}

/// The SBOMs, provenance and signatures of the workflow's DU, as the store holds them:
/// each with its artifact type and digest, and where it was pushed (the registry holds it
/// by digest in the DU's repository) when the DU was. A store that cannot be read lists
/// none: the workflow's own record is the answer's subject.
fn attachments(shared: &Shared, record: &records::WorkflowRecord) -> Vec<Value> {
    let Some(digest) = record
        .du_digest
        .as_deref()
        .and_then(|d| d.parse::<crate::image::Digest>().ok())
    else {
        return Vec::new();
    };
    let Ok(layout) = crate::store::Layout::open(&shared.store) else {
        return Vec::new();
    };
    let Ok(found) = crate::attest::referrers::list(&layout, &digest) else {
        return Vec::new();
    };
    // `docker://HOST/REPO:TAG` → `docker://HOST/REPO@`: where a referrer sits once pushed.
    let pushed_base = record.pushed_to.as_deref().map(|to| {
        let to = to.split('@').next().unwrap_or(to);
        let slash = to.rfind('/').unwrap_or(0);
        let repository = match to[slash..].rfind(':') {
            Some(colon) => &to[..slash + colon],
            None => to,
        };
        format!("{repository}@")
    });
    found
        .iter()
        .map(|referrer| {
            let digest = referrer.descriptor.digest().to_string();
            json!({
                "artifactType": referrer.artifact_type,
                "digest": digest,
                "size": referrer.descriptor.size(),
                "predicateType": referrer.annotations.get(crate::attest::PREDICATE_TYPE_ANNOTATION),
                "pushed": pushed_base.as_ref().map(|base| format!("{base}{digest}")),
            })
        })
        .collect()
}

#[derive(Debug, Deserialize)]
struct LogQuery {
    follow: Option<String>,
}

/// What the log stream carries between polls.
struct Follower {
    shared: Arc<Shared>,
    id: i64,
    /// The last chunk sent (-1: none yet).
    after: i64,
    follow: bool,
    finishing: bool,
    /// A log file of a version before database logs, read once when the database has none.
    legacy: Option<std::path::PathBuf>,
}

/// Chunks read per query.
const CHUNKS_PER_READ: i64 = 64;

async fn next_chunk(mut f: Follower) -> Option<(Result<Bytes, std::io::Error>, Follower)> {
    loop {
        let (shared, id, after) = (f.shared.clone(), f.id, f.after);
        let read = tokio::task::spawn_blocking(move || {
            shared.records.log_chunks(id, after, CHUNKS_PER_READ)
        })
        .await;
        let chunks = match read {
            Ok(Ok(chunks)) => chunks,
            Ok(Err(error)) => {
                return Some((Err(std::io::Error::other(error.to_string())), f));
            }
            Err(error) => return Some((Err(std::io::Error::other(error.to_string())), f)),
        };
        if let Some((last, _)) = chunks.last() {
            f.after = *last;
            f.legacy = None;
            let text: String = chunks.into_iter().map(|(_, body)| body).collect();
            return Some((Ok(Bytes::from(text)), f));
        }
        if let Some(path) = f.legacy.take() {
            if let Ok(text) = tokio::fs::read(&path).await {
                return Some((Ok(Bytes::from(text)), f));
            }
        }
        // Drained: the end unless following a workflow that still runs. A terminal state
        // is seen before the last read, so lines written just before it are not lost.
        if !f.follow || f.finishing {
            return None;
        }
        let (shared, id) = (f.shared.clone(), f.id);
        let state = tokio::task::spawn_blocking(move || shared.records.workflow_state(id)).await;
        match state {
            Ok(Ok(Some(state))) if !state.is_terminal() => {
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            _ => f.finishing = true,
        }
    }
}

async fn logs(
    State(shared): State<Arc<Shared>>,
    Path((app, wf)): Path<(String, String)>,
    Query(query): Query<LogQuery>,
) -> Result<Response, ApiError> {
    let record = workflow(&shared, &app, &wf)?;
    let follow = matches!(query.follow.as_deref(), Some("" | "1" | "true" | "yes"));
    let legacy = super::runner::log_path(&shared.data, record.id);
    let follower = Follower {
        legacy: legacy.is_file().then_some(legacy),
        shared,
        id: record.id,
        after: -1,
        follow,
        finishing: false,
    };
    let stream = futures_util::stream::unfold(follower, next_chunk);
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

async fn cancel(
    State(shared): State<Arc<Shared>>,
    Path((app, wf)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let record = workflow(&shared, &app, &wf)?;
    if record.state.is_terminal() {
        return Err(ApiError::Conflict {
            what: "a finished workflow",
            id: format!("{app}/{wf} ({})", record.state),
        });
    }
    // The flag first: a worker that claims it from now on sees it on its next heartbeat.
    shared.records.request_cancel(record.id)?;
    if !shared.cancel(record.id)
        && !shared
            .records
            .cancel_queued(record.id, "cancelled while queued")?
    {
        // Running on another node: NOTIFY reaches it at once (its heartbeat otherwise).
        shared
            .records
            .notify(super::notify::CANCEL, &record.id.to_string());
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": record.id, "cancelling": true })),
    ))
}
