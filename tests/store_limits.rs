//! Issue 10, bounds of the store. W20: `gc` is linear in the layers of the store's images
//! (10,000 layers took 40 s of CPU), a copy of an image with many layers holds no
//! descriptor per layer (20,000 layers failed with "Too many open files"), and images are
//! bounded to 1000 layers. W18: `index.json`, manifests and configs are bounded in size
//! before they are read whole.

mod support;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

/// The store's bound on layers per image (`store::image::MAX_LAYERS`).
const MAX_LAYERS: usize = 1000;

fn put(layout: &Path, bytes: &[u8]) -> String {
    let hex = sha256_hex(bytes);
    std::fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
    format!("sha256:{hex}")
}

/// A plain tar holding one file, `layers/N`, whose content is `N`.
fn one_file_tar(n: usize) -> Vec<u8> {
    let content = n.to_string();
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, format!("layers/{n}"), content.as_bytes())
        .unwrap();
    builder.into_inner().unwrap()
}

/// An OCI layout at `path` holding one image, named `img`, of `count` one-file layers
/// (uncompressed tars, so each diff_id is its digest).
fn layout_with_layers(path: &Path, count: usize) -> PathBuf {
    layout_of(path, count, one_file_tar)
}

/// Like `layout_with_layers`, with each layer's bytes made by `layer`.
fn layout_of(path: &Path, count: usize, layer: fn(usize) -> Vec<u8>) -> PathBuf {
    std::fs::create_dir_all(path.join("blobs/sha256")).unwrap();
    std::fs::write(path.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for n in 0..count {
        let bytes = layer(n);
        let digest = put(path, &bytes);
        layers.push(json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": digest,
            "size": bytes.len(),
        }));
        diff_ids.push(digest);
    }
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string();
    let config_digest = put(path, config.as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": layers,
    })
    .to_string();
    let manifest_digest = put(path, manifest.as_bytes());
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "img"},
        }],
    });
    std::fs::write(path.join("index.json"), index.to_string()).unwrap();
    path.to_path_buf()
}

/// `solum-build --store STORE ARGS…` with at most `files` open descriptors.
fn solum_with_fd_limit(store: &Path, files: u32, args: &[&str]) -> Run {
    Cmd::program("sh")
        .arg("-c")
        .arg(format!("ulimit -n {files} && exec \"$0\" \"$@\""))
        .arg(bin())
        .arg("--store")
        .arg(store)
        .args(args)
        .run()
}

#[test]
fn an_image_of_the_most_layers_copies_with_few_descriptors_and_gc_keeps_it() {
    let dir = temp_dir();
    let layout = layout_with_layers(&dir.path().join("layout"), MAX_LAYERS);
    let store = dir.path().join("store");
    // 64 descriptors for 1000 layers: one per staged blob would not fit.
    let source = format!("oci:{}:img", layout.display());
    solum_with_fd_limit(&store, 64, &["push", &source, "many"]).ok();
    Cmd::solum(&store).args(["inspect", "many"]).run().ok();
    let start = Instant::now();
    Cmd::solum(&store).arg("gc").run().ok();
    assert!(start.elapsed() < Duration::from_secs(20));
    let blobs = std::fs::read_dir(store.join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(
        blobs,
        MAX_LAYERS + 2,
        "gc must keep every blob of a named image"
    );
    // The image runs: every layer is unpacked and checked against its diff_id.
    let run = Cmd::solum(&store)
        .args(["unpack", "many"])
        .arg(dir.path().join("rootfs"))
        .run()
        .ok();
    assert!(run.code == 0);
    let unpacked = std::fs::read_dir(dir.path().join("rootfs/layers"))
        .unwrap()
        .count();
    assert_eq!(unpacked, MAX_LAYERS);
}

#[test]
fn an_image_of_more_layers_than_the_bound_is_refused_and_the_store_unchanged() {
    let dir = temp_dir();
    let layout = layout_with_layers(&dir.path().join("layout"), MAX_LAYERS + 1);
    let store = dir.path().join("store");
    let tree = dir.path().join("tree");
    busybox_rootfs(&tree);
    import_tree(&store, &tree, "good");
    let before = snapshot(&store);
    let run = Cmd::solum(&store)
        .arg("push")
        .arg(format!("oci:{}:img", layout.display()))
        .arg("deep")
        .run()
        .fails_with(2);
    assert!(
        run.stderr.contains("1001 layers") && run.stderr.contains("at most 1000"),
        "{}",
        run.text()
    );
    assert_eq!(snapshot(&store), before);
}

#[test]
fn gc_is_linear_in_the_layers_of_the_store() {
    // A store already holding a 10,000-layer image (written by hand: the tool itself no
    // longer makes or copies one), and an imported one. gc must keep all of it and take
    // seconds, not minutes. gc never reads layers, so tiny blobs stand in for them.
    let dir = temp_dir();
    let store = layout_of(&dir.path().join("store"), 10_000, |n| {
        n.to_string().into_bytes()
    });
    let tree = dir.path().join("tree");
    busybox_rootfs(&tree);
    import_tree(&store, &tree, "good");
    let before = std::fs::read_dir(store.join("blobs/sha256"))
        .unwrap()
        .count();
    let start = Instant::now();
    Cmd::solum(&store).arg("gc").run().ok();
    let took = start.elapsed();
    println!("gc of 10,000 layers took {took:?}");
    assert!(took < Duration::from_secs(15), "gc took {took:?}");
    let after = std::fs::read_dir(store.join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(after, before, "gc removed blobs of a named image");
}

#[test]
fn an_oversized_index_json_is_refused_before_it_is_read() {
    let dir = temp_dir();
    let layout = layout_with_layers(&dir.path().join("layout"), 1);
    // A valid index padded to 17 MiB with whitespace.
    let mut index = std::fs::read(layout.join("index.json")).unwrap();
    index.resize(17 << 20, b' ');
    std::fs::write(layout.join("index.json"), &index).unwrap();
    let store = dir.path().join("store");
    let before = snapshot(&store);
    let run = Cmd::solum(&store)
        .arg("push")
        .arg(format!("oci:{}:img", layout.display()))
        .arg("x")
        .run()
        .fails_with(2);
    assert!(
        run.stderr.contains("index.json") && run.stderr.contains("larger than 16777216 bytes"),
        "{}",
        run.text()
    );
    assert_eq!(snapshot(&store), before);
}

#[test]
fn an_oversized_manifest_is_refused_before_it_is_read() {
    let dir = temp_dir();
    let layout = layout_with_layers(&dir.path().join("layout"), 1);
    let mut index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let path = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let mut manifest = std::fs::read(&path).unwrap();
    manifest.resize(5 << 20, b' ');
    let digest = put(&layout, &manifest);
    index["manifests"][0]["digest"] = Value::from(digest.clone());
    index["manifests"][0]["size"] = Value::from(manifest.len());
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    let store = dir.path().join("store");
    let run = Cmd::solum(&store)
        .arg("push")
        .arg(format!("oci:{}:img", layout.display()))
        .arg("x")
        .run()
        .fails_with(2);
    assert!(
        run.stderr.contains(&digest) && run.stderr.contains("larger than 4194304 bytes"),
        "{}",
        run.text()
    );
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
