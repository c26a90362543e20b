//! Issue 10 through the real binary: what a badger folder, an API caller or a webhook
//! sender may name and make the server do. Each test reproduces one breach (B01–B04) or
//! weakness (W06, W11–W14) of the issue and shows it refused, with the host left as it
//! was. The server runs on a free loopback port with a temp data folder; registries are
//! real `docker-registry` instances.

mod registry_util;
mod util;

use registry_util::{free_port, wait_for_port};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use util::*;

const TOKEN: &str = "test-token-0123456789";

/// A running server, killed on drop.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn start(data: &Path, extra: &[&str]) -> Server {
        Server::start_env(data, extra, &[])
    }

    /// [`Server::start`] with extra environment variables for the server.
    fn start_env(data: &Path, extra: &[&str], env: &[(&str, &Path)]) -> Server {
        let port = free_port();
        let token_file = data.with_extension("token");
        std::fs::write(&token_file, TOKEN).unwrap();
        let log = data.with_extension("log");
        let child = Command::new(bin())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data")
            .arg(data)
            .arg("--token-file")
            .arg(&token_file)
            .args(["--workers", "1"])
            .args(extra)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_for_port(port);
        Server { child, port, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn call(&self, method: &str, path: &str, body: &[u8]) -> (u16, serde_json::Value) {
        self.call_with(
            method,
            path,
            body,
            &[("Authorization", &format!("Bearer {TOKEN}"))],
        )
    }

    fn call_with(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let response = agent.run(request.body(body.to_vec()).unwrap()).unwrap();
        let status = response.status().as_u16();
        let text = response.into_body().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// Waits for a workflow to reach a final state and returns its record.
    fn wait_final(&self, app: &str, id: i64) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let (status, record) = self.call("GET", &format!("/v1/apps/{app}/workflows/{id}"), b"");
            assert_eq!(status, 200, "{record}");
            let state = record["state"].as_str().unwrap().to_string();
            if [
                "READY",
                "BUILD_FAILED",
                "UNIT_TESTING_FAILED",
                "PUSH_FAILED",
                "ERROR",
                "CANCELLED",
            ]
            .contains(&state.as_str())
            {
                return record;
            }
            assert!(
                Instant::now() < deadline,
                "workflow {id} stuck: {record}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A data folder whose store has a busybox base (and, with `badger`, the shell badger).
fn data_with_base(dir: &Path, badger: bool) -> PathBuf {
    let data = dir.join("data");
    let rootfs = dir.join("busybox");
    busybox_rootfs(&rootfs);
    let store = data.join("store");
    solum(&store, &[&"import", &rootfs, &"--tag", &"base/busybox"]).ok();
    if badger {
        let shell = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("badgers/shell");
        solum(&store, &[&"badger", &"build", &shell]).ok();
    }
    data
}

/// A gzip tarball of `dir`'s entries (symlinks stored as symlinks).
fn tarball(dir: &Path) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir).unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

/// A badger folder with this manifest text (and a build.sh when `script` is given).
fn badger_folder(dir: &Path, manifest: &str, script: Option<&str>) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("badger.yaml"), manifest).unwrap();
    if let Some(script) = script {
        std::fs::write(dir.join("build.sh"), script).unwrap();
    }
    dir.to_path_buf()
}

/// Issue 10 B01: `build: /../../../../TMP/x/A.sh` must not write build.sh on the host,
/// neither by `badger build` nor by `POST /v1/badgers`.
#[test]
fn b01_badger_build_path_cannot_leave_the_image() {
    let dir = temp_dir();
    let data = data_with_base(dir.path(), false);
    let target = dir.path().join("x");
    std::fs::create_dir_all(&target).unwrap();
    let manifest = format!(
        "name: evil\nversion: 1\nfrom: base/busybox\nbuild: /../../../..{}/A.sh\n",
        target.display()
    );
    let folder = badger_folder(&dir.path().join("evil"), &manifest, Some("echo owned\n"));
    let run = solum(&data.join("store"), &[&"badger", &"build", &folder]).fails_with(2);
    assert!(run.stderr.contains("build:"), "{}", run.stderr);
    assert!(run.stderr.contains("normalised path"), "{}", run.stderr);
    assert!(!target.join("A.sh").exists());

    let server = Server::start(&data, &[]);
    let (status, answer) = server.call("POST", "/v1/badgers", &tarball(&folder));
    assert!((400..500).contains(&status), "{status} {answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("build:"),
        "{answer}"
    );
    assert!(!target.join("A.sh").exists());
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
}

/// Issue 10 B02: a badger whose build.sh (or setup script) is a symlink to a host file
/// is refused; the host file is never read into the badger.
#[test]
fn b02_symlinked_badger_files_are_refused() {
    let dir = temp_dir();
    let data = data_with_base(dir.path(), false);
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "TOP-SECRET-LINE\n").unwrap();
    let manifest = "name: leak\nversion: 1\nfrom: base/busybox\n";
    let folder = badger_folder(&dir.path().join("leak"), manifest, None);
    std::os::unix::fs::symlink(&secret, folder.join("build.sh")).unwrap();
    let store = data.join("store");
    let run = solum(&store, &[&"badger", &"build", &folder]).fails_with(2);
    assert!(run.stderr.contains("build.sh"), "{}", run.stderr);
    assert!(run.stderr.contains("symlink"), "{}", run.stderr);
    assert!(!run.text().contains("TOP-SECRET"));
    // The setup script the same, and badger.yaml itself.
    let setup = badger_folder(
        &dir.path().join("leak2"),
        "name: leak2\nversion: 1\nfrom: base/busybox\nsetup: s.sh\n",
        Some("true\n"),
    );
    std::os::unix::fs::symlink(&secret, setup.join("s.sh")).unwrap();
    let run = solum(&store, &[&"badger", &"build", &setup]).fails_with(2);
    assert!(run.stderr.contains("s.sh"), "{}", run.stderr);
    assert!(run.stderr.contains("symlink"), "{}", run.stderr);
    let yaml = dir.path().join("leak3");
    std::fs::create_dir_all(&yaml).unwrap();
    std::os::unix::fs::symlink(&secret, yaml.join("badger.yaml")).unwrap();
    let run = solum(&store, &[&"badger", &"build", &yaml]).fails_with(2);
    assert!(run.stderr.contains("symlink"), "{}", run.stderr);
    assert!(!run.text().contains("TOP-SECRET"));
    let listed = solum(&store, &[&"badger", &"list"]).ok();
    assert!(!listed.stdout.contains("leak"), "{}", listed.stdout);

    let server = Server::start(&data, &[]);
    for folder in [&folder, &setup, &yaml] {
        let (status, answer) = server.call("POST", "/v1/badgers", &tarball(folder));
        assert!((400..500).contains(&status), "{status} {answer}");
        assert!(!answer.to_string().contains("TOP-SECRET"), "{answer}");
    }
    // A tarball whose only entry is a symlink to a server folder holding a badger.
    let outside = badger_folder(&dir.path().join("outside"), manifest, Some("echo x\n"));
    let wrapper = dir.path().join("wrapper");
    std::fs::create_dir_all(&wrapper).unwrap();
    std::os::unix::fs::symlink(&outside, wrapper.join("b")).unwrap();
    let (status, answer) = server.call("POST", "/v1/badgers", &tarball(&wrapper));
    assert_eq!(status, 400, "{answer}");
    let (_, listed) = server.call("GET", "/v1/badgers", b"");
    assert_eq!(listed["badgers"].as_array().unwrap().len(), 0, "{listed}");
}

