//! Tests of the layer module as a whole: write a tree, unpack it elsewhere, compare; OCI
//! whiteout semantics; rootless ownership records; reproducibility. Hostile input is in
//! `hostile_tests`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::sys::stat::{mknod, Mode, SFlag};

use super::*;

/// A `Write + Send + 'static` destination whose bytes the test can read afterwards.
#[derive(Clone, Default)]
pub(super) struct Shared(pub(super) Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Shared {
    pub(super) fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

pub(super) fn is_root() -> bool {
    crate::privilege::Privilege::of_this_process() == crate::privilege::Privilege::Root
}

fn options(compression: LayerCompression, rootless: bool) -> WriteOptions {
    WriteOptions {
        compression,
        epoch: Some(1_700_000_000),
        rootless,
        subordinate_ids: None,
    }
}

pub(super) fn write_tree_bytes(root: &Path, options: &WriteOptions) -> (LayerDigests, Vec<u8>) {
    let out = Shared::default();
    let digests = write_tree(root, options, out.clone()).unwrap();
    (digests, out.bytes())
}

fn set_mtime(path: &Path, secs: i64) {
    let time = nix::sys::time::TimeSpec::new(secs, 0);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &time,
        &time,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

/// A tree with every entry type and the awkward corners of tar.
fn sample_tree(root: &Path) {
    let p = |rel: &str| root.join(rel);
    fs::create_dir_all(p("etc/deep")).unwrap();
    fs::write(p("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
    fs::write(p("etc/empty"), b"").unwrap();
    fs::write(p("etc/big"), vec![0xa5u8; 3 * 1024 * 1024 + 17]).unwrap();
    fs::hard_link(p("etc/hosts"), p("etc/hosts.link")).unwrap();
    symlink("/etc/hosts", p("etc/abs-link")).unwrap();
    symlink("../etc/hosts", p("etc/deep/rel-link")).unwrap();
    symlink("does/not/exist", p("dangling")).unwrap();
    let long_dir = "d".repeat(90);
    fs::create_dir_all(p(&format!("{long_dir}/{long_dir}"))).unwrap();
    fs::write(
        p(&format!("{long_dir}/{long_dir}/{}", "f".repeat(120))),
        b"long\n",
    )
    .unwrap();
    fs::write(root.join(OsStr::from_bytes(b"caf\xe9-latin1")), b"bytes\n").unwrap();
    fs::write(p("etc/setuid"), b"#!/bin/sh\n").unwrap();
    fs::create_dir(p("tmp")).unwrap();
    fs::create_dir(p("shared")).unwrap();
    fs::write(p("etc/secret"), b"s").unwrap();
    xattr::set(p("etc/hosts"), "user.comment", b"hosts file").unwrap();
    xattr::set(p("etc/deep"), "user.dir", b"\x00\x01binary").unwrap();
    mknod(
        &p("fifo"),
        SFlag::S_IFIFO,
        Mode::from_bits_truncate(0o640),
        0,
    )
    .unwrap();
    if is_root() {
        let null = nix::sys::stat::makedev(1, 3);
        mknod(
            &p("null"),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            null,
        )
        .unwrap();
        let loop0 = nix::sys::stat::makedev(7, 0);
        mknod(
            &p("loop0"),
            SFlag::S_IFBLK,
            Mode::from_bits_truncate(0o660),
            loop0,
        )
        .unwrap();
        nix::unistd::chown(&p("etc/setuid"), Some(1000.into()), Some(1000.into())).unwrap();
        nix::unistd::chown(&p("shared"), Some(0.into()), Some(50.into())).unwrap();
    }
    let chmod = |rel: &str, mode: u32| {
        fs::set_permissions(p(rel), fs::Permissions::from_mode(mode)).unwrap();
    };
    chmod("etc/setuid", 0o4755);
    chmod("shared", 0o2775);
    chmod("tmp", 0o1777);
    chmod("etc/secret", 0o000);
    chmod("etc/deep", 0o555);
    for item in walkdir::WalkDir::new(root).contents_first(true) {
        let item = item.unwrap();
        set_mtime(item.path(), 1_600_000_000 + item.depth() as i64);
    }
}

/// Everything about a tree that a layer carries, keyed by relative path.
pub(super) fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    for item in walkdir::WalkDir::new(root).min_depth(1) {
        let item = item.unwrap();
        let meta = item.path().symlink_metadata().unwrap();
        // The rootless record is compared by its own test; unprivileged, it may not even
        // be readable here (user.* xattrs follow the file's permission bits).
        let mut xattrs: Vec<_> = xattr::list(item.path())
            .unwrap()
            .filter(|name| name != ROOTLESS_XATTR)
            .map(|name| {
                let value = xattr::get(item.path(), &name).unwrap().unwrap_or_default();
                format!("{}={:?}", name.to_string_lossy(), value)
            })
            .collect();
        xattrs.sort();
        let content = if meta.is_file() {
            // Unprivileged, a mode 0000 file is unreadable even to its owner.
            match fs::read(item.path()) {
                Ok(bytes) => {
                    let mut hasher = std::collections::hash_map::DefaultHasher::new();
                    std::hash::Hash::hash(&bytes, &mut hasher);
                    format!("{:x}", std::hash::Hasher::finish(&hasher))
                }
                Err(error) if error.kind() == io::ErrorKind::PermissionDenied => {
                    "unreadable".to_string()
                }
                Err(error) => panic!("{}: {error}", item.path().display()),
            }
        } else if meta.file_type().is_symlink() {
            fs::read_link(item.path()).unwrap().display().to_string()
        } else {
            String::new()
        };
        let rel = item.path().strip_prefix(root).unwrap().to_path_buf();
        out.insert(
            rel,
            format!(
                "mode={:o} uid={} gid={} mtime={} size={} rdev={} nlink={} {content} {xattrs:?}",
                meta.mode(),
                meta.uid(),
                meta.gid(),
                meta.mtime(),
                if meta.is_dir() { 0 } else { meta.size() },
                meta.rdev(),
                if meta.is_dir() { 0 } else { meta.nlink() },
            ),
        );
    }
    out
}

#[test]
fn every_entry_type_round_trips_through_write_and_unpack() {
    for compression in [
        LayerCompression::Gzip,
        LayerCompression::Zstd,
        LayerCompression::None,
    ] {
        let source = tempfile::tempdir().unwrap();
        sample_tree(source.path());
        let (digests, blob) = write_tree_bytes(source.path(), &options(compression, !is_root()));
        assert_eq!(digests.size, blob.len() as u64);
        assert_eq!(
            digests.digest,
            crate::image::digest::Digest::of_bytes(&blob)
        );
        assert_eq!(
            digests.media_type,
            crate::image::media::oci_layer_type(compression)
        );
        let target = tempfile::tempdir().unwrap();
        let unpack = UnpackOptions {
            rootless: !is_root(),
            limits: UnpackLimits::default(),
        };
        let report = unpack_layer(&blob[..], None, target.path(), &unpack).unwrap();
        assert!(report.entries >= 18, "{report:?}");
        assert_eq!(
            snapshot(source.path()),
            snapshot(target.path()),
            "{compression:?}"
        );
    }
}

#[test]
fn same_tree_and_epoch_give_identical_bytes_and_digests() {
    let source = tempfile::tempdir().unwrap();
    sample_tree(source.path());
    fs::write(source.path().join("new"), b"after the epoch").unwrap();
    let options = options(LayerCompression::Gzip, false);
    let (first, first_bytes) = write_tree_bytes(source.path(), &options);
    // Touching a file after the epoch changes nothing: its mtime is clamped.
    set_mtime(&source.path().join("new"), 1_800_000_000);
    let (second, second_bytes) = write_tree_bytes(source.path(), &options);
    assert_eq!(first.digest, second.digest);
    assert_eq!(first.diff_id, second.diff_id);
    assert!(first_bytes == second_bytes);
    // And the tar is sorted component-wise with clamped mtimes, numeric owners only.
    let (_, mut tar) = decompressing_reader(&first_bytes[..], None).unwrap();
    let mut raw = Vec::new();
    tar.read_to_end(&mut raw).unwrap();
    let mut archive = tar::Archive::new(&raw[..]);
    let mut names = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let header = entry.header();
        assert!(header.mtime().unwrap() <= 1_700_000_000);
        assert_eq!(header.username_bytes(), Some(&b""[..]));
        names.push(entry.path_bytes().into_owned());
    }
    let etc = names.iter().position(|n| n == b"etc/").unwrap();
    assert_eq!(names[etc + 1], b"etc/abs-link");
    let mut sorted = names.clone();
    sorted.sort_by(|a, b| Path::new(OsStr::from_bytes(a)).cmp(Path::new(OsStr::from_bytes(b))));
    assert_eq!(names, sorted);
}

/// Builds a plain tar from (path, kind, data or link target, mode).
pub(super) fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, kind, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(*kind);
        header.set_mode(if *kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        header.set_mtime(1_600_000_000);
        match kind {
            tar::EntryType::Regular => {
                header.set_size(data.len() as u64);
                builder
                    .append_data(&mut header, path, data.as_bytes())
                    .unwrap();
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                header.set_size(0);
                builder.append_link(&mut header, path, data).unwrap();
            }
            _ => {
                header.set_size(0);
                builder.append_data(&mut header, path, io::empty()).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

fn unpack(tar: &[u8], root: &Path) -> Result<UnpackReport, LayerError> {
    unpack_layer(
        tar,
        None,
        root,
        &UnpackOptions::new(crate::privilege::Privilege::of_this_process()),
    )
}

#[test]
fn whiteouts_remove_lower_content_but_never_this_layers_own_entries() {
    use tar::EntryType::{Directory as D, Regular as F};
    let root = tempfile::tempdir().unwrap();
    let lower = tar_of(&[
        ("a/", D, ""),
        ("a/keep", F, "k"),
        ("a/gone", F, "g"),
        ("a/sub/", D, ""),
        ("a/sub/x", F, "x"),
        ("b/", D, ""),
        ("b/old", F, "o"),
        ("b/olddir/", D, ""),
        ("b/olddir/y", F, "y"),
        ("c", F, "lower c"),
        ("d/", D, ""),
        ("d/lower", F, "l"),
    ]);
    unpack(&lower, root.path()).unwrap();
    let upper = tar_of(&[
        ("a/.wh.gone", F, ""),
        ("a/.wh.sub", F, ""),
        ("a/.wh.never-existed", F, ""),
        ("b/", D, ""),
        ("b/.wh..wh..opq", F, ""),
        ("b/new", F, "n"),
        // The same layer writes c, then whites it out: c is this layer's, it stays.
        ("c", F, "upper c"),
        (".wh.c", F, ""),
        // An opaque marker after this layer's own entry in the directory.
        ("d/mine", F, "m"),
        ("d/.wh..wh..opq", F, ""),
    ]);
    let report = unpack(&upper, root.path()).unwrap();
    assert_eq!(report.whiteouts, 6);
    let p = |rel: &str| root.path().join(rel);
    assert!(p("a/keep").exists());
    assert!(!p("a/gone").exists());
    assert!(!p("a/sub").exists());
    assert!(!p("b/old").exists() && !p("b/olddir").exists());
    assert_eq!(fs::read(p("b/new")).unwrap(), b"n");
    assert_eq!(fs::read(p("c")).unwrap(), b"upper c");
    assert!(p("d/mine").exists() && !p("d/lower").exists());
    for item in walkdir::WalkDir::new(root.path()) {
        let name = item.unwrap().file_name().as_bytes().to_vec();
        assert!(!name.starts_with(b".wh."), "whiteout file left in the tree");
    }
}

#[test]
fn entries_replace_entries_of_another_type() {
    use tar::EntryType::{Directory as D, Regular as F, Symlink as L};
    let root = tempfile::tempdir().unwrap();
    unpack(
        &tar_of(&[
            ("x/", D, ""),
            ("x/child", F, "c"),
            ("y", F, "file"),
            ("z", L, "/etc"),
        ]),
        root.path(),
    )
    .unwrap();
    unpack(
        &tar_of(&[
            ("x", F, "now a file"),
            ("y/", D, ""),
            ("y/in", F, "i"),
            ("z/", D, ""),
        ]),
        root.path(),
    )
    .unwrap();
    let p = |rel: &str| root.path().join(rel);
    assert_eq!(fs::read(p("x")).unwrap(), b"now a file");
    assert!(p("y").is_dir() && p("y/in").is_file());
    assert!(p("z").symlink_metadata().unwrap().is_dir());
    // A directory over a directory keeps its contents.
    unpack(&tar_of(&[("y/", D, "")]), root.path()).unwrap();
    assert!(p("y/in").is_file());
}

#[test]
fn absolute_symlinks_resolve_inside_the_root() {
    use tar::EntryType::{Directory as D, Regular as F, Symlink as L};
    let root = tempfile::tempdir().unwrap();
    let layer = tar_of(&[
        ("run/", D, ""),
        ("var/", D, ""),
        ("var/run", L, "/run"),
        ("var/run/pid", F, "42"),
        ("hl", tar::EntryType::Link, "var/run/pid"),
    ]);
    unpack(&layer, root.path()).unwrap();
    assert_eq!(fs::read(root.path().join("run/pid")).unwrap(), b"42");
    assert_eq!(fs::read(root.path().join("hl")).unwrap(), b"42");
}

#[test]
fn directories_get_their_mtimes_after_their_children() {
    use tar::EntryType::{Directory as D, Regular as F};
    let root = tempfile::tempdir().unwrap();
    unpack(
        &tar_of(&[("dir/", D, ""), ("dir/a", F, "a"), ("dir/b", F, "b")]),
        root.path(),
    )
    .unwrap();
    let meta = root.path().join("dir").metadata().unwrap();
    assert_eq!(meta.mtime(), 1_600_000_000);
}

/// A layer that lists `top/new/deeper/file` but neither `top/new` nor `top/new/deeper`
/// creates those parents inside the lower layer's `top`; `top` (and the root) keep their
/// times, as they do for a file created directly in them. The unlisted directories are
/// reported: the root and the two created parents.
#[test]
fn implied_parents_leave_the_times_of_lower_directories_alone() {
    use tar::EntryType::{Directory as D, Regular as F};
    let root = tempfile::tempdir().unwrap();
    unpack(&tar_of(&[("./", D, ""), ("top/", D, "")]), root.path()).unwrap();
    let report = unpack(&tar_of(&[("top/new/deeper/file", F, "x")]), root.path()).unwrap();
    for dir in ["", "top"] {
        let meta = root.path().join(dir).metadata().unwrap();
        assert_eq!(meta.mtime(), 1_600_000_000, "{dir:?}");
    }
    assert_eq!(
        report.unlisted_dirs,
        vec![
            b"".to_vec(),
            b"top/new".to_vec(),
            b"top/new/deeper".to_vec()
        ]
    );
}

/// A layer cannot carry overlay's own attributes into a tree: `user.overlay.opaque` on a
/// cached lower would hide the layers below that directory. Other `user.*` xattrs stay.
#[test]
fn overlay_xattrs_of_a_layer_are_not_written() {
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_pax_extensions([
            ("SCHILY.xattr.user.overlay.opaque", &b"y"[..]),
            ("SCHILY.xattr.trusted.overlay.opaque", &b"y"[..]),
            ("SCHILY.xattr.user.kept", &b"v"[..]),
        ])
        .unwrap();
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o755);
    header.set_size(0);
    builder.append_data(&mut header, "etc/", &[][..]).unwrap();
    let root = tempfile::tempdir().unwrap();
    unpack(&builder.into_inner().unwrap(), root.path()).unwrap();
    let etc = root.path().join("etc");
    assert_eq!(xattr::get(&etc, "user.overlay.opaque").unwrap(), None);
    assert_eq!(
        xattr::get(&etc, "trusted.overlay.opaque").unwrap_or(None),
        None
    );
    assert_eq!(xattr::get(&etc, "user.kept").unwrap(), Some(b"v".to_vec()));
}

#[test]
fn rootless_unpack_records_owners_and_rootless_write_restores_them() {
    // Unpack a layer with owners as "rootless" (chown skipped, owners recorded in the
    // xattr), then write the tree back rootless: the owners come back from the record.
    let source = tempfile::tempdir().unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    for (path, uid, gid, kind) in [
        ("home/", 1000, 1000, tar::EntryType::Directory),
        ("home/file", 1000, 50, tar::EntryType::Regular),
        ("rootfile", 0, 0, tar::EntryType::Regular),
        ("groupfile", 0, 42, tar::EntryType::Regular),
    ] {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(if kind == tar::EntryType::Directory {
            0o750
        } else {
            0o640
        });
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_mtime(1_600_000_000);
        header.set_size(0);
        builder.append_data(&mut header, path, io::empty()).unwrap();
    }
    let layer = builder.into_inner().unwrap();
    let rootless = UnpackOptions {
        rootless: true,
        limits: UnpackLimits::default(),
    };
    unpack_layer(&layer[..], None, source.path(), &rootless).unwrap();
    let record = xattr::get(source.path().join("home/file"), ROOTLESS_XATTR).unwrap();
    assert_eq!(
        RootlessOwner::decode(&record.unwrap()),
        Some(RootlessOwner { uid: 1000, gid: 50 })
    );
    assert_eq!(
        xattr::get(source.path().join("rootfile"), ROOTLESS_XATTR).unwrap(),
        None
    );
    let (_, blob) = write_tree_bytes(source.path(), &options(LayerCompression::None, true));
    let mut archive = tar::Archive::new(&blob[..]);
    let mut owners = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let uid = entry.header().uid().unwrap();
        let gid = entry.header().gid().unwrap();
        if let Some(extensions) = entry.pax_extensions().unwrap() {
            for extension in extensions {
                assert!(!extension
                    .unwrap()
                    .key()
                    .unwrap()
                    .contains("rootlesscontainers"));
            }
        }
        owners.insert(name, (uid, gid));
    }
    assert_eq!(owners["home/"], (1000, 1000));
    assert_eq!(owners["home/file"], (1000, 50));
    assert_eq!(owners["rootfile"], (0, 0));
    assert_eq!(owners["groupfile"], (0, 42));
}

#[test]
fn rootless_unpack_handles_read_only_directories_and_skips_devices() {
    let root = tempfile::tempdir().unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    for (path, mode, kind) in [
        ("ro/", 0o555, tar::EntryType::Directory),
        ("ro/file", 0o444, tar::EntryType::Regular),
        ("ro/sub/", 0o000, tar::EntryType::Directory),
        ("ro/sub/deeper", 0o600, tar::EntryType::Regular),
        ("dev/", 0o755, tar::EntryType::Directory),
        ("dev/null", 0o666, tar::EntryType::Char),
    ] {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_mtime(1_600_000_000);
        header.set_size(0);
        if kind == tar::EntryType::Char {
            header.set_device_major(1).unwrap();
            header.set_device_minor(3).unwrap();
        }
        builder.append_data(&mut header, path, io::empty()).unwrap();
    }
    let layer = builder.into_inner().unwrap();
    let rootless = UnpackOptions {
        rootless: true,
        limits: UnpackLimits::default(),
    };
    let report = unpack_layer(&layer[..], None, root.path(), &rootless).unwrap();
    assert_eq!(report.skipped_devices, vec!["dev/null".to_string()]);
    let mode = |rel: &str| root.path().join(rel).symlink_metadata().unwrap().mode() & 0o7777;
    assert_eq!(mode("ro"), 0o555);
    assert_eq!(mode("ro/sub"), 0o000);
    // A second layer writes into the read-only directories of the first.
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(2);
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_data(&mut header, "ro/sub/more", &b"hi"[..])
        .unwrap();
    builder
        .append_data(&mut header, "ro/.wh.file", &b""[..])
        .unwrap();
    let second = builder.into_inner().unwrap();
    unpack_layer(&second[..], None, root.path(), &rootless).unwrap();
    assert_eq!(mode("ro"), 0o555);
    assert_eq!(mode("ro/sub"), 0o000);
    fs::set_permissions(
        root.path().join("ro/sub"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    assert_eq!(fs::read(root.path().join("ro/sub/more")).unwrap(), b"hi");
    assert!(!root.path().join("ro/file").exists());
}

#[test]
fn write_changes_sorts_and_writes_whiteouts_and_opaque_markers() {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("app/lib")).unwrap();
    fs::write(root.path().join("app/lib/x.py"), b"x").unwrap();
    fs::write(root.path().join("app-config"), b"c").unwrap();
    let changes = vec![
        Change::Add("app-config".into()),
        Change::Whiteout("etc/motd".into()),
        Change::Add("app/lib/x.py".into()),
        Change::Opaque("app/lib".into()),
        Change::Add("app".into()),
        Change::Add("app/lib".into()),
    ];
    let out = Shared::default();
    let options = options(LayerCompression::Gzip, false);
    write_changes(root.path(), changes, &options, out.clone()).unwrap();
    let (_, mut reader) = decompressing_reader(io::Cursor::new(out.bytes()), None).unwrap();
    let mut raw = Vec::new();
    reader.read_to_end(&mut raw).unwrap();
    let mut archive = tar::Archive::new(&raw[..]);
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "app/",
            "app/lib/",
            "app/lib/.wh..wh..opq",
            "app/lib/x.py",
            "app-config",
            "etc/.wh.motd"
        ]
    );
}

#[test]
fn truncated_plain_tars_are_errors() {
    use tar::EntryType::Regular as F;
    let layer = tar_of(&[("a", F, &"x".repeat(2000)), ("b", F, "y")]);
    // Cut at an entry boundary (no end-of-archive blocks), and inside file data.
    let boundary = 512 + 2048;
    for cut in [boundary, 700] {
        let root = tempfile::tempdir().unwrap();
        let error = unpack(&layer[..cut], root.path()).unwrap_err();
        assert!(
            matches!(error, LayerError::TruncatedTar { .. }),
            "{cut}: {error:?}"
        );
    }
}

/// Timings on real data, run by hand on a release build: with
/// `SOLUM_LAYER_BENCH_DIR=/scratch` and `SOLUM_LAYER_BENCH_BLOB=layer.tar.gz`, unpacks the
/// blob into DIR/unpacked; then writes DIR/unpacked (or `SOLUM_LAYER_BENCH_TREE`) as
/// DIR/layer.tar.gz and DIR/layer.tar.zst (`SOLUM_LAYER_BENCH_ONLY=gz` or `zst` for one). Run with `--ignored layer::tests::bench --nocapture`.
#[test]
#[ignore = "a benchmark: run it by name with --ignored"]
fn bench() {
    let Ok(dir) = std::env::var("SOLUM_LAYER_BENCH_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let mut tree = dir.join("unpacked");
    if let Ok(blob) = std::env::var("SOLUM_LAYER_BENCH_BLOB") {
        let _ = fs::remove_dir_all(&tree);
        fs::create_dir_all(&tree).unwrap();
        let start = std::time::Instant::now();
        let file = fs::File::open(&blob).unwrap();
        let report = unpack_layer(
            file,
            None,
            &tree,
            &UnpackOptions::new(crate::privilege::Privilege::of_this_process()),
        )
        .unwrap();
        eprintln!(
            "unpack: {:?} for {} entries",
            start.elapsed(),
            report.entries
        );
    }
    if let Ok(other) = std::env::var("SOLUM_LAYER_BENCH_TREE") {
        tree = PathBuf::from(other);
    }
    for (compression, name) in [
        (LayerCompression::Gzip, "layer.tar.gz"),
        (LayerCompression::Zstd, "layer.tar.zst"),
    ] {
        let only = std::env::var("SOLUM_LAYER_BENCH_ONLY").unwrap_or_default();
        if !only.is_empty() && !name.ends_with(&only) {
            continue;
        }
        let start = std::time::Instant::now();
        let options = WriteOptions {
            compression,
            epoch: None,
            rootless: false,
            subordinate_ids: None,
        };
        let out = io::BufWriter::new(fs::File::create(dir.join(name)).unwrap());
        let digests = write_tree(&tree, &options, out).unwrap();
        eprintln!(
            "write_tree {compression:?}: {:?}, {} -> {} bytes, {} diff_id {}",
            start.elapsed(),
            digests.uncompressed_size,
            digests.size,
            digests.digest,
            digests.diff_id
        );
    }
}
