//! Test bed for the registry client: a real `docker-registry` (distribution 2.8) on a free
//! loopback port in plain, htpasswd, TLS or token mode, small images built in temp
//! layouts, and a counter of what a push or pull reported. Tests that need a peer that is
//! not installed fail with the apt package to install; they never pass silently.

use super::cmd::Cmd;
use solum_build::image::{media, Digest};
use solum_build::layer::{write_tree, LayerCompression, WriteOptions};
use solum_build::registry::{RegistryOptions, RetryPolicy, TransferProgress};
use solum_build::store::image::manifest_descriptor;
use solum_build::store::Layout;
use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Panics with the package to install when a program is missing.
pub fn require(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()));
    assert!(
        found,
        "{program} is not installed; these tests need it: apt-get install {package}"
    );
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How the registry authenticates and serves.
pub enum Mode {
    Plain,
    Basic {
        user: String,
        pass: String,
    },
    /// TLS with a leaf certificate for 127.0.0.1 signed by a test CA (at `ca_path()`).
    Tls,
    /// distribution's `auth: token`, trusting the certificate at `cert`.
    Token {
        realm: String,
        cert: PathBuf,
    },
    /// TLS (as `Tls`) and `auth: token` with this realm (tokens checked against the test
    /// leaf certificate).
    TlsToken {
        realm: String,
    },
}

