//! Issue 13, item 4: Solum v1 app files work unchanged. `test_cmd: ''` is "no tests" and
//! `--test-cmd` replaces it; `languagepack: python3` is our `python`, `auto` and unknown
//! names list the badgers to choose from; `deploy` in `trigger_actions` pushes where there
//! is a push target and says so otherwise; a Procfile's `web:` line is the run command;
//! `PORT` comes from the first port; `build_cmd` runs after the badger's build; the server
//! pushes an app that asks for `deploy`. As root and again as `tester`.

mod support;

use std::path::{Path, PathBuf};
use support::registry::{Mode, Registry};
use support::serve::{app_text, data_with_base, Server};
use support::*;

/// An app folder `dir/NAME` with a `build` script, and the app file `dir/NAME.yaml` made of
/// `fields` (after name and source).
fn solum_app(dir: &Path, name: &str, fields: &str) -> PathBuf {
    source_with_build_script(&dir.join(name), "echo built > /app/out");
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &file,
        format!("version: 1\nname: {name}\nsource:\n  repository: ./{name}\n{fields}"),
    )
    .unwrap();
    file
}

/// `build APP EXTRA…` ends with `code` and its stderr holds every line of `wanted`.
fn build_says(store: &Path, app: &Path, extra: &[&str], code: i32, wanted: &[&str]) -> Run {
    let run = Cmd::solum(store).arg("build").arg(app).args(extra).run();
    let run = if code == 0 {
        run.ok()
    } else {
        run.fails_with(code)
    };
    for line in wanted {
        assert!(run.stderr.contains(line), "{line}\n{}", run.text());
    }
    run
}

/// The v1 sample shape: `test_cmd: ''`, `trigger_actions` with `deploy`, `ports: [8080]`.
#[test]
fn no_tests_deploy_and_port_as_solum_writes_them() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, &["shell"]);
    let app = solum_app(
        dir.path(),
        "sample",
        "languagepack: shell\nworkflow_config:\n  run_cmd: echo port=$PORT\n  test_cmd: ''\n\
         trigger_actions: [unittest, build, deploy]\nports: [8080]\n",
    );
    build_says(
        &store,
        &app,
        &[],
        0,
        &[
            "Skipping tests: the app file says there are none (empty test_cmd)",
            "warning: trigger_actions asks for deploy, which needs a push target (build --push REF, or the server's --push-to): nothing is pushed",
        ],
    );
    let ran = Cmd::solum(&store).args(["run", "sample"]).run().ok();
    assert_eq!(ran.stdout, "port=8080\n", "{}", ran.text());

    // With a push target, deploy is that push, and says so.
    let pushed = dir.path().join("pushed");
    let target = format!("oci:{}:sample", pushed.display());
    let wanted = ["Deploying trigger_actions asks for deploy: pushing to"];
    build_says(&store, &app, &["--push", &target], 0, &wanted);
    assert!(pushed.join("index.json").is_file());

    // --test-cmd replaces the file's '' (and '' on the command line is no tests too).
    build_says(
        &store,
        &app,
        &["--test-cmd", "exit 5"],
        1,
        &["exited with 5"],
    );
    let wanted = ["Skipping tests: --test-cmd says there are none"];
    build_says(&store, &app, &["--test-cmd", ""], 0, &wanted);
}

#[test]
fn solum_badger_names_auto_and_unknown_names() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, &["shell"]);
    // A stand-in for the python badger (the real one needs the Debian base).
    Cmd::solum(&store)
        .args(["badger", "build"])
        .arg(repo_dir().join("badgers/shell"))
        .args(["--tag", "badgers/python"])
        .run()
        .ok();

    let fields = "languagepack: python3\nworkflow_config:\n  run_cmd: cat /app/out\n";
    let python = solum_app(dir.path(), "pysample", fields);
    let wanted = ["Using badgers/python for \"python3\" (an alias)"];
    build_says(&store, &python, &[], 0, &wanted);

    let auto = solum_app(dir.path(), "autosample", "languagepack: auto\n");
    build_says(&store, &auto, &[], 2, &[
        "badger \"auto\": no badger in the store has a detect rule; shipped badgers not in the store (make one with `solum-build badger build badgers/NAME`): badgers/go, badgers/java, badgers/nodejs, badgers/php, badgers/ruby, badgers/static; name the badger in the app file (`badger: NAME` or `languagepack: NAME`) or with --badger",
    ]);

    let typo = solum_app(dir.path(), "typosample", "languagepack: shel\n");
    build_says(&store, &typo, &[], 2, &[
        "no badger \"shel\" in the store (did you mean \"badgers/shell\"?); badgers in the store: badgers/python, badgers/shell; shipped badgers",
    ]);
}

