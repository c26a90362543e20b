//! Issue 16 through the real binary: `serve` on many "hosts" — API nodes and build workers,
//! each its own process with its own data folder and store — sharing only a real
//! PostgreSQL (a throwaway cluster, `support::postgres`), a real `docker-registry` and a
//! managed-git folder. Thirty workflows through two API nodes and three workers each built
//! exactly once; a worker killed with SIGKILL in the middle of a build; PostgreSQL
//! restarted in the middle of a run; an API node killed while a log is followed; git
//! pushes through either API node; a database that is not there at start.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};
use support::postgres::PgCluster;
use support::registry::{free_port, Mode, Registry};
use support::serve::{app_text, Server, TOKEN};
use support::*;

/// The shared parts of a cluster under test and how its nodes are started.
struct Cluster {
    dir: tempfile::TempDir,
    database: String,
    registry: Registry,
    lease: u32,
}

impl Cluster {
    /// A cluster on database `db` of `pg`: the registry started, the shell badger built on
    /// a first API node's store (the only store with a base) and shared through the
    /// registry, and an app `name` whose source folder's build script is `build`.
    fn new(pg: &PgCluster, db: &str, lease: u32) -> Cluster {
        pg.create_database(db);
        let cluster = Cluster {
            dir: temp_dir(),
            database: pg.url(db),
            registry: Registry::start(Mode::Plain),
            lease,
        };
        std::fs::create_dir_all(cluster.dir.path().join("git")).unwrap();
        cluster
    }

    fn node(&self, name: &str, role: &str) -> Server {
        let data = self.dir.path().join(name);
        let push_to = format!("docker://{}/apps", self.registry.host());
        let git_root = self.dir.path().join("git");
        let lease = self.lease.to_string();
        let shared_dir = self.dir.path().display().to_string();
        let git_root = git_root.display().to_string();
        Server::start(
            &data,
            &[
                "--role",
                role,
                "--worker-id",
                name,
                "--database",
                &self.database,
                "--push-to",
                &push_to,
                "--git-root",
                &git_root,
                "--allow-local-source",
                &shared_dir,
                "--lease",
                &lease,
                "--no-attestations",
            ],
        )
    }

    /// An API node whose store has the busybox base, which builds the shell badger through
    /// `POST /v1/badgers` (and so pushes it to the registry for the workers).
    fn api_with_badger(&self, name: &str) -> Server {
        busybox_store(
            self.dir.path(),
            &self.dir.path().join(name).join("store"),
            &[],
        );
        let api = self.node(name, "api");
        let (status, answer) = api.call(
            "POST",
            "/v1/badgers",
            &tarball(&repo_dir().join("badgers/shell")),
        );
        assert_eq!(status, 201, "{answer}");
        let shared = answer["shared"].as_str().unwrap();
        assert!(
            shared.starts_with(&format!(
                "docker://{}/apps/badgers/shell@sha256:",
                self.registry.host()
            )),
            "{answer}"
        );
        api
    }

    /// An app `name` whose source folder's build script runs `build`.
    fn app(&self, api: &Server, name: &str, build: &str) {
        let source = self.dir.path().join(format!("{name}-src"));
        source_with_build_script(&source, &format!("{build}\necho built > /app/built"));
        let text = app_text(
            name,
            "badgers/shell",
            &format!("  repository: {}", source.display()),
        );
        let (status, answer) = api.call("POST", "/v1/apps", text.as_bytes());
        assert_eq!(status, 201, "{answer}");
    }
}

fn start(api: &Server, app: &str) -> i64 {
    let (status, answer) = api.call(
        "POST",
        &format!("/v1/apps/{app}/workflows"),
        br#"{"actions":["build","push"]}"#,
    );
    assert_eq!(status, 202, "{answer}");
    answer["id"].as_i64().unwrap()
}

