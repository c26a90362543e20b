//! The registry build cache (issue 14, item 3) against hostile cache repositories, on a
//! real `docker-registry`: entries made by hand (manifests and blobs put with curl) that
//! carry this build's key but not its DU. Each one is a miss with a warning, and the build
//! makes the right DU itself. The same as `tester` (rootless).

mod support;

use std::path::{Path, PathBuf};
use support::registry::{Mode, Registry};
use support::*;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// One store with the busybox base and the shell badger, and the sources of two apps
/// that differ in what their build writes.
struct Lab {
    dir: tempfile::TempDir,
    store: PathBuf,
    source: PathBuf,
    other_source: PathBuf,
}

fn lab() -> Lab {
    let dir = temp_dir();
    let store = dir.path().join("store");
    let scratch = dir.path().join("rootfs");
    std::fs::create_dir_all(&scratch).unwrap();
    busybox_store(&scratch, &store, &["shell"]);
    let source = dir.path().join("src");
    source_with_build_script(&source, "echo built > /app/out.txt");
    let other_source = dir.path().join("other");
    source_with_build_script(&other_source, "echo other > /app/out.txt");
    Lab {
        dir,
        store,
        source,
        other_source,
    }
}

impl Lab {
    fn build(&self, store: &Path, source: &Path, extra: &[&str]) -> Run {
        Cmd::solum(store)
            .args(["build", "--badger", "badgers/shell", "--name", "app"])
            .arg("--source")
            .arg(source)
            .args(["--run-cmd", "cat out.txt", "--test-cmd", "test -f out.txt"])
            .args(extra)
            .run()
    }

    /// A copy of the store without any DU or build record: another runner.
    fn fresh_store(&self, name: &str) -> PathBuf {
        let store = self.dir.path().join(name);
        Cmd::program("cp")
            .arg("-a")
            .arg(&self.store)
            .arg(&store)
            .run()
            .ok();
        std::fs::remove_dir_all(store.join("cache/builds")).ok();
        Cmd::solum(&store).args(["rmi", "app"]).run().ok();
        store
    }
}

fn base_url(registry: &Registry, repo: &str) -> String {
    format!("http://{}/v2/{repo}", registry.host())
}

/// The manifest a tag of `repo` names, as JSON.
fn get_manifest(registry: &Registry, repo: &str, tag: &str) -> serde_json::Value {
    let got = Cmd::program("curl")
        .args(["-sf", "-H", &format!("Accept: {OCI_MANIFEST}")])
        .arg(format!("{}/manifests/{tag}", base_url(registry, repo)))
        .run()
        .ok();
    serde_json::from_str(&got.stdout).unwrap()
}

/// Puts `manifest` under `tag` of `repo` (its blobs must be in the repository).
fn put_manifest(registry: &Registry, repo: &str, tag: &str, manifest: &serde_json::Value) {
    Cmd::program("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            "-H",
            &format!("Content-Type: {OCI_MANIFEST}"),
        ])
        .args(["--data-binary", &manifest.to_string()])
        .arg(format!("{}/manifests/{tag}", base_url(registry, repo)))
        .run()
        .ok();
}

/// The tags of `repo` that start with `prefix`.
fn tags(registry: &Registry, repo: &str, prefix: &str) -> Vec<String> {
    let got = Cmd::program("curl")
        .arg("-sf")
        .arg(format!("{}/tags/list", base_url(registry, repo)))
        .run()
        .ok();
    let json: serde_json::Value = serde_json::from_str(&got.stdout).unwrap();
    let tags = json["tags"].as_array().unwrap().iter();
    let tags = tags
        .filter_map(|t| t.as_str())
        .filter(|t| t.starts_with(prefix));
    tags.map(str::to_owned).collect()
}

/// A tag that carries this build's key but names another DU is refused when what it names
/// can be checked: the app layer of another app under this DU's config (the config lies
/// about its diff_ids), a badger layer replaced. A miss with a warning, the right DU built.
#[test]
fn a_cache_entry_whose_layers_are_not_its_config_or_badgers_is_a_miss() {
    let lab = lab();
    let registry = Registry::start(Mode::Plain);
    let cache = format!("docker://{}/cache", registry.host());
    let digest = lab.build(&lab.store, &lab.source, &[]).ok().last_line();
    // The other app's DU first, so that its blobs are in the cache repository too.
    lab.build(&lab.store, &lab.other_source, &["--cache-to", &cache])
        .ok();
    let other_tag = tags(&registry, "cache", "cache-").pop().unwrap();
    let other = get_manifest(&registry, "cache", &other_tag);
    lab.build(
        &lab.store,
        &lab.source,
        &["--no-cache", "--cache-to", &cache],
    )
    .ok();
    let ours = (tags(&registry, "cache", "cache-").into_iter())
        .find(|t| t != &other_tag)
        .unwrap();
    let honest = get_manifest(&registry, "cache", &ours);
    assert_ne!(honest["layers"][2], other["layers"][2]);

    let mut lying_config = honest.clone();
    lying_config["layers"][2] = other["layers"][2].clone();
    let mut other_badger_layer = honest.clone();
    other_badger_layer["layers"][1] = honest["layers"][0].clone();
    let cases = [
        (
            "lying config",
            lying_config,
            "does not uncompress to the diff_id its config gives",
        ),
        (
            "badger layer",
            other_badger_layer,
            "its layers are not the badgers' layers and more",
        ),
    ];
    for (index, (case, manifest, says)) in cases.iter().enumerate() {
        put_manifest(&registry, "cache", &ours, manifest);
        let store = lab.fresh_store(&format!("runner-{index}"));
        let run = lab
            .build(&store, &lab.source, &["--cache-from", &cache])
            .ok();
        assert!(run.stderr.contains(says), "{case}: {}", run.text());
        assert!(
            run.stderr
                .contains(&format!("warning: registry cache {cache}: ")),
            "{case}: {}",
            run.text()
        );
        assert!(
            run.stderr.contains("==> BUILDING"),
            "{case}: {}",
            run.text()
        );
        assert_eq!(run.last_line(), digest, "{case}: {}", run.text());
        let ran = Cmd::solum(&store).args(["run", "app"]).run().ok();
        assert!(ran.stdout.contains("built"), "{case}: {}", ran.text());
    }

    // The honest entry is still a hit.
    put_manifest(&registry, "cache", &ours, &honest);
    let store = lab.fresh_store("honest");
    let hit = lab
        .build(&store, &lab.source, &["--cache-from", &cache])
        .ok();
    assert!(hit.stderr.contains("(cache hit)"), "{}", hit.text());
    assert_eq!(hit.last_line(), digest);
}

#[test]
fn run_again_as_tester() {
    support::rerun_as_tester();
}
