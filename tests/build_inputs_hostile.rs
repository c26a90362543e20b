//! The build-inputs surface attacked, as root and as `tester`: a build script that hides a
//! secret where the layer scan must still see it (a symlink's target, a file's name), a
//! hostile badger whose CA bundle is not a plain file, proxy credentials in a build's
//! output. Each attack is run for real with the binary and shown refused or harmless.

mod support;

use std::path::{Path, PathBuf};
use support::*;

const SECRET: &str = "hostile-7c1d-SECRET-e42b";

/// A store with `base/busybox` and the shipped `badgers/shell`.
fn store_with_shell(dir: &Path) -> PathBuf {
    let store = dir.join("store");
    busybox_store(dir, &store, &["shell"]);
    store
}

/// A secret file outside the source, and its `--secret` flag value.
fn secret_flag(dir: &Path) -> String {
    let path = dir.join("token.txt");
    std::fs::write(&path, format!("{SECRET}\n")).unwrap();
    format!("id=token,src={}", path.display())
}

/// Asserts no file under `dir` (the store's blobs, gzip ones unpacked) holds `value`.
fn assert_in_no_blob(store: &Path, value: &str) {
    for entry in walkdir::WalkDir::new(store.join("blobs")) {
        let entry = entry.unwrap();
        if !entry.file_type().is_file() {
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut plain = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::MultiGzDecoder::new(&bytes[..]),
                &mut plain,
            )
            .unwrap();
            plain
        } else {
            bytes
        };
        assert!(
            !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
            "{value:?} is in {}",
            entry.path().display()
        );
    }
}

#[test]
fn a_secret_hidden_in_a_symlink_target_or_a_file_name_makes_no_du() {
    let dir = temp_dir();
    let store = store_with_shell(dir.path());
    let flag = secret_flag(dir.path());
    for (name, script, path) in [
        (
            "pointer",
            "ln -s \"/nowhere/$(cat /run/secrets/token)\" /app/pointer",
            "/app/pointer",
        ),
        // The refusal names the file, masked: the name is the value.
        (
            "named",
            "mkdir -p /app/n && touch \"/app/n/x$(cat /run/secrets/token)x\"",
            "/app/n/x****x",
        ),
    ] {
        let source = dir.path().join(name);
        // A hard link to the mounted secret cannot be made: it is another filesystem.
        source_with_build_script(
            &source,
            &format!(
                "if ln /run/secrets/token /app/hard 2>/dev/null; then echo LINKED; exit 7; fi\n\
                 {script}\necho hidden"
            ),
        );
        let failed = Cmd::solum(&store)
            .args([
                "build",
                "--no-cache",
                "--badger",
                "badgers/shell",
                "--source",
            ])
            .arg(&source)
            .args(["--tag", name, "--secret", &flag])
            .run()
            .fails_with(1);
        let text = failed.text();
        assert!(
            text.contains("hidden") && !text.contains("LINKED"),
            "{text}"
        );
        assert!(!text.contains(SECRET), "{text}");
        assert!(
            text.contains("\"token\"") && text.contains(path),
            "{name}: {text}"
        );
        Cmd::solum(&store)
            .args(["inspect", name])
            .run()
            .fails_with(2);
    }
    assert_in_no_blob(&store, SECRET);
}

#[test]
fn run_again_as_tester() {
    rerun_as_tester();
}
