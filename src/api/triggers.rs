//! `/v1/triggers/{trigger_id}`: the webhook. A push event from GitHub or Gitea (or from
//! `solum-build trigger`, the managed repository's hook) starts the app's workflow for the
//! pushed commit.
//!
//! Accepted proofs, checked in this order: `X-Hub-Signature-256: sha256=HEX` (GitHub,
//! Gitea), `X-Gitea-Signature: HEX` — both HMAC-SHA256 of the raw body with the app's
//! trigger secret — then the secret itself as `X-Solum-Trigger-Token` or `?token=`, then
//! the API bearer token. Anything else is 401, before the body is even parsed. A push to a
//! branch the app does not watch, or a branch deletion, is answered 200 and ignored.

use super::auth::constant_time_eq;
use super::git::{repository_path, watched_branch};
use super::records::NewWorkflow;
use super::routes_workflows::{check_revision, checked_actions, enqueue};
use super::{ApiError, Shared};
use crate::webhook::signature;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// How a request proved it may trigger the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proof {
    /// An HMAC of the body: anyone who saw the delivery can send it again.
    Signature,
    /// The trigger secret or the API token itself.
    Secret,
}

/// Whether the request proves it knows the app's secret (or the API token), and how.
fn authentic(
    headers: &HeaderMap,
    query_token: Option<&str>,
    body: &[u8],
    secret: &str,
    api_token: &str,
) -> Option<Proof> {
    let expected = signature(secret, body);
    let ok = |valid: bool, proof| valid.then_some(proof);
    if let Some(given) = header(headers, "x-hub-signature-256") {
        let valid = constant_time_eq(given.trim().as_bytes(), expected.as_bytes());
        return ok(valid, Proof::Signature);
    }
    if let Some(given) = header(headers, "x-gitea-signature") {
        let hex_part = expected.trim_start_matches("sha256=");
        let valid = constant_time_eq(given.trim().as_bytes(), hex_part.as_bytes());
        return ok(valid, Proof::Signature);
    }
    if let Some(given) = header(headers, "x-solum-trigger-token").or(query_token) {
        return ok(
            constant_time_eq(given.as_bytes(), secret.as_bytes()),
            Proof::Secret,
        );
    }
    ok(super::auth::has_token(headers, api_token), Proof::Secret)
}

/// How long a signed delivery is remembered: a replay within it starts nothing.
const DELIVERY_WINDOW_SECS: i64 = 24 * 3600;

/// The largest webhook body (push events are a few KiB; GitHub's largest are far less).
const MAX_TRIGGER_BODY: usize = 1 << 20;

/// The body of a trigger request, whole within `deadline`. This route takes no token, so
/// the body is read only for a known trigger id, and under the same deadline as a request
/// head (`--header-timeout`): a client that dripped it a byte at a time would otherwise
/// hold a connection slot for as long as it liked, and a few hundred would lock everyone
/// out.
async fn read_body(body: Body, deadline: std::time::Duration) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, MAX_TRIGGER_BODY)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(ApiError::invalid(
            "body",
            format!("unreadable or larger than {} KiB", MAX_TRIGGER_BODY >> 10),
        )),
        Err(_) => Err(ApiError::invalid(
            "body",
            format!(
                "not received within {} s (the server's --header-timeout)",
                deadline.as_secs()
            ),
        )),
    }
}

/// What identifies a signed delivery: the digest of its (signed) body, and the delivery
/// id GitHub or Gitea sends, when there is one. Either seen before means a replay; the
/// id alone is not enough, since headers are not signed and a replay can change it.
fn delivery_keys(headers: &HeaderMap, body: &[u8]) -> Vec<String> {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(body);
    let mut keys = vec![format!("body:{}", hex::encode(digest))];
    for name in ["x-github-delivery", "x-gitea-delivery"] {
        if let Some(id) = header(headers, name).filter(|id| !id.is_empty() && id.len() <= 128) {
            keys.push(format!("id:{id}"));
        }
    }
    keys
}

