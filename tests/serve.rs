//! Issue 6 through the real binary: `solum-build serve` on a free loopback port with a temp
//! data folder, the real `docker-registry`, real git. Workflow (a) by the REST API and the
//! CLI client, (b) by a git push over smart HTTP and to the repository on disk, (c) by an
//! uploaded artifact and a registered DU; webhooks signed right and wrong; kill -9 in the
//! middle of a build and restart; 50 clients reading status while two builds run.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::registry::{free_port, wait_for_port, Mode, Registry};
use support::serve::data_with_base;
use support::*;

const TOKEN: &str = "test-token-0123456789";

/// A running server, killed with SIGKILL on drop.
struct Server {
    child: Child,
    port: u16,
    data: PathBuf,
}

impl Server {
    fn start(data: &Path, port: u16, registry: &Registry) -> Server {
        let token_file = data.with_extension("token");
        std::fs::write(&token_file, TOKEN).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data.with_extension("log"))
            .unwrap();
        // The server's signing key: every DU it builds is signed (see `signing_key`).
        let key = signing_key(data);
        let child = Cmd::solum_without_store()
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--sign-key")
            .arg(key.with_extension("key"))
            .arg("--data")
            .arg(data)
            .arg("--token-file")
            .arg(&token_file)
            .args(["--workers", "2"])
            .args(support::serve::database_args(data))
            // The app repositories of these tests are folders beside the data folder.
            .arg("--allow-local-source")
            .arg(data.parent().unwrap())
            .arg("--push-to")
            .arg(format!("docker://{}/apps", registry.host()))
            .into_command()
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        wait_for_port(port);
        Server {
            child,
            port,
            data: data.to_path_buf(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The CLI client against this server; the caller adds the arguments.
    fn client(&self) -> Cmd {
        Cmd::solum_without_store()
            .env("SOLUM_BUILD_SERVER", self.url(""))
            .env("SOLUM_BUILD_TOKEN", TOKEN)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data.with_extension("log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// (status, JSON body) of a request with the token.
fn call(method: &str, url: &str, body: Option<&[u8]>) -> (u16, serde_json::Value) {
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("Authorization", format!("Bearer {TOKEN}"))
        .body(body.unwrap_or_default().to_vec())
        .unwrap();
    let response = agent().run(request).unwrap();
    let status = response.status().as_u16();
    let text = response.into_body().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// A git work tree with a `build` script for the shell badger; returns its commit.
fn app_repo(dir: &Path, build: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(dir.join("build"), build).unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "--quiet", "-m", "first"]);
    git(dir, &["rev-parse", "HEAD"])
}

fn commit_change(dir: &Path, file: &str, text: &str) -> String {
    std::fs::write(dir.join(file), text).unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "--quiet", "-m", file]);
    git(dir, &["rev-parse", "HEAD"])
}

fn app_file(dir: &Path, name: &str, repo: Option<&Path>) -> PathBuf {
    let source = repo
        .map(|r| format!("source:\n  repository: {}\n", r.display()))
        .unwrap_or_default();
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "version: 1\nname: {name}\nbadger: badgers/shell\n{source}workflow_config:\n  \
             run_cmd: cat /app/built\n  test_cmd: test -f /app/built\n"
        ),
    )
    .unwrap();
    path
}

/// The key pair the server of `data` signs with (`PREFIX.key`, `PREFIX.pub`), made once.
fn signing_key(data: &Path) -> PathBuf {
    let prefix = data.parent().unwrap().join("server-signing");
    if !prefix.with_extension("key").exists() {
        keygen(&prefix);
    }
    prefix
}

fn workflow(server: &Server, app: &str, id: i64) -> serde_json::Value {
    let (status, body) = call(
        "GET",
        &server.url(&format!("/v1/apps/{app}/workflows/{id}")),
        None,
    );
    assert_eq!(status, 200, "{body}");
    body
}