fn app_text(name: &str, badger: &str, source: &str) -> String {
    format!(
        "version: 1\nname: {name}\nbadger: {badger}\nsource:\n{source}\nworkflow_config:\n  \
         run_cmd: cat /app/built\n"
    )
}

/// Issue 10 B03: from the API an app names no server file — no local path or file:// URL
/// as its source, no artifact path, no oci:/oci-archive:/docker-archive: badger, and no
/// such reference to register as a DU. Each is a 400 naming the field.
#[test]
fn b03_requests_cannot_name_server_files() {
    let dir = temp_dir();
    let data = data_with_base(dir.path(), false);
    let secret = dir.path().join("secret");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("shadow"), "TOP-SECRET-LINE\n").unwrap();
    let shadow = secret.join("shadow").display().to_string();
    let server = Server::start(&data, &[]);
    let cases = [
        (
            "source.repository",
            app_text("a1", "badgers/shell", "  repository: /etc"),
        ),
        (
            "source.repository",
            app_text("a2", "badgers/shell", "  repository: file:///root"),
        ),
        (
            "source.repository",
            app_text(
                "a3",
                "badgers/shell",
                &format!("  repository: {}", secret.display()),
            ),
        ),
        (
            "source.repository",
            app_text("a4", "badgers/shell", "  repository: git@example.org:x/y"),
        ),
        (
            "source.artifact",
            app_text("a5", "badgers/shell", &format!("  artifact: {shadow}")),
        ),
        (
            "badger",
            app_text(
                "a6",
                &format!("oci:{}", data.join("store").display()),
                "  repository: https://example.org/r.git",
            ),
        ),
        (
            "badger",
            app_text(
                "a7",
                &format!("oci-archive:{shadow}"),
                "  repository: https://example.org/r.git",
            ),
        ),
        (
            "badgers[0]",
            format!(
                "{}badgers: [\"docker-archive:{shadow}\"]\n",
                app_text(
                    "a8",
                    "badgers/shell",
                    "  repository: https://example.org/r.git"
                )
            ),
        ),
    ];
    for (field, text) in &cases {
        let (status, answer) = server.call("POST", "/v1/apps", text.as_bytes());
        assert_eq!(status, 400, "{text}\n{answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.starts_with(&format!("{field}:")), "{field}: {error}");
        assert!(!answer.to_string().contains("TOP-SECRET"), "{answer}");
    }
    let (_, apps) = server.call("GET", "/v1/apps", b"");
    assert!(apps["apps"].as_array().unwrap().is_empty(), "{apps}");
    // PATCH is held to the same rules.
    let good = app_text(
        "ok",
        "badgers/shell",
        "  repository: https://example.org/r.git",
    );
    assert_eq!(server.call("POST", "/v1/apps", good.as_bytes()).0, 201);
    let bad = app_text("ok", "badgers/shell", "  repository: /etc");
    let (status, answer) = server.call("PATCH", "/v1/apps/ok", bad.as_bytes());
    assert_eq!(status, 400, "{answer}");
    // Registering a DU from a server path.
    for reference in [
        format!("oci:{}", data.join("store").display()),
        format!("oci-archive:{shadow}"),
        format!("docker-archive:{shadow}"),
    ] {
        let body = serde_json::json!({ "reference": reference, "name": "du" }).to_string();
        let (status, answer) = server.call("POST", "/v1/dus", body.as_bytes());
        assert_eq!(status, 400, "{reference}: {answer}");
        assert!(answer["error"].as_str().unwrap().starts_with("reference:"));
    }
    let (_, dus) = server.call("GET", "/v1/dus", b"");
    assert!(dus["dus"].as_array().unwrap().is_empty(), "{dus}");
    // A badger upload made `from` a server file.
    for from in [
        format!("oci:{}", data.join("store").display()),
        format!("oci-archive:{shadow}"),
    ] {
        let manifest = format!("name: b\nversion: 1\nfrom: {from:?}\n");
        let folder = badger_folder(&dir.path().join("b"), &manifest, Some("true\n"));
        let (status, answer) = server.call("POST", "/v1/badgers", &tarball(&folder));
        assert_eq!(status, 400, "{from}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().starts_with("from:"),
            "{answer}"
        );
    }
}

