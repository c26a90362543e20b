//! Issue 2, bad input: each case gets a clear error (exit 2, naming what was wrong) and
//! leaves the store exactly as it was. Fixtures: hand-made tarballs in testdata/layer
//! (scripts/make-hostile-tars.py) and layouts corrupted by the tests themselves.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use support::*;

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/layer")
        .join(name)
}

/// A store with one image, and an `oci:` layout (to corrupt) holding another image whose
/// blobs the store does not have (a blob the destination has is never read, so a
/// corruption there would go unnoticed, as with skopeo).
fn store_and_layout(dir: &Path) -> (PathBuf, PathBuf) {
    let tree = dir.join("tree");
    busybox_rootfs(&tree);
    let store = dir.join("store");
    import_tree(&store, &tree, "good");
    std::fs::write(tree.join("etc/motd"), "a different image").unwrap();
    let other = dir.join("other-store");
    import_tree(&other, &tree, "other");
    let layout = dir.join("layout");
    Cmd::solum(&other)
        .args(["push", "other"])
        .arg(format!("oci:{}:img", layout.display()))
        .run()
        .ok();
    (store, layout)
}

/// Stores `manifest` as a new blob of `layout` and points the first index entry at it.
fn replace_manifest(layout: &Path, index: &mut Value, manifest: &Value) {
    let bytes = manifest.to_string().into_bytes();
    let digest = format!("sha256:{}", sha256_hex(&bytes));
    std::fs::write(blob(layout, &digest), &bytes).unwrap();
    index["manifests"][0]["digest"] = Value::from(digest);
    index["manifests"][0]["size"] = Value::from(bytes.len());
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
}

/// Copies `oci:LAYOUT:img` into the store as `copy`; asserts exit 2, that stderr says
/// `needle`, and that the store did not change.
fn copy_fails(store: &Path, layout: &Path, needle: &str) {
    let before = snapshot(store);
    let run = Cmd::solum(store)
        .arg("push")
        .arg(format!("oci:{}:img", layout.display()))
        .arg("copy")
        .run();
    let run = run.fails_with(2);
    assert!(
        run.stderr.contains(needle),
        "stderr should mention {needle:?}: {}",
        run.text()
    );
    assert_eq!(snapshot(store), before, "the store changed");
}

#[test]
fn truncated_gzip_tarball_is_refused() {
    let dir = temp_dir();
    let (store, _) = store_and_layout(dir.path());
    let before = snapshot(&store);
    let run = Cmd::solum(&store)
        .arg("import")
        .arg(testdata("truncated.tar.gz"))
        .args(["--tag", "x"])
        .run();
    let run = run.fails_with(2);
    assert!(
        run.stderr.contains("truncated.tar.gz") && run.stderr.to_lowercase().contains("gzip"),
        "{}",
        run.text()
    );
    assert_eq!(snapshot(&store), before);
}

#[test]
fn hostile_tarballs_are_refused_naming_the_entry() {
    let dir = temp_dir();
    let (store, _) = store_and_layout(dir.path());
    let before = snapshot(&store);
    for (fixture, entry) in [
        ("dotdot.tar", "../"),
        ("absolute.tar", "/"),
        ("symlink-escape.tar", "escape"),
        ("hardlink-outside.tar", ""),
    ] {
        let run = Cmd::solum(&store)
            .arg("import")
            .arg(testdata(fixture))
            .args(["--tag", "x"])
            .run()
            .fails_with(2);
        assert!(
            run.stderr.contains("refusing hostile layer entry") && run.stderr.contains(entry),
            "{fixture}: {}",
            run.text()
        );
        assert_eq!(snapshot(&store), before, "{fixture} changed the store");
    }
}

#[test]
fn digest_mismatch_in_index_is_refused() {
    let dir = temp_dir();
    let (store, layout) = store_and_layout(dir.path());
    // index.json names a manifest whose bytes hash to something else.
    let mut index = read_json(&layout.join("index.json"));
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let wrong = format!("sha256:{}", "ab".repeat(32));
    std::fs::copy(blob(&layout, &manifest_digest), blob(&layout, &wrong)).unwrap();
    index["manifests"][0]["digest"] = Value::from(wrong);
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    copy_fails(&store, &layout, "corrupt");
}

#[test]
fn digest_mismatch_in_manifest_is_refused() {
    let dir = temp_dir();
    let (store, layout) = store_and_layout(dir.path());
    // The manifest names a layer digest whose blob holds other bytes.
    let mut index = read_json(&layout.join("index.json"));
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut manifest = read_json(&blob(&layout, &manifest_digest));
    let layer_digest = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let wrong = format!("sha256:{}", "cd".repeat(32));
    std::fs::copy(blob(&layout, &layer_digest), blob(&layout, &wrong)).unwrap();
    manifest["layers"][0]["digest"] = Value::from(wrong.clone());
    replace_manifest(&layout, &mut index, &manifest);
    copy_fails(&store, &layout, &wrong["sha256:".len()..]);
}

#[test]
fn missing_blob_is_refused() {
    let dir = temp_dir();
    let (store, layout) = store_and_layout(dir.path());
    let index = read_json(&layout.join("index.json"));
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest = read_json(&blob(&layout, manifest_digest));
    let layer_digest = manifest["layers"][0]["digest"].as_str().unwrap();
    std::fs::remove_file(blob(&layout, layer_digest)).unwrap();
    copy_fails(&store, &layout, &layer_digest["sha256:".len()..]);
}

