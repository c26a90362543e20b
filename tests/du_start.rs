//! Issue 13, item 7: DUs that start. After the build (and the tests), the program the run
//! command starts must be in the DU — on the image's PATH, or relative to /app — as a
//! regular file with an execute bit; otherwise the build fails (exit 1) naming it. As root
//! and again as `tester`.

mod support;

use std::path::{Path, PathBuf};
use support::apps::PodmanImage;
use support::*;

/// An app folder `dir/NAME` whose `build` script is `body`, and its app file (shell
/// badger) with `run_cmd`.
fn app_with_run_cmd(dir: &Path, name: &str, body: &str, run_cmd: &str) -> PathBuf {
    source_with_build_script(&dir.join(name), body);
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &file,
        format!(
            "version: 1\nname: {name}\nbadger: badgers/shell\nsource:\n  repository: ./{name}\n\
             workflow_config:\n  run_cmd: {}\n",
            serde_json::to_string(run_cmd).unwrap()
        ),
    )
    .unwrap();
    file
}

fn build(store: &Path, app: &Path) -> Run {
    Cmd::solum(store).arg("build").arg(app).run()
}

#[test]
fn a_run_command_that_cannot_start_fails_the_build() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, &["shell"]);

    let app = app_with_run_cmd(dir.path(), "nopython", "true", "python app.py");
    let run = build(&store, &app).fails_with(1);
    let wanted = "run_cmd: \"python app.py\": python is not found on the image's PATH \
                  (/usr/local/bin:/usr/bin:/bin) — install it in the build";
    assert!(run.stderr.contains(wanted), "{}", run.text());
    assert!(run.stderr.contains("BUILD_FAILED"), "{}", run.text());
    let images = Cmd::solum(&store).arg("images").run().ok();
    assert!(!images.stdout.contains("nopython"), "{}", images.text());

    // Made by the build, but without an execute bit.
    let body = "printf 'echo hi\\n' > /app/start.sh; chmod 644 /app/start.sh";
    let app = app_with_run_cmd(dir.path(), "noexec", body, "./start.sh --port 80");
    let run = build(&store, &app).fails_with(1);
    let wanted =
        "run_cmd: \"./start.sh --port 80\": ./start.sh (./start.sh) is not executable (mode 0644)";
    assert!(run.stderr.contains(wanted), "{}", run.text());

    // A symlink out of the image is resolved inside it: /etc/passwd of the image is no
    // program either.
    let body = "ln -s /etc/passwd /app/run";
    let app = app_with_run_cmd(dir.path(), "link", body, "exec /app/run");
    let run = build(&store, &app).fails_with(1);
    assert!(
        run.stderr
            .contains("/app/run (/app/run) is not executable (mode 0644)"),
        "{}",
        run.text()
    );

    let app = app_with_run_cmd(dir.path(), "dir", "mkdir -p /app/srv", "PORT=1 /app/srv");
    let run = build(&store, &app).fails_with(1);
    assert!(
        run.stderr
            .contains("/app/srv (/app/srv) is not a regular file"),
        "{}",
        run.text()
    );

    let app = app_with_run_cmd(dir.path(), "gone", "true", "./missing");
    let run = build(&store, &app).fails_with(1);
    assert!(
        run.stderr
            .contains("./missing is not found in the image (looked in /app)"),
        "{}",
        run.text()
    );

    // Without overlay (the copy of the root), the same verdicts.
    for (app, wanted) in [
        ("noexec", "is not executable (mode 0644)"),
        ("nopython", "python is not found on the image's PATH"),
    ] {
        let run = Cmd::solum(&store)
            .env("SOLUM_BUILD_NO_OVERLAY", "1")
            .arg("build")
            .arg(dir.path().join(format!("{app}.yaml")))
            .run()
            .fails_with(1);
        assert!(run.stderr.contains(wanted), "{}", run.text());
    }
}

