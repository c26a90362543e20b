//! What the build-inputs tests share: a store to build in, a search of every blob of a
//! store for a value that must not be there, a secret file and a certificate to give.

use super::cmd::Cmd;
use super::fixtures::{busybox_rootfs, busybox_store, import_tree, repo_dir};
use std::io::Read;
use std::path::{Path, PathBuf};

/// A store with `base/busybox` and the shipped `badgers/shell`.
pub fn store_with_shell(dir: &Path) -> PathBuf {
    let store = dir.join("store");
    busybox_store(dir, &store, &["shell"]);
    store
}

/// A store whose `badgers/shell` is built on a `base/busybox` that `change` made its own
/// (a system CA bundle, a hostile `/run`) before it was imported.
pub fn store_with_shell_on(dir: &Path, change: impl FnOnce(&Path)) -> PathBuf {
    let store = dir.join("store");
    let rootfs = dir.join("busybox");
    busybox_rootfs(&rootfs);
    change(&rootfs);
    import_tree(&store, &rootfs, "base/busybox");
    Cmd::solum(&store)
        .args(["badger", "build"])
        .arg(repo_dir().join("badgers/shell"))
        .run()
        .ok();
    store
}

/// Every blob of the store, gzip ones unpacked: the layers, configs and manifests (with
/// the DU annotation and its Heat snippet).
pub fn every_blob(store: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut blobs = Vec::new();
    for entry in walkdir::WalkDir::new(store.join("blobs")) {
        let entry = entry.unwrap();
        if !entry.file_type().is_file() {
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut plain = Vec::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_end(&mut plain)
                .unwrap();
            plain
        } else {
            bytes
        };
        blobs.push((entry.path().to_path_buf(), bytes));
    }
    assert!(!blobs.is_empty());
    blobs
}

/// Asserts no blob of the store holds `value`.
pub fn assert_in_no_blob(store: &Path, value: &str) {
    for (path, bytes) in every_blob(store) {
        assert!(
            !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
            "{value:?} is in {}",
            path.display()
        );
    }
}

/// A secret file `dir/token.txt` holding `value` and a newline, and its `--secret` flag
/// value (`id=token`).
pub fn secret_flag(dir: &Path, value: &str) -> String {
    let path = dir.join("token.txt");
    std::fs::write(&path, format!("{value}\n")).unwrap();
    format!("id=token,src={}", path.display())
}

/// A self-signed certificate made with openssl, `dir/ca.pem` (its key `dir/ca.key`);
/// `dir` is made if missing.
pub fn certificate(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let cert = dir.join("ca.pem");
    Cmd::program("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=inspecting proxy"])
        .arg("-keyout")
        .arg(dir.join("ca.key"))
        .arg("-out")
        .arg(&cert)
        .run()
        .ok();
    cert
}