/// Issue 10 B03 with `serve --allow-local-source DIR`: folders under DIR build; a path
/// that leaves DIR by `..` or a symlink is refused at creation, and a folder swapped for
/// a symlink after creation is refused when the workflow runs, without quoting content.
#[test]
fn b03_allowed_local_folders_only_and_checked_again_at_build_time() {
    let dir = temp_dir();
    let data = data_with_base(dir.path(), true);
    let allowed = dir.path().join("allowed");
    let app_dir = allowed.join("app");
    std::fs::create_dir_all(&app_dir).unwrap();
    std::fs::write(app_dir.join("build"), "echo built > /app/built\n").unwrap();
    let secret = dir.path().join("secret");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("build"), "TOP-SECRET-LINE\n").unwrap();
    std::os::unix::fs::symlink(&secret, allowed.join("link")).unwrap();
    let server = Server::start(&data, &["--allow-local-source", allowed.to_str().unwrap()]);
    for source in [
        format!("{}/link", allowed.display()),
        format!("{}/app/../../secret", allowed.display()),
        format!("file://{}", secret.display()),
    ] {
        let text = app_text("x", "badgers/shell", &format!("  repository: {source}"));
        let (status, answer) = server.call("POST", "/v1/apps", text.as_bytes());
        assert_eq!(status, 400, "{source}: {answer}");
    }
    let text = app_text(
        "local",
        "badgers/shell",
        &format!("  repository: {}", app_dir.display()),
    );
    let (status, answer) = server.call("POST", "/v1/apps", text.as_bytes());
    assert_eq!(status, 201, "{answer}");
    let (status, started) = server.call("POST", "/v1/apps/local/workflows", b"");
    assert_eq!(status, 202, "{started}");
    let record = server.wait_final("local", started["id"].as_i64().unwrap());
    assert_eq!(record["state"], "READY", "{record}\n{}", server.log());

    // The allowed folder now leads elsewhere: the run-time check refuses it.
    std::fs::rename(&app_dir, allowed.join("old")).unwrap();
    std::os::unix::fs::symlink(&secret, &app_dir).unwrap();
    let (_, started) = server.call("POST", "/v1/apps/local/workflows", b"");
    let record = server.wait_final("local", started["id"].as_i64().unwrap());
    assert_eq!(record["state"], "ERROR", "{record}");
    let reason = record["transitions"].to_string();
    assert!(reason.contains("source.repository"), "{reason}");
    assert!(!record.to_string().contains("TOP-SECRET"), "{record}");
}

