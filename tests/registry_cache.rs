//! Issue 14, item 3: the build cache in a registry, against a real `docker-registry`, with
//! two stores standing for two CI runners. The first builds with `--cache-to`; the second,
//! whose store has the badger but no DU, builds with `--cache-from` and is a hit, and its
//! `--push` to the same registry uploads no blob (every blob is there or mounted from the
//! cache repository; counted by the tool's own upload lines; the DU's attachments, made on
//! each runner, are new). A cache repository whose
//! entry is not this build's DU, whose manifest is broken, or whose blob is missing is a
//! miss with a warning and the build makes the same DU itself. `--cache-mounts` carries a
//! file the build writes into /solum/cache (the shell badger: a download cache needs no
//! pip for the round trip) from one runner to the next. The same as `tester` (rootless).

mod support;

use std::path::{Path, PathBuf};
use support::registry::{Mode, Registry};
use support::*;

/// A build script that "downloads" into /solum/cache when it is empty and says when it
/// found what an earlier build left there.
const BUILD_SCRIPT: &str = "set -eu\n\
    if [ -f /solum/cache/downloads/dl ]; then echo \"restored: $(cat /solum/cache/downloads/dl)\";\n\
    else mkdir -p /solum/cache/downloads; echo fetched-once > /solum/cache/downloads/dl; echo downloaded; fi\n\
    echo built > /app/out.txt";

/// Two runners' stores, each with the busybox base and the shell badger (the same
/// digests: the import is reproducible), and one app source.
struct Runners {
    dir: tempfile::TempDir,
    first: PathBuf,
    second: PathBuf,
    source: PathBuf,
}

/// A store at `store` with the base and the shell badger, its rootfs made beside it.
fn store_with_badger(dir: &Path, store: &Path) {
    let name = store.file_name().unwrap().to_string_lossy();
    let scratch = dir.join(format!("{name}-rootfs"));
    std::fs::create_dir_all(&scratch).unwrap();
    busybox_store(&scratch, store, &["shell"]);
}

fn runners() -> Runners {
    let dir = temp_dir();
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    store_with_badger(dir.path(), &first);
    store_with_badger(dir.path(), &second);
    let source = dir.path().join("src");
    source_with_build_script(&source, BUILD_SCRIPT);
    Runners {
        dir,
        first,
        second,
        source,
    }
}

impl Runners {
    fn build(&self, store: &Path, extra: &[&str]) -> Run {
        Cmd::solum(store)
            .args(["build", "--badger", "badgers/shell", "--name", "app"])
            .arg("--source")
            .arg(&self.source)
            .args(["--run-cmd", "cat out.txt", "--test-cmd", "test -f out.txt"])
            .args(extra)
            .run()
    }

    /// A third store, empty but for the base and the badger.
    fn fresh_store(&self, name: &str) -> PathBuf {
        let store = self.dir.path().join(name);
        store_with_badger(self.dir.path(), &store);
        store
    }
}

fn cache_ref(registry: &Registry, repo: &str) -> String {
    format!("docker://{}/{repo}", registry.host())
}

