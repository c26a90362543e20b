//! Issue 12, the first day with `serve`: a new server makes its store at start and says
//! where its data, store and token are; `/` and the OpenAPI document need no token; an app
//! naming a badger the server lacks is refused when it is created; the API hands out
//! absolute URLs that `trigger` and git take as they are; a client without a token is told
//! where the token is. As root and again as `tester`.

mod support;

use std::os::unix::fs::PermissionsExt;
use support::registry::{Mode, Registry};
use support::serve::{app_text, badger_folder, data_with_base, Server, TOKEN};
use support::*;

/// A GET without the token, its status and body text.
fn get_anonymous(server: &Server, path: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent.get(server.url(path)).call().unwrap();
    let status = response.status().as_u16();
    (status, response.into_body().read_to_string().unwrap())
}

#[test]
fn a_new_server_makes_its_store_and_says_where_things_are() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    // Its first workflow used to end ERROR: "store is not an OCI image layout".
    assert!(data.join("store/oci-layout").is_file());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !server.log().contains("token") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let log = server.log();
    assert!(
        log.contains(&format!("data  {}", data.display()))
            && log.contains(&format!("store {}", data.join("store").display()))
            && log.contains(&format!("token {}", data.with_extension("token").display())),
        "{log}"
    );

    // The landing page and the API's description are open; the rest is not.
    let (status, page) = get_anonymous(&server, "/");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("href=\"/v1/openapi.json\""), "{page}");
    let (status, document) = get_anonymous(&server, "/v1/openapi.json");
    assert_eq!(status, 200, "{document}");
    let document: serde_json::Value = serde_json::from_str(&document).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(get_anonymous(&server, "/v1/apps").0, 401);

    // A client without a token is told where the token is.
    let listed = Cmd::solum_without_store()
        .args(["app", "list", "--server", &server.url("")])
        .into_command()
        .env_remove("SOLUM_BUILD_TOKEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&listed.stderr);
    assert_eq!(listed.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no token was given")
            && stderr.contains("SOLUM_BUILD_TOKEN")
            && stderr.contains("DATA/token"),
        "{stderr}"
    );
}

#[test]
fn apps_are_checked_against_the_badgers_the_server_has() {
    let dir = temp_dir();
    let data = data_with_base(dir.path(), true);
    let server = Server::start(&data, &[]);
    let remote = "  repository: https://example.org/app.git";
    let (status, answer) = server.call(
        "POST",
        "/v1/apps",
        app_text("nope", "pyhton3", remote).as_bytes(),
    );
    assert_eq!(status, 400, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.starts_with(
            "badger: no badger \"pyhton3\" in the server's store (it has: badgers/shell)"
        ),
        "{error}"
    );
    // `shell` finds `badgers/shell`, as builds do.
    let (status, answer) = server.call(
        "POST",
        "/v1/apps",
        app_text("yes", "shell", remote).as_bytes(),
    );
    assert_eq!(status, 201, "{answer}");
    // PATCH is checked the same way.
    let (status, answer) = server.call(
        "PATCH",
        "/v1/apps/yes",
        app_text("yes", "badgers/nothing", remote).as_bytes(),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().starts_with("badger:"),
        "{answer}"
    );
}