/// A TCP proxy in front of `upstream` that keeps every byte clients send, so a test can
/// say what a registry was told.
struct RecordingProxy {
    port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl RecordingProxy {
    fn start(upstream: u16) -> RecordingProxy {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (mut from_client, mut to_server) = (client.try_clone().unwrap(), server);
                let (mut from_server, mut to_client) = (to_server.try_clone().unwrap(), client);
                let record = record.clone();
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 16384];
                    while let Ok(n) = from_client.read(&mut buffer) {
                        if n == 0 || to_server.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                        record.lock().unwrap().extend_from_slice(&buffer[..n]);
                    }
                    let _ = to_server.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_server, &mut to_client);
                    let _ = to_client.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        RecordingProxy { port, seen }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).to_lowercase()
    }
}

/// Issue 10 B04: `serve --creds` go to the `--push-to` registry only. A second registry
/// (with htpasswd auth, so it asks for Basic credentials) named by a request — a DU to
/// register, an app's badger — never sees an Authorization header.
#[test]
fn b04_server_credentials_go_to_the_push_registry_only() {
    use registry_util::{Mode, Registry};
    let dir = temp_dir();
    let data = data_with_base(dir.path(), true);
    let push = Registry::start(Mode::Basic {
        user: "pusher".into(),
        pass: "push-secret".into(),
    });
    let other = Registry::start(Mode::Basic {
        user: "someone".into(),
        pass: "else".into(),
    });
    let proxy = RecordingProxy::start(other.port);
    let attacker = format!("127.0.0.1:{}", proxy.port);
    let server = Server::start(
        &data,
        &[
            "--push-to",
            &format!("docker://{}/apps", push.host()),
            "--creds",
            "pusher:push-secret",
        ],
    );
    let body = serde_json::json!({
        "reference": format!("docker://{attacker}/x:1"), "name": "stolen"
    });
    let (status, answer) = server.call("POST", "/v1/dus", body.to_string().as_bytes());
    assert!(status >= 400, "{answer}");
    let text = app_text(
        "lure",
        &format!("docker://{attacker}/badger:1"),
        "  repository: https://example.org/r.git",
    );
    assert_eq!(server.call("POST", "/v1/apps", text.as_bytes()).0, 201);
    let (_, started) = server.call(
        "POST",
        "/v1/apps/lure/workflows",
        br#"{"actions":["build"]}"#,
    );
    let record = server.wait_final("lure", started["id"].as_i64().unwrap());
    assert_eq!(record["state"], "ERROR", "{record}");
    let seen = proxy.text();
    assert!(
        seen.contains("get /v2/"),
        "the second registry was asked: {seen}"
    );
    assert!(!seen.contains("authorization:"), "{seen}");
    assert!(!seen.contains("cHVzaGVyOnB1c2gtc2VjcmV0".to_lowercase().as_str()));

    // The push registry still gets them: a DU registered and pushed there.
    let body = serde_json::json!({ "reference": "base/busybox", "name": "busybox", "push": true });
    let (status, answer) = server.call("POST", "/v1/dus", body.to_string().as_bytes());
    assert_eq!(status, 201, "{answer}\n{}", server.log());
    assert!(push.has_manifest(
        "apps/busybox",
        answer["du"]["pushed_to"]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap(),
        Some("pusher:push-secret")
    ));
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Issue 10 W14: the data folder holds every trigger secret: it is 0700 and its files
/// 0600, also when the folder (and older files) existed with wider modes.
#[test]
fn w14_the_data_folder_and_its_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let check = |data: &Path| {
        assert_eq!(mode(data), 0o700);
        for name in [
            "solum.db",
            "solum.db-wal",
            "solum.db-shm",
            "logs/1.log",
            "token",
        ] {
            let path = data.join(name);
            if name != "token" || path.exists() {
                assert_eq!(mode(&path), 0o600, "{name}");
            }
        }
    };
    {
        let server = Server::start(&data, &[]);
        let text = app_text(
            "p",
            "badgers/none",
            "  repository: https://example.org/r.git",
        );
        assert_eq!(server.call("POST", "/v1/apps", text.as_bytes()).0, 201);
        let (_, started) = server.call("POST", "/v1/apps/p/workflows", b"");
        server.wait_final("p", started["id"].as_i64().unwrap());
        check(&data);
        let (_, app) = server.call("GET", "/v1/apps/p", b"");
        assert!(app["trigger"]["secret"].is_string());
    }
    // Left wide by an older version or a hand: tightened at the next start.
    for (name, wide) in [("", 0o755), ("solum.db", 0o644), ("logs/1.log", 0o644)] {
        std::fs::set_permissions(data.join(name), std::fs::Permissions::from_mode(wide)).unwrap();
    }
    std::fs::write(data.join("token"), "old-token").unwrap();
    std::fs::set_permissions(data.join("token"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let _server = Server::start(&data, &[]);
    check(&data);
}

/// Issue 10 W13: a signed webhook delivery sent again (as is, or with a new delivery id,
/// which is not signed) starts no second workflow: the answer is 200 and names the first.
/// And the unsigned `X-Solum-Source` header no longer chooses what is built.
#[test]
fn w13_a_replayed_delivery_starts_one_workflow() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let text = app_text(
        "hook",
        "badgers/none",
        "  repository: https://example.org/r.git",
    );
    let (status, app) = server.call("POST", "/v1/apps", text.as_bytes());
    assert_eq!(status, 201, "{app}");
    let path = format!("/v1/triggers/{}", app["trigger"]["id"].as_str().unwrap());
    let secret = app["trigger"]["secret"].as_str().unwrap();
    let body = br#"{"ref":"refs/heads/main","after":"0123456789abcdef0123456789abcdef01234567","actions":["build"]}"#;
    let signature = solum_build::api::signature(secret, body);
    let send = |delivery: &str| {
        server.call_with(
            "POST",
            &path,
            body,
            &[
                ("X-Hub-Signature-256", signature.as_str()),
                ("X-GitHub-Event", "push"),
                ("X-GitHub-Delivery", delivery),
                ("X-Solum-Source", "managed"),
            ],
        )
    };
    let (status, first) = send("d-1");
    assert_eq!(status, 202, "{first}");
    let id = first["id"].as_i64().unwrap();
    for delivery in ["d-1", "d-2-forged"] {
        let (status, again) = send(delivery);
        assert_eq!(status, 200, "{again}");
        assert_eq!(again["id"].as_i64(), Some(id), "{again}");
        assert!(again["duplicate"].is_string(), "{again}");
    }
    let (_, list) = server.call("GET", "/v1/apps/hook/workflows", b"");
    assert_eq!(list["workflows"].as_array().unwrap().len(), 1, "{list}");
    // Another push (another body) is a new workflow.
    let other = br#"{"ref":"refs/heads/main","after":"1123456789abcdef0123456789abcdef01234567","actions":["build"]}"#;
    let other_signature = solum_build::api::signature(secret, other);
    let (status, _) = server.call_with(
        "POST",
        &path,
        other,
        &[("X-Hub-Signature-256", other_signature.as_str())],
    );
    assert_eq!(status, 202);
    server.wait_final("hook", id);
    let db = rusqlite::Connection::open(data.join("solum.db")).unwrap();
    let source: Option<String> = db
        .query_row("SELECT source FROM workflows WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(source, None, "the unsigned header chose the source");
}

/// A whole GET /v1/health over a raw connection: the status line, or why not.
fn raw_health(port: u16, within: Duration) -> Result<String, std::io::Error> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(within))?;
    stream.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer.lines().next().unwrap_or_default().to_string())
}