#[test]
fn procfile_web_line_and_build_cmd() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, &["shell"]);
    let app = solum_app(
        dir.path(),
        "web",
        "badger: badgers/shell\nworkflow_config:\n  build_cmd: cat out > made\nports: [5000]\n",
    );
    let procfile = dir.path().join("web/Procfile");
    let text = "# processes\nworker: ./work\nweb: echo web on $PORT; cat made\n";
    std::fs::write(&procfile, text).unwrap();
    build_says(&store, &app, &[], 0, &[
        "Procfile web: echo web on $PORT; cat made (the run command: the app file has no run_cmd)",
        "build_cmd: cat out > made",
    ]);
    let ran = Cmd::solum(&store).args(["run", "web"]).run().ok();
    assert_eq!(ran.stdout, "web on 5000\nbuilt\n", "{}", ran.text());

    // --run-cmd wins over the Procfile, which is then not read.
    std::fs::write(&procfile, "web echo no colon\n").unwrap();
    build_says(&store, &app, &["--run-cmd", "true"], 0, &[]);
    build_says(
        &store,
        &app,
        &[],
        2,
        &["the source's Procfile, line 1: \"web echo no colon\" is not `NAME: COMMAND`"],
    );
    std::fs::write(&procfile, "worker: ./work\n").unwrap();
    let wanted = ["warning: the source's Procfile has no `web:` line"];
    build_says(&store, &app, &[], 0, &wanted);
    // A Procfile that is a symlink is refused, not followed.
    std::fs::remove_file(&procfile).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &procfile).unwrap();
    let wanted = ["the source's Procfile cannot be read"];
    build_says(&store, &app, &[], 2, &wanted);
    std::fs::remove_file(&procfile).unwrap();

    // A failing build_cmd fails the build like a badger's build command.
    let wanted = ["the app's build_cmd (echo compiling; exit 7) exited with 7"];
    build_says(
        &store,
        &app,
        &["--build-cmd", "echo compiling; exit 7"],
        1,
        &wanted,
    );
}

/// On the server, `deploy` is a push to `--push-to` even when the workflow's actions do not
/// name `push`; an app naming `auto` is accepted (each build chooses from the source).
#[test]
fn the_server_pushes_an_app_that_asks_for_deploy() {
    let dir = temp_dir();
    let data = data_with_base(dir.path(), true);
    let registry = Registry::start(Mode::Plain);
    let source = dir.path().join("source");
    source_with_build_script(&source, "echo built > /app/built");
    let push_to = format!("docker://{}/apps", registry.host());
    let server = Server::start(
        &data,
        &[
            "--allow-local-source",
            dir.path().to_str().unwrap(),
            "--push-to",
            &push_to,
        ],
    );
    let repository = format!("  repository: {}", source.display());
    let text =
        app_text("deployed", "shell", &repository) + "trigger_actions: [unittest, build, deploy]\n";
    let (status, answer) = server.call("POST", "/v1/apps", text.as_bytes());
    assert_eq!(status, 201, "{answer}");
    let (id, record) = server.run_workflow("deployed", r#"["build"]"#);
    assert_eq!(record["state"], "READY", "{record}\n{}", server.log());
    assert!(registry.has_manifest("apps/deployed", &format!("wf-{id}"), None));
    let (_, log) = server.call(
        "GET",
        &format!("/v1/apps/deployed/workflows/{id}/logs"),
        b"",
    );
    assert!(
        log.to_string()
            .contains("trigger_actions asks for deploy: pushing to"),
        "{log}"
    );

    // `auto` is chosen from the source by each build, so the app is accepted.
    let auto = app_text("guessed", "auto", &repository);
    let (status, answer) = server.call("POST", "/v1/apps", auto.as_bytes());
    assert_eq!(status, 201, "{answer}");
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
