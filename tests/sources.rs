//! Issue 13, item 6, sources on the command line: a `.solumignore` (or `.dockerignore`)
//! keeps `.env`, `node_modules/` and the like out of the DU and out of the build key; a
//! folder that is a git checkout builds its working tree unless `--revision` is given;
//! `source.path` builds a subdirectory and refuses to leave the source. As root and again
//! as `tester`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use support::*;

/// Writes `files` (path, text) under `dir`, making folders as needed.
fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// An app folder `dir/NAME` with a `build` script that lists `/app` into `/app/listing`,
/// and its app file `dir/NAME.yaml` (source `./NAME`, plus `extra` source keys).
fn listing_app(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let source = dir.join(name);
    let build = source.join("build");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(
        &build,
        "#!/bin/sh\ncd /app && find . | sort > /tmp/listing && mv /tmp/listing /app/listing\n",
    )
    .unwrap();
    std::fs::set_permissions(&build, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &file,
        format!(
            "version: 1\nname: {name}\nbadger: badgers/shell\nsource:\n  repository: ./{name}\n{extra}\
             workflow_config:\n  run_cmd: cat /app/listing\nports: [8080]\n"
        ),
    )
    .unwrap();
    file
}

/// `/app`'s listing in the DU `name`, as its build saw it.
fn listing(store: &Path, name: &str) -> String {
    Cmd::solum(store)
        .args(["run", name, "--", "cat", "/app/listing"])
        .run()
        .ok()
        .stdout
}

fn build(store: &Path, app_file: &Path, extra: &[&str]) -> Run {
    Cmd::solum(store)
        .arg("build")
        .arg(app_file)
        .args(extra)
        .run()
        .ok()
}

#[test]
fn ignored_files_stay_out_of_the_du_and_the_build_key() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, &["shell"]);
    let app = listing_app(dir.path(), "ignoring", "");
    let source = dir.path().join("ignoring");
    write_files(
        &source,
        &[
            (".env", "SECRET=1\n"),
            ("node_modules/left-pad/index.js", "x"),
            (".venv/bin/python", "x"),
            ("logs/a.log", "x"),
            ("logs/keep.log", "x"),
            ("app.sh", "echo app\n"),
            (
                ".solumignore",
                ".env\nnode_modules/\n.venv/\n*.log\n!keep.log\n",
            ),
        ],
    );
    let built = build(&store, &app, &[]);
    assert!(
        built.text().contains("4 paths matched by .solumignore"),
        "{}",
        built.text()
    );
    let listed = listing(&store, "ignoring");
    for gone in ["./.env", "./node_modules", "./.venv", "./logs/a.log"] {
        assert!(!listed.lines().any(|l| l == gone), "{gone}: {listed}");
    }
    for kept in ["./app.sh", "./logs/keep.log", "./.solumignore"] {
        assert!(listed.lines().any(|l| l == kept), "{kept}: {listed}");
    }

    // Only ignored files change: the same source tree, so the build is a cache hit.
    write_files(
        &source,
        &[(".env", "SECRET=2\n"), ("node_modules/new.js", "y")],
    );
    let again = build(&store, &app, &[]);
    assert!(again.text().contains("(cached,"), "{}", again.text());

    // No .solumignore: the .dockerignore is read, its patterns anchored at the root.
    std::fs::remove_file(source.join(".solumignore")).unwrap();
    write_files(&source, &[(".dockerignore", "*.log\n.env\n")]);
    let built = build(&store, &app, &[]);
    assert!(
        built.text().contains("matched by .dockerignore"),
        "{}",
        built.text()
    );
    let listed = listing(&store, "ignoring");
    assert!(!listed.lines().any(|l| l == "./.env"), "{listed}");
    // `*.log` is the root's only, as in Docker.
    assert!(listed.lines().any(|l| l == "./logs/a.log"), "{listed}");
    assert!(listed.lines().any(|l| l == "./node_modules"), "{listed}");
}

