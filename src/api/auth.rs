//! Authentication of API and git requests: the server's one bearer token, given as
//! `Authorization: Bearer TOKEN`, or (for git clients, which only speak basic auth) as the
//! password of `Authorization: Basic`. Comparisons take the same time whatever the input.
//!
//! This module decides only whether a request carries the token; webhook signatures are
//! checked by `triggers`, and it never looks at what a request asks for.

use super::{ApiError, Shared};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use std::sync::Arc;

/// `a == b` without an early exit on the first differing byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether the headers carry the token, as bearer or as a basic-auth password.
pub fn has_token(headers: &HeaderMap, token: &str) -> bool {
    let Some(value) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("bearer") {
        return constant_time_eq(rest.trim().as_bytes(), token.as_bytes());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest.trim()) else {
            return false;
        };
        let password = match decoded.iter().position(|&b| b == b':') {
            Some(at) => &decoded[at + 1..],
            None => &decoded[..],
        };
        return constant_time_eq(password, token.as_bytes());
    }
    false
}

/// Middleware: rejects requests without the token with 401.
pub async fn require_token(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    if has_token(request.headers(), &shared.token) {
        next.run(request).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic_password_are_accepted_nothing_else() {
        let mut headers = HeaderMap::new();
        assert!(!has_token(&headers, "secret"));
        headers.insert("authorization", "Bearer secret".parse().unwrap());
        assert!(has_token(&headers, "secret"));
        headers.insert("authorization", "Bearer secreT".parse().unwrap());
        assert!(!has_token(&headers, "secret"));
        let basic = base64::engine::general_purpose::STANDARD.encode("git:secret");
        headers.insert("authorization", format!("Basic {basic}").parse().unwrap());
        assert!(has_token(&headers, "secret"));
        let wrong = base64::engine::general_purpose::STANDARD.encode("secret:nope");
        headers.insert("authorization", format!("Basic {wrong}").parse().unwrap());
        assert!(!has_token(&headers, "secret"));
        headers.insert("authorization", "Token secret".parse().unwrap());
        assert!(!has_token(&headers, "secret"));
    }
}
