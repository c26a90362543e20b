//! Hostile layers from `testdata/layer/` (made by `scripts/make-hostile-tars.py`): each must
//! be refused with the specific error, and nothing outside the root may change.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;

/// DIR/root is unpacked into; DIR/outside is the sentinel with one file, `secret`.
struct Sandbox {
    _dir: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), b"secret\n").unwrap();
        Sandbox {
            _dir: dir,
            root,
            outside,
        }
    }

    fn unpack(&self, fixture: &str) -> Result<UnpackReport, LayerError> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/layer")
            .join(fixture);
        let file = fs::File::open(&path).unwrap();
        unpack_layer(
            file,
            None,
            &self.root,
            &UnpackOptions::new(crate::privilege::Privilege::of_this_process()),
        )
    }

    /// The sentinel holds exactly what it held before, and its one file is untouched.
    fn assert_outside_untouched(&self) {
        let names: Vec<_> = fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["secret"], "something was written outside the root");
        assert_eq!(fs::read(self.outside.join("secret")).unwrap(), b"secret\n");
        let meta = fs::metadata(self.outside.join("secret")).unwrap();
        assert_eq!(
            std::os::unix::fs::MetadataExt::nlink(&meta),
            1,
            "hardlinked from inside"
        );
    }
}

fn assert_hostile(result: Result<UnpackReport, LayerError>, entry: &str, reason_part: &str) {
    match result {
        Err(LayerError::HostileEntry { entry: got, reason }) => {
            assert_eq!(got, entry);
            assert!(reason.contains(reason_part), "reason {reason:?}");
        }
        other => panic!("expected a hostile-entry error for {entry}, got {other:?}"),
    }
}

#[test]
fn dotdot_entries_are_refused() {
    let sandbox = Sandbox::new();
    assert_hostile(sandbox.unpack("dotdot.tar"), "../outside/dotdot", "..");
    sandbox.assert_outside_untouched();
}

#[test]
fn absolute_entries_are_refused() {
    let sandbox = Sandbox::new();
    assert_hostile(
        sandbox.unpack("absolute.tar"),
        "/solum-hostile-absolute",
        "absolute",
    );
    assert!(!Path::new("/solum-hostile-absolute").exists());
    assert_eq!(fs::read_dir(&sandbox.root).unwrap().count(), 0);
    sandbox.assert_outside_untouched();
}

#[test]
fn writing_through_an_escaping_symlink_of_the_same_layer_is_refused() {
    let sandbox = Sandbox::new();
    assert_hostile(
        sandbox.unpack("symlink-escape.tar"),
        "escape/pwned",
        "symlink",
    );
    sandbox.assert_outside_untouched();
}

#[test]
fn writing_through_an_escaping_symlink_planted_by_an_earlier_layer_is_refused() {
    let sandbox = Sandbox::new();
    // Planting the link is fine on its own: it is just a link.
    sandbox.unpack("planted-layer1.tar").unwrap();
    assert_hostile(
        sandbox.unpack("planted-layer2.tar"),
        "etc/link/pwned",
        "symlink",
    );
    sandbox.assert_outside_untouched();
}

#[test]
fn hardlinks_to_outside_the_root_are_refused() {
    let sandbox = Sandbox::new();
    assert_hostile(
        sandbox.unpack("hardlink-outside.tar"),
        "stolen",
        "hardlink target",
    );
    sandbox.assert_outside_untouched();
    let sandbox = Sandbox::new();
    assert_hostile(
        sandbox.unpack("hardlink-via-symlink.tar"),
        "stolen",
        "hardlink target",
    );
    sandbox.assert_outside_untouched();
}

#[test]
fn truncated_gzip_is_a_compression_error() {
    let sandbox = Sandbox::new();
    match sandbox.unpack("truncated.tar.gz") {
        Err(LayerError::CorruptCompression { compression, .. }) => {
            assert_eq!(compression, LayerCompression::Gzip);
        }
        other => panic!("expected a compression error, got {other:?}"),
    }
    sandbox.assert_outside_untouched();
}
