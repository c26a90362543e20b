//! Whether deflating a build's layer can pay. A build that writes incompressible data (a
//! random or already-compressed file of hundreds of megabytes) would spend seconds in
//! deflate to save nothing; such a layer is written as gzip with *stored* blocks (level 0):
//! still a standard `tar+gzip` layer every tool reads, at copying speed. The estimate
//! samples large files only (three 64 KiB windows each, deflated at the fastest level);
//! small files count as compressible, so any layer of ordinary files keeps level 6. The
//! decision depends on the bytes alone, so the same changes always give the same layer.
//! This module only reads; a file it cannot read counts as compressible.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::Change;

/// Files smaller than this are not sampled (assumed compressible).
const SAMPLE_MIN_FILE: u64 = 1 << 20;
const SAMPLE_WINDOW: usize = 64 * 1024;
/// Below this much data the choice does not matter: keep the default level.
const MIN_LAYER_BYTES: u64 = 16 << 20;
/// Deflate must be expected to save at least 3% of the bytes to be worth running.
const WORTHWHILE_RATIO: f64 = 0.97;
/// The ratio assumed for files that are not sampled.
const ASSUMED_RATIO: f64 = 0.5;

/// The gzip level for a layer of `changes` read from `root`: `default`, or 0 (stored)
/// when the estimate says deflate would save less than 3%.
pub(crate) fn gzip_level_for(root: &Path, changes: &[Change], default: u32) -> u32 {
    let mut total = 0u64;
    let mut estimated = 0f64;
    for change in changes {
        let Change::Add(path) = change else {
            continue;
        };
        let full = root.join(path.strip_prefix("/").unwrap_or(path));
        let Ok(meta) = std::fs::symlink_metadata(&full) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let len = meta.len();
        total += len;
        estimated += len as f64 * sampled_ratio(&full, len).unwrap_or(ASSUMED_RATIO);
    }
    if total >= MIN_LAYER_BYTES && estimated / total as f64 >= WORTHWHILE_RATIO {
        0
    } else {
        default
    }
}

/// compressed / original over three windows (start, middle, end) of a large file.
fn sampled_ratio(path: &Path, len: u64) -> Option<f64> {
    if len < SAMPLE_MIN_FILE {
        return None;
    }
    let mut file = File::open(path).ok()?;
    let mut window = vec![0u8; SAMPLE_WINDOW];
    let mut original = 0usize;
    let mut compressed = 0usize;
    for offset in [0, len / 2, len - SAMPLE_WINDOW as u64] {
        file.seek(SeekFrom::Start(offset)).ok()?;
        let read = file.read(&mut window).ok()?;
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&window[..read]).ok()?;
        compressed += encoder.finish().ok()?.len();
        original += read;
    }
    (original > 0).then(|| compressed as f64 / original as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn noise(len: usize) -> Vec<u8> {
        // xorshift: incompressible enough for deflate, and reproducible.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    #[test]
    fn incompressible_layers_are_stored_and_ordinary_ones_deflated() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("random.bin"), noise(20 << 20)).unwrap();
        let text: Vec<u8> = b"a line of ordinary text in a log file\n"
            .iter()
            .cycle()
            .take(20 << 20)
            .copied()
            .collect();
        std::fs::write(dir.path().join("text.log"), text).unwrap();
        let add = |name: &str| vec![Change::Add(PathBuf::from(name))];
        assert_eq!(gzip_level_for(dir.path(), &add("random.bin"), 6), 0);
        assert_eq!(gzip_level_for(dir.path(), &add("text.log"), 6), 6);
        // Half and half: deflate still saves a lot, so it runs.
        let both = vec![
            Change::Add(PathBuf::from("random.bin")),
            Change::Add(PathBuf::from("/text.log")),
        ];
        assert_eq!(gzip_level_for(dir.path(), &both, 6), 6);
        // A small layer keeps the default whatever it holds.
        std::fs::write(dir.path().join("small.bin"), noise(1 << 20)).unwrap();
        assert_eq!(gzip_level_for(dir.path(), &add("small.bin"), 6), 6);
    }

    #[test]
    fn a_stored_gzip_layer_unpacks_like_any_other() {
        use crate::layer::{
            unpack_layer, write_changes, LayerCompression, UnpackOptions, WriteOptions,
        };
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let data = noise(17 << 20);
        std::fs::write(root.join("random.bin"), &data).unwrap();
        let blob = dir.path().join("layer.tar.gz");
        let options = WriteOptions {
            compression: LayerCompression::Gzip,
            epoch: Some(0),
            rootless: crate::privilege::Privilege::of_this_process().is_rootless(),
            subordinate_ids: None,
        };
        let digests = write_changes(
            &root,
            vec![Change::Add(PathBuf::from("random.bin"))],
            &options,
            File::create(&blob).unwrap(),
        )
        .unwrap();
        // Stored blocks: the blob is the tar plus a little framing, not smaller.
        assert!(digests.size >= digests.uncompressed_size, "{digests:?}");
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        unpack_layer(
            File::open(&blob).unwrap(),
            None,
            &out,
            &UnpackOptions::new(crate::privilege::Privilege::of_this_process()),
        )
        .unwrap();
        assert_eq!(std::fs::read(out.join("random.bin")).unwrap(), data);
    }
}
