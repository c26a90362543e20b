//! Issue 13, item 4: Solum v1 app files work unchanged. `test_cmd: ''` is "no tests" and
//! `--test-cmd` replaces it; `languagepack: python` is our `python3`, `auto` and unknown
//! names list the badgers to choose from; `deploy` in `trigger_actions` pushes where there
//! is a push target and says so otherwise; a Procfile's `web:` line is the run command;
//! `PORT` comes from the first port; `build_cmd` runs after the badger's build; the server
//! pushes an app that asks for `deploy`. As root and again as `tester`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use support::registry::{Mode, Registry};
use support::serve::{app_text, data_with_base, Server};
use support::*;

/// An app folder `dir/NAME` with a `build` script, and the app file `dir/NAME.yaml` made of
/// `fields` (after name and source).
fn solum_app(dir: &Path, name: &str, fields: &str) -> PathBuf {
    let source = dir.join(name);
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("build"), "#!/bin/sh\necho built > /app/out\n").unwrap();
    std::fs::set_permissions(source.join("build"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &file,
        format!("version: 1\nname: {name}\nsource:\n  repository: ./{name}\n{fields}"),
    )
    .unwrap();
    file
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

    let built = Cmd::solum(&store).arg("build").arg(&app).run().ok();
    assert!(
        built
            .stderr
            .contains("Skipping tests: the app file says there are none (empty test_cmd)"),
        "{}",
        built.text()
    );
    assert!(
        built.stderr.contains(
            "warning: trigger_actions asks for deploy, which needs a push target (build --push REF, or the server's --push-to): nothing is pushed"
        ),
        "{}",
        built.text()
    );
    let ran = Cmd::solum(&store).args(["run", "sample"]).run().ok();
    assert_eq!(ran.stdout, "port=8080\n", "{}", ran.text());

    // With a push target, deploy is that push, and says so.
    let pushed = dir.path().join("pushed");
    let target = format!("oci:{}:sample", pushed.display());
    let built = Cmd::solum(&store)
        .arg("build")
        .arg(&app)
        .args(["--push", &target])
        .run()
        .ok();
    assert!(
        built
            .stderr
            .contains("Deploying trigger_actions asks for deploy: pushing to"),
        "{}",
        built.text()
    );
    assert!(pushed.join("index.json").is_file(), "{}", built.text());

    // --test-cmd replaces the file's '' (and '' on the command line is no tests too).
    let failed = Cmd::solum(&store)
        .arg("build")
        .arg(&app)
        .args(["--test-cmd", "exit 5"])
        .run()
        .fails_with(1);
    assert!(failed.stderr.contains("exited with 5"), "{}", failed.text());
    let skipped = Cmd::solum(&store)
        .arg("build")
        .arg(&app)
        .args(["--test-cmd", ""])
        .run()
        .ok();
    assert!(
        skipped
            .stderr
            .contains("Skipping tests: --test-cmd says there are none"),
        "{}",
        skipped.text()
    );
}

