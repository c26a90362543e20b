//! How a registry wants to be authenticated, and the Bearer tokens it hands out: parsing
//! `WWW-Authenticate`, fetching a token from the realm for a set of scopes, and caching
//! tokens per scope until shortly before they expire. It makes token requests only; which
//! request needs which scope is the client's business.

use super::credentials::Credentials;
use super::{ErrorEnvelope, RegistryError};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a registry's 401 asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Parses the first challenge we can answer from a `WWW-Authenticate` header value:
/// `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
        }),
        _ => None,
    }
}

/// `key="value", key=value, …` with quoted values that may hold commas.
fn parse_params(text: &str) -> HashMap<String, String> {
    let mut params = HashMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    params
}

/// Whether a token realm may be sent the registry's credentials: over https always (token
/// servers live on other hosts: auth.docker.io for Docker Hub), over plain http only when
/// `cleartext_ok` says the user accepted clear text for this registry. Anything else
/// (`ftp:`, no scheme) never.
pub(crate) fn realm_may_get_credentials(realm: &str, cleartext_ok: bool) -> bool {
    let scheme = realm.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("https") => true,
        Some("http") => cleartext_ok,
        _ => false,
    }
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
pub(crate) fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[derive(Clone)]
struct Token {
    value: String,
    renew_at: Instant,
}

/// Bearer tokens by scope set (space-joined, sorted), shared by the threads of one push.
#[derive(Default)]
pub(crate) struct TokenCache {
    tokens: Mutex<HashMap<String, Token>>,
}

impl TokenCache {
    /// A cached token that is not about to expire.
    pub(crate) fn get(&self, scopes: &str) -> Option<String> {
        let tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens
            .get(scopes)
            .filter(|t| Instant::now() < t.renew_at)
            .map(|t| t.value.clone())
    }

    /// Forgets a token the registry refused, so the next request fetches a new one.
    pub(crate) fn invalidate(&self, scopes: &str) {
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens.remove(scopes);
    }

    fn put(&self, scopes: &str, value: String, lifetime: Duration) {
        // Renew a little before the end: a token that expires while a request is in flight
        // costs a 401 and a resend of that request.
        let margin = (lifetime / 10).min(Duration::from_secs(10));
        let renew_at = Instant::now() + lifetime.saturating_sub(margin);
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens.insert(scopes.to_string(), Token { value, renew_at });
    }

    /// Fetches a token for `scopes` from the realm (with the credentials as basic auth, if
    /// any) and caches it. `cleartext_ok`: the realm may get the credentials over plain
    /// HTTP (see [`realm_may_get_credentials`]); otherwise an `http://` realm is refused
    /// before anything is sent, when there are credentials to send.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn fetch(
        &self,
        agent: &ureq::Agent,
        (registry, repository): (&str, &str),
        realm: &str,
        service: Option<&str>,
        scopes: &str,
        credentials: Option<&Credentials>,
        cleartext_ok: bool,
    ) -> Result<String, RegistryError> {
        if credentials.is_some() && !realm_may_get_credentials(realm, cleartext_ok) {
            return Err(RegistryError::CleartextRealm {
                registry: registry.to_string(),
                realm: realm.to_string(),
            });
        }
        let mut url = realm.to_string();
        let mut separator = if realm.contains('?') { '&' } else { '?' };
        let mut add = |key: &str, value: &str| {
            url.push(separator);
            url.push_str(key);
            url.push('=');
            url.push_str(&encode_query(value));
            separator = '&';
        };
        if let Some(service) = service {
            add("service", service);
        }
        for scope in scopes.split(' ').filter(|s| !s.is_empty()) {
            add("scope", scope);
        }
        if let Some(creds) = credentials {
            add("account", &creds.username);
        }
        let mut request = agent.get(&url);
        if let Some(creds) = credentials {
            request = request.header("Authorization", creds.basic_header());
        }
        let transport = |source| RegistryError::Transport {
            registry: registry.to_string(),
            repository: repository.to_string(),
            action: format!("token request to {realm}"),
            attempts: 1,
            source: Box::new(source),
        };
        let mut response = request.call().map_err(transport)?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(transport)?;
        if status != 200 {
            return Err(RegistryError::TokenRefused {
                registry: registry.to_string(),
                realm: realm.to_string(),
                status,
                errors: ErrorEnvelope::parse(&body),
            });
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let bad = || RegistryError::BadToken {
            registry: registry.to_string(),
            realm: realm.to_string(),
        };
        let answer: Answer = serde_json::from_slice(&body).map_err(|_| bad())?;
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(bad)?;
        // The distribution spec: no expires_in means 60 seconds.
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(60).max(1));
        self.put(scopes, token.clone(), lifetime);
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic_challenges_parse() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into())
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    /// Issue 10 W08: a TLS registry's `realm="http://…"` gets no credentials.
    #[test]
    fn credentials_go_to_http_realms_only_when_clear_text_was_allowed() {
        assert!(realm_may_get_credentials(
            "https://auth.example/token",
            false
        ));
        assert!(realm_may_get_credentials(
            "HTTPS://auth.example/token",
            false
        ));
        assert!(!realm_may_get_credentials(
            "http://auth.example/token",
            false
        ));
        assert!(realm_may_get_credentials(
            "http://127.0.0.1:5001/token",
            true
        ));
        assert!(!realm_may_get_credentials("ftp://auth.example/token", true));
        assert!(!realm_may_get_credentials("auth.example/token", true));
        let cache = TokenCache::default();
        let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
        let creds = Credentials::new("u", "p");
        // Refused before any request: the port is closed, a request would be a Transport
        // error instead.
        let error = cache
            .fetch(
                &agent,
                ("r.example", "a"),
                "http://127.0.0.1:9/token",
                None,
                "",
                Some(&creds),
                false,
            )
            .unwrap_err();
        assert!(
            matches!(error, RegistryError::CleartextRealm { .. }),
            "{error}"
        );
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            encode_query("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }

    #[test]
    fn tokens_are_cached_per_scope_and_dropped_when_near_expiry_or_refused() {
        let cache = TokenCache::default();
        cache.put("repository:a:pull", "t1".into(), Duration::from_secs(300));
        cache.put("repository:b:pull", "t2".into(), Duration::from_millis(5));
        assert_eq!(cache.get("repository:a:pull").as_deref(), Some("t1"));
        assert_eq!(cache.get("repository:c:pull"), None);
        std::thread::sleep(Duration::from_millis(10));
        assert_eq!(cache.get("repository:b:pull"), None);
        cache.invalidate("repository:a:pull");
        assert_eq!(cache.get("repository:a:pull"), None);
    }
}