fn states(record: &serde_json::Value) -> Vec<String> {
    record["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until `app`'s workflow `id` is in a state `done` accepts.
fn wait_state(api: &Server, app: &str, id: i64, done: &[&str]) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let (status, record) = api.call("GET", &format!("/v1/apps/{app}/workflows/{id}"), b"");
        assert_eq!(status, 200, "{record}");
        if done.contains(&record["state"].as_str().unwrap()) {
            return record;
        }
        assert!(Instant::now() < deadline, "workflow {id} stuck: {record}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The digest the registry serves for `apps/APP:TAG`.
fn registry_digest(registry: &Registry, app: &str, tag: &str) -> String {
    let inspect = Cmd::program("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{}/apps/{app}:{tag}", registry.host()))
        .run();
    assert!(
        inspect.code == 0,
        "{}\nregistry log:\n{}",
        inspect.text(),
        registry.log()
    );
    let json: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    json["Digest"].as_str().unwrap().to_string()
}

/// Every blob of the DU is in the registry: skopeo copies it whole into a layout.
fn copies_whole(registry: &Registry, app: &str, tag: &str, into: &Path) {
    Cmd::program("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{}/apps/{app}:{tag}", registry.host()))
        .arg(format!("oci:{}:du", into.display()))
        .run()
        .ok();
}

fn workflow_log(api: &Server, app: &str, id: i64) -> String {
    let (_, log) = api.call("GET", &format!("/v1/apps/{app}/workflows/{id}/logs"), b"");
    log.as_str().unwrap_or_default().to_string()
}

#[test]
fn thirty_workflows_through_two_api_nodes_are_each_built_once_by_three_workers() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let cluster = Cluster::new(pg, "thirty", 10);
    let api_a = cluster.api_with_badger("api-a");
    let api_b = cluster.node("api-b", "api");
    // The app made through the node that did not build the badger: it knows it from the
    // records.
    cluster.app(&api_b, "many", "sleep 1");
    let workers: Vec<Server> = ["w1", "w2", "w3"]
        .iter()
        .map(|name| cluster.node(name, "worker"))
        .collect();
    let ids: Vec<i64> = (0..30)
        .map(|n| start(if n % 2 == 0 { &api_a } else { &api_b }, "many"))
        .collect();
    let mut recorded = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let api = if n % 2 == 0 { &api_b } else { &api_a };
        let record = wait_state(
            api,
            "many",
            *id,
            &["READY", "ERROR", "BUILD_FAILED", "PUSH_FAILED"],
        );
        assert_eq!(
            record["state"],
            "READY",
            "{record}\n{}",
            workflow_log(api, "many", *id)
        );
        assert_eq!(
            states(&record),
            ["QUEUED", "BUILDING", "BUILT", "PUSHING", "READY"],
            "{record}"
        );
        recorded.push((*id, record["du_digest"].as_str().unwrap().to_string()));
        // One worker ran it: its log names one start.
        let log = workflow_log(api, "many", *id);
        assert_eq!(
            log.matches(&format!("workflow {id} of many")).count(),
            1,
            "{log}"
        );
    }
    // The DU the registry serves under each workflow's tag is the one recorded. Read once
    // every push is over: the builds are reproducible, so all thirty push one manifest, and
    // docker-registry's filesystem driver rewrites its link files in place (a read during
    // another push of the same manifest can get an empty link and a 500).
    for (id, digest) in &recorded {
        assert_eq!(
            &registry_digest(&cluster.registry, "many", &format!("wf-{id}")),
            digest
        );
    }
    // The records: one claim each, by one of the three workers; every worker did some.
    let db = "thirty";
    assert_eq!(
        pg.psql(db, "SELECT count(*) FROM workflows WHERE attempts <> 1"),
        "0"
    );
    assert_eq!(
        pg.psql(
            db,
            "SELECT count(*) FROM (SELECT workflow FROM transitions WHERE state = 'BUILDING' \
             GROUP BY workflow HAVING count(*) <> 1) AS twice"
        ),
        "0"
    );
    let by_worker: BTreeSet<String> = pg
        .psql(db, "SELECT DISTINCT worker FROM workflows")
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        by_worker.is_subset(
            &["w1", "w2", "w3"]
                .iter()
                .map(std::string::ToString::to_string)
                .collect()
        ),
        "{by_worker:?}"
    );
    assert!(
        by_worker.len() >= 2,
        "one worker did everything: {by_worker:?}"
    );
    // The workers' own stores hold the badger they fetched by digest, nothing else shared.
    for worker in ["w1", "w2", "w3"] {
        if by_worker.contains(worker) {
            let names = Cmd::solum(&cluster.dir.path().join(worker).join("store"))
                .args(["images"])
                .run()
                .ok();
            assert!(names.stdout.contains("badgers/shell"), "{}", names.text());
        }
    }
    // The workers as the API lists them, and a worker's health.
    let (_, listed) = api_b.call("GET", "/v1/workers", b"");
    let alive: BTreeSet<&str> = listed["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["alive"] == true)
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(alive, BTreeSet::from(["w1", "w2", "w3"]), "{listed}");
    let (status, health) = workers[0].call_with("GET", "/v1/health", b"", &[]);
    assert_eq!(status, 200);
    assert_eq!(health["database"]["ok"], true, "{health}");
    assert_eq!(health["registry"]["ok"], true, "{health}");
    assert_eq!(health["role"], "worker");
    // A worker answers nothing but health.
    assert_eq!(workers[0].call("GET", "/v1/apps", b"").0, 404);
    // An upload would stay on the API node that took it: refused, with what to do instead.
    let (status, refused) = api_a.call("POST", "/v1/apps/many/artifacts", b"binaries");
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("keeps no uploads"),
        "{refused}"
    );
}