#[test]
fn solum_badger_names_auto_and_unknown_names() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, &["shell"]);
    // A stand-in for the python3 badger (the real one needs the Debian base).
    Cmd::solum(&store)
        .args(["badger", "build"])
        .arg(repo_dir().join("badgers/shell"))
        .args(["--tag", "badgers/python3"])
        .run()
        .ok();

    let python = solum_app(
        dir.path(),
        "pysample",
        "languagepack: python\nworkflow_config:\n  run_cmd: cat /app/out\n",
    );
    let built = Cmd::solum(&store).arg("build").arg(&python).run().ok();
    assert!(
        built
            .stderr
            .contains("Using badgers/python3 for \"python\" (Solum's name)"),
        "{}",
        built.text()
    );

    let auto = solum_app(dir.path(), "autosample", "languagepack: auto\n");
    let failed = Cmd::solum(&store)
        .arg("build")
        .arg(&auto)
        .run()
        .fails_with(2);
    assert!(
        failed.stderr.contains(
            "badger \"auto\": finding the badger from the source is not available; name one in the app file (languagepack or badger) or with --badger: badgers/python3, badgers/shell, badgers/static (not built yet)"
        ),
        "{}",
        failed.text()
    );

    let typo = solum_app(dir.path(), "typosample", "languagepack: shel\n");
    let failed = Cmd::solum(&store)
        .arg("build")
        .arg(&typo)
        .run()
        .fails_with(2);
    assert!(
        failed.stderr.contains(
            "no badger \"shel\" in the store (did you mean \"badgers/shell\"?); badgers in the store: badgers/python3, badgers/shell; shipped badgers"
        ),
        "{}",
        failed.text()
    );
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
    std::fs::write(
        &procfile,
        "# processes\nworker: ./work\nweb: echo web on $PORT; cat made\n",
    )
    .unwrap();
    let built = Cmd::solum(&store).arg("build").arg(&app).run().ok();
    assert!(
        built.stderr.contains(
            "Procfile web: echo web on $PORT; cat made (the run command: the app file has no run_cmd)"
        ),
        "{}",
        built.text()
    );
    assert!(
        built.stderr.contains("build_cmd: cat out > made"),
        "{}",
        built.text()
    );
    let ran = Cmd::solum(&store).args(["run", "web"]).run().ok();
    assert_eq!(ran.stdout, "web on 5000\nbuilt\n", "{}", ran.text());

    // --run-cmd wins over the Procfile, which is then not read.
    std::fs::write(&procfile, "web echo no colon\n").unwrap();
    Cmd::solum(&store)
        .arg("build")
        .arg(&app)
        .args(["--run-cmd", "true"])
        .run()
        .ok();
    let failed = Cmd::solum(&store)
        .arg("build")
        .arg(&app)
        .run()
        .fails_with(2);
    assert!(
        failed.stderr.contains(
            "the source's Procfile, line 1: \"web echo no colon\" is not `NAME: COMMAND`"
        ),
        "{}",
        failed.text()
    );
    std::fs::write(&procfile, "worker: ./work\n").unwrap();
    let built = Cmd::solum(&store).arg("build").arg(&app).run().ok();
    assert!(
        built
            .stderr
            .contains("warning: the source's Procfile has no `web:` line"),
        "{}",
        built.text()
    );
    // A Procfile that is a symlink is refused, not followed.
    std::fs::remove_file(&procfile).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &procfile).unwrap();
    let failed = Cmd::solum(&store)
        .arg("build")
        .arg(&app)
        .run()
        .fails_with(2);
    assert!(
        failed
            .stderr
            .contains("the source's Procfile cannot be read"),
        "{}",
        failed.text()
    );
    std::fs::remove_file(&procfile).unwrap();

    // A failing build_cmd fails the build like a badger's build command.
    let failed = Cmd::solum(&store)
        .arg("build")
        .arg(&app)
        .args(["--build-cmd", "echo compiling; exit 7"])
        .run()
        .fails_with(1);
    assert!(
        failed
            .stderr
            .contains("the app's build_cmd (echo compiling; exit 7) exited with 7"),
        "{}",
        failed.text()
    );
}

/// On the server, `deploy` is a push to `--push-to` even when the workflow's actions do not
/// name `push`; an app naming `auto` is refused when it is created.
#[test]
fn the_server_pushes_an_app_that_asks_for_deploy() {
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
    let (status, started) = server.call(
        "POST",
        "/v1/apps/deployed/workflows",
        br#"{"actions":["build"]}"#,
    );
    assert_eq!(status, 202, "{started}");
    let id = started["id"].as_i64().unwrap();
    let record = server.wait_final("deployed", id);
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

    let auto = app_text("guessed", "auto", &repository);
    let (status, answer) = server.call("POST", "/v1/apps", auto.as_bytes());
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["error"],
        "badger: \"auto\": finding the badger from the source is not available; name one (the server's store has: badgers/shell)",
        "{answer}"
    );
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
