//! Issues 4 and 5 through the real binary: `build --push docker://…`, `pull`, a build on a
//! badger pulled from the registry, and `login`/`logout` against htpasswd auth — all with
//! Debian's `docker-registry` on 127.0.0.1 and checked with skopeo.

mod registry_util;
mod util;

use registry_util::{Mode, Registry};
use std::path::{Path, PathBuf};
use util::*;

fn store_with_shell_badger(dir: &Path) -> PathBuf {
    let rootfs = dir.join("busybox");
    busybox_rootfs(&rootfs);
    let store = dir.join("store");
    solum(&store, &[&"import", &rootfs, &"--tag", &"base/busybox"]).ok();
    let badger = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("badgers/shell");
    solum(&store, &[&"badger", &"build", &badger]).ok();
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
    let built = solum(
        &store,
        &[
            &"build",
            &"--badger",
            &"badgers/shell",
            &"--source",
            &app,
            &"--name",
            &"hello",
            &"--run-cmd",
            &"cat /app/built",
            &"--push",
            &destination,
        ],
    )
    .ok();
    assert!(built.stderr.contains("PUSHING"), "{}", built.text());
    let digest = built.last_line();
    let inspect = program("skopeo", &[&"inspect", &"--tls-verify=false", &destination]).ok();
    let json: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(json["Digest"], digest.as_str());

    // Pushing again uploads nothing; pulling into a fresh store gives the same digest.
    let again = solum(&store, &[&"push", &"hello", &destination]).ok();
    assert!(!again.stderr.contains("Copying"), "{}", again.text());
    let other = dir.path().join("other-store");
    let pulled = solum(&other, &[&"pull", &destination]).ok();
    assert_eq!(pulled.last_line(), digest);
    let run = solum(&other, &[&"run", &"apps/hello:1"]).ok();
    assert_eq!(run.stdout.trim(), "built");
}

#[test]
fn a_badger_pushed_by_skopeo_is_pulled_and_built_on() {
    let registry = Registry::start(Mode::Plain);
    let dir = temp_dir();
    let store = store_with_shell_badger(dir.path());
    let layout = dir.path().join("layout");
    solum(
        &store,
        &[
            &"push",
            &"badgers/shell",
            &format!("oci:{}:shell", layout.display()),
        ],
    )
    .ok();
    let remote = format!("docker://{}/badgers/shell:1", registry.host());
    program(
        "skopeo",
        &[
            &"copy",
            &"--dest-tls-verify=false",
            &format!("oci:{}:shell", layout.display()),
            &remote,
        ],
    )
    .ok();
    let fresh = dir.path().join("fresh-store");
    let app = app(dir.path());
    let built = solum(
        &fresh,
        &[
            &"build",
            &"--badger",
            &remote,
            &"--source",
            &app,
            &"--name",
            &"fromremote",
        ],
    )
    .ok();
    let inspect = solum(&fresh, &[&"inspect", &"fromremote"]).ok();
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
    let denied = solum(
        &store,
        &[
            &"push",
            &"badgers/shell",
            &destination,
            &"--authfile",
            &authfile,
        ],
    )
    .fails_with(1);
    assert!(
        denied.stderr.contains("401") || denied.stderr.contains("unauthorized"),
        "{}",
        denied.text()
    );

    let wrong = std::process::Command::new(bin())
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
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(!authfile.exists(), "a failed login wrote credentials");

    let mut login = std::process::Command::new(bin())
        .args([
            "login",
            &registry.host(),
            "--username",
            "alice",
            "--password-stdin",
            "--authfile",
        ])
        .arg(&authfile)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    login.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    assert!(login.wait().unwrap().success());
    let saved = std::fs::read_to_string(&authfile).unwrap();
    assert!(
        !saved.contains("s3cret"),
        "the password is stored only base64-encoded"
    );

    solum(
        &store,
        &[
            &"push",
            &"badgers/shell",
            &destination,
            &"--authfile",
            &authfile,
        ],
    )
    .ok();
    program(
        "skopeo",
        &[
            &"inspect",
            &"--tls-verify=false",
            &"--authfile",
            &authfile,
            &destination,
        ],
    )
    .ok();
    let logout = std::process::Command::new(bin())
        .args(["logout", &registry.host(), "--authfile"])
        .arg(&authfile)
        .output()
        .unwrap();
    assert!(logout.status.success());
    solum(&store, &[&"pull", &destination, &"--authfile", &authfile]).fails_with(1);
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
