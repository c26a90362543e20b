//! The language badgers' test apps (`testdata/apps/NAME`): a store holding the badger's
//! Debian base image (imported from the tarball `scripts/make-base-images.sh --only
//! debian-KIND --no-import` caches; the test command makes it first) and the badger built
//! on it; the app copied into a temporary folder and built from its own app file; its DU
//! served over HTTP under `solum-build run --network host` and under `podman run`.

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use super::apps::PodmanImage;
use super::cmd::{is_root, temp_dir, Cmd, Run};
use super::fixtures::{base_tarball, import_tree, layer_digests, repo_dir};
use super::http::fetch_until;
use super::registry::free_port;

/// Kills a child on drop, so that a failed assertion leaves no server behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A language badger's test app, ready to build.
pub struct LangApp {
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
    /// The app's copy: its source folder, which holds its app file.
    pub source: PathBuf,
    /// The DU's name (the app file's `name`, the folder's name).
    pub name: String,
}

impl LangApp {
    /// Imports `base/debian-BADGER`, builds `badgers/BADGER` on it and copies
    /// `testdata/apps/APP` (which holds `APP.yaml`).
    pub fn new(badger: &str, app: &str) -> LangApp {
        let dir = temp_dir();
        let store = dir.path().join("store");
        let kind = format!("debian-{badger}");
        import_tree(&store, &base_tarball(&kind), &format!("base/{kind}"));
        Cmd::solum(&store)
            .args(["badger", "build"])
            .arg(repo_dir().join("badgers").join(badger))
            .run()
            .ok();
        let source = dir.path().join(app);
        Cmd::program("cp")
            .arg("-a")
            .arg(repo_dir().join("testdata/apps").join(app))
            .arg(&source)
            .run()
            .ok();
        LangApp {
            dir,
            store,
            source,
            name: app.to_string(),
        }
    }

    /// `solum-build build APP.yaml --no-cache` (a build even of a recorded commit), which must
    /// succeed.
    pub fn build(&self) -> Run {
        Cmd::solum(&self.store)
            .arg("build")
            .arg(self.source.join(format!("{}.yaml", self.name)))
            .arg("--no-cache")
            .run()
            .ok()
    }

    /// The manifest digest of the DU in the store's index.
    pub fn digest(&self) -> String {
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.store.join("index.json")).unwrap()).unwrap();
        let names = [self.name.clone(), format!("{}:latest", self.name)];
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| {
                let name = &m["annotations"]["org.opencontainers.image.ref.name"];
                names.iter().any(|n| name == n.as_str())
            })
            .unwrap_or_else(|| panic!("{} not in {}", self.name, self.store.display()))["digest"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// `solum-build run --network host DU` with PORT set to a free port: the answer to
    /// `GET PATH`, which must contain `want`.
    pub fn serve_on_host(&self, path: &str, want: &str) -> String {
        let port = free_port();
        let child = Cmd::solum(&self.store)
            .args(["run", "--network", "host", "--timeout", "300"])
            .args(["-e", &format!("PORT={port}")])
            .arg(&self.name)
            .spawn();
        let _server = Killed(child);
        fetch_until(port, path, want, Duration::from_secs(120))
    }

    /// The DU pushed to an OCI layout and run by `podman run --network host` with PORT set
    /// to a free port: the answer to `GET PATH`, which must contain `want`.
    pub fn serve_under_podman(&self, path: &str, want: &str) -> String {
        let image = PodmanImage::push(self.dir.path(), &self.store, &self.name, "lang-app", "");
        let port = free_port();
        let _container = image.serve_on(port);
        fetch_until(port, path, want, Duration::from_secs(120))
    }

    /// Replaces `from` by `to` in the app's file `path` (a one-line code change).
    pub fn edit(&self, path: &str, from: &str, to: &str) {
        let file = self.source.join(path);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains(from), "{from:?} is not in {}", file.display());
        std::fs::write(&file, text.replacen(from, to, 1)).unwrap();
    }
}

/// The checks every language badger's app goes through, in order: built with its tests
/// passing in the gate (`tests_passed` in the build's output), served over HTTP at `/` with
/// `greeting` in the answer, by `solum-build run` and (as root) by podman, then built again
/// from the same source to the same digest, then built after a one-line code change
/// (`change`: a file, a text in it and its replacement) whose answer shows `changed`, on
/// the dependency layer of the build before (the same layers below the app's). Returns the first build's output.
pub fn check_app(
    app: &LangApp,
    tests_passed: &str,
    greeting: &str,
    change: (&str, &str, &str),
    changed: &str,
) -> Run {
    let built = app.build();
    assert!(built.stderr.contains(tests_passed), "{}", built.text());
    let first = app.digest();
    app.serve_on_host("/", greeting);
    if is_root() {
        app.serve_under_podman("/", greeting);
    }
    // The DU runs as the badger's `app` user.
    let ids = Cmd::solum(&app.store)
        .args(["run", &app.name, "--", "id", "-u"])
        .run()
        .ok();
    assert_eq!(ids.stdout.trim(), "1000");

    app.build();
    assert_eq!(
        app.digest(),
        first,
        "a second build of the same source differs"
    );

    // The code change builds on the dependency layer of the build before it (with the
    // cache: `--no-cache` would install the dependencies again).
    let before = layer_digests(&app.store, &app.name);
    let (file, from, to) = change;
    app.edit(file, from, to);
    let rebuilt = Cmd::solum(&app.store)
        .arg("build")
        .arg(app.source.join(format!("{}.yaml", app.name)))
        .run()
        .ok();
    assert!(
        rebuilt.stderr.contains("(inputs unchanged)"),
        "{}",
        rebuilt.text()
    );
    let after = layer_digests(&app.store, &app.name);
    let below = before.len() - 1;
    assert_eq!(before.len(), after.len(), "{before:?}\n{after:?}");
    assert_eq!(
        before[..below],
        after[..below],
        "a layer below the app's changed"
    );
    assert_ne!(app.digest(), first);
    app.serve_on_host("/", changed);
    built
}