#[test]
fn a_worker_killed_mid_build_loses_its_workflow_to_another() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let cluster = Cluster::new(pg, "killed", 3);
    let api = cluster.api_with_badger("api");
    cluster.app(&api, "slow", "sleep 8");
    let mut workers: BTreeMap<String, Server> = ["wa", "wb"]
        .iter()
        .map(|name| (name.to_string(), cluster.node(name, "worker")))
        .collect();
    let id = start(&api, "slow");
    wait_state(&api, "slow", id, &["BUILDING"]);
    let (_, listed) = api.call("GET", "/v1/workers", b"");
    let holder = listed["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["workflow"] == id)
        .map_or_else(
            || panic!("no worker holds {id}: {listed}"),
            |w| w["id"].as_str().unwrap().to_string(),
        );
    let mut killed = workers.remove(&holder).unwrap();
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();

    let record = wait_state(
        &api,
        "slow",
        id,
        &["READY", "ERROR", "BUILD_FAILED", "PUSH_FAILED"],
    );
    assert_eq!(record["state"], "READY", "{record}");
    let requeued = record["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["state"] == "QUEUED" && t["detail"].as_str().unwrap().starts_with("requeued"))
        .unwrap_or_else(|| panic!("not requeued: {record}"));
    assert!(
        requeued["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("worker {holder} stopped heartbeating")),
        "{requeued}"
    );
    assert_eq!(
        states(&record),
        ["QUEUED", "BUILDING", "QUEUED", "BUILDING", "BUILT", "PUSHING", "READY"]
    );
    let other = workers.keys().next().unwrap().clone();
    assert_eq!(
        pg.psql(
            "killed",
            &format!("SELECT worker, attempts FROM workflows WHERE id = {id}")
        ),
        format!("{other}|2")
    );
    // Nothing half-written: the tag names the recorded DU, and every blob of it is there.
    assert_eq!(
        registry_digest(&cluster.registry, "slow", &format!("wf-{id}")),
        record["du_digest"].as_str().unwrap()
    );
    copies_whole(
        &cluster.registry,
        "slow",
        &format!("wf-{id}"),
        &cluster.dir.path().join("copy"),
    );
    // Both attempts are in the log, the first cut short.
    let log = workflow_log(&api, "slow", id);
    assert_eq!(
        log.matches(&format!("workflow {id} of slow")).count(),
        2,
        "{log}"
    );
}

#[test]
fn a_worker_stopped_with_sigterm_hands_its_workflow_back_at_once() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    // A lease far longer than the test: only the hand-back can move the workflow on.
    let cluster = Cluster::new(pg, "termed", 600);
    let api = cluster.api_with_badger("api");
    cluster.app(&api, "handed", "sleep 6");
    let mut stopping = cluster.node("wt1", "worker");
    let id = start(&api, "handed");
    wait_state(&api, "handed", id, &["BUILDING"]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(stopping.child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = stopping.child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", stopping.log());
    let _other = cluster.node("wt2", "worker");
    let record = wait_state(&api, "handed", id, &["READY", "ERROR", "BUILD_FAILED"]);
    assert_eq!(record["state"], "READY", "{record}");
    assert!(
        record["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["detail"]
                .as_str()
                .unwrap()
                .starts_with("requeued: worker wt1 stopped")),
        "{record}"
    );
    assert_eq!(
        pg.psql(
            "termed",
            &format!("SELECT worker FROM workflows WHERE id = {id}")
        ),
        "wt2"
    );
}

#[test]
fn postgres_restarted_mid_run_loses_and_doubles_nothing() {
    // Its own cluster: a restart must not disturb the other tests' databases.
    let Some(pg) = PgCluster::start() else {
        return;
    };
    let cluster = Cluster::new(&pg, "restart", 20);
    let api = cluster.api_with_badger("api");
    cluster.app(&api, "steady", "sleep 2");
    let workers: Vec<Server> = ["wr1", "wr2"]
        .iter()
        .map(|name| cluster.node(name, "worker"))
        .collect();
    let ids: Vec<i64> = (0..6).map(|_| start(&api, "steady")).collect();
    wait_state(
        &api,
        "steady",
        ids[0],
        &["BUILDING", "BUILT", "PUSHING", "READY"],
    );
    pg.restart();
    // Queued after the restart too: the nodes' connections are new ones.
    let later = start(&api, "steady");
    let mut recorded = Vec::new();
    for id in ids.iter().chain([&later]) {
        let record = wait_state(
            &api,
            "steady",
            *id,
            &["READY", "ERROR", "BUILD_FAILED", "PUSH_FAILED"],
        );
        assert_eq!(record["state"], "READY", "{record}");
        assert_eq!(
            states(&record),
            ["QUEUED", "BUILDING", "BUILT", "PUSHING", "READY"],
            "{record}"
        );
        recorded.push((*id, record["du_digest"].as_str().unwrap().to_string()));
    }
    // After every push (see the thirty workflows' test for why).
    for (id, digest) in &recorded {
        assert_eq!(
            &registry_digest(&cluster.registry, "steady", &format!("wf-{id}")),
            digest
        );
    }
    assert_eq!(pg.psql("restart", "SELECT count(*) FROM workflows"), "7");
    assert_eq!(
        pg.psql(
            "restart",
            "SELECT count(*) FROM workflows WHERE attempts <> 1"
        ),
        "0"
    );
    let (status, health) = api.call_with("GET", "/v1/health", b"", &[]);
    assert_eq!(status, 200, "{health}");

    // The database down: health (open to anyone) answers 503 at once, with a reason but
    // not the database's address. (The workers stop first: a stopping worker hands its
    // work back through the database.)
    drop(workers);
    pg.stop_fast();
    // Twice: the first may find a pooled connection broken, the second tries a new one.
    for _ in 0..2 {
        let asked = std::time::Instant::now();
        let (status, health) = api.call_with("GET", "/v1/health", b"", &[]);
        assert!(
            asked.elapsed() < std::time::Duration::from_secs(5),
            "{health}"
        );
        assert_eq!(status, 503, "{health}");
        assert_eq!(health["database"]["ok"], false, "{health}");
        let reason = health["database"]["error"].as_str().unwrap();
        assert!(!reason.is_empty(), "{health}");
        assert!(!reason.contains(&pg.port().to_string()), "{health}");
        assert!(!reason.contains("postgres://"), "{health}");
    }
}

#[test]
fn status_and_logs_go_on_through_the_other_api_node() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let cluster = Cluster::new(pg, "apikill", 10);
    let mut api_a = cluster.api_with_badger("api-a");
    let api_b = cluster.node("api-b", "api");
    cluster.app(&api_a, "watched", "echo step-one; sleep 4; echo step-two");
    let _worker = cluster.node("wk", "worker");
    let id = start(&api_a, "watched");
    wait_state(&api_a, "watched", id, &["BUILDING"]);
    api_a.child.kill().unwrap();
    api_a.child.wait().unwrap();
    // Followed through the other node from the start to the end of the build.
    let followed = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "120", "-H"])
        .arg(format!("Authorization: Bearer {TOKEN}"))
        .arg(api_b.url(&format!("/v1/apps/watched/workflows/{id}/logs?follow=1")))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&followed.stdout);
    for line in ["==> BUILDING", "step-one", "step-two", "==> READY"] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    let record = wait_state(&api_b, "watched", id, &["READY"]);
    assert_eq!(record["state"], "READY");
}