#[test]
fn the_api_hands_out_absolute_urls_that_trigger_takes() {
    let dir = temp_dir();
    let data = data_with_base(dir.path(), true);
    let server = Server::start(&data, &[]);
    let remote = "  repository: https://example.org/app.git";
    let (status, app) = server.call(
        "POST",
        "/v1/apps",
        app_text("urls", "badgers/shell", remote).as_bytes(),
    );
    assert_eq!(status, 201, "{app}");
    assert_eq!(app["git"], server.url("/git/urls.git"));
    let trigger_url = app["trigger"]["url"].as_str().unwrap();
    let trigger_id = app["trigger"]["id"].as_str().unwrap();
    assert_eq!(
        trigger_url,
        server.url(&format!("/v1/triggers/{trigger_id}"))
    );
    let (_, shown) = server.call("GET", "/v1/apps/urls", b"");
    assert_eq!(shown["trigger"]["url"], trigger_url);

    // `trigger` takes the URL, the path or the id (on --server); a push to another
    // branch than the watched one starts nothing, so each answers "ignored" (exit 0).
    let secret = app["trigger"]["secret"].as_str().unwrap();
    let path = format!("/v1/triggers/{trigger_id}");
    for given in [trigger_url, path.as_str(), trigger_id] {
        Cmd::solum_without_store()
            .args(["trigger", given, "--server", &server.url("")])
            .args([
                "--secret",
                secret,
                "--revision",
                "0123456789abcdef0123456789abcdef01234567",
            ])
            .args(["--ref", "refs/heads/not-watched"])
            .run()
            .ok();
    }
    let said = Cmd::solum_without_store()
        .args(["trigger", trigger_id, "--server", &server.url("")])
        .args([
            "--secret",
            secret,
            "--revision",
            "0123456789abcdef0123456789abcdef01234567",
        ])
        .run()
        .ok();
    let queued = format!(
        "refs/heads/main: workflow 1 queued: {}",
        server.url("/v1/apps/urls/workflows/1")
    );
    assert_eq!(said.stdout.trim(), queued, "{}", said.text());
    drop(server);

    // Behind a proxy the operator names the public URL.
    let server = Server::start(&data, &["--public-url", "https://ci.example.org/"]);
    let (_, shown) = server.call("GET", "/v1/apps/urls", b"");
    assert_eq!(shown["git"], "https://ci.example.org/git/urls.git");
    assert!(
        shown["trigger"]["url"]
            .as_str()
            .unwrap()
            .starts_with("https://ci.example.org/v1/triggers/"),
        "{shown}"
    );
}

/// Every workflow used to leave an `APP:wf-N` in the store for ever, and only `:wf-N` was
/// pushed. With `--keep 2` the third READY removes `wf-1`; `APP:latest` follows the newest.
#[test]
fn older_workflow_dus_go_and_latest_follows_the_newest() {
    let dir = temp_dir();
    let data = data_with_base(dir.path(), true);
    let registry = Registry::start(Mode::Plain);
    let source = dir.path().join("source");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("build"), "#!/bin/sh\necho built > /app/built\n").unwrap();
    std::fs::set_permissions(source.join("build"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let push_to = format!("docker://{}/apps", registry.host());
    let server = Server::start(
        &data,
        &[
            "--keep",
            "2",
            "--allow-local-source",
            dir.path().to_str().unwrap(),
            "--push-to",
            &push_to,
        ],
    );
    let text = app_text(
        "kept",
        "badgers/shell",
        &format!("  repository: {}", source.display()),
    );
    let (status, answer) = server.call("POST", "/v1/apps", text.as_bytes());
    assert_eq!(status, 201, "{answer}");
    let mut last = 0;
    for _ in 0..3 {
        let (status, started) = server.call(
            "POST",
            "/v1/apps/kept/workflows",
            br#"{"actions":["build","push"]}"#,
        );
        assert_eq!(status, 202, "{started}");
        last = started["id"].as_i64().unwrap();
        let record = server.wait_final("kept", last);
        assert_eq!(record["state"], "READY", "{record}\n{}", server.log());
    }
    // The older DUs go right after READY is recorded: wait for the log to say so.
    let removed = format!("removed kept:wf-{} (--keep 2)", last - 2);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, log) = server.call("GET", &format!("/v1/apps/kept/workflows/{last}/logs"), b"");
        if log.to_string().contains(&removed) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{log}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let images = Cmd::solum(&data.join("store")).arg("images").run().ok();
    let names: Vec<&str> = images
        .stdout
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with("kept:"))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}\n{}", images.stdout);
    assert!(
        !names.contains(&format!("kept:wf-{}", last - 2).as_str()),
        "{names:?}"
    );
    assert!(registry.has_manifest("apps/kept", &format!("wf-{last}"), None));
    assert!(registry.has_manifest("apps/kept", "latest", None));
}