/// Issue 10 W11: many connections that send half a request (no token needed) neither
/// exhaust the server's descriptors nor keep it from answering: each is closed once the
/// header deadline passes, and at most --max-connections are open at once.
#[test]
fn w11_half_sent_requests_are_closed_and_bounded() {
    use std::io::{Read, Write};
    let dir = temp_dir();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--header-timeout", "2", "--max-connections", "40"]);
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", server.child.id()))
            .unwrap()
            .count()
    };
    let before = fds();
    let mut idle = Vec::new();
    for i in 0..120 {
        let mut stream = std::net::TcpStream::connect_timeout(
            &format!("127.0.0.1:{}", server.port).parse().unwrap(),
            Duration::from_secs(5),
        )
        .unwrap();
        // Half of them send half a request head, the others nothing at all.
        if i % 2 == 0 {
            stream
                .write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
        }
        idle.push(stream);
    }
    std::thread::sleep(Duration::from_millis(500));
    let during = fds();
    assert!(
        during <= before + 40 + 2,
        "{during} descriptors open with 120 idle clients (was {before})"
    );
    // The server still answers, once the deadline has freed slots.
    let started = Instant::now();
    let status = raw_health(server.port, Duration::from_secs(30)).unwrap();
    assert!(status.contains(" 200 "), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // The first idle clients were closed by the server: they read the end of the stream.
    for stream in idle.iter_mut().take(40) {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // To its end (at most a 408 answer); a timeout would mean it is still open.
        let mut rest = Vec::new();
        if let Err(e) = stream.read_to_end(&mut rest) {
            assert_ne!(e.kind(), std::io::ErrorKind::WouldBlock, "still open");
        }
    }
    drop(idle);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        fds() <= before + 2,
        "{} descriptors after the clients left",
        fds()
    );
    assert!(raw_health(server.port, Duration::from_secs(5))
        .unwrap()
        .contains(" 200 "));
}