#[test]
fn a_git_push_through_either_api_node_starts_one_workflow() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let cluster = Cluster::new(pg, "gitpush", 10);
    let api_a = cluster.api_with_badger("api-a");
    let api_b = cluster.node("api-b", "api");
    let _worker = cluster.node("wg", "worker");
    // No source: the app builds what is pushed to its managed repository.
    let text = "version: 1\nname: pushed\nbadger: badgers/shell\nworkflow_config:\n  \
                run_cmd: cat /app/built\n";
    let (status, answer) = api_a.call("POST", "/v1/apps", text.as_bytes());
    assert_eq!(status, 201, "{answer}");
    let work = cluster.dir.path().join("pushed-work");
    source_with_build_script(&work, "echo built > /app/built");
    let git = |args: &[&str]| {
        Cmd::program("git")
            .arg("-C")
            .arg(&work)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.org")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.org")
            .run()
            .ok()
    };
    git(&["init", "--quiet", "--initial-branch=main"]);
    git(&["add", "."]);
    git(&["commit", "--quiet", "-m", "one"]);
    let remote = |api: &Server| format!("http://git:{TOKEN}@127.0.0.1:{}/git/pushed.git", api.port);
    git(&["push", "--quiet", &remote(&api_b), "main"]);
    let listed = |api: &Server| -> Vec<i64> {
        let (_, list) = api.call("GET", "/v1/apps/pushed/workflows", b"");
        list["workflows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["id"].as_i64().unwrap())
            .collect()
    };
    let first = listed(&api_a);
    assert_eq!(first.len(), 1, "one push, one workflow");
    let record = wait_state(
        &api_a,
        "pushed",
        first[0],
        &["READY", "ERROR", "BUILD_FAILED"],
    );
    assert_eq!(record["state"], "READY", "{record}");
    std::fs::write(work.join("more"), "x").unwrap();
    git(&["add", "."]);
    git(&["commit", "--quiet", "-m", "two"]);
    git(&["push", "--quiet", &remote(&api_a), "main"]);
    let both = listed(&api_b);
    assert_eq!(both.len(), 2, "{both:?}");
    let record = wait_state(
        &api_b,
        "pushed",
        both[0],
        &["READY", "ERROR", "BUILD_FAILED"],
    );
    assert_eq!(record["state"], "READY", "{record}");
}