/// The fields of a push event this server reads (GitHub's and Gitea's names).
#[derive(Debug, Default, Deserialize)]
struct PushEvent {
    #[serde(rename = "ref")]
    reference: Option<String>,
    after: Option<String>,
    /// Not part of a push event: lets a plain `curl` ask for a revision.
    revision: Option<String>,
    actions: Option<Vec<String>>,
    /// `managed` from the managed repository's hook: build what it holds.
    source: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct TriggerQuery {
    token: Option<String>,
}

pub async fn trigger(
    State(shared): State<Arc<Shared>>,
    Path(trigger_id): Path<String>,
    Query(query): Query<TriggerQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let valid_id = !trigger_id.is_empty()
        && trigger_id.len() <= 64
        && trigger_id.chars().all(|c| c.is_ascii_hexdigit());
    let app = if valid_id {
        shared.records.app_by_trigger(&trigger_id)?
    } else {
        None
    };
    // An unknown id answers like a wrong signature: ids cannot be probed.
    let Some(app) = app else {
        return Err(ApiError::Unauthorized);
    };
    let body = read_body(body, shared.options.connections.header_timeout).await?;
    let Some(proof) = authentic(
        &headers,
        query.token.as_deref(),
        &body,
        &app.trigger_secret,
        &shared.token,
    ) else {
        return Err(ApiError::Unauthorized);
    };
    if header(&headers, "x-github-event").is_some_and(|e| e == "ping") {
        return Ok((StatusCode::OK, Json(json!({ "pong": true }))));
    }
    let event: PushEvent = if body.iter().all(u8::is_ascii_whitespace) {
        PushEvent::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid("body", e.to_string()))?
    };
    let branch = watched_branch(&shared.git_root, &app);
    if let Some(reference) = &event.reference {
        if reference != &format!("refs/heads/{branch}") {
            return Ok((
                StatusCode::OK,
                Json(json!({
                    "ignored": format!("{reference} is not built: this app builds branch {branch}")
                })),
            ));
        }
    }
    let revision = event.after.or(event.revision);
    if revision
        .as_deref()
        .is_some_and(|r| r.chars().all(|c| c == '0'))
    {
        return Ok((
            StatusCode::OK,
            Json(json!({ "ignored": "the branch was deleted" })),
        ));
    }
    if let Some(revision) = &revision {
        check_revision(revision)?;
    }
    // The managed repository's hook says so in the signed body (a header is not signed):
    // its commits are only there.
    let managed = event.source.as_deref() == Some("managed");
    let new = NewWorkflow {
        actions: checked_actions(&shared, event.actions)?,
        revision,
        origin: "webhook".into(),
        source: managed.then(|| {
            repository_path(&shared.git_root, &app.name)
                .display()
                .to_string()
        }),
        artifact: None,
        app: app.name,
    };
    let base = super::public_base(&shared.options, &headers);
    if proof != Proof::Signature {
        return enqueue(&shared, new, &base);
    }
    if shared.is_stopping() {
        return Err(ApiError::Stopping);
    }
    let keys = delivery_keys(&headers, &body);
    match shared
        .records
        .create_delivered_workflow(&new, &keys, DELIVERY_WINDOW_SECS)?
    {
        Ok(id) => {
            shared.wake_worker();
            Ok((
                StatusCode::ACCEPTED,
                Json(started(&base, &new.app, id, false)),
            ))
        }
        Err(id) => Ok((StatusCode::OK, Json(started(&base, &new.app, id, true)))),
    }
}

fn started(base: &str, app: &str, id: i64, duplicate: bool) -> Value {
    let mut answer = json!({
        "id": id,
        "app": app,
        "url": format!("{base}/v1/apps/{app}/workflows/{id}"),
    });
    if duplicate {
        answer["duplicate"] = json!("this delivery was received before: no new workflow");
    } else {
        answer["state"] = json!(crate::report::State::Queued);
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_signature_matches_the_documented_example() {
        // From GitHub's "Validating webhook deliveries" page.
        assert_eq!(
            signature("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn only_a_right_proof_is_authentic() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let sig = Some(Proof::Signature);
        let mut headers = HeaderMap::new();
        assert_eq!(authentic(&headers, None, body, "s3cret", "api"), None);
        headers.insert(
            "x-hub-signature-256",
            signature("s3cret", body).parse().unwrap(),
        );
        assert_eq!(authentic(&headers, None, body, "s3cret", "api"), sig);
        assert_eq!(authentic(&headers, None, b"{}", "s3cret", "api"), None);
        headers.insert(
            "x-hub-signature-256",
            signature("other", body).parse().unwrap(),
        );
        assert_eq!(authentic(&headers, None, body, "s3cret", "api"), None);
        let mut gitea = HeaderMap::new();
        let hex_only = signature("s3cret", body)
            .trim_start_matches("sha256=")
            .to_string();
        gitea.insert("x-gitea-signature", hex_only.parse().unwrap());
        assert_eq!(authentic(&gitea, None, body, "s3cret", "api"), sig);
        let none = HeaderMap::new();
        let secret = Some(Proof::Secret);
        assert_eq!(
            authentic(&none, Some("s3cret"), body, "s3cret", "api"),
            secret
        );
        assert_eq!(authentic(&none, Some("s3cre"), body, "s3cret", "api"), None);
    }

    #[test]
    fn a_delivery_is_known_by_its_body_and_its_id() {
        let mut headers = HeaderMap::new();
        assert_eq!(delivery_keys(&headers, b"{}").len(), 1);
        headers.insert("x-github-delivery", "72d3162e".parse().unwrap());
        let keys = delivery_keys(&headers, b"{}");
        assert_eq!(keys[1], "id:72d3162e");
        assert_ne!(keys[0], delivery_keys(&headers, b"{ }")[0]);
    }
}
