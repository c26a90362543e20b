//! Issue 10, hostile images: documents and layers built to exhaust the tool (indexes
//! nested thousands deep, layers that expand a thousandfold, odd PAX headers, files named
//! like whiteouts, names carrying terminal escapes). Each is refused with a clear error
//! (or printed safely), nothing crashes, and the store is left as it was.

mod util;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use util::*;

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// A store holding one small image named `good`.
fn store_with_image(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    busybox_rootfs(&tree);
    let store = dir.join("store");
    solum(&store, &[&"import", &tree, &"--tag", &"good"]).ok();
    store
}

/// Wraps the manifest `name` points at in `depth` indexes, each holding the one below,
/// and names the outermost one `deep` in the layout's `index.json`.
fn nest_in_indexes(layout: &Path, name: &str, depth: usize) {
    let mut index = read_json(&layout.join("index.json"));
    let entries = index["manifests"].as_array().unwrap().clone();
    let mut below = entries
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == name)
        .unwrap()
        .clone();
    below.as_object_mut().unwrap().remove("annotations");
    for _ in 0..depth {
        let bytes = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [below],
        })
        .to_string()
        .into_bytes();
        let digest = format!("sha256:{}", sha256_hex(&bytes));
        std::fs::write(blob(layout, &digest), &bytes).unwrap();
        below = json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest,
            "size": bytes.len(),
        });
    }
    below["annotations"] = json!({ "org.opencontainers.image.ref.name": "deep" });
    index["manifests"].as_array_mut().unwrap().push(below);
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
}

fn assert_too_deep(run: Run, what: &str) {
    let run = run.fails_with(2);
    assert!(
        run.stderr.contains("nests indexes more than 8 deep") && run.stderr.contains("deep"),
        "{what}: {}",
        run.text()
    );
}

/// B05/W05: an index chain 1,500 deep (which used to overflow the stack) is refused by
/// every command that resolves it, from the store and from an `oci:` layout.
#[test]
fn index_nested_1500_deep_is_refused_everywhere() {
    let dir = temp_dir();
    let store = store_with_image(dir.path());
    let layout = dir.join("layout");
    solum(
        &store,
        &[&"push", &"good", &format!("oci:{}:img", layout.display())],
    )
    .ok();
    nest_in_indexes(&layout, "img", 1500);
    nest_in_indexes(&store, "good", 1500);
    let before = snapshot(&store);
    let deep_layout = format!("oci:{}:deep", layout.display());
    let out = format!("oci:{}:out", dir.path().join("out").display());

    assert_too_deep(solum(&store, &[&"inspect", &deep_layout]), "inspect oci:");
    assert_too_deep(
        solum(&store, &[&"push", &deep_layout, &"copy"]),
        "copy oci:",
    );
    assert_too_deep(solum(&store, &[&"inspect", &"deep"]), "inspect store");
    assert_too_deep(solum(&store, &[&"push", &"deep", &out]), "push to oci:");
    assert_too_deep(
        solum(&store, &[&"push", &"deep", &"docker://127.0.0.1:9/x/y:1"]),
        "push to a registry",
    );
    assert_too_deep(solum(&store, &[&"run", &"deep", &"--", &"true"]), "run");
    assert_eq!(snapshot(&store), before, "the store changed");

    // A real multi-level index (two deep) still resolves.
    let layout2 = dir.join("layout2");
    solum(
        &store,
        &[&"push", &"good", &format!("oci:{}:img", layout2.display())],
    )
    .ok();
    nest_in_indexes(&layout2, "img", 2);
    solum(
        &store,
        &[&"inspect", &format!("oci:{}:deep", layout2.display())],
    )
    .ok();
}

trait Join {
    fn join(&self, name: &str) -> PathBuf;
}

impl Join for tempfile::TempDir {
    fn join(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