#[test]
fn unknown_media_type_is_named() {
    let dir = temp_dir();
    let (store, layout) = store_and_layout(dir.path());
    let mut index = read_json(&layout.join("index.json"));
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut manifest = read_json(&blob(&layout, &manifest_digest));
    manifest["layers"][0]["mediaType"] = Value::from("application/x-solum-unknown");
    replace_manifest(&layout, &mut index, &manifest);
    copy_fails(&store, &layout, "application/x-solum-unknown");
}

#[test]
fn a_folder_that_is_not_a_layout_is_not_used_as_a_store() {
    let dir = temp_dir();
    let folder = dir.path().join("not-a-store");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("notes.txt"), "mine").unwrap();
    let tree = dir.path().join("tree");
    busybox_rootfs(&tree);
    let before = snapshot(&folder);
    let run = Cmd::solum(&folder)
        .arg("import")
        .arg(&tree)
        .args(["--tag", "x"])
        .run()
        .fails_with(2);
    assert!(
        run.stderr.contains("not-a-store") && run.stderr.contains("layout"),
        "{}",
        run.text()
    );
    assert_eq!(snapshot(&folder), before);
    // Reading from it says the same.
    let run = Cmd::solum(&folder).arg("images").run().fails_with(2);
    assert!(run.stderr.contains("layout"), "{}", run.text());
    // And an oci: reference to it too.
    let run = Cmd::solum(&folder)
        .arg("inspect")
        .arg(format!("oci:{}", folder.display()))
        .run()
        .fails_with(2);
    assert!(run.stderr.contains("layout"), "{}", run.text());
}

#[test]
fn hostile_oci_archive_is_refused() {
    let dir = temp_dir();
    let (store, _) = store_and_layout(dir.path());
    // A layout archive with a `../` entry beside its real files.
    let archive_path = dir.path().join("evil.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&archive_path).unwrap());
    let mut header = tar::Header::new_gnu();
    header.set_size(4);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    // set_path refuses `..`; write the raw name as a hostile producer would.
    header.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"../escape.txt");
    header.set_cksum();
    builder.append(&header, &b"evil"[..]).unwrap();
    builder.finish().unwrap();
    drop(builder);
    let before = snapshot(&store);
    let run = Cmd::solum(&store)
        .arg("push")
        .arg(format!("oci-archive:{}", archive_path.display()))
        .arg("evil")
        .run()
        .fails_with(2);
    assert!(run.stderr.contains("../escape.txt"), "{}", run.text());
    assert!(!dir.path().join("escape.txt").exists());
    assert_eq!(snapshot(&store), before);
}

#[test]
fn concurrent_imports_keep_every_name() {
    let dir = temp_dir();
    let tree = dir.path().join("tree");
    busybox_rootfs(&tree);
    let store = dir.path().join("store");
    let children: Vec<_> = (0..8)
        .map(|i| {
            Cmd::solum(&store)
                .args(["-q", "import"])
                .arg(&tree)
                .args(["--tag", &format!("parallel/n{i}")])
                .into_command()
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let images = Cmd::solum(&store).args(["images", "--json"]).run().ok();
    let list: Value = serde_json::from_str(&images.stdout).unwrap();
    let mut names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    let expected: Vec<String> = (0..8).map(|i| format!("parallel/n{i}")).collect();
    assert_eq!(names, expected);
}

#[test]
fn unknown_names_and_bad_references_are_usage_errors() {
    let dir = temp_dir();
    let (store, _) = store_and_layout(dir.path());
    let before = snapshot(&store);
    let run = Cmd::solum(&store)
        .args(["inspect", "nope"])
        .run()
        .fails_with(2);
    assert!(
        run.stderr.contains("nope") && run.stderr.contains("good"),
        "{}",
        run.text()
    );
    Cmd::solum(&store)
        .args(["rmi", "good", "nope"])
        .run()
        .fails_with(2);
    Cmd::solum(&store)
        .args(["push", "good", "bad name!"])
        .run()
        .fails_with(2);
    Cmd::solum(&store)
        .args(["push", "good", "ftp://host/x"])
        .run()
        .fails_with(2);
    Cmd::solum(&store)
        .args(["import", "/nonexistent", "--tag", "x"])
        .run()
        .fails_with(2);
    assert_eq!(
        snapshot(&store),
        before,
        "a failed command changed the store"
    );
    // rmi then gc removes the blobs no name reaches, and the unpacked tree `run` cached.
    Cmd::solum(&store)
        .args(["run", "good", "--", "true"])
        .run()
        .ok();
    assert_eq!(
        std::fs::read_dir(store.join("cache/rootfs"))
            .unwrap()
            .filter(|e| !e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.'))
            .count(),
        1
    );
    Cmd::solum(&store).arg("gc").run().ok();
    assert_eq!(
        std::fs::read_dir(store.join("cache/rootfs"))
            .unwrap()
            .filter(|e| !e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.'))
            .count(),
        1
    );
    Cmd::solum(&store).args(["rmi", "good"]).run().ok();
    Cmd::solum(&store).arg("gc").run().ok();
    let blobs = std::fs::read_dir(store.join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0);
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
