//! Issue 10, the rootfs cache (`STORE/cache/rootfs/<chain id>`): B08, a tree is cached
//! under a chain id only once every layer has been checked against the config's diff_id,
//! so an image that lies about its diff_ids cannot fill the tree another image runs on;
//! B07, the cache (setuid files and device nodes of any image) is private to its user.

mod support;

use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use support::*;

/// Writes `value` as a blob of `layout`; returns its digest and size.
fn put_json(layout: &Path, value: &Value) -> (String, usize) {
    let bytes = value.to_string().into_bytes();
    let digest = format!("sha256:{}", sha256_hex(&bytes));
    std::fs::write(blob(layout, &digest), &bytes).unwrap();
    (digest, bytes.len())
}

/// The config of the image `index.json` names first.
fn first_config(layout: &Path) -> Value {
    let index = read_json(&layout.join("index.json"));
    let manifest = read_json(&blob(
        layout,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ));
    read_json(&blob(
        layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
}

/// Replaces the config's diff_ids of the first image of `layout` (new config, new
/// manifest, index pointed at it): the layers stay what they are.
fn set_diff_ids(layout: &Path, diff_ids: Value) {
    let mut index = read_json(&layout.join("index.json"));
    let mut manifest = read_json(&blob(
        layout,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let mut config = read_json(&blob(
        layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    config["rootfs"]["diff_ids"] = diff_ids;
    let (digest, size) = put_json(layout, &config);
    manifest["config"]["digest"] = Value::from(digest);
    manifest["config"]["size"] = Value::from(size);
    let (digest, size) = put_json(layout, &manifest);
    index["manifests"][0]["digest"] = Value::from(digest);
    index["manifests"][0]["size"] = Value::from(size);
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
}

/// A busybox tree whose `/etc/motd` says `motd`, imported into its own store at `dir/NAME`
/// and written to the layout `dir/NAME-layout` as `img`. Returns the layout.
fn busybox_layout(dir: &Path, name: &str, motd: &str) -> PathBuf {
    let tree = dir.join(format!("{name}-tree"));
    busybox_rootfs(&tree);
    std::fs::write(tree.join("etc/motd"), motd).unwrap();
    let store = dir.join(name);
    Cmd::solum(&store)
        .arg("import")
        .arg(&tree)
        .arg("--tag")
        .arg(name)
        .run()
        .ok();
    let layout = dir.join(format!("{name}-layout"));
    Cmd::solum(&store)
        .arg("push")
        .arg(name)
        .arg(format!("oci:{}:img", layout.display()))
        .run()
        .ok();
    layout
}

fn cached_trees(store: &Path) -> Vec<String> {
    match std::fs::read_dir(store.join("cache/rootfs")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The files of the store's layout (its cache aside).
fn layout_files(store: &Path) -> std::collections::BTreeMap<PathBuf, String> {
    snapshot(store)
        .into_iter()
        .filter(|(path, _)| !path.starts_with("cache"))
        .collect()
}

/// The cached trees (not the cache's own dot files).
fn real_trees(store: &Path) -> Vec<String> {
    cached_trees(store)
        .into_iter()
        .filter(|t| !t.starts_with('.'))
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn an_image_lying_about_its_diff_id_cannot_poison_the_cache() {
    let dir = temp_dir();
    let genuine = busybox_layout(dir.path(), "genuine", "genuine\n");
    let genuine_diff_id = first_config(&genuine)["rootfs"]["diff_ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    // The attacker's image: its own layer, and a config that claims the genuine one's
    // diff_id, so that its chain id is the genuine image's.
    let evil = busybox_layout(dir.path(), "evil", "evil\n");
    let evil_diff_id = first_config(&evil)["rootfs"]["diff_ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    let evil_index = read_json(&evil.join("index.json"));
    let evil_manifest = read_json(&blob(
        &evil,
        evil_index["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let evil_layer = evil_manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    set_diff_ids(&evil, Value::from(vec![genuine_diff_id.clone()]));

    let store = dir.path().join("store");
    Cmd::solum(&store)
        .arg("push")
        .arg(format!("oci:{}:img", evil.display()))
        .arg("evil")
        .run()
        .ok();
    let before = layout_files(&store);
    let run = Cmd::solum(&store)
        .args(["run", "evil", "--", "cat", "/etc/motd"])
        .run()
        .fails_with(2);
    for needle in [&evil_layer, &genuine_diff_id, &evil_diff_id] {
        assert!(
            run.stderr.contains(needle.as_str()),
            "{needle}: {}",
            run.text()
        );
    }
    assert!(!run.stdout.contains("evil"), "{}", run.text());
    assert_eq!(
        real_trees(&store),
        Vec::<String>::new(),
        "the cache was filled"
    );
    assert_eq!(layout_files(&store), before, "the store changed");
    // `unpack` checks the same, and leaves no folder behind.
    let out = dir.path().join("out");
    Cmd::solum(&store)
        .args(["unpack", "evil"])
        .arg(&out)
        .run()
        .fails_with(2);
    assert!(!out.exists());

    // The genuine image, arriving later, runs on its own tree.
    Cmd::solum(&store)
        .arg("push")
        .arg(format!("oci:{}:img", genuine.display()))
        .arg("busybox")
        .run()
        .ok();
    let run = Cmd::solum(&store)
        .args(["run", "busybox", "--", "cat", "/etc/motd"])
        .run()
        .ok();
    assert_eq!(run.stdout, "genuine\n", "{}", run.text());
    assert_eq!(real_trees(&store).len(), 1);
}

#[test]
fn trees_cached_before_diff_ids_were_checked_are_not_trusted() {
    let dir = temp_dir();
    let layout = busybox_layout(dir.path(), "genuine", "genuine\n");
    let store = dir.path().join("store");
    Cmd::solum(&store)
        .arg("push")
        .arg(format!("oci:{}:img", layout.display()))
        .arg("busybox")
        .run()
        .ok();
    Cmd::solum(&store)
        .args(["run", "busybox", "--", "true"])
        .run()
        .ok();
    // A cache as an older version left it: no marker, and a tree poisoned under the
    // genuine chain id.
    let trees = cached_trees(&store);
    let real: Vec<_> = trees.iter().filter(|t| !t.starts_with('.')).collect();
    assert_eq!(real.len(), 1);
    let tree = store.join("cache/rootfs").join(real[0]);
    std::fs::write(tree.join("etc/motd"), "evil\n").unwrap();
    std::fs::remove_file(store.join("cache/rootfs/.diff-ids-checked")).unwrap();
    let run = Cmd::solum(&store)
        .args(["run", "busybox", "--", "cat", "/etc/motd"])
        .run()
        .ok();
    assert_eq!(run.stdout, "genuine\n", "{}", run.text());
    assert!(store.join("cache/rootfs/.diff-ids-checked").exists());
}

#[test]
fn malformed_diff_ids_are_refused_not_mapped_to_a_shared_tree() {
    let dir = temp_dir();
    let layout = busybox_layout(dir.path(), "base", "base\n");
    let store = dir.path().join("store");
    for (case, diff_ids, needle) in [
        (
            "bad-digest",
            serde_json::json!(["not-a-digest"]),
            "not a sha256 digest",
        ),
        (
            "bad-hex",
            serde_json::json!(["sha256:zz"]),
            "not a sha256 digest",
        ),
        ("none", serde_json::json!([]), "0 diff_ids for 1 layers"),
    ] {
        let copy = dir.path().join(case);
        Cmd::program("cp")
            .arg("-a")
            .arg(&layout)
            .arg(&copy)
            .run()
            .ok();
        set_diff_ids(&copy, diff_ids);
        Cmd::solum(&store)
            .arg("push")
            .arg(format!("oci:{}:img", copy.display()))
            .arg(case)
            .run()
            .ok();
        let run = Cmd::solum(&store)
            .arg("run")
            .arg(case)
            .args(["--", "true"])
            .run()
            .fails_with(2);
        assert!(run.stderr.contains(needle), "{case}: {}", run.text());
        assert_eq!(real_trees(&store), Vec::<String>::new(), "{case}");
    }
}

#[test]
fn the_cache_of_setuid_files_and_devices_is_private() {
    let dir = temp_dir();
    let tree = dir.path().join("tree");
    every_kind_rootfs(&tree);
    let store = dir.path().join("store");
    import_tree(&store, &tree, "every");
    // A store made before caches were private: open folders, which must be tightened.
    std::fs::create_dir_all(store.join("cache/rootfs")).unwrap();
    for folder in ["cache", "cache/rootfs"] {
        std::fs::set_permissions(store.join(folder), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    Cmd::solum(&store)
        .args(["run", "every", "--", "true"])
        .run()
        .ok();
    assert_eq!(mode(&store.join("cache")), 0o700);
    assert_eq!(mode(&store.join("cache/rootfs")), 0o700);
    let trees = real_trees(&store);
    assert_eq!(trees.len(), 1);
    let root = store.join("cache/rootfs").join(&trees[0]);
    let setuid = root.join("data/setuid");
    assert_eq!(
        mode(&setuid) & 0o4000,
        0o4000,
        "the tree keeps the image's modes"
    );
    if is_root() && std::env::var_os(rootless::NESTED).is_none() {
        // Another user cannot reach the tree, its setuid file or its device node.
        for target in [setuid.clone(), root.join("dev/null")] {
            let probe = Cmd::program("runuser")
                .args(["-u", "tester", "--", "test", "-e"])
                .arg(&target)
                .run();
            assert_ne!(probe.code, 0, "tester reached {}", target.display());
        }
        let listing = Cmd::program("runuser")
            .args(["-u", "tester", "--", "ls"])
            .arg(store.join("cache"))
            .run();
        assert_ne!(
            listing.code,
            0,
            "tester listed the cache: {}",
            listing.text()
        );
    }
}

#[test]
fn a_symlinked_cache_folder_is_refused_and_its_target_untouched() {
    let dir = temp_dir();
    let layout = busybox_layout(dir.path(), "base", "base\n");
    let store = dir.path().join("store");
    Cmd::solum(&store)
        .arg("push")
        .arg(format!("oci:{}:img", layout.display()))
        .arg("base")
        .run()
        .ok();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, store.join("cache")).unwrap();
    let run = Cmd::solum(&store)
        .args(["run", "base", "--", "true"])
        .run()
        .fails_with(1);
    assert!(run.stderr.contains("symlink"), "{}", run.text());
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    assert_eq!(mode(&elsewhere), 0o755);
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
