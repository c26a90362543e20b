//! Pruning of the build records in the store's private cache folder after `gc`: a record
//! of `cache/builds/` names a DU manifest, one of `cache/dependencies/` a dependency layer;
//! once `gc` has taken that blob the record can never be a hit again, so it goes too
//! (otherwise every key ever built would stay on disk for good). A record that cannot be
//! read or parsed is removed as well: a missing record only costs a rebuild. The folder
//! is the user's own (0700), but it is still read without following symlinks and with a
//! bound on each record's size.

use crate::image::Digest;
use crate::store::Layout;
use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest record read; real ones are under 1 KiB.
const MAX_RECORD: u64 = 64 * 1024;

/// The blob a record names: a builds record is the manifest digest as text, a dependency
/// record JSON with a `digest` field.
fn named_blob(text: &str) -> Option<Digest> {
    if let Ok(digest) = text.trim().parse::<Digest>() {
        return Some(digest);
    }
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    value.get("digest")?.as_str()?.parse().ok()
}

/// Whether the record file at `path` still names a blob of `layout`.
fn still_useful(layout: &Layout, path: &Path) -> bool {
    let Ok(file) = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
    else {
        return false;
    };
    let mut text = String::new();
    if file.take(MAX_RECORD).read_to_string(&mut text).is_err() {
        return false;
    }
    named_blob(&text).is_some_and(|digest| layout.has_blob(&digest))
}

/// Removes the records of `cache_root` (`builds/`, `dependencies/`) whose blob `layout`
/// no longer has; returns how many went. Run while the store is held exclusively, right
/// after `gc`, so no build is writing a record for a blob it is about to add.
pub fn prune_stale_records(layout: &Layout, cache_root: &Path) -> usize {
    let mut removed = 0;
    for folder in ["builds", "dependencies"] {
        let Ok(entries) = fs::read_dir(cache_root.join(folder)) else {
            continue;
        };
        for entry in entries.flatten() {
            // Only regular files named by a key: `dependencies/last/` (the inputs each
            // app last used, for the reason a step reinstalls) holds no blob.
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            if is_file
                && !still_useful(layout, &entry.path())
                && fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_collected_blobs_go_and_the_others_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let layout = Layout::open_or_create(&store).unwrap();
        let (kept, _) = layout.put_blob(&mut &b"a layer"[..], None).unwrap();
        let gone = Digest::of_bytes(b"collected");
        let cache = dir.path().join("cache");
        let builds = cache.join("builds");
        let dependencies = cache.join("dependencies");
        fs::create_dir_all(dependencies.join("last")).unwrap();
        fs::create_dir_all(&builds).unwrap();
        fs::write(builds.join("k1"), format!("{kept}\n")).unwrap();
        fs::write(builds.join("k2"), format!("{gone}\n")).unwrap();
        fs::write(builds.join("k3"), "not a digest").unwrap();
        let record = |d: &Digest| format!("{{\"digest\":\"{d}\",\"size\":7}}");
        fs::write(dependencies.join("d1"), record(&kept)).unwrap();
        fs::write(dependencies.join("d2"), record(&gone)).unwrap();
        fs::write(dependencies.join("last").join("x"), "{}").unwrap();
        // A symlink is no record of ours: left alone, never followed.
        std::os::unix::fs::symlink(builds.join("k1"), builds.join("k4")).unwrap();

        assert_eq!(prune_stale_records(&layout, &cache), 3);
        let left = |folder: &Path| {
            let mut names: Vec<String> = fs::read_dir(folder)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(left(&builds), ["k1", "k4"]);
        assert_eq!(left(&dependencies), ["d1", "last"]);
    }
}
