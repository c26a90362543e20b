//! A fault-injecting proxy on loopback between the client and a real `docker-registry`
//! (issue 5, failures): it answers 500/503/429, drops connections, and cuts a blob
//! mid-stream in either direction. A push either completes or fails with an error naming
//! the registry, the repository and what failed; a rerun completes and sends only what is
//! missing; and the registry never holds a manifest whose blobs are missing.

mod support;

use solum_build::image::Digest;
use solum_build::registry::{pull, push, RegistryTarget};
use solum_build::store::Layout;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use support::registry::*;

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Forward untouched (counts against a rule, to let the first N requests through).
    Pass,
    /// Answer this status with a distribution error envelope.
    Status(u16),
    /// 429 with `Retry-After: 1`.
    TooMany,
    /// 400 `MANIFEST_BLOB_UNKNOWN`: a registry that does not see, for an instant, a blob
    /// another client is writing.
    BlobUnseen,
    /// Close the connection without an answer.
    Drop,
    /// Forward the request head and only this many body bytes, then close both sides.
    CutRequest(usize),
    /// Forward the request, then only this many bytes of the answer.
    CutResponse(usize),
}

struct Rule {
    method: &'static str,
    path: &'static str,
    fault: Fault,
    times: usize,
}

fn rule(method: &'static str, path: &'static str, fault: Fault, times: usize) -> Rule {
    Rule {
        method,
        path,
        fault,
        times,
    }
}

/// The proxy: listens on a free loopback port, forwards to `upstream`, applies the first
/// matching rule that has uses left to each request. Every forwarded request carries
/// `Connection: close`, so one connection is one request.
struct Proxy {
    port: u16,
    rules: Arc<Mutex<Vec<Rule>>>,
    faults: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    fn start(upstream: u16, rules: Vec<Rule>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let rules = Arc::new(Mutex::new(rules));
        let faults = Arc::new(Mutex::new(Vec::new()));
        let (shared_rules, shared_faults) = (rules.clone(), faults.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let rules = shared_rules.clone();
                let faults = shared_faults.clone();
                std::thread::spawn(move || handle(client, upstream, &rules, &faults));
            }
        });
        Proxy {
            port,
            rules,
            faults,
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn set_rules(&self, rules: Vec<Rule>) {
        *self.rules.lock().unwrap() = rules;
    }
}

fn handle(
    mut client: TcpStream,
    upstream: u16,
    rules: &Mutex<Vec<Rule>>,
    log: &Mutex<Vec<String>>,
) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut words = text.split(' ');
    let method = words.next().unwrap_or("").to_string();
    let path = words.next().unwrap_or("").to_string();
    let fault = {
        let mut rules = rules.lock().unwrap();
        match rules
            .iter_mut()
            .find(|r| r.times > 0 && r.method == method && path.contains(r.path))
        {
            Some(rule) => {
                rule.times -= 1;
                rule.fault
            }
            None => Fault::Pass,
        }
    };
    if !matches!(fault, Fault::Pass) {
        log.lock()
            .unwrap()
            .push(format!("{fault:?} {method} {path}"));
    }
    let mut forwarded: String = text
        .split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("connection:") && !line.is_empty())
        .map(|line| format!("{line}\r\n"))
        .collect();
    forwarded.push_str("Connection: close\r\n\r\n");
    let answer = |client: &mut TcpStream, status: u16, extra: &str| {
        let code = if status == 400 {
            "MANIFEST_BLOB_UNKNOWN"
        } else {
            "UNAVAILABLE"
        };
        let body = format!(r#"{{"errors":[{{"code":"{code}","message":"injected {status}"}}]}}"#);
        let _ = write!(
            client,
            "HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = client.shutdown(Shutdown::Write);
        // Drain what the client still sends, so it reads the answer instead of a reset.
        let _ = client.set_read_timeout(Some(std::time::Duration::from_millis(500)));
        let _ = std::io::copy(client, &mut std::io::sink());
    };
    match fault {
        Fault::Status(status) => answer(&mut client, status, ""),
        Fault::TooMany => answer(&mut client, 429, "Retry-After: 1\r\n"),
        Fault::BlobUnseen => answer(&mut client, 400, ""),
        Fault::Drop => {
            let _ = client.shutdown(Shutdown::Both);
        }
        Fault::CutRequest(limit) => {
            let mut server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
            server.write_all(forwarded.as_bytes()).unwrap();
            let mut body = (&client).take(limit as u64);
            let _ = std::io::copy(&mut body, &mut server);
            let _ = server.shutdown(Shutdown::Both);
            let _ = client.shutdown(Shutdown::Both);
        }
        Fault::Pass | Fault::CutResponse(_) => {
            let mut server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
            server.write_all(forwarded.as_bytes()).unwrap();
            let (mut from_client, mut to_server) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_client, &mut to_server);
                let _ = to_server.shutdown(Shutdown::Write);
            });
            let limit = match fault {
                Fault::CutResponse(limit) => limit as u64,
                _ => u64::MAX,
            };
            let _ = std::io::copy(&mut (&server).take(limit), &mut client);
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
    }
}

