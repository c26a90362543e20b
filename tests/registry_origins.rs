//! Issue 10, the registry client against hostile peers: credentials go only to the origin
//! they were given for (W07, W08), a registry that drips its answer cannot hold a pull
//! (W09), and a repository path with `..` never reaches the wire (W10). The registry is
//! the real `docker-registry`; a relay in front of it records every request head and plays
//! the hostile part (rewriting `Location`, dripping bodies).

mod support;

use solum_build::registry::{pull, push, Credentials, NoProgress, RegistryTarget};
use solum_build::store::Layout;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::registry::*;
use support::Cmd;

/// What a relay does besides forwarding.
#[derive(Clone, Default)]
struct Behaviour {
    /// Added to every forwarded request that has none (a presigned upload URL's own
    /// authority, as a storage backend would have).
    inject_authorization: Option<String>,
    /// `(from, to)` replaced in `Location` headers of answers.
    rewrite_location: Option<(String, String)>,
    /// Answers of GET requests whose path contains this are sent one byte per `drip.1`.
    drip: Option<(String, Duration)>,
}

/// Forwards to `upstream` (one request per connection) and records each request head.
struct Relay {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Relay {
    fn start(upstream: u16, behaviour: Behaviour) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let shared = heads.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (heads, behaviour) = (shared.clone(), behaviour.clone());
                std::thread::spawn(move || relay(client, upstream, &behaviour, &heads));
            }
        });
        Relay { port, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

fn relay(mut client: TcpStream, upstream: u16, behaviour: &Behaviour, heads: &Mutex<Vec<String>>) {
    let Some(head) = read_head(&mut client) else {
        return;
    };
    heads.lock().unwrap().push(head.clone());
    let has_authorization = head.to_ascii_lowercase().contains("\r\nauthorization:");
    let mut forwarded: String = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:") && !l.is_empty())
        .map(|l| format!("{l}\r\n"))
        .collect();
    if let (Some(value), false) = (&behaviour.inject_authorization, has_authorization) {
        forwarded.push_str(&format!("Authorization: {value}\r\n"));
    }
    forwarded.push_str("Connection: close\r\n\r\n");
    let mut server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
    server.write_all(forwarded.as_bytes()).unwrap();
    let (mut from_client, mut to_server) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_server);
        let _ = to_server.shutdown(Shutdown::Write);
    });
    let Some(mut answer) = read_head(&mut server) else {
        return;
    };
    if let Some((from, to)) = &behaviour.rewrite_location {
        answer = answer.replace(from.as_str(), to.as_str());
    }
    let _ = client.write_all(answer.as_bytes());
    let drip = behaviour.drip.as_ref().filter(|(path, _)| {
        head.starts_with("GET ") && head.lines().next().unwrap_or("").contains(path.as_str())
    });
    match drip {
        Some((_, delay)) => {
            let mut byte = [0u8; 1];
            while let Ok(1) = server.read(&mut byte) {
                if client.write_all(&byte).is_err() {
                    break;
                }
                std::thread::sleep(*delay);
            }
        }
        None => {
            let _ = std::io::copy(&mut server, &mut client);
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}

fn has_authorization(head: &str) -> bool {
    head.to_ascii_lowercase().contains("\r\nauthorization:")
}

/// W07: the registry's upload `Location` points at another origin; the upload goes there
/// without the registry's credentials (the push still completes: the other origin here
/// authorises the upload by itself, as a presigned storage URL would).
#[test]
fn an_upload_location_on_another_origin_gets_no_credentials() {
    let registry = Registry::start(Mode::Basic {
        user: "alice".into(),
        pass: "secret".into(),
    });
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "alice:secret")
    );
    let elsewhere = Relay::start(
        registry.port,
        Behaviour {
            inject_authorization: Some(basic),
            ..Behaviour::default()
        },
    );
    // The front relay rewrites Locations that name itself, so its port is chosen first.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let front_port = listener.local_addr().unwrap().port();
    drop(listener);
    let front = start_at(
        front_port,
        registry.port,
        Behaviour {
            rewrite_location: Some((
                format!("Location: http://127.0.0.1:{front_port}/"),
                format!("Location: http://localhost:{}/", elsewhere.port),
            )),
            ..Behaviour::default()
        },
    );

    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::open_or_create(&dir.path().join("layout")).unwrap();
    let expected = make_image(&layout, "app", 7, &[&[20_000]]);
    let image = layout.resolve(Some("app")).unwrap();
    let dest = RegistryTarget::new(&format!("127.0.0.1:{front_port}"), "w07/app", Some("1"));
    let mut options = options();
    options.creds = Some(Credentials::new("alice", "secret"));
    assert_eq!(
        push(&layout, &image, &dest, &options, &NoProgress).unwrap(),
        expected
    );

    let uploads = elsewhere.heads();
    assert!(!uploads.is_empty(), "no upload went to the other origin");
    for head in &uploads {
        assert!(
            !has_authorization(head),
            "credentials sent to another origin:\n{head}"
        );
    }
    assert!(
        front.heads().iter().any(|h| has_authorization(h)),
        "the registry itself got no credentials"
    );
}