/// Issue 10 W11 by the one route that takes no token: a client that sends a whole request
/// head to a trigger URL and then drips the body a byte at a time is held to the head's
/// deadline too. Before, four such clients against --max-connections 4 kept every slot,
/// and nobody else was answered for as long as they dripped. An unknown trigger id is
/// refused before its body is read at all.
#[test]
fn w11_a_dripped_trigger_body_does_not_hold_the_server() {
    use std::io::{Read, Write};
    let dir = temp_dir();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--header-timeout", "2", "--max-connections", "4"]);
    let text = app_text(
        "drip",
        "badgers/none",
        "  repository: https://example.org/r.git",
    );
    let (status, app) = server.call("POST", "/v1/apps", text.as_bytes());
    assert_eq!(status, 201, "{app}");
    let known = format!("/v1/triggers/{}", app["trigger"]["id"].as_str().unwrap());
    let unknown = format!("/v1/triggers/{}", "ab".repeat(20));
    let head = |path: &str| {
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{{").into_bytes()
    };
    // As many dripping clients as there are connection slots.
    let mut drippers = Vec::new();
    for _ in 0..4 {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stream.write_all(&head(&known)).unwrap();
        drippers.push(std::thread::spawn(move || {
            stream
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut answer = Vec::new();
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(30) {
                // A byte now and then: never idle, never done.
                let _ = stream.write_all(b" ");
                let mut chunk = [0u8; 512];
                match stream.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => answer.extend_from_slice(&chunk[..n]),
                    Err(_) => std::thread::sleep(Duration::from_millis(300)),
                }
            }
            String::from_utf8_lossy(&answer).to_string()
        }));
    }
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let status = raw_health(server.port, Duration::from_secs(15))
        .unwrap_or_else(|e| format!("no answer: {e}"));
    assert!(status.contains(" 200 "), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    for dripper in drippers {
        let answer = dripper.join().unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 400") && answer.contains("header-timeout"),
            "{answer}"
        );
    }
    // An unknown id is answered before its body comes.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream.write_all(&head(&unknown)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 401");
    let (_, list) = server.call("GET", "/v1/apps/drip/workflows", b"");
    assert_eq!(list["workflows"].as_array().unwrap().len(), 0, "{list}");
}

/// Issue 10 W12: a cancel while the source is being fetched ends the workflow CANCELLED
/// at once, and git (with its HTTP helper) is killed: here the git server accepts the
/// connection and never answers, so without the cancel the fetch would hang for ever.
#[test]
fn w12_cancel_during_a_stalled_git_fetch() {
    use std::io::Read;
    let dir = temp_dir();
    let data = data_with_base(dir.path(), true);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let git_port = listener.local_addr().unwrap().port();
    let (sender, connected) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if sender.send(stream).is_err() {
                return;
            }
        }
    });
    let server = Server::start(&data, &[]);
    let text = app_text(
        "stall",
        "badgers/shell",
        &format!("  repository: http://127.0.0.1:{git_port}/r.git"),
    );
    assert_eq!(server.call("POST", "/v1/apps", text.as_bytes()).0, 201);
    let (_, started) = server.call(
        "POST",
        "/v1/apps/stall/workflows",
        br#"{"actions":["build"]}"#,
    );
    let id = started["id"].as_i64().unwrap();
    let mut held = connected
        .recv_timeout(Duration::from_secs(60))
        .expect("git connects to the stalled server");
    std::thread::sleep(Duration::from_millis(300));
    let asked = Instant::now();
    let (status, answer) = server.call(
        "POST",
        &format!("/v1/apps/stall/workflows/{id}/cancel"),
        b"",
    );
    assert!(status < 300, "{status} {answer}");
    let record = server.wait_final("stall", id);
    assert_eq!(record["state"], "CANCELLED", "{record}\n{}", server.log());
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    // git's side of the connection is gone: the stalled server reads its end.
    held.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buffer = [0u8; 4096];
    loop {
        match held.read(&mut buffer) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) => panic!("git still holds the connection: {e}"),
        }
    }
}