fn image(dir: &std::path::Path, seed: u64) -> (Layout, solum_build::store::ResolvedImage) {
    let layout = Layout::open_or_create(dir).unwrap();
    make_image(&layout, "app", seed, &[&[400_000], &[120_000]]);
    let image = layout.resolve(Some("app")).unwrap();
    (layout, image)
}

fn digests(image: &solum_build::store::ResolvedImage) -> Vec<Digest> {
    image
        .blobs()
        .iter()
        .map(|d| Digest::try_from(d.digest()).unwrap())
        .collect()
}

#[test]
fn transient_faults_are_retried_and_push_and_pull_complete() {
    let registry = Registry::start(Mode::Plain);
    let proxy = Proxy::start(
        registry.port,
        vec![
            rule("GET", "/v2/", Fault::Status(500), 1),
            rule("HEAD", "/blobs/", Fault::TooMany, 1),
            rule("HEAD", "/blobs/", Fault::Drop, 1),
            rule("POST", "/blobs/uploads/", Fault::Status(503), 1),
            rule("PUT", "/blobs/uploads/", Fault::Pass, 1),
            rule("PUT", "/blobs/uploads/", Fault::CutRequest(100_000), 1),
            rule("PUT", "/blobs/uploads/", Fault::Drop, 1),
            rule("PUT", "/manifests/", Fault::Status(500), 1),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let (layout, image) = image(&dir.path().join("layout"), 1);
    let dest = RegistryTarget::new(&proxy.host(), "flaky/app", Some("1"));
    let recorder = Recorder::default();
    let digest = push(&layout, &image, &dest, &options(), &recorder).unwrap();
    assert_eq!(digest, image.manifest_digest);
    let injected = proxy.faults.lock().unwrap().len();
    assert_eq!(injected, 7, "{:?}", proxy.faults.lock().unwrap());
    assert!(
        recorder.retries.lock().unwrap().len() >= 6,
        "{:?}",
        recorder.retries.lock().unwrap()
    );
    // Read straight from the registry, past the proxy.
    assert_eq!(
        skopeo_digest(
            &["--tls-verify=false"],
            &format!("docker://{}/flaky/app:1", registry.host())
        ),
        digest.to_string()
    );

    // A pull through a connection that drops, a 500, and a blob cut mid-stream.
    proxy.set_rules(vec![
        rule("GET", "/manifests/", Fault::Status(502), 1),
        rule("GET", "/blobs/", Fault::CutResponse(50_000), 1),
        rule("GET", "/blobs/", Fault::Drop, 1),
    ]);
    let store = Layout::open_or_create(&dir.path().join("store")).unwrap();
    let pulled = pull(&dest, &store, &options(), &Recorder::default()).unwrap();
    assert_eq!(pulled.digest().to_string(), digest.to_string());
    for (blob, expected) in image.blobs().iter().zip(digests(&image)) {
        store
            .open_blob(&expected, Some(blob.size()))
            .unwrap()
            .finish()
            .unwrap();
    }
    assert!(
        store
            .temp_dir()
            .unwrap()
            .read_dir()
            .unwrap()
            .next()
            .is_none(),
        "no partial blob left"
    );
}

#[test]
fn a_push_cut_every_time_fails_clearly_leaves_no_manifest_and_a_rerun_sends_only_the_rest() {
    let registry = Registry::start(Mode::Plain);
    // The first blob (the config) goes through; every other upload is cut mid-stream.
    let proxy = Proxy::start(
        registry.port,
        vec![
            rule("PUT", "/blobs/uploads/", Fault::Pass, 1),
            rule(
                "PUT",
                "/blobs/uploads/",
                Fault::CutRequest(30_000),
                usize::MAX,
            ),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let (layout, image) = image(dir.path(), 2);
    let blobs = digests(&image);
    let through_proxy = RegistryTarget::new(&proxy.host(), "cut/app", Some("1"));
    let error = push(
        &layout,
        &image,
        &through_proxy,
        &options(),
        &Recorder::default(),
    )
    .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains(&proxy.host()) && text.contains("cut/app") && text.contains("upload blob"),
        "{text}"
    );
    assert!(!registry.has_manifest("cut/app", "1", None));
    assert!(registry.stores_blob(&blobs[0]), "the config got through");

    // The rerun, straight to the registry: the config is skipped, the layers are sent.
    let direct = RegistryTarget::new(&registry.host(), "cut/app", Some("1"));
    let recorder = Recorder::default();
    push(&layout, &image, &direct, &options(), &recorder).unwrap();
    let done = recorder.done.lock().unwrap().clone();
    assert!(done[&blobs[0].to_string()], "config skipped");
    assert!(!done[&blobs[1].to_string()]);
    assert!(!done[&blobs[2].to_string()]);
    assert!(registry.has_manifest("cut/app", "1", None));
}

#[test]
fn a_manifest_put_that_always_fails_names_the_status_and_a_rerun_uploads_no_blob() {
    let registry = Registry::start(Mode::Plain);
    let proxy = Proxy::start(
        registry.port,
        vec![rule("PUT", "/manifests/", Fault::Status(500), usize::MAX)],
    );
    let dir = tempfile::tempdir().unwrap();
    let (layout, image) = image(dir.path(), 3);
    let dest = RegistryTarget::new(&proxy.host(), "nomani/app", Some("1"));
    let recorder = Recorder::default();
    let error = push(&layout, &image, &dest, &options(), &recorder).unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("nomani/app")
            && text.contains("HTTP 500")
            && text.contains("UNAVAILABLE")
            && text.contains("PUT manifest 1"),
        "{text}"
    );
    // Bounded: five attempts, then the error.
    assert_eq!(proxy.faults.lock().unwrap().len(), 5);
    assert!(!registry.has_manifest("nomani/app", "1", None));
    for blob in digests(&image) {
        assert!(registry.stores_blob(&blob));
    }
    proxy.set_rules(Vec::new());
    let rerun = Recorder::default();
    push(&layout, &image, &dest, &options(), &rerun).unwrap();
    assert_eq!((rerun.skipped(), rerun.transferred()), (3, 0));
    assert_eq!(rerun.bytes.load(Ordering::SeqCst), 0);
    assert!(registry.has_manifest("nomani/app", "1", None));
}

/// A manifest PUT refused because the registry did not see a blob for an instant (two
/// workers pushing the same layers at once) is asked again; a refusal that stays is the
/// error, after the same bounded attempts.
#[test]
fn a_manifest_put_refused_for_a_blob_the_registry_did_not_see_yet_is_asked_again() {
    let registry = Registry::start(Mode::Plain);
    let proxy = Proxy::start(
        registry.port,
        vec![rule("PUT", "/manifests/", Fault::BlobUnseen, 2)],
    );
    let dir = tempfile::tempdir().unwrap();
    let (layout, image) = image(dir.path(), 4);
    let dest = RegistryTarget::new(&proxy.host(), "unseen/app", Some("1"));
    push(&layout, &image, &dest, &options(), &Recorder::default()).unwrap();
    assert_eq!(proxy.faults.lock().unwrap().len(), 2);
    assert!(registry.has_manifest("unseen/app", "1", None));

    proxy.set_rules(vec![rule(
        "PUT",
        "/manifests/",
        Fault::BlobUnseen,
        usize::MAX,
    )]);
    let dest = RegistryTarget::new(&proxy.host(), "unseen/app", Some("2"));
    let error = push(&layout, &image, &dest, &options(), &Recorder::default()).unwrap_err();
    assert!(
        error.to_string().contains("MANIFEST_BLOB_UNKNOWN"),
        "{error}"
    );
    assert!(!registry.has_manifest("unseen/app", "2", None));
}

#[test]
fn run_again_as_tester() {
    support::rerun_as_tester();
}
