//! The test apps of `testdata/apps/` on the shipped badgers: a Debian base image from the
//! cache `scripts/make-base-images.sh` fills, the badger built on it, the app built from a
//! copy of its folder (tests in the gate), built again to the same digest, then served on a
//! free port by `solum-build run --network host` and (as root) by `podman run`.

use super::cmd::*;
use super::fixtures::*;
use super::registry::free_port;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A store with `base/KIND` (zstd layers: the big Debian trees import faster) and the
/// shipped badger `badgers/BADGER` built on it.
pub fn store_with_debian_badger(store: &Path, kind: &str, badger: &str) {
    Cmd::solum(store)
        .arg("import")
        .arg(base_tarball(kind))
        .args(["--tag", &format!("base/{kind}"), "--cmd", "/bin/bash"])
        .args(["--compression", "zstd"])
        .run()
        .ok();
    Cmd::solum(store)
        .args(["badger", "build"])
        .arg(repo_dir().join("badgers").join(badger))
        .run()
        .ok();
}

/// A copy of `testdata/apps/NAME` in `dir/NAME` (with its app.yaml), so that a build
/// reads a folder no other test changes. Returns the copy's app file.
pub fn copy_app(dir: &Path, name: &str) -> PathBuf {
    let target = dir.join(name);
    Cmd::program("cp")
        .arg("-R")
        .arg(repo_dir().join("testdata/apps").join(name))
        .arg(&target)
        .run()
        .ok();
    target.join("app.yaml")
}

/// The body of `GET /PATH` on 127.0.0.1:PORT, retried for 30 s (see [`super::http`]).
pub fn fetch_until(port: u16, path: &str, want: &str) -> String {
    super::http::fetch_until(port, &format!("/{path}"), want, Duration::from_secs(30))
}

/// Builds the app file `app` (its tests run in the gate) and again with `--no-cache`:
/// both give the same DU digest, which is returned.
pub fn build_twice_same_digest(store: &Path, app: &Path, tests_say: &str) -> String {
    let first = Cmd::solum(store).arg("build").arg(app).run().ok();
    assert!(first.stderr.contains(tests_say), "{}", first.text());
    let second = Cmd::solum(store)
        .args(["build", "--no-cache"])
        .arg(app)
        .run()
        .ok();
    assert_eq!(
        first.last_line(),
        second.last_line(),
        "a second build of the same source gave another digest"
    );
    first.last_line()
}

/// A one-line code change (in `file` of the app's folder, `from` → `to`) builds again on
/// the dependency layer of the build before: the build says it reused it, and every layer
/// of the DU but the last (the app's own) is the one the DU `name` had.
pub fn code_change_reuses_dependency_layer(
    store: &Path,
    app: &Path,
    name: &str,
    change: (&str, &str, &str),
) {
    let before = layer_digests(store, name);
    let (file, from, to) = change;
    let path = app.with_file_name(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from:?} is not in {}", path.display());
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    let rebuilt = Cmd::solum(store).arg("build").arg(app).run().ok();
    assert!(
        rebuilt.stderr.contains("(inputs unchanged)"),
        "{}",
        rebuilt.text()
    );
    let after = layer_digests(store, name);
    assert_eq!(before.len(), after.len(), "{before:?}\n{after:?}");
    let below = before.len() - 1;
    assert_eq!(
        before[..below],
        after[..below],
        "a layer below the app's changed"
    );
    assert_ne!(
        before[below], after[below],
        "the app's layer did not change"
    );
}