/// The server's own git identity (a credential helper with a stored password in its
/// HOME) must not be offered to a repository a request names: B04 for git.
#[test]
fn b04_server_git_credentials_are_not_offered_to_request_sources() {
    use std::io::{Read, Write};
    let dir = temp_dir();
    let data = data_with_base(dir.path(), true);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let git_port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let record = std::sync::Arc::clone(&seen);
    // A git host that asks every request for Basic credentials and records what it gets.
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut buffer = [0u8; 8192];
            let n = stream.read(&mut buffer).unwrap_or(0);
            record
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buffer[..n]).to_lowercase());
            let _ = stream.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let home = dir.path().join("server-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join(".gitconfig"), "[credential]\n\thelper = store\n").unwrap();
    std::fs::write(
        home.join(".git-credentials"),
        format!("http://server-user:SERVER-SECRET@127.0.0.1:{git_port}\n"),
    )
    .unwrap();
    let server = Server::start_env(&data, &[], &[("HOME", &home)]);
    let text = app_text(
        "private",
        "badgers/shell",
        &format!("  repository: http://127.0.0.1:{git_port}/victim/private.git"),
    );
    assert_eq!(server.call("POST", "/v1/apps", text.as_bytes()).0, 201);
    let (_, started) = server.call(
        "POST",
        "/v1/apps/private/workflows",
        br#"{"actions":["build"]}"#,
    );
    let record = server.wait_final("private", started["id"].as_i64().unwrap());
    assert_eq!(record["state"], "ERROR", "{record}");
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.contains("get /victim/private.git"),
        "git asked: {seen}"
    );
    assert!(!seen.contains("authorization:"), "{seen}");
    // The stored password, base64 of `server-user:SERVER-SECRET`, lowercased as recorded.
    assert!(
        !seen.contains("c2vydmvylxvzzxi6u0vsvkvslvnfq1jfva=="),
        "{seen}"
    );
}

