//! Issue 10 through the real binary: what a badger folder or an API caller may name and
//! make the server do. Each test reproduces one breach (B01–B04) of the issue and shows it
//! refused, with the host left as it was. The server runs on a free loopback port with a
//! temp data folder; registries are real `docker-registry` instances. The weaknesses
//! (W06, W11–W14) are in `serve_hardening.rs`.

mod support;

use std::time::Duration;
use support::serve::*;
use support::*;

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
    let run = Cmd::solum(&data.join("store"))
        .args(["badger", "build"])
        .arg(&folder)
        .run()
        .fails_with(2);
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
    let run = Cmd::solum(&store)
        .args(["badger", "build"])
        .arg(&folder)
        .run()
        .fails_with(2);
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
    let run = Cmd::solum(&store)
        .args(["badger", "build"])
        .arg(&setup)
        .run()
        .fails_with(2);
    assert!(run.stderr.contains("s.sh"), "{}", run.stderr);
    assert!(run.stderr.contains("symlink"), "{}", run.stderr);
    let yaml = dir.path().join("leak3");
    std::fs::create_dir_all(&yaml).unwrap();
    std::os::unix::fs::symlink(&secret, yaml.join("badger.yaml")).unwrap();
    let run = Cmd::solum(&store)
        .args(["badger", "build"])
        .arg(&yaml)
        .run()
        .fails_with(2);
    assert!(run.stderr.contains("symlink"), "{}", run.stderr);
    assert!(!run.text().contains("TOP-SECRET"));
    let listed = Cmd::solum(&store).args(["badger", "list"]).run().ok();
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

/// Issue 10 B03: from the API an app names no server file — no local path or file:// URL
/// as its source, no artifact path, no oci:/oci-archive:/docker-archive: badger, and no
/// such reference to register as a DU. Each is a 400 naming the field.
#[test]
fn b03_requests_cannot_name_server_files() {
    let dir = temp_dir();
    // With the shell badger: an app naming a badger the server lacks is refused too.
    let data = data_with_base(dir.path(), true);
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
    use support::registry::{Mode, Registry};
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

#[test]
fn as_tester() {
    rerun_as_tester();
}