/// A push to a managed repository said nothing, and a repository whose default branch is
/// `master` built nothing. Now the first branch pushed is the one built, and each push
/// answers on git's side-band.
#[test]
fn a_git_push_says_what_it_started() {
    let dir = temp_dir();
    let data = data_with_base(dir.path(), true);
    let server = Server::start(&data, &[]);
    let text = "version: 1\nname: pushed\nbadger: badgers/shell\nworkflow_config:\n  run_cmd: cat /app/built\n";
    let (status, answer) = server.call("POST", "/v1/apps", text.as_bytes());
    assert_eq!(status, 201, "{answer}");
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "--quiet", "--initial-branch=master"]);
    std::fs::write(repo.join("build"), "#!/bin/sh\necho pushed > /app/built\n").unwrap();
    std::fs::set_permissions(repo.join("build"), std::fs::Permissions::from_mode(0o755)).unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "--quiet", "-m", "first"]);
    let remote = format!(
        "http://git:{}@127.0.0.1:{}/git/pushed.git",
        support::serve::TOKEN,
        server.port
    );
    let push = |refspec: &str| {
        Cmd::program("git")
            .current_dir(&repo)
            .args(["push", &remote, refspec])
            .run()
            .ok()
            .stderr
    };
    let said = push("HEAD:master");
    let queued = format!(
        "remote: workflow 1 queued: {}",
        server.url("/v1/apps/pushed/workflows/1")
    );
    assert!(said.contains(&queued), "{said}");
    let record = server.wait_final("pushed", 1);
    assert_eq!(record["state"], "READY", "{record}");
    let said = push("HEAD:feature");
    assert!(
        said.contains("remote: feature is not built: this app builds branch master"),
        "{said}"
    );
    let (_, workflows) = server.call("GET", "/v1/apps/pushed/workflows", b"");
    assert_eq!(
        workflows["workflows"].as_array().unwrap().len(),
        1,
        "{workflows}"
    );
}

/// Uploading binaries, registering a DU and uploading a badger needed curl: the client
/// commands `app upload`, `du register`/`du list` and `badger upload` do it now.
#[test]
fn the_client_sends_binaries_images_and_badgers() {
    let dir = temp_dir();
    let data = data_with_base(dir.path(), true);
    let server = Server::start(&data, &[]);
    let url = server.url("");
    let client = |args: &[&str]| {
        Cmd::solum_without_store()
            .args(args)
            .args(["--server", &url, "--token", TOKEN])
            .run()
            .ok()
    };
    // A DU from a ready-made image of the server's store.
    let registered = client(&["du", "register", "base/busybox", "--name", "bb"]);
    assert!(
        registered.stdout.contains("\"bb\""),
        "{}",
        registered.text()
    );
    let listed = client(&["du", "list"]);
    assert!(
        listed.stdout.starts_with("bb\tsha256:"),
        "{}",
        listed.text()
    );
    // A badger folder, built by the server.
    let folder = badger_folder(
        &dir.path().join("tiny"),
        "name: tiny\nversion: 1\nfrom: base/busybox\n",
        Some("#!/bin/sh\ntrue\n"),
    );
    let uploaded = client(&["badger", "upload", folder.to_str().unwrap()]);
    assert!(
        uploaded.stdout.contains("badgers/tiny"),
        "{}",
        uploaded.text()
    );
    // Binaries built on the app's badger (workflow c).
    let text =
        "version: 1\nname: bins\nbadger: badgers/shell\nworkflow_config:\n  run_cmd: /app/hello\n";
    let (status, answer) = server.call("POST", "/v1/apps", text.as_bytes());
    assert_eq!(status, 201, "{answer}");
    let bins = dir.path().join("bins");
    std::fs::create_dir_all(&bins).unwrap();
    std::fs::write(bins.join("hello"), "#!/bin/sh\necho hello\n").unwrap();
    std::fs::set_permissions(bins.join("hello"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let archive = dir.path().join("bins.tar.gz");
    std::fs::write(&archive, tarball(&bins)).unwrap();
    let queued = client(&["app", "upload", "bins", archive.to_str().unwrap()]);
    let id: i64 = queued.stdout.trim().parse().unwrap();
    let record = server.wait_final("bins", id);
    assert_eq!(record["state"], "READY", "{record}\n{}", server.log());
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