#[test]
fn a_run_command_that_starts_builds() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, &["shell"]);

    // On the PATH (a busybox applet, through its symlink), made by the build, a builtin.
    let body = "printf '#!/bin/sh\\necho started\\n' > /app/start.sh; chmod 755 /app/start.sh";
    for (name, run_cmd, says) in [
        ("onpath", "cat /app/build", "#!/bin/sh"),
        ("made", "exec ./start.sh", "started"),
        ("builtin", "echo from the shell", "from the shell"),
    ] {
        let app = app_with_run_cmd(dir.path(), name, body, run_cmd);
        let run = build(&store, &app).ok();
        assert!(!run.stderr.contains("is not"), "{}", run.text());
        let ran = Cmd::solum(&store).args(["run", name]).run().ok();
        assert!(ran.stdout.contains(says), "{}", ran.text());
    }
}

/// `podman run` of the DU `name` (pushed to an OCI layout): its stdout.
fn podman_run(dir: &Path, store: &Path, name: &str) -> String {
    let image = PodmanImage::push(dir, store, name, "du-start", "netns=\"none\"\n");
    let ran = Cmd::program("podman")
        .env("CONTAINERS_CONF", &image.conf)
        .args(["run", "--rm", "--runtime", "runc", "--network", "none"])
        .arg(&image.reference)
        .run();
    ran.ok().stdout
}

/// `solum-build run DU -- ARGS…`, which must succeed: its stdout.
fn run_in(store: &Path, du: &str, args: &[&str]) -> String {
    let run = Cmd::solum(store)
        .args(["run", du, "--"])
        .args(args)
        .run()
        .ok();
    run.stdout
}

#[test]
fn dus_of_the_shipped_badgers_run_as_uid_1000_unless_the_app_says_root() {
    let dir = temp_dir();
    let store = dir.path().join("store");
    busybox_store(dir.path(), &store, &["shell"]);

    // The build runs as root (it may install), the DU as `app`.
    let app = app_with_run_cmd(dir.path(), "plain", "id -u > /app/built-by", "id -u");
    build(&store, &app).ok();
    assert_eq!(run_in(&store, "plain", &["cat", "/app/built-by"]), "0\n");
    let ids = run_in(
        &store,
        "plain",
        &["sh", "-c", "id -u; id -g; id -un; echo $HOME"],
    );
    assert_eq!(ids, "1000\n1000\napp\n/home/app\n");
    let ran = Cmd::solum(&store).args(["run", "plain"]).run().ok();
    assert_eq!(ran.stdout, "1000\n", "{}", ran.text());
    // Its home is its own to write.
    assert_eq!(
        run_in(&store, "plain", &["sh", "-c", "touch ~/x && echo ok"]),
        "ok\n"
    );
    let inspect = Cmd::solum(&store).args(["inspect", "plain"]).run().ok();
    assert!(
        inspect.stdout.contains("\"User\": \"1000:1000\""),
        "{}",
        inspect.text()
    );

    // podman takes the user from the config too.
    if is_root() {
        assert_eq!(podman_run(dir.path(), &store, "plain"), "1000\n");
    }

    // The check runs as the DU's user: a program only root may execute does not start.
    // (Rootless without subordinate ids, the build's files are the one mapped id's, which
    // is then also the DU's: only root sees the difference.)
    if is_root() {
        let body = "printf 'echo hi\\n' > /app/start.sh; chmod 700 /app/start.sh";
        let app = app_with_run_cmd(dir.path(), "rootonly", body, "./start.sh");
        let run = build(&store, &app).fails_with(1);
        let wanted = "./start.sh (./start.sh) is not executable (mode 0700)";
        assert!(run.stderr.contains(wanted), "{}", run.text());
    }

    // `user: root` in the app file.
    let file = dir.path().join("asroot.yaml");
    let text = std::fs::read_to_string(&app)
        .unwrap()
        .replace("name: plain", "name: asroot");
    std::fs::write(&file, format!("{text}user: root\n")).unwrap();
    build(&store, &file).ok();
    let ids = run_in(&store, "asroot", &["sh", "-c", "id -u; id -g; echo $HOME"]);
    assert_eq!(ids, "0\n0\n/root\n");

    // A name is refused: nothing resolves it outside the image.
    std::fs::write(&file, format!("{text}user: nobody\n")).unwrap();
    let run = build(&store, &file).fails_with(2);
    assert!(run.stderr.contains("user"), "{}", run.text());
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
