//! Authentication and TLS against a real `docker-registry` (issue 5): htpasswd basic auth
//! with login/logout, Bearer tokens from a token server run by the test (JWTs signed with
//! a key the test makes, trusted through distribution's `rootcertbundle`), and TLS with a
//! test CA through a certs.d folder.

mod support;

use base64::Engine as _;
use solum_build::registry::{
    login, logout, pull, push, Credentials, NoProgress, RegistryError, RegistryTarget,
};
use solum_build::store::Layout;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::registry::*;
use support::Cmd;

#[test]
fn basic_auth_needs_credentials_and_login_writes_what_push_reads() {
    let registry = Registry::start(Mode::Basic {
        user: "alice".into(),
        pass: "wonder:land".into(),
    });
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::open_or_create(&dir.path().join("layout")).unwrap();
    let expected = make_image(&layout, "app", 1, &[&[5_000]]);
    let image = layout.resolve(Some("app")).unwrap();
    let dest = RegistryTarget::new(&registry.host(), "secure/app", Some("1"));
    let authfile = dir.path().join("auth.json");

    // Anonymous: refused, and the error says where and why.
    let mut anonymous = options();
    anonymous.authfile = Some(authfile.clone());
    let error = push(&layout, &image, &dest, &anonymous, &NoProgress).unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, RegistryError::Status { status: 401, .. }),
        "{text}"
    );
    assert!(
        text.contains(&registry.host()) && text.contains("secure/app"),
        "{text}"
    );

    // A wrong password is refused at login and nothing is written.
    // The message names the registry and what was refused, not a pseudo repository, and
    // does not send the user to `login`, which is what failed.
    let wrong = Credentials::new("alice", "nope");
    let refused = login(&registry.host(), &wrong, Some(&authfile), &options())
        .unwrap_err()
        .to_string();
    assert!(
        refused.starts_with(&format!(
            "{}: the registry refused the user name or password (HTTP 401",
            registry.host()
        )),
        "{refused}"
    );
    assert!(!refused.contains("login-check") && !refused.contains("solum-build login"));
    assert!(!authfile.exists());

    let right = Credentials::parse("alice:wonder:land").unwrap();
    let written = login(&registry.host(), &right, Some(&authfile), &options()).unwrap();
    assert_eq!(written, authfile);
    let digest = push(&layout, &image, &dest, &anonymous, &NoProgress).unwrap();
    assert_eq!(digest, expected);
    // skopeo reads the same file.
    assert_eq!(
        skopeo_digest(
            &[
                "--tls-verify=false",
                "--authfile",
                authfile.to_str().unwrap()
            ],
            &format!("docker://{}/secure/app:1", registry.host())
        ),
        expected.to_string()
    );
    // --creds alone works too.
    let mut with_creds = options();
    with_creds.creds = Some(right.clone());
    let store = Layout::open_or_create(&dir.path().join("store")).unwrap();
    pull(&dest, &store, &with_creds, &NoProgress).unwrap();

    assert!(logout(&registry.host(), Some(&authfile)).unwrap());
    assert!(push(&layout, &image, &dest, &anonymous, &NoProgress).is_err());
}

#[test]
fn tls_with_a_test_ca_in_a_cert_dir_and_without_verification() {
    let registry = Registry::start(Mode::Tls);
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::open_or_create(&dir.path().join("layout")).unwrap();
    let expected = make_image(&layout, "app", 2, &[&[5_000]]);
    let image = layout.resolve(Some("app")).unwrap();
    let dest = RegistryTarget::new(&registry.host(), "tls/app", Some("1"));

    let certs = dir.path().join("certs.d");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(registry.ca_path(), certs.join("ca.crt")).unwrap();
    let mut trusted = options();
    trusted.plain_http = false;
    trusted.cert_dir = Some(certs.clone());
    assert_eq!(
        push(&layout, &image, &dest, &trusted, &NoProgress).unwrap(),
        expected
    );
    assert_eq!(
        skopeo_digest(
            &["--cert-dir", certs.to_str().unwrap()],
            &format!("docker://{}/tls/app:1", registry.host())
        ),
        expected.to_string()
    );

    // Without the CA the certificate is not trusted (and the plain-http fallback for
    // loopback cannot help: the registry speaks only TLS).
    let mut untrusted = options();
    untrusted.plain_http = false;
    untrusted.cert_dir = Some(dir.path().join("empty"));
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();
    assert!(push(&layout, &image, &dest, &untrusted, &NoProgress).is_err());

    let mut unverified = untrusted.clone();
    unverified.tls_verify = Some(false);
    let store = Layout::open_or_create(&dir.path().join("store")).unwrap();
    let pulled = pull(&dest, &store, &unverified, &NoProgress).unwrap();
    assert_eq!(pulled.digest().to_string(), expected.to_string());
}