fn git(dir: &Path, args: &[&str]) {
    let output = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "git {args:?}: {output:?}");
}

/// Bytes under `dir` (apparent sizes).
fn tree_bytes(dir: &Path) -> u64 {
    let out = program("du", &[&"-sb", &dir]).ok();
    out.stdout
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Issue 10 W06 through the API: an uploaded artifact (a 1 MiB gzip holding 1 GiB of
/// zeros) and a git tree (a 64 MiB file the pack compresses to nothing) are held to the
/// bound badger uploads have (4 × --max-upload): refused with a clear reason before
/// anything of them is written.
#[test]
fn w06_artifacts_and_git_trees_are_bounded() {
    let dir = temp_dir();
    let data = data_with_base(dir.path(), true);
    let bomb_path = dir.path().join("bomb.tar.gz");
    let made = Command::new("sh")
        .arg("-c")
        .arg("truncate -s 1G big && tar -cf - big | gzip -9 > bomb.tar.gz && rm big")
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(made.success());
    let bomb = std::fs::read(&bomb_path).unwrap();
    assert!(bomb.len() < 2 << 20, "{} bytes", bomb.len());

    let allowed = dir.path().join("repos");
    let repo = allowed.join("big");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(repo.join("zeros"), vec![0u8; 64 << 20]).unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "--quiet", "-m", "big"]);
    std::fs::remove_file(repo.join("zeros")).unwrap();

    let server = Server::start(
        &data,
        &[
            "--max-upload",
            "8",
            "--allow-local-source",
            allowed.to_str().unwrap(),
        ],
    );
    let before = tree_bytes(&data);
    let text = app_text(
        "art",
        "badgers/shell",
        "  repository: https://example.org/r.git",
    );
    assert_eq!(server.call("POST", "/v1/apps", text.as_bytes()).0, 201);
    let (status, started) = server.call("POST", "/v1/apps/art/artifacts", &bomb);
    assert_eq!(status, 202, "{started}");
    let record = server.wait_final("art", started["id"].as_i64().unwrap());
    assert_eq!(record["state"], "ERROR", "{record}");
    let reason = record["reason"].as_str().unwrap_or_default().to_string()
        + &record["transitions"].to_string();
    assert!(
        reason.contains("the artifact: it expands past 33554432 bytes"),
        "{reason}"
    );

    let text = app_text(
        "gitbig",
        "badgers/shell",
        &format!("  repository: {}", repo.display()),
    );
    assert_eq!(server.call("POST", "/v1/apps", text.as_bytes()).0, 201);
    let (_, started) = server.call(
        "POST",
        "/v1/apps/gitbig/workflows",
        br#"{"actions":["build"]}"#,
    );
    let record = server.wait_final("gitbig", started["id"].as_i64().unwrap());
    assert_eq!(record["state"], "ERROR", "{record}");
    let reason = record["transitions"].to_string();
    assert!(reason.contains("expands past 33554432 bytes"), "{reason}");
    // Nothing of either tree stayed (the git mirror, compressed, is all that is new).
    let after = tree_bytes(&data);
    assert!(after < before + (8 << 20), "{before} -> {after}");
}

#[test]
fn as_tester() {
    rerun_as_tester();
}