#[test]
fn a_checkout_builds_its_working_tree_unless_a_revision_is_given() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, &["shell"]);
    let app = listing_app(dir.path(), "checkout", "");
    let source = dir.path().join("checkout");
    write_files(&source, &[("committed.txt", "v1\n")]);
    git(&source, &["init", "-q", "-b", "main"]);
    git(&source, &["add", "-A"]);
    git(&source, &["commit", "-q", "-m", "first"]);
    let head = git(&source, &["rev-parse", "HEAD"]);
    // An edit, an untracked file, and a folder `.gitignore` names: all built.
    write_files(
        &source,
        &[
            ("committed.txt", "v2\n"),
            ("untracked.txt", "new\n"),
            ("wheelhouse/pkg.whl", "wheel"),
            (".gitignore", "wheelhouse/\n"),
        ],
    );
    let built = build(&store, &app, &[]);
    assert!(
        built.text().contains("4 uncommitted changes"),
        "{}",
        built.text()
    );
    let listed = listing(&store, "checkout");
    for kept in ["./untracked.txt", "./wheelhouse/pkg.whl", "./.gitignore"] {
        assert!(listed.lines().any(|l| l == kept), "{kept}: {listed}");
    }
    assert!(
        !listed.lines().any(|l| l.starts_with("./.git/")),
        "{listed}"
    );
    let edited = Cmd::solum(&store)
        .args(["run", "checkout", "--", "cat", "/app/committed.txt"])
        .run()
        .ok();
    assert_eq!(edited.stdout, "v2\n");
    let inspected = Cmd::solum(&store).args(["inspect", "checkout"]).run().ok();
    assert!(
        inspected.stdout.contains(&format!("{head}-dirty")),
        "{}",
        inspected.stdout
    );

    // --revision builds the commit, as before.
    build(&store, &app, &["--revision", "main"]);
    let committed = Cmd::solum(&store)
        .args(["run", "checkout", "--", "cat", "/app/committed.txt"])
        .run()
        .ok();
    assert_eq!(committed.stdout, "v1\n");
    let listed = listing(&store, "checkout");
    assert!(!listed.contains("untracked.txt"), "{listed}");
}

#[test]
fn source_path_builds_a_subdirectory_and_never_leaves_the_source() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, &["shell"]);
    let app = listing_app(dir.path(), "mono", "  path: services/api\n");
    let source = dir.path().join("mono");
    write_files(
        &source,
        &[("services/api/main.sh", "api\n"), ("top.txt", "t")],
    );
    // The subdirectory is the source: its own build script runs.
    std::fs::copy(source.join("build"), source.join("services/api/build")).unwrap();
    build(&store, &app, &[]);
    let listed = listing(&store, "mono");
    assert!(listed.lines().any(|l| l == "./main.sh"), "{listed}");
    assert!(!listed.contains("top.txt"), "{listed}");
    // The DU says which folder it was built from.
    let inspected = Cmd::solum(&store).args(["inspect", "mono"]).run().ok();
    assert!(
        inspected.stdout.contains(r#"\"path\":\"services/api\""#),
        "{}",
        inspected.stdout
    );

    // `--source-path` replaces the app file's: the whole source, or another folder of it.
    write_files(&source, &[("services/web/index.sh", "web\n")]);
    std::fs::copy(source.join("build"), source.join("services/web/build")).unwrap();
    build(&store, &app, &["--source-path", "services/web"]);
    let listed = listing(&store, "mono");
    assert!(listed.lines().any(|l| l == "./index.sh"), "{listed}");
    assert!(!listed.contains("main.sh"), "{listed}");

    std::fs::create_dir(dir.path().join("outside")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("outside"), source.join("escape")).unwrap();
    for (path, reason) in [
        ("../outside", "must not climb out"),
        ("/etc", "must be relative"),
        ("escape", "leads out of the source"),
    ] {
        let hostile = listing_app(dir.path(), "mono", &format!("  path: {path:?}\n"));
        let failed = Cmd::solum(&store)
            .arg("build")
            .arg(&hostile)
            .run()
            .fails_with(2);
        assert!(
            failed.stderr.contains("source.path") && failed.stderr.contains(reason),
            "{path}: {}",
            failed.text()
        );
    }
    let failed = Cmd::solum(&store)
        .arg("build")
        .arg(&app)
        .args(["--source-path", "../outside"])
        .run()
        .fails_with(2);
    assert!(
        failed.stderr.contains("must not climb out"),
        "{}",
        failed.text()
    );
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