/// A running `docker-registry`, stopped on drop.
pub struct Registry {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl Registry {
    pub fn start(mode: Mode) -> Registry {
        require("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let storage = dir.path().join("storage");
        let mut config = format!(
            "version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\n",
            storage.display()
        );
        match &mode {
            Mode::Plain => config.push_str(&format!("http: {{addr: 127.0.0.1:{port}}}\n")),
            Mode::Basic { user, pass } => {
                require("htpasswd", "apache2-utils");
                let entry = Cmd::program("htpasswd")
                    .args(["-Bbn", user, pass])
                    .run()
                    .ok()
                    .stdout;
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, entry).unwrap();
                config.push_str(&format!(
                    "http: {{addr: 127.0.0.1:{port}}}\nauth: {{htpasswd: {{realm: basic-realm, path: {}}}}}\n",
                    file.display()
                ));
            }
            Mode::Tls => {
                make_tls(dir.path());
                config.push_str(&format!(
                    "http: {{addr: 127.0.0.1:{port}, tls: {{certificate: {}, key: {}}}}}\n",
                    dir.path().join("leaf.crt").display(),
                    dir.path().join("leaf.key").display()
                ));
            }
            Mode::TlsToken { realm } => {
                make_tls(dir.path());
                config.push_str(&format!(
                    "http: {{addr: 127.0.0.1:{port}, tls: {{certificate: {}, key: {}}}}}\nauth: {{token: {{realm: \"{realm}\", service: test-registry, issuer: test-issuer, rootcertbundle: {}}}}}\n",
                    dir.path().join("leaf.crt").display(),
                    dir.path().join("leaf.key").display(),
                    dir.path().join("leaf.crt").display()
                ));
            }
            Mode::Token { realm, cert } => config.push_str(&format!(
                "http: {{addr: 127.0.0.1:{port}}}\nauth: {{token: {{realm: \"{realm}\", service: test-registry, issuer: test-issuer, rootcertbundle: {}}}}}\n",
                cert.display()
            )),
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("docker-registry starts");
        wait_for_port(port);
        Registry { dir, port, child }
    }

    /// What the registry logged (warnings and errors), for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The OCI manifest `tag` of `repo` names, as JSON (plain-HTTP registries).
    pub fn oci_manifest(&self, repo: &str, tag: &str) -> serde_json::Value {
        self.document(repo, tag, OCI_MANIFEST)
            .expect("the registry has the manifest")
    }

    /// The document under `reference` of `repo`, asked for as `accept`; `None` when the
    /// registry has none (or it is not JSON).
    pub fn document(&self, repo: &str, reference: &str, accept: &str) -> Option<serde_json::Value> {
        let got = Cmd::program("curl")
            .args(["-sf", "-H", &format!("Accept: {accept}")])
            .arg(format!(
                "http://{}/v2/{repo}/manifests/{reference}",
                self.host()
            ))
            .run();
        serde_json::from_str(&got.stdout).ok()
    }

    /// Puts the OCI `manifest` under `tag` of `repo` (its blobs must be in the repository).
    pub fn put_oci_manifest(&self, repo: &str, tag: &str, manifest: &serde_json::Value) {
        self.put_document(repo, tag, OCI_MANIFEST, manifest);
    }

    /// Puts `document` (a manifest or index of `media_type`) under `reference` of `repo`.
    pub fn put_document(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        document: &serde_json::Value,
    ) {
        Cmd::program("curl")
            .args([
                "-sf",
                "-X",
                "PUT",
                "-H",
                &format!("Content-Type: {media_type}"),
            ])
            .args(["--data-binary", &document.to_string()])
            .arg(format!(
                "http://{}/v2/{repo}/manifests/{reference}",
                self.host()
            ))
            .run()
            .ok();
    }

    /// The test CA (TLS mode).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// Whether the registry serves `repo`'s manifest `reference`, asked without our client.
    pub fn has_manifest(&self, repo: &str, reference: &str, creds: Option<&str>) -> bool {
        let mut command = Command::new("skopeo");
        command.args(["inspect", "--raw", "--tls-verify=false"]);
        if let Some(creds) = creds {
            command.args(["--creds", creds]);
        }
        command
            .arg(format!("docker://{}/{repo}:{reference}", self.host()))
            .output()
            .unwrap()
            .status
            .success()
    }

    /// Whether the registry's storage holds a blob (read from its folder, no HTTP).
    pub fn stores_blob(&self, digest: &Digest) -> bool {
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&digest.hex()[..2])
            .join(digest.hex())
            .join("data")
            .is_file()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    require("openssl", "openssl");
    Cmd::program("openssl")
        .current_dir(dir)
        .args(args)
        .run()
        .ok();
}

/// A throwaway CA and a leaf for 127.0.0.1/localhost signed by it (rustls refuses a
/// self-signed CA certificate as a server certificate).
fn make_tls(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=solum test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.crt",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    );
}

/// Options for a loopback test registry: plain http, fast retries.
pub fn options() -> RegistryOptions {
    RegistryOptions {
        plain_http: true,
        retry: RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
        },
        ..RegistryOptions::default()
    }
}

/// Deterministic bytes that do not compress (xorshift).
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Builds an image of one layer per entry of `layers` (each a list of file sizes, filled
/// with noise) in `layout`, tags it `name`, and returns its manifest digest.
pub fn make_image(layout: &Layout, name: &str, seed: u64, layers: &[&[usize]]) -> Digest {
    make_image_for(layout, name, seed, layers, "amd64")
}

pub fn make_image_for(
    layout: &Layout,
    name: &str,
    seed: u64,
    layers: &[&[usize]],
    architecture: &str,
) -> Digest {
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for (i, files) in layers.iter().enumerate() {
        let tree = tempfile::tempdir().unwrap();
        for (j, size) in files.iter().enumerate() {
            std::fs::write(
                tree.path().join(format!("file-{i}-{j}")),
                noise(seed * 1000 + (i * 100 + j) as u64, *size),
            )
            .unwrap();
        }
        let blob = layout.begin_blob().unwrap();
        let options = WriteOptions {
            compression: LayerCompression::Gzip,
            epoch: Some(0),
            rootless: false,
            subordinate_ids: None,
        };
        let digests = write_tree(tree.path(), &options, blob.file().unwrap()).unwrap();
        blob.commit(&digests.digest).unwrap();
        descriptors.push(serde_json::json!({
            "mediaType": digests.media_type,
            "digest": digests.digest.to_string(),
            "size": digests.size,
        }));
        diff_ids.push(digests.diff_id.to_string());
    }
    let config = serde_json::json!({
        "architecture": architecture,
        "os": "linux",
        "config": {"Env": [format!("SEED={seed}")]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = layout.put_bytes(&config_bytes).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {
            "mediaType": media::OCI_CONFIG,
            "digest": config_digest.to_string(),
            "size": config_bytes.len(),
        },
        "layers": descriptors,
    });
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = layout.put_bytes(&manifest_bytes).unwrap();
    layout
        .tag(name, &manifest_descriptor(&manifest_bytes, None))
        .unwrap();
    digest
}

/// What a transfer reported, for assertions.
#[derive(Default)]
pub struct Recorder {
    pub started: Mutex<Vec<Digest>>,
    pub bytes: AtomicU64,
    pub done: Mutex<BTreeMap<String, bool>>,
    pub retries: Mutex<Vec<String>>,
    pub manifests: Mutex<Vec<(Digest, String)>>,
}

impl Recorder {
    pub fn skipped(&self) -> usize {
        self.done.lock().unwrap().values().filter(|s| **s).count()
    }
    pub fn transferred(&self) -> usize {
        self.done.lock().unwrap().values().filter(|s| !**s).count()
    }
}

impl TransferProgress for Recorder {
    fn on_blob_start(&self, digest: &Digest, _size: u64) {
        self.started.lock().unwrap().push(digest.clone());
    }
    fn on_blob_bytes(&self, _digest: &Digest, n: u64) {
        self.bytes.fetch_add(n, Ordering::SeqCst);
    }
    fn on_blob_done(&self, digest: &Digest, skipped: bool) {
        self.done
            .lock()
            .unwrap()
            .insert(digest.to_string(), skipped);
    }
    fn on_retry(&self, what: &str, attempt: u32, _delay: Duration, reason: &str) {
        self.retries
            .lock()
            .unwrap()
            .push(format!("{what} #{attempt}: {reason}"));
    }
    fn on_manifest(&self, digest: &Digest, media_type: &str) {
        self.manifests
            .lock()
            .unwrap()
            .push((digest.clone(), media_type.to_string()));
    }
}

/// The digest skopeo reports for an image.
pub fn skopeo_digest(args: &[&str], reference: &str) -> String {
    require("skopeo", "skopeo");
    let out = Cmd::program("skopeo")
        .arg("inspect")
        .args(args)
        .arg(reference)
        .run()
        .ok();
    let value: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    value["Digest"].as_str().unwrap().to_string()
}