fn wait_for(server: &Server, app: &str, id: i64, done: impl Fn(&str) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let record = workflow(server, app, id);
        if done(record["state"].as_str().unwrap()) {
            return record;
        }
        assert!(
            Instant::now() < deadline,
            "workflow {id} stuck: {record}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_final(server: &Server, app: &str, id: i64) -> serde_json::Value {
    wait_for(server, app, id, |s| {
        matches!(
            s,
            "READY"
                | "BUILD_FAILED"
                | "UNIT_TESTING_FAILED"
                | "PUSH_FAILED"
                | "ERROR"
                | "CANCELLED"
        )
    })
}

fn states(record: &serde_json::Value) -> Vec<String> {
    record["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap().to_string())
        .collect()
}

fn start(server: &Server, app: &str, body: &str) -> i64 {
    let (status, answer) = call(
        "POST",
        &server.url(&format!("/v1/apps/{app}/workflows")),
        Some(body.as_bytes()),
    );
    assert_eq!(status, 202, "{answer}");
    answer["id"].as_i64().unwrap()
}

fn skopeo_digest(reference: &str) -> String {
    let inspect = Cmd::program("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .run()
        .ok();
    let json: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    json["Digest"].as_str().unwrap().to_string()
}

#[test]
fn the_three_workflows_end_to_end() {
    let registry = Registry::start(Mode::Plain);
    let dir = temp_dir();
    let data = data_with_base(dir.path(), true);
    let repo = dir.path().join("hello-src");
    let first = app_repo(&repo, "echo built > /app/built\n");
    let server = Server::start(&data, free_port(), &registry);

    // No token: only health answers.
    let anonymous = agent().get(server.url("/v1/health")).call().unwrap();
    assert_eq!(anonymous.status().as_u16(), 200);
    let refused = agent().get(server.url("/v1/apps")).call().unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let (status, spec) = call("GET", &server.url("/v1/openapi.json"), None);
    assert_eq!(status, 200);
    assert!(spec["paths"]["/v1/apps/{app}/workflows"].is_object());

    // A bad app file is refused with the field named.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "version: 1\nname: Bad Name\nbadger: badgers/shell\n").unwrap();
    let refused = server
        .client()
        .args(["app", "create"])
        .arg(&bad)
        .run()
        .fails_with(2);
    assert!(refused.stderr.contains("name"), "{}", refused.text());

    // (a) The app from a local git repository; a workflow started by the CLI, its log
    // followed to the end, the DU found in the registry.
    server
        .client()
        .args(["app", "create"])
        .arg(app_file(dir.path(), "hello", Some(&repo)))
        .run()
        .ok();
    let list = server.client().args(["app", "list"]).run().ok();
    assert!(
        list.stdout.contains("hello\tbadgers/shell"),
        "{}",
        list.text()
    );
    let id: i64 = server
        .client()
        .args(["workflow", "start", "hello"])
        .run()
        .ok()
        .last_line()
        .parse()
        .unwrap();
    let logs = server
        .client()
        .args(["workflow", "logs", "hello"])
        .arg(id.to_string())
        .arg("--follow")
        .run()
        .ok();
    assert!(logs.stdout.contains("==> BUILDING"), "{}", logs.text());
    assert!(logs.stdout.contains("==> READY"), "{}", logs.text());
    let record = workflow(&server, "hello", id);
    assert_eq!(record["state"], "READY");
    assert_eq!(
        states(&record),
        [
            "QUEUED",
            "BUILDING",
            "UNIT_TESTING",
            "BUILT",
            "PUSHING",
            "READY"
        ]
    );
    assert!(record["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["at"].as_str().unwrap().ends_with('Z')));
    let digest = record["du_digest"].as_str().unwrap().to_string();
    let pushed = record["pushed_to"].as_str().unwrap();
    assert_eq!(
        pushed,
        format!("docker://{}/apps/hello:wf-{id}", registry.host())
    );
    assert_eq!(
        skopeo_digest(pushed.trim_start_matches("docker://")),
        digest
    );
    let run = Cmd::solum(&data.join("store"))
        .arg("run")
        .arg(format!("hello:wf-{id}"))
        .run()
        .ok();
    assert_eq!(run.stdout.trim(), "built");
    assert!(record["revision"].is_null());
    let (_, dus) = call("GET", &server.url("/v1/dus"), None);
    assert_eq!(dus["dus"][0]["digest"], digest.as_str());
    // The workflow links its DU's SBOMs, provenance and signature, each pushed beside it;
    // the server's key signed them, for the repository it pushed to.
    let attachments = record["attachments"].as_array().unwrap();
    let mut kinds: Vec<&str> = attachments
        .iter()
        .map(|a| a["artifactType"].as_str().unwrap())
        .collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "application/spdx+json",
            "application/vnd.cyclonedx+json",
            "application/vnd.dev.cosign.artifact.sig.v1+json",
            "application/vnd.in-toto+json"
        ],
        "{record}"
    );
    for attachment in attachments {
        let pushed = attachment["pushed"].as_str().unwrap();
        assert_eq!(
            pushed,
            format!(
                "docker://{}/apps/hello@{}",
                registry.host(),
                attachment["digest"].as_str().unwrap()
            )
        );
    }
    let verified = Cmd::solum(&dir.path().join("verifier"))
        .args(["verify", "--tls-verify=false", "--key"])
        .arg(signing_key(&data).with_extension("pub"))
        .arg(pushed)
        .run()
        .ok();
    assert!(
        verified.stdout.contains("builder/server@v"),
        "{}",
        verified.text()
    );

    // (b) A push to the managed repository over smart HTTP builds the pushed commit.
    let second = commit_change(&repo, "build", "echo built by push > /app/built\n");
    let remote = format!("http://git:{TOKEN}@127.0.0.1:{}/git/hello.git", server.port);
    git(&repo, &["push", "--quiet", &remote, "HEAD:main"]);
    let (_, list) = call("GET", &server.url("/v1/apps/hello/workflows"), None);
    let pushed = &list["workflows"][0];
    assert_eq!(pushed["origin"], "git", "{list}");
    assert_eq!(pushed["revision"], second.as_str());
    let built = wait_final(&server, "hello", pushed["id"].as_i64().unwrap());
    assert_eq!(built["state"], "READY", "{built}");
    assert_ne!(built["du_digest"], digest.as_str());
    let run = Cmd::solum(&data.join("store"))
        .arg("run")
        .arg(format!("hello:wf-{}", built["id"]))
        .run()
        .ok();
    assert_eq!(run.stdout.trim(), "built by push");
    // Without the token git is refused.
    let anonymous = format!("http://127.0.0.1:{}/git/hello.git", server.port);
    let denied = Command::new("git")
        .args(["ls-remote", &anonymous])
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(!denied.status.success());

    // A push to the repository on disk goes through its post-receive hook.
    let third = commit_change(&repo, "README", "on disk\n");
    let on_disk = data.join("git/hello.git");
    git(
        &repo,
        &["push", "--quiet", on_disk.to_str().unwrap(), "HEAD:main"],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let hooked = loop {
        let (_, list) = call("GET", &server.url("/v1/apps/hello/workflows"), None);
        if list["workflows"][0]["revision"] == third.as_str() {
            break list["workflows"][0].clone();
        }
        assert!(Instant::now() < deadline, "the hook queued nothing: {list}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(hooked["origin"], "webhook");
    assert_eq!(
        wait_final(&server, "hello", hooked["id"].as_i64().unwrap())["state"],
        "READY"
    );

    // Webhooks: a wrong signature is 401, the right one 202 and builds that commit.
    let (_, app) = call("GET", &server.url("/v1/apps/hello"), None);
    // An absolute URL, on the Host the client used.
    let trigger = app["trigger"]["url"].as_str().unwrap().to_string();
    assert!(
        trigger.starts_with(&server.url("/v1/triggers/")),
        "{trigger}"
    );
    let secret = app["trigger"]["secret"].as_str().unwrap();
    let event = serde_json::json!({ "ref": "refs/heads/main", "after": first }).to_string();
    let send = |signature: &str| {
        let request = ureq::http::Request::builder()
            .method("POST")
            .uri(&trigger)
            .header("X-Hub-Signature-256", signature)
            .header("Content-Type", "application/json")
            .body(event.clone().into_bytes())
            .unwrap();
        agent().run(request).unwrap().status().as_u16()
    };
    assert_eq!(
        send(&solum_build::api::signature("wrong", event.as_bytes())),
        401
    );
    assert_eq!(send("sha256=00"), 401);
    assert_eq!(
        send(&solum_build::api::signature(secret, event.as_bytes())),
        202
    );
    let (_, list) = call("GET", &server.url("/v1/apps/hello/workflows"), None);
    let hooked = &list["workflows"][0];
    assert_eq!(hooked["revision"], first.as_str());
    let rebuilt_id = hooked["id"].as_i64().unwrap();
    assert_eq!(wait_final(&server, "hello", rebuilt_id)["state"], "READY");
    // The first commit again, not the branch's newest.
    let run = Cmd::solum(&data.join("store"))
        .arg("run")
        .arg(format!("hello:wf-{rebuilt_id}"))
        .run()
        .ok();
    assert_eq!(run.stdout.trim(), "built");

    // (c) Binaries uploaded as a tarball, built on the app's badger.
    let artifact_dir = dir.path().join("bin");
    std::fs::create_dir_all(&artifact_dir).unwrap();
    std::fs::write(artifact_dir.join("built"), "from ci\n").unwrap();
    let tarball = dir.path().join("bin.tar");
    Cmd::program("tar")
        .arg("-C")
        .arg(&artifact_dir)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .run()
        .ok();
    let (status, queued) = call(
        "POST",
        &server.url("/v1/apps/hello/artifacts"),
        Some(&std::fs::read(&tarball).unwrap()),
    );
    assert_eq!(status, 202, "{queued}");
    let id = queued["id"].as_i64().unwrap();
    let record = wait_final(&server, "hello", id);
    assert_eq!(record["state"], "READY", "{record}");
    let run = Cmd::solum(&data.join("store"))
        .arg("run")
        .arg(format!("hello:wf-{id}"))
        .run()
        .ok();
    assert_eq!(run.stdout.trim(), "from ci");

    // (c) A ready-made image registered as a DU: annotated, stored and pushed.
    let (status, registered) = call(
        "POST",
        &server.url("/v1/dus"),
        Some(
            serde_json::json!({ "reference": "base/busybox", "name": "busybox", "push": true })
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(status, 201, "{registered}");
    let du = &registered["du"];
    let inspect = Cmd::solum(&data.join("store"))
        .arg("inspect")
        .arg(du["store_name"].as_str().unwrap())
        .run()
        .ok();
    assert!(
        inspect.stdout.contains("org.solum.du.manifest"),
        "{}",
        inspect.text()
    );
    let pushed = du["pushed_to"]
        .as_str()
        .unwrap()
        .trim_start_matches("docker://");
    assert_eq!(skopeo_digest(pushed), du["digest"].as_str().unwrap());

    // Badgers: search, show.
    let (_, found) = call("GET", &server.url("/v1/badgers?q=busybox"), None);
    assert_eq!(found["badgers"][0]["name"], "shell", "{found}");
    let (_, none) = call("GET", &server.url("/v1/badgers?q=no-such-thing"), None);
    assert!(none["badgers"].as_array().unwrap().is_empty());
    let (status, _) = call("GET", &server.url("/v1/badgers/shell"), None);
    assert_eq!(status, 200);

    // Soft delete: gone from the list, history kept.
    server.client().args(["app", "delete", "hello"]).run().ok();
    let (status, _) = call("GET", &server.url("/v1/apps/hello"), None);
    assert_eq!(status, 404);
    let (_, history) = call("GET", &server.url("/v1/apps/hello/workflows"), None);
    assert!(history["workflows"].as_array().unwrap().len() >= 5);
}

#[test]
fn kill_9_mid_build_then_restart_and_load() {
    if support::serve::on_postgres() {
        // On PostgreSQL a restarted node does not end what was running: the lease hands it
        // to a worker, which builds it again (tests/serve_cluster.rs kills a worker).
        return;
    }
    let registry = Registry::start(Mode::Plain);
    let dir = temp_dir();
    let data = data_with_base(dir.path(), true);
    let repo = dir.path().join("slow-src");
    let fast = app_repo(&repo, "echo built > /app/built\n");
    let slow = commit_change(&repo, "build", "sleep 60; echo built > /app/built\n");
    let port = free_port();
    let mut server = Server::start(&data, port, &registry);
    server
        .client()
        .args(["app", "create"])
        .arg(app_file(dir.path(), "slow", Some(&repo)))
        .run()
        .ok();

    let cut = start(
        &server,
        "slow",
        &format!(r#"{{"revision": "{slow}", "actions": ["build"]}}"#),
    );
    wait_for(&server, "slow", cut, |s| s == "BUILDING");
    server.kill();

    let server = Server::start(&data, port, &registry);
    let record = workflow(&server, "slow", cut);
    assert_eq!(record["state"], "ERROR", "{record}");
    assert!(
        record["reason"].as_str().unwrap().contains("interrupted"),
        "{record}"
    );
    assert_eq!(states(&record), ["QUEUED", "BUILDING", "ERROR"]);
    let again = start(&server, "slow", &format!(r#"{{"revision": "{fast}"}}"#));
    assert_eq!(wait_final(&server, "slow", again)["state"], "READY");

    // Load: 50 clients read status while two builds run; every answer is a 200.
    let one = commit_change(&repo, "build", "sleep 3; echo one > /app/built\n");
    let two = commit_change(&repo, "build", "sleep 3; echo two > /app/built\n");
    let a = start(
        &server,
        "slow",
        &format!(r#"{{"revision": "{one}", "actions": ["build"]}}"#),
    );
    let b = start(
        &server,
        "slow",
        &format!(r#"{{"revision": "{two}", "actions": ["build"]}}"#),
    );
    wait_for(&server, "slow", a, |s| s != "QUEUED");
    let url = server.url(&format!("/v1/apps/slow/workflows/{a}"));
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut slowest = Duration::ZERO;
                for _ in 0..20 {
                    let started = Instant::now();
                    let (status, body) = call("GET", &url, None);
                    slowest = slowest.max(started.elapsed());
                    assert_eq!(status, 200, "{body}");
                    assert!(body["state"].is_string());
                }
                slowest
            })
        })
        .collect();
    let slowest = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .max()
        .unwrap();
    println!("slowest of 1000 status reads under load: {slowest:?}");
    for id in [a, b] {
        assert_eq!(wait_final(&server, "slow", id)["state"], "READY");
    }

    // Cancel: a running build ends CANCELLED.
    let long = start(
        &server,
        "slow",
        &format!(r#"{{"revision": "{slow}", "actions": ["build"]}}"#),
    );
    wait_for(&server, "slow", long, |s| s == "BUILDING");
    let (status, _) = call(
        "POST",
        &server.url(&format!("/v1/apps/slow/workflows/{long}/cancel")),
        None,
    );
    assert_eq!(status, 202);
    assert_eq!(wait_final(&server, "slow", long)["state"], "CANCELLED");
}

#[test]
fn as_tester() {
    rerun_as_tester();
}