/// The tags of `repo` that start with `prefix`, as skopeo lists them.
fn tags(registry: &Registry, repo: &str, prefix: &str) -> Vec<String> {
    let listed = Cmd::program("skopeo")
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{}/{repo}", registry.host()))
        .run()
        .ok();
    let json: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    json["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .filter(|t| t.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// The file of a blob in the registry's storage.
fn stored_blob(registry: &Registry, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    registry
        .dir
        .path()
        .join("storage/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

/// The uploads of the DU's own blobs (config and layers) a build reported after it started
/// pushing (`Copying blob` is printed when an upload starts; a blob the registry has or
/// mounts prints nothing). The DU's attachments (SBOMs, provenance), made on this runner,
/// are new to the registry and are not counted.
fn du_uploads_while_pushing(run: &Run, store: &Path, name: &str) -> usize {
    let (_, pushing) = run
        .stderr
        .split_once("==> PUSHING")
        .unwrap_or_else(|| panic!("no push: {}", run.text()));
    let inspect = Cmd::solum(store).args(["inspect", name]).run().ok();
    let manifest: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    let manifest = &manifest["manifest"];
    let blobs = std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().unwrap());
    blobs
        .map(|blob| {
            let hex = blob["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:");
            pushing
                .matches(&format!("Copying blob sha256:{}", &hex[..12]))
                .count()
        })
        .sum()
}

#[test]
fn a_second_runner_hits_the_cache_and_its_push_uploads_nothing() {
    support::registry::require("skopeo", "skopeo");
    let registry = Registry::start(Mode::Plain);
    let runners = runners();
    let cache = cache_ref(&registry, "ci/cache");

    let built = runners.build(&runners.first, &["--cache-to", &cache]).ok();
    let digest = built.last_line();
    assert!(built.stderr.contains("downloaded"), "{}", built.text());
    assert!(
        built.stderr.contains(&format!("Cached app in {cache}")),
        "{}",
        built.text()
    );
    assert_eq!(tags(&registry, "ci/cache", "cache-").len(), 1);

    // The second runner: no DU in its store, the same inputs.
    let destination = format!("docker://{}/apps/app:1", registry.host());
    let hit = runners
        .build(
            &runners.second,
            &["--cache-from", &cache, "--push", &destination],
        )
        .ok();
    assert_eq!(hit.last_line(), digest, "{}", hit.text());
    assert!(
        hit.stderr.contains(&format!("(cached in {cache}, ")),
        "{}",
        hit.text()
    );
    assert!(hit.stderr.contains("(cache hit)"), "{}", hit.text());
    // Nothing was built: the build step's output never appeared.
    assert!(!hit.stderr.contains("==> BUILDING"), "{}", hit.text());
    assert_eq!(
        du_uploads_while_pushing(&hit, &runners.second, "app"),
        0,
        "{}",
        hit.text()
    );
    assert!(registry.has_manifest("apps/app", "1", None));

    // The DU is the second runner's now: a local hit, the run works.
    let again = runners.build(&runners.second, &[]).ok();
    assert_eq!(again.last_line(), digest);
    let ran = Cmd::solum(&runners.second).args(["run", "app"]).run().ok();
    assert!(ran.stdout.contains("built"), "{}", ran.text());
}

/// Spoils the cache entry of a registry, given the entry's tag.
type Spoil<'a> = dyn Fn(&Registry, &str) + 'a;

/// Each way a cache entry can be unusable, in a registry of its own (blobs are shared by
/// every repository of a registry): a miss with a warning, and the same DU built here.
#[test]
fn an_unusable_cache_entry_is_a_miss_with_a_warning() {
    support::registry::require("skopeo", "skopeo");
    let runners = runners();
    let digest = runners.build(&runners.first, &[]).ok().last_line();
    let app_layer = layer_digests(&runners.first, "app").pop().unwrap();
    // Each case, how it spoils the entry, and what the warning says.
    let spoil: [(&str, &Spoil, &str); 5] = [
        (
            "not ours",
            &|registry, tag| {
                // Another image under the entry's tag.
                Cmd::solum(&runners.first)
                    .args(["push", "base/busybox"])
                    .arg(format!("{}:{tag}", cache_ref(registry, "cache")))
                    .run()
                    .ok();
            },
            "is not a cache entry of this build: its build key annotation",
        ),
        (
            "broken manifest",
            &|registry, tag| {
                let link = registry.dir.path().join(format!(
                "storage/docker/registry/v2/repositories/cache/_manifests/tags/{tag}/current/link"
            ));
                let manifest = std::fs::read_to_string(link).unwrap();
                std::fs::write(
                    stored_blob(registry, manifest.trim()),
                    b"{\"schemaVersion\": 2, ",
                )
                .unwrap();
            },
            "GET manifest cache-",
        ),
        (
            "missing blob",
            &|registry, _| {
                std::fs::remove_file(stored_blob(registry, &app_layer)).unwrap();
            },
            "BLOB_UNKNOWN",
        ),
        (
            "wrong bytes",
            &|registry, _| {
                // The same size, other content: only the digest tells.
                let blob = stored_blob(registry, &app_layer);
                let size = std::fs::metadata(&blob).unwrap().len() as usize;
                std::fs::write(&blob, vec![b'x'; size]).unwrap();
            },
            "is corrupt: its content hashes to",
        ),
        (
            "tag gone",
            &|registry, tag| {
                let tag_dir = registry.dir.path().join(format!(
                    "storage/docker/registry/v2/repositories/cache/_manifests/tags/{tag}"
                ));
                std::fs::remove_dir_all(tag_dir).unwrap();
            },
            "no entry for this build in",
        ),
    ];
    for (index, (case, spoil, says)) in spoil.iter().enumerate() {
        let registry = Registry::start(Mode::Plain);
        let cache = cache_ref(&registry, "cache");
        // A local hit still fills the cache repository.
        let stored = runners.build(&runners.first, &["--cache-to", &cache]).ok();
        assert!(stored.stderr.contains("Cached app in"), "{}", stored.text());
        let tag = tags(&registry, "cache", "cache-").pop().unwrap();
        spoil(&registry, &tag);

        let store = runners.fresh_store(&format!("runner-{index}"));
        let run = runners.build(&store, &["--cache-from", &cache]).ok();
        assert_eq!(run.last_line(), digest, "{case}: {}", run.text());
        assert!(
            run.stderr.contains("==> BUILDING"),
            "{case}: {}",
            run.text()
        );
        let warned = run
            .stderr
            .contains(&format!("warning: registry cache {cache}: "));
        assert_eq!(warned, *case != "tag gone", "{case}: {}", run.text());
        assert!(run.stderr.contains(says), "{case}: {}", run.text());
    }
}

#[test]
fn cache_mounts_carry_the_download_cache_to_the_next_runner() {
    let registry = Registry::start(Mode::Plain);
    let runners = runners();
    let cache = cache_ref(&registry, "cache");
    let first = runners
        .build(&runners.first, &["--cache-to", &cache, "--cache-mounts"])
        .ok();
    assert!(first.stderr.contains("downloaded"), "{}", first.text());
    assert!(
        first
            .stderr
            .contains(&format!("Cached /solum/cache in {cache}")),
        "{}",
        first.text()
    );

    // --no-cache: the DU is built, so that the build step shows what it found.
    let second = runners
        .build(
            &runners.second,
            &["--cache-from", &cache, "--cache-mounts", "--no-cache"],
        )
        .ok();
    assert!(
        second.stderr.contains("restored: fetched-once"),
        "{}",
        second.text()
    );
    assert!(
        second
            .stderr
            .contains(&format!("Restored /solum/cache from {cache}")),
        "{}",
        second.text()
    );
    assert_eq!(second.last_line(), first.last_line());
    let restored = runners.second.join("cache/apps/app/downloads/dl");
    assert_eq!(std::fs::read_to_string(restored).unwrap(), "fetched-once\n");

    // A runner's own downloads are never overwritten; without --cache-mounts nothing is
    // restored.
    let third = runners
        .build(
            &runners.second,
            &["--cache-from", &cache, "--cache-mounts", "--no-cache"],
        )
        .ok();
    assert!(third.stderr.contains("not restored"), "{}", third.text());
    let store = runners.fresh_store("plain");
    let plain = runners
        .build(&store, &["--cache-from", &cache, "--no-cache"])
        .ok();
    assert!(plain.stderr.contains("downloaded"), "{}", plain.text());

    // Another image under the download cache's tag is not restored.
    let tag = tags(&registry, "cache", "mounts-").pop().unwrap();
    Cmd::solum(&runners.first)
        .args(["push", "base/busybox"])
        .arg(format!("{cache}:{tag}"))
        .run()
        .ok();
    let store = runners.fresh_store("spoiled");
    let spoiled = runners
        .build(
            &store,
            &["--cache-from", &cache, "--cache-mounts", "--no-cache"],
        )
        .ok();
    assert!(
        spoiled.stderr.contains("is not this app's download cache"),
        "{}",
        spoiled.text()
    );
    assert!(spoiled.stderr.contains("downloaded"), "{}", spoiled.text());
    assert!(!store.join("cache/apps/app/bin").exists());
}

/// The server's builds use the same cache: a workflow on one server fills it, the same
/// app's workflow on another server (its own store, no DU) is a hit.
#[test]
fn serve_builds_read_and_fill_the_registry_cache() {
    use support::serve::{app_text, data_with_base, Server};
    let registry = Registry::start(Mode::Plain);
    let dir = temp_dir();
    let source = dir.path().join("source");
    source_with_build_script(&source, "echo built > /app/built");
    let cache = cache_ref(&registry, "serve/cache");
    let text = app_text(
        "cached",
        "badgers/shell",
        &format!("  repository: {}", source.display()),
    );
    let allow = dir.path().to_str().unwrap();
    let mut logs = Vec::new();
    for (name, flag) in [("one", "--cache-to"), ("two", "--cache-from")] {
        let parent = dir.path().join(name);
        std::fs::create_dir_all(&parent).unwrap();
        let data = data_with_base(&parent, true);
        let server = Server::start(&data, &["--allow-local-source", allow, flag, &cache]);
        let (status, answer) = server.call("POST", "/v1/apps", text.as_bytes());
        assert_eq!(status, 201, "{answer}");
        let (id, record) = server.run_workflow("cached", r#"["build"]"#);
        assert_eq!(record["state"], "READY", "{record}\n{}", server.log());
        let (_, log) = server.call("GET", &format!("/v1/apps/cached/workflows/{id}/logs"), b"");
        logs.push(log.to_string());
    }
    assert!(logs[0].contains(&format!("in {cache}")), "{}", logs[0]);
    assert_eq!(tags(&registry, "serve/cache", "cache-").len(), 1);
    assert!(
        logs[1].contains(&format!("cached in {cache}")),
        "{}",
        logs[1]
    );
    // Taken by a worker (BUILDING from the pickup), but no build step ran.
    assert!(!logs[1].contains("==> BUILDING cached on"), "{}", logs[1]);
}

/// A badger on busybox whose dependency step "installs" each line of deps.txt.
fn deps_badger(dir: &Path) -> PathBuf {
    let badger = dir.join("depsbadger");
    std::fs::create_dir_all(&badger).unwrap();
    let files = [
        (
            "badger.yaml",
            "name: depsbadger\nversion: \"1\"\nfrom: base/busybox\nbuild: /solum/bin/build.sh\n\
             dependencies:\n  inputs: [deps.txt]\n",
        ),
        (
            "deps.sh",
            "#!/bin/sh\nset -eu\nmkdir -p /opt/deps\ncp /app/deps.txt /opt/deps/list\necho installing-deps\n",
        ),
        (
            "build.sh",
            "#!/bin/sh\nset -eu\n\
             if [ \"${SOLUM_DEPENDENCIES_DONE:-}\" != 1 ]; then /solum/bin/deps.sh; fi\n\
             cat /app/main.sh > /app/built\n",
        ),
    ];
    for (name, text) in files {
        std::fs::write(badger.join(name), text).unwrap();
    }
    badger
}

/// A code change on another runner: the DU is a miss, the dependency layer a hit in the
/// registry cache (the step does not run), and the DU holds the same layer.
#[test]
fn a_dependency_layer_is_reused_from_the_registry_cache() {
    let registry = Registry::start(Mode::Plain);
    let dir = temp_dir();
    let cache = cache_ref(&registry, "deps/cache");
    let badger = deps_badger(dir.path());
    let mut layers = Vec::new();
    for (name, code, flag) in [("one", "v1", "--cache-to"), ("two", "v2", "--cache-from")] {
        let store = dir.path().join(name);
        store_with_badger(dir.path(), &store);
        Cmd::solum(&store)
            .args(["badger", "build"])
            .arg(&badger)
            .run()
            .ok();
        let source = dir.path().join(format!("src-{name}"));
        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join("deps.txt"), "alpha\nbeta\n").unwrap();
        std::fs::write(source.join("main.sh"), format!("echo {code}\n")).unwrap();
        let run = Cmd::solum(&store)
            .args(["build", "--badger", "depsbadger", "--name", "depsapp"])
            .arg("--source")
            .arg(&source)
            .args([flag, &cache])
            .run()
            .ok();
        let installed = run.stderr.contains("installing-deps");
        assert_eq!(installed, name == "one", "{name}: {}", run.text());
        let said = if name == "one" {
            "layer cached in"
        } else {
            "layer found in"
        };
        assert!(run.stderr.contains(said), "{name}: {}", run.text());
        layers.push(layer_digests(&store, "depsapp"));
    }
    assert_eq!(tags(&registry, "deps/cache", "deps-").len(), 1);
    let (one, two) = (&layers[0], &layers[1]);
    assert_eq!(one.len(), two.len());
    // The same layers but the app's own.
    assert_eq!(one[..one.len() - 1], two[..two.len() - 1]);
    assert_ne!(one.last(), two.last());

    // The entry's record rewritten to name another diff_id (its layer unchanged): a third
    // runner's step runs again, with a warning, rather than build on a config that lies.
    let tag = tags(&registry, "deps/cache", "deps-").remove(0);
    let mut manifest = registry.oci_manifest("deps/cache", &tag);
    let field = "org.solum.dependencies.record";
    let mut record: serde_json::Value =
        serde_json::from_str(manifest["annotations"][field].as_str().unwrap()).unwrap();
    record["diff_id"] = format!("sha256:{}", "0".repeat(64)).into();
    manifest["annotations"][field] = record.to_string().into();
    registry.put_oci_manifest("deps/cache", &tag, &manifest);
    let store = dir.path().join("three");
    store_with_badger(dir.path(), &store);
    Cmd::solum(&store)
        .args(["badger", "build"])
        .arg(&badger)
        .run()
        .ok();
    let run = Cmd::solum(&store)
        .args(["build", "--badger", "depsbadger", "--name", "depsapp"])
        .arg("--source")
        .arg(dir.path().join("src-two"))
        .args(["--cache-from", &cache])
        .run()
        .ok();
    assert!(run.stderr.contains("installing-deps"), "{}", run.text());
    assert!(run.stderr.contains("diff_id"), "{}", run.text());
    assert_eq!(layer_digests(&store, "depsapp"), *two);
}

#[test]
fn a_cache_repository_with_a_tag_is_bad_input() {
    let dir = temp_dir();
    let run = Cmd::solum(&dir.path().join("store"))
        .args(["build", "--badger", "badgers/shell", "--source", "."])
        .args(["--cache-from", "docker://127.0.0.1:1/cache:latest"])
        .run()
        .fails_with(2);
    assert!(run.stderr.contains("no tag or digest"), "{}", run.text());
}

#[test]
fn run_again_as_tester() {
    support::rerun_as_tester();
}