/// A relay on a given port (see the W07 test).
fn start_at(port: u16, upstream: u16, behaviour: Behaviour) -> Relay {
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let shared = heads.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let (heads, behaviour) = (shared.clone(), behaviour.clone());
            std::thread::spawn(move || relay(client, upstream, &behaviour, &heads));
        }
    });
    Relay { port, heads }
}

/// A server that records request heads and answers 401 to each.
fn recording_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let shared = heads.clone();
    std::thread::spawn(move || {
        for mut client in listener.incoming().flatten() {
            if let Some(head) = read_head(&mut client) {
                shared.lock().unwrap().push(head);
            }
            let _ = client.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (port, heads)
}

/// W08: a TLS registry (certificate verified) whose challenge names a plain-http token
/// realm: the credentials are not sent there, and the pull fails saying why.
#[test]
fn a_plain_http_realm_of_a_tls_registry_gets_no_credentials() {
    let (realm_port, realm_heads) = recording_server();
    let registry = Registry::start(Mode::TlsToken {
        realm: format!("http://127.0.0.1:{realm_port}/token"),
    });
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs.d");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(registry.ca_path(), certs.join("ca.crt")).unwrap();
    let mut options = options();
    options.plain_http = false;
    options.cert_dir = Some(certs);
    options.creds = Some(Credentials::new("alice", "secret"));
    let store = Layout::open_or_create(&dir.path().join("store")).unwrap();
    let source = RegistryTarget::new(&registry.host(), "w08/app", Some("1"));
    let error = pull(&source, &store, &options, &NoProgress).unwrap_err();
    assert!(
        error.to_string().contains("clear text") && error.to_string().contains("/token"),
        "{error}"
    );
    for head in realm_heads.lock().unwrap().iter() {
        assert!(
            !has_authorization(head),
            "credentials sent in clear text:\n{head}"
        );
        assert!(!head.contains("alice"), "the user name was sent:\n{head}");
    }
}

/// W09: a registry that drips a blob one byte at a time fails the pull within the
/// deadline instead of holding it for as long as it likes; the layout gets no blob.
#[test]
fn a_dripping_registry_cannot_hold_a_pull() {
    let registry = Registry::start(Mode::Plain);
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::open_or_create(&dir.path().join("layout")).unwrap();
    make_image(&layout, "app", 9, &[&[50_000]]);
    let image = layout.resolve(Some("app")).unwrap();
    let target = RegistryTarget::new(&registry.host(), "w09/app", Some("1"));
    push(&layout, &image, &target, &options(), &NoProgress).unwrap();

    let drip = Relay::start(
        registry.port,
        Behaviour {
            drip: Some(("/blobs/".into(), Duration::from_millis(50))),
            ..Behaviour::default()
        },
    );
    let slow = RegistryTarget::new(&format!("127.0.0.1:{}", drip.port), "w09/app", Some("1"));
    let mut options = options();
    options.transfer.idle_timeout = Duration::from_millis(500);
    options.transfer.min_rate = 1024;
    options.transfer.deadline = Some(Duration::from_secs(5));
    options.retry.attempts = 2;
    let store = Layout::open_or_create(&dir.path().join("store")).unwrap();
    let started = Instant::now();
    let error = pull(&slow, &store, &options, &NoProgress).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let chain: Vec<String> =
        std::iter::successors(Some(&error as &dyn std::error::Error), |e| e.source())
            .map(std::string::ToString::to_string)
            .collect();
    assert!(
        chain
            .iter()
            .any(|e| e.contains("below the minimum") || e.contains("deadline")),
        "{chain:#?}"
    );
    assert_eq!(
        std::fs::read_dir(store.root().join("blobs/sha256"))
            .unwrap()
            .count(),
        0,
        "a blob landed in the layout"
    );
    // The same pull without the drip still works with these limits.
    pull(&target, &store, &options, &NoProgress).unwrap();
}

/// W10: a repository path with `..` is refused when the reference is parsed: exit 2 and
/// not one request reaches the registry.
#[test]
fn dot_dot_in_a_repository_never_reaches_the_registry() {
    let (port, heads) = recording_server();
    let dir = support::temp_dir();
    let store = dir.path().join("store");
    for reference in [
        format!("docker://127.0.0.1:{port}/../../x/..:1"),
        format!("docker://127.0.0.1:{port}/a/../b:1"),
        format!("docker://127.0.0.1:{port}/a:../../b"),
    ] {
        let run = Cmd::solum(&store)
            .arg("pull")
            .arg(&reference)
            .run()
            .fails_with(2);
        assert!(run.stderr.contains(&reference), "{}", run.text());
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        heads.lock().unwrap().is_empty(),
        "{:?}",
        heads.lock().unwrap()
    );
}

#[test]
fn run_again_as_tester() {
    support::rerun_as_tester();
}