/// A token server: grants the requested scopes to `user:pass` (pull only to anonymous
/// callers), signs RS256 JWTs with `key.pem` and puts `cert.pem` in their `x5c` header.
/// With `first_token_expired`, the first token it hands out expired long ago while
/// claiming a long life, as a token that runs out in the middle of a push would.
struct TokenServer {
    realm: String,
    cert: PathBuf,
    requests: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

impl TokenServer {
    fn start(user: &str, pass: &str, first_token_expired: bool) -> TokenServer {
        require("openssl", "openssl");
        let dir = tempfile::tempdir().unwrap();
        Cmd::program("openssl")
            .current_dir(dir.path())
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "key.pem",
                "-out",
                "cert.pem",
                "-days",
                "2",
                "-subj",
                "/CN=token signer",
            ])
            .run()
            .ok();
        let der = run_bytes(
            Command::new("openssl")
                .current_dir(dir.path())
                .args(["x509", "-in", "cert.pem", "-outform", "DER"]),
        );
        let x5c = base64::engine::general_purpose::STANDARD.encode(der);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let expected_auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        );
        let key = dir.path().join("key.pem");
        let counter = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap_or(0);
                let mut authorization = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':') {
                        if name.eq_ignore_ascii_case("authorization") {
                            authorization = Some(value.trim().to_string());
                        }
                    }
                }
                let number = counter.fetch_add(1, Ordering::SeqCst);
                let (status, body) = match &authorization {
                    Some(given) if *given != expected_auth => (
                        "401 Unauthorized",
                        r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#
                            .to_string(),
                    ),
                    _ => {
                        let target = request_line.split(' ').nth(1).unwrap_or("");
                        let expired = first_token_expired && number == 0;
                        let jwt = sign_token(&key, &x5c, target, authorization.is_some(), expired);
                        (
                            "200 OK",
                            serde_json::json!({"token": jwt, "expires_in": 300}).to_string(),
                        )
                    }
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        TokenServer {
            realm: format!("http://127.0.0.1:{port}/token"),
            cert: dir.path().join("cert.pem"),
            requests,
            _dir: dir,
        }
    }
}

fn run_bytes(command: &mut Command) -> Vec<u8> {
    let output = command.output().unwrap();
    assert!(output.status.success(), "{command:?} failed");
    output.stdout
}

fn base64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes `%XX` in a query value.
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn sign_token(key: &Path, x5c: &str, target: &str, authenticated: bool, expired: bool) -> String {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let mut access = Vec::new();
    let mut account = String::new();
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = unescape(value);
        match name {
            "account" => account = value,
            "scope" => {
                let mut parts = value.splitn(3, ':');
                let kind = parts.next().unwrap_or("");
                let repo = parts.next().unwrap_or("");
                let actions: Vec<&str> = parts
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .filter(|a| authenticated || *a == "pull")
                    .collect();
                access.push(serde_json::json!({"type": kind, "name": repo, "actions": actions}));
            }
            _ => {}
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (issued, expires) = if expired {
        (now - 7200, now - 3600)
    } else {
        (now - 10, now + 300)
    };
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": "test-issuer", "sub": account, "aud": "test-registry",
        "exp": expires, "nbf": issued, "iat": issued,
        "jti": format!("{now}-{}", access.len()), "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes())
    );
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(signing_input.as_bytes())
        .unwrap();
    let signature = child.wait_with_output().unwrap().stdout;
    format!("{signing_input}.{}", base64url(&signature))
}

#[test]
fn bearer_tokens_are_fetched_cached_and_renewed_when_refused() {
    let tokens = TokenServer::start("bob", "builder", true);
    let registry = Registry::start(Mode::Token {
        realm: tokens.realm.clone(),
        cert: tokens.cert.clone(),
    });
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::open_or_create(&dir.path().join("layout")).unwrap();
    let expected = make_image(&layout, "app", 3, &[&[5_000], &[6_000], &[7_000], &[8_000]]);
    let image = layout.resolve(Some("app")).unwrap();
    let dest = RegistryTarget::new(&registry.host(), "tok/app", Some("1"));

    let mut creds = options();
    creds.creds = Some(Credentials::new("bob", "builder"));
    let recorder = Recorder::default();
    let digest = push(&layout, &image, &dest, &creds, &recorder).unwrap();
    assert_eq!(digest, expected);
    assert_eq!(recorder.transferred(), 5);
    // The first token was refused (401) and renewed once; the renewed one served every
    // other request of the push: a token per request would be dozens.
    let used = tokens.requests.load(Ordering::SeqCst);
    assert!((2..=4).contains(&used), "{used} token requests");

    // Anonymous callers get pull tokens: a pull works, a push is refused.
    let store = Layout::open_or_create(&dir.path().join("store")).unwrap();
    let pulled = pull(&dest, &store, &options(), &NoProgress).unwrap();
    assert_eq!(pulled.digest().to_string(), expected.to_string());
    let other = RegistryTarget::new(&registry.host(), "tok/other", Some("1"));
    let error = push(&layout, &image, &other, &options(), &NoProgress).unwrap_err();
    assert!(
        matches!(error, RegistryError::Status { status: 401, .. }),
        "{error}"
    );

    // Wrong credentials: the token server's refusal is reported.
    let mut wrong = options();
    wrong.creds = Some(Credentials::new("bob", "wrong"));
    let error = push(&layout, &image, &other, &wrong, &NoProgress).unwrap_err();
    assert!(
        matches!(error, RegistryError::TokenRefused { status: 401, .. }),
        "{error}"
    );
    // login checks against the token server too.
    let authfile = dir.path().join("auth.json");
    assert!(login(
        &registry.host(),
        &Credentials::new("bob", "wrong"),
        Some(&authfile),
        &options()
    )
    .is_err());
    login(
        &registry.host(),
        &Credentials::new("bob", "builder"),
        Some(&authfile),
        &options(),
    )
    .unwrap();
    let mut from_file = options();
    from_file.authfile = Some(authfile);
    push(&layout, &image, &other, &from_file, &NoProgress).unwrap();
    assert!(registry.has_manifest("tok/other", "1", Some("bob:builder")));
}

#[test]
fn run_again_as_tester() {
    support::rerun_as_tester();
}