/// The app file `app` without its `languagepack:` line, under the name `name`, builds on
/// the badger detection chooses: the build says `badger: auto chose CHOSE`.
pub fn builds_as_auto(store: &Path, app: &Path, name: &str, chose: &str) {
    let text = std::fs::read_to_string(app).unwrap();
    let auto: String = text
        .lines()
        .filter(|line| !line.starts_with("languagepack:"))
        .map(|line| {
            if line.starts_with("name:") {
                format!("name: {name}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    let auto_file = app.with_file_name("auto.yaml");
    std::fs::write(&auto_file, auto).unwrap();
    let built = Cmd::solum(store).arg("build").arg(&auto_file).run().ok();
    let wanted = format!("badger: auto chose {chose}");
    assert!(built.stderr.contains(&wanted), "{wanted}\n{}", built.text());
}

/// Building the app file `app` fails (exit 1), its stderr holding every line of `wanted`.
pub fn build_fails_saying(store: &Path, app: &Path, wanted: &[&str]) {
    let failed = Cmd::solum(store).arg("build").arg(app).run().fails_with(1);
    for line in wanted {
        assert!(failed.stderr.contains(line), "{line}\n{}", failed.text());
    }
}

/// The DU `du` serves `want` at `/PATH` on `PORT` with `solum-build run --network host`,
/// with its own command; as root also under `podman run --network host`.
pub fn serves_on_port(dir: &Path, store: &Path, du: &str, path: &str, want: &str) {
    let port = free_port();
    let mut child = Cmd::solum(store)
        .args(["run", "--network", "host", "--timeout", "120"])
        .args(["-e", &format!("PORT={port}"), du])
        .spawn();
    fetch_until(port, path, want);
    child.kill().unwrap();
    child.wait().unwrap();
    if is_root() {
        podman_serves(dir, store, du, path, want);
    }
}

/// A DU pushed to an OCI layout of its own for `podman run`, with a containers.conf;
/// dropped, the layout and podman's record of it are removed.
pub struct PodmanImage {
    pub conf: PathBuf,
    layout: PathBuf,
    /// `oci:LAYOUT:NAME`, what `podman run` takes.
    pub reference: String,
}

impl PodmanImage {
    /// `du` of `store` in `/tmp/solum-TAG-PID`, with `conf_extra` added to the
    /// `[containers]` table of the conf written in `dir`.
    pub fn push(dir: &Path, store: &Path, du: &str, tag: &str, conf_extra: &str) -> PodmanImage {
        let conf = dir.join("containers.conf");
        std::fs::write(
            &conf,
            format!("[containers]\ndefault_ulimits = [\"nofile=20000:20000\",\"nproc=32768:32768\"]\n{conf_extra}"),
        )
        .unwrap();
        // podman reads `oci:PATH` as an image name too, which must be lowercase.
        let layout = PathBuf::from(format!("/tmp/solum-{tag}-{}", std::process::id()));
        let reference = format!("oci:{}:{du}", layout.display());
        Cmd::solum(store)
            .args(["push", du])
            .arg(&reference)
            .run()
            .ok();
        PodmanImage {
            conf,
            layout,
            reference,
        }
    }
}

impl PodmanImage {
    /// `podman run -d` of the image on the host's network, with `PORT=port`; the
    /// container is removed when the returned guard drops (declare it after the image).
    pub fn serve_on(&self, port: u16) -> PodmanContainer {
        let name = format!("solum-serve-{port}-{}", std::process::id());
        Cmd::program("podman")
            .env("CONTAINERS_CONF", &self.conf)
            .args(["run", "-d", "--rm", "--runtime", "runc"])
            .args(["--network", "host", "--name", &name])
            .args(["-e", &format!("PORT={port}")])
            .arg(&self.reference)
            .run()
            .ok();
        PodmanContainer { name }
    }
}

/// A running container of [`PodmanImage::serve_on`]; dropped, it is removed by name
/// (stopping the podman client alone may leave it running).
pub struct PodmanContainer {
    name: String,
}

impl Drop for PodmanContainer {
    fn drop(&mut self) {
        let _ = Cmd::program("podman")
            .args(["rm", "--force", "--time", "0", &self.name])
            .run();
    }
}

impl Drop for PodmanImage {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.layout);
        // podman keeps what it ran under the layout's path as a name: not for the next test.
        let _ = Cmd::program("podman")
            .args(["rmi", "--force"])
            .arg(format!("localhost{}", self.layout.display()))
            .run();
    }
}

/// `podman run` of the DU serves `want` on a free port of the host's network.
fn podman_serves(dir: &Path, store: &Path, du: &str, path: &str, want: &str) {
    let image = PodmanImage::push(dir, store, du, &format!("app-{du}"), "");
    let port = free_port();
    let _container = image.serve_on(port);
    fetch_until(port, path, want);
}
