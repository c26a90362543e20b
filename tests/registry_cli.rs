//! Issues 4 and 5 through the real binary: `build --push docker://…`, `pull`, a build on a
//! badger pulled from the registry, and `login`/`logout` against htpasswd auth — all with
//! Debian's `docker-registry` on 127.0.0.1 and checked with skopeo.

mod support;

use std::path::{Path, PathBuf};
use support::registry::{Mode, Registry};
use support::*;

fn store_with_shell_badger(dir: &Path) -> PathBuf {
    let store = dir.join("store");
    busybox_store(dir, &store, &["shell"]);
    store
}

fn app(dir: &Path) -> PathBuf {
    let app = dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("build"), "echo built > /app/built\n").unwrap();
    app
}

#[test]
fn build_push_then_pull_and_run_elsewhere() {
    let registry = Registry::start(Mode::Plain);
    let dir = temp_dir();
    let store = store_with_shell_badger(dir.path());
    let app = app(dir.path());
    let destination = format!("docker://{}/apps/hello:1", registry.host());
    let built = Cmd::solum(&store)
        .args(["build", "--badger", "badgers/shell", "--source"])
        .arg(&app)
        .args(["--name", "hello", "--run-cmd", "cat /app/built", "--push"])
        .arg(&destination)
        .run()
        .ok();
    assert!(built.stderr.contains("PUSHING"), "{}", built.text());
    let digest = built.last_line();
    let inspect = Cmd::program("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(&destination)
        .run()
        .ok();
    let json: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(json["Digest"], digest.as_str());

    // Pushing again uploads nothing; pulling into a fresh store gives the same digest.
    let again = Cmd::solum(&store)
        .args(["push", "hello"])
        .arg(&destination)
        .run()
        .ok();
    assert!(!again.stderr.contains("Copying"), "{}", again.text());
    let other = dir.path().join("other-store");
    let pulled = Cmd::solum(&other).arg("pull").arg(&destination).run().ok();
    assert_eq!(pulled.last_line(), digest);
    let run = Cmd::solum(&other).args(["run", "apps/hello:1"]).run().ok();
    assert_eq!(run.stdout.trim(), "built");
}

#[test]
fn a_badger_pushed_by_skopeo_is_pulled_and_built_on() {
    let registry = Registry::start(Mode::Plain);
    let dir = temp_dir();
    let store = store_with_shell_badger(dir.path());
    let layout = dir.path().join("layout");
    Cmd::solum(&store)
        .args(["push", "badgers/shell"])
        .arg(format!("oci:{}:shell", layout.display()))
        .run()
        .ok();
    let remote = format!("docker://{}/badgers/shell:1", registry.host());
    Cmd::program("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:shell", layout.display()))
        .arg(&remote)
        .run()
        .ok();
    let fresh = dir.path().join("fresh-store");
    let app = app(dir.path());
    let built = Cmd::solum(&fresh)
        .args(["build", "--badger"])
        .arg(&remote)
        .arg("--source")
        .arg(&app)
        .args(["--name", "fromremote"])
        .run()
        .ok();
    let inspect = Cmd::solum(&fresh)
        .args(["inspect", "fromremote"])
        .run()
        .ok();
    let json: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(
        json["annotations"]["org.opencontainers.image.base.name"],
        remote.as_str(),
        "{}",
        built.text()
    );
}

#[test]
fn login_and_logout_with_basic_auth() {
    let registry = Registry::start(Mode::Basic {
        user: "alice".into(),
        pass: "s3cret".into(),
    });
    let dir = temp_dir();
    let store = store_with_shell_badger(dir.path());
    let authfile = dir.path().join("auth.json");
    let destination = format!("docker://{}/private/shell:1", registry.host());
    let denied = Cmd::solum(&store)
        .args(["push", "badgers/shell"])
        .arg(&destination)
        .arg("--authfile")
        .arg(&authfile)
        .run()
        .fails_with(1);
    assert!(
        denied.stderr.contains("401") || denied.stderr.contains("unauthorized"),
        "{}",
        denied.text()
    );

    let wrong = Cmd::solum_without_store()
        .args([
            "login",
            &registry.host(),
            "--username",
            "alice",
            "--password",
            "nope",
            "--authfile",
        ])
        .arg(&authfile)
        .run();
    assert_ne!(wrong.code, 0, "{}", wrong.text());
    assert!(!authfile.exists(), "a failed login wrote credentials");

    Cmd::solum_without_store()
        .args([
            "login",
            &registry.host(),
            "--username",
            "alice",
            "--password-stdin",
            "--authfile",
        ])
        .arg(&authfile)
        .run_with_input(b"s3cret\n")
        .ok();
    let saved = std::fs::read_to_string(&authfile).unwrap();
    assert!(
        !saved.contains("s3cret"),
        "the password is stored only base64-encoded"
    );

    Cmd::solum(&store)
        .args(["push", "badgers/shell"])
        .arg(&destination)
        .arg("--authfile")
        .arg(&authfile)
        .run()
        .ok();
    Cmd::program("skopeo")
        .args(["inspect", "--tls-verify=false", "--authfile"])
        .arg(&authfile)
        .arg(&destination)
        .run()
        .ok();
    Cmd::solum_without_store()
        .args(["logout", &registry.host(), "--authfile"])
        .arg(&authfile)
        .run()
        .ok();
    Cmd::solum(&store)
        .arg("pull")
        .arg(&destination)
        .arg("--authfile")
        .arg(&authfile)
        .run()
        .fails_with(1);
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