#[test]
fn a_cancel_through_an_api_node_stops_the_build_on_its_worker_at_once() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    // A long lease: the heartbeat (every 10 s) is not what carries the cancel.
    let cluster = Cluster::new(pg, "cancel", 30);
    let api = cluster.api_with_badger("api");
    cluster.app(&api, "stopped", "sleep 60");
    let worker = cluster.node("wc", "worker");
    let id = start(&api, "stopped");
    wait_state(&api, "stopped", id, &["BUILDING"]);
    std::thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    let (status, answer) = api.call(
        "POST",
        &format!("/v1/apps/stopped/workflows/{id}/cancel"),
        b"",
    );
    assert_eq!(status, 202, "{answer}");
    let record = wait_state(&api, "stopped", id, &["CANCELLED", "ERROR", "READY"]);
    assert_eq!(record["state"], "CANCELLED", "{record}");
    assert!(
        asked.elapsed() < Duration::from_secs(8),
        "the cancel took {:?}",
        asked.elapsed()
    );
    // The worker's store is a cache: deleted, the next build fetches the badger again.
    std::fs::remove_dir_all(cluster.dir.path().join("wc").join("store")).unwrap();
    source_with_build_script(
        &cluster.dir.path().join("stopped-src"),
        "echo built > /app/built",
    );
    let again = start(&api, "stopped");
    let record = wait_state(&api, "stopped", again, &["READY", "ERROR", "BUILD_FAILED"]);
    assert_eq!(record["state"], "READY", "{record}");
    drop(worker);
}

#[test]
fn a_database_that_is_not_there_stops_the_start_with_its_address() {
    let dir = temp_dir();
    let port = free_port();
    let run = Cmd::solum_without_store()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .arg("--database")
        .arg(format!("postgres://solum:hunter2@127.0.0.1:{port}/nowhere"))
        .run()
        .fails_with(1);
    assert!(
        run.stderr.contains(&format!(
            "cannot reach the database postgres://solum:***@127.0.0.1:{port}/nowhere"
        )),
        "{}",
        run.text()
    );
    assert!(!run.text().contains("hunter2"), "{}", run.text());
    let wrong = Cmd::solum_without_store()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .args(["--database", "mysql://x/y"])
        .run()
        .fails_with(1);
    assert!(
        wrong.stderr.contains("sqlite://PATH or postgres://"),
        "{}",
        wrong.text()
    );
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
