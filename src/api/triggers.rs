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
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// The header value GitHub sends: `sha256=` and the hex HMAC-SHA256 of `body`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether the request proves it knows the app's secret (or the API token).
fn authentic(
    headers: &HeaderMap,
    query_token: Option<&str>,
    body: &[u8],
    secret: &str,
    api_token: &str,
) -> bool {
    let expected = signature(secret, body);
    if let Some(given) = header(headers, "x-hub-signature-256") {
        return constant_time_eq(given.trim().as_bytes(), expected.as_bytes());
    }
    if let Some(given) = header(headers, "x-gitea-signature") {
        let hex_part = expected.trim_start_matches("sha256=");
        return constant_time_eq(given.trim().as_bytes(), hex_part.as_bytes());
    }
    if let Some(given) = header(headers, "x-solum-trigger-token").or(query_token) {
        return constant_time_eq(given.as_bytes(), secret.as_bytes());
    }
    super::auth::has_token(headers, api_token)
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
    body: Bytes,
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
    if !authentic(
        &headers,
        query.token.as_deref(),
        &body,
        &app.trigger_secret,
        &shared.token,
    ) {
        return Err(ApiError::Unauthorized);
    }
    if header(&headers, "x-github-event").is_some_and(|e| e == "ping") {
        return Ok((StatusCode::OK, Json(json!({ "pong": true }))));
    }
    let event: PushEvent = if body.iter().all(u8::is_ascii_whitespace) {
        PushEvent::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid("body", e.to_string()))?
    };
    let branch = watched_branch(&app);
    if let Some(reference) = &event.reference {
        if reference != &format!("refs/heads/{branch}") {
            return Ok((
                StatusCode::OK,
                Json(json!({ "ignored": format!("{reference} is not refs/heads/{branch}") })),
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
    // The managed repository's hook says so: its commits are only there.
    let managed = header(&headers, "x-solum-source").is_some_and(|s| s == "managed");
    enqueue(
        &shared,
        NewWorkflow {
            actions: checked_actions(&shared, event.actions)?,
            revision,
            origin: "webhook".into(),
            source: managed.then(|| {
                repository_path(&shared.data, &app.name)
                    .display()
                    .to_string()
            }),
            artifact: None,
            app: app.name,
        },
    )
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
        let mut headers = HeaderMap::new();
        assert!(!authentic(&headers, None, body, "s3cret", "api"));
        headers.insert(
            "x-hub-signature-256",
            signature("s3cret", body).parse().unwrap(),
        );
        assert!(authentic(&headers, None, body, "s3cret", "api"));
        assert!(!authentic(&headers, None, b"{}", "s3cret", "api"));
        headers.insert(
            "x-hub-signature-256",
            signature("other", body).parse().unwrap(),
        );
        assert!(!authentic(&headers, None, body, "s3cret", "api"));
        let mut gitea = HeaderMap::new();
        let hex_only = signature("s3cret", body)
            .trim_start_matches("sha256=")
            .to_string();
        gitea.insert("x-gitea-signature", hex_only.parse().unwrap());
        assert!(authentic(&gitea, None, body, "s3cret", "api"));
        assert!(authentic(
            &HeaderMap::new(),
            Some("s3cret"),
            body,
            "s3cret",
            "api"
        ));
        assert!(!authentic(
            &HeaderMap::new(),
            Some("s3cre"),
            body,
            "s3cret",
            "api"
        ));
    }
}
