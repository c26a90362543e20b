//! The operators' routes: `/v1/health` (open: a load balancer's and Kubernetes' probe)
//! reports whether this node reaches its database and its push registry, with 503 when the
//! database does not answer; `/v1/workers` (with the token) lists the build workers with
//! their last heartbeat and the workflows they hold.

use super::{ApiError, Shared};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/v1/workers", get(workers))
}

/// How long health waits for each check.
const CHECK_WITHIN: Duration = Duration::from_secs(3);

/// Runs a blocking check with a deadline; its error text, or "timed out".
async fn check<F>(work: F) -> Result<(), String>
where
    F: FnOnce() -> Result<(), String> + Send + 'static,
{
    match tokio::time::timeout(CHECK_WITHIN, tokio::task::spawn_blocking(work)).await {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => Err(panic.to_string()),
        Err(_) => Err(format!("no answer within {} s", CHECK_WITHIN.as_secs())),
    }
}

fn verdict(result: &Result<(), String>) -> Value {
    match result {
        Ok(()) => json!({ "ok": true }),
        Err(error) => json!({ "ok": false, "error": error }),
    }
}

pub async fn health(State(shared): State<Arc<Shared>>) -> (StatusCode, Json<Value>) {
    let db_shared = shared.clone();
    let database = check(move || {
        db_shared.records.ping().map_err(|error| match error {
            // Health is open to anyone: the driver's reason, without the database's
            // address (its host, port, user and name are the operators' business).
            super::db::DbError::Connect { source, .. } => format!(
                "cannot reach the database: {}",
                super::runner::error_chain(&source)
            ),
            other => super::runner::error_chain(&other),
        })
    })
    .await;
    let registry = if shared.options.push_to.is_some() {
        let registry_shared = shared.clone();
        let result = check(
            move || match registry_shared.registry.push_host_reachable() {
                Some(result) => result.map_err(|e| super::runner::error_chain(&e)),
                None => Ok(()),
            },
        )
        .await;
        Some(result)
    } else {
        None
    };
    let healthy = database.is_ok() && registry.as_ref().is_none_or(Result::is_ok);
    // Without its database a node can do nothing; an unreachable registry fails pushes
    // and badger pulls only, so it degrades rather than fails the probe.
    let status = if database.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if healthy { "ok" } else { "degraded" },
            "version": env!("CARGO_PKG_VERSION"),
            "role": shared.options.role.as_str(),
            "worker_id": shared.worker_id,
            "database": verdict(&database),
            "registry": registry.as_ref().map(verdict),
        })),
    )
}

async fn workers(State(shared): State<Arc<Shared>>) -> Result<Json<Value>, ApiError> {
    let lease = shared.lease_ms();
    let workers = tokio::task::spawn_blocking(move || shared.records.workers(lease))
        .await
        .map_err(|e| ApiError::Failed {
            what: "listing workers".into(),
            reason: e.to_string(),
        })??;
    Ok(Json(json!({ "workers": workers })))
}
