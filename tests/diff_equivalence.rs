//! The two ways of diffing a build must agree: the same shell script runs on an overlay
//! (its upper dir read by `overlay_changes`) and on a `copy_tree` copy of the base (read by
//! `walk_changes`); the change lists and the layers written from them must be identical,
//! and the layer unpacked on top of the base must give the tree the build left.
//!
//! Two settings: a kernel overlay mounted directly by root on the host, and the build
//! sandbox (overlay inside a user namespace with `userxattr`, a bind-mounted copy for the
//! walk). Run as root, the sandbox test also runs this binary again as the unprivileged
//! user `tester`, which is how builds really run.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::rootless::TesterRerun;

use solum_build::layer::{
    copy_tree, overlay_changes, unpack_layer, walk_changes, write_changes, write_tree, Change,
    LayerCompression, LayerDigests, UnpackOptions, WriteOptions,
};
use solum_build::privilege::Privilege;

const EXE: &str = env!("CARGO_BIN_EXE_solum-build");
/// Every entry of the base gets this mtime; the layer clamps to `EPOCH`, which lies
/// between it and the time the build runs, so entries the build wrote carry `EPOCH` in
/// both layers while untouched ones keep their own time.
const BASE_TIME: i64 = 1_000_000_000;
const EPOCH: i64 = 1_500_000_000;

/// What a build does to its base: every kind of change a diff has to get right.
const SCRIPT: &str = r"set -e
echo new > data/new.txt
echo more >> data/modify.txt
rm data/delete.txt
rm -rf data/gone
rm -rf data/refill
mkdir data/refill
echo fresh > data/refill/fresh.txt
mkdir -p data/newdir/sub
echo deep > data/newdir/sub/deep.txt
ln data/keep.txt data/keep.hardlink
echo linked > data/h1
ln data/h1 data/h2
ln -s ../keep.txt data/newdir/link
mkfifo data/fifo
echo suid > data/suid
chmod 4755 data/suid
chmod 0600 data/chmod-only.txt
rm data/recreate.txt
echo recreated > data/recreate.txt
mv data/rename-me.txt data/renamed.txt
echo changed >> data/pair-a
rm data/file2dir
mkdir data/file2dir
echo inside > data/file2dir/in
rm -rf data/dir2file
echo now-a-file > data/dir2file
rm data/empty-me/e1 data/empty-me/e2
mkdir deep/er/new-leaf
";

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn busybox() -> PathBuf {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("busybox-static is installed (runtime/tests/setup-host.sh)")
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

/// Sets `BASE_TIME` on everything under `dir` and on `dir`, children first.
fn age(dir: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            age(&entry.path());
        } else {
            set_mtime(&entry.path(), BASE_TIME);
        }
    }
    set_mtime(dir, BASE_TIME);
}

/// A busybox root filesystem with the files `SCRIPT` works on.
fn make_base(root: &Path) {
    fs::create_dir(root).unwrap();
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    for dir in [
        "bin",
        "etc",
        "dev",
        "proc",
        "sys",
        "tmp",
        "data/gone/sub",
        "data/refill/oldsub",
        "data/dir2file",
        "data/untouched",
        "data/empty-me",
        "deep/er",
    ] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    let bb = busybox();
    fs::copy(&bb, root.join("bin/busybox")).unwrap();
    let list = Command::new(&bb).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
    }
    let files = [
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        ("data/modify.txt", "original\n"),
        ("data/delete.txt", "doomed\n"),
        ("data/gone/a", "a\n"),
        ("data/gone/sub/b", "b\n"),
        ("data/refill/old1", "1\n"),
        ("data/refill/old2", "2\n"),
        ("data/refill/oldsub/x", "x\n"),
        ("data/keep.txt", "keep\n"),
        ("data/chmod-only.txt", "mode\n"),
        ("data/recreate.txt", "first life\n"),
        ("data/rename-me.txt", "moving\n"),
        ("data/pair-a", "shared\n"),
        ("data/file2dir", "a file for now\n"),
        ("data/dir2file/x", "x\n"),
        ("data/untouched/u1", "u\n"),
        ("data/empty-me/e1", "e1\n"),
        ("data/empty-me/e2", "e2\n"),
        ("deep/er/leaf", "leaf\n"),
    ];
    for (path, text) in files {
        fs::write(root.join(path), text).unwrap();
    }
    fs::set_permissions(
        root.join("data/chmod-only.txt"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    fs::hard_link(root.join("data/pair-a"), root.join("data/pair-b")).unwrap();
    xattr::set(root.join("data/untouched/u1"), "user.test", b"kept").unwrap();
    age(root);
}

/// The change list the script must produce (both ways), independent of either diff.
fn expected_changes() -> Vec<Change> {
    let add = |p: &str| Change::Add(p.into());
    let out = |p: &str| Change::Whiteout(p.into());
    let opaque = |p: &str| Change::Opaque(p.into());
    let mut list = vec![
        add("data"),
        add("data/chmod-only.txt"),
        out("data/delete.txt"),
        add("data/dir2file"),
        out("data/empty-me/e1"),
        out("data/empty-me/e2"),
        add("data/empty-me"),
        add("data/fifo"),
        opaque("data/file2dir"),
        add("data/file2dir"),
        add("data/file2dir/in"),
        out("data/gone"),
        add("data/h1"),
        add("data/h2"),
        // The other name of the newly linked base file: overlay copies it up.
        add("data/keep.hardlink"),
        add("data/keep.txt"),
        add("data/modify.txt"),
        add("data/new.txt"),
        add("data/newdir"),
        add("data/newdir/link"),
        add("data/newdir/sub"),
        add("data/newdir/sub/deep.txt"),
        // Only the written name of a linked pair: copy-up breaks the link.
        add("data/pair-a"),
        add("data/recreate.txt"),
        opaque("data/refill"),
        add("data/refill"),
        add("data/refill/fresh.txt"),
        out("data/rename-me.txt"),
        add("data/renamed.txt"),
        add("data/suid"),
        add("deep"),
        add("deep/er"),
        add("deep/er/new-leaf"),
    ];
    solum_build::layer::sort_changes(&mut list);
    list
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn options() -> WriteOptions {
    WriteOptions {
        compression: LayerCompression::Gzip,
        epoch: Some(EPOCH),
        rootless: euid() != 0,
        subordinate_ids: None,
    }
}

fn layer_of(root: &Path, changes: Vec<Change>) -> (LayerDigests, Vec<u8>) {
    let out = Shared::default();
    let digests = write_changes(root, changes, &options(), out.clone()).unwrap();
    let bytes = out.0.lock().unwrap().clone();
    (digests, bytes)
}

/// What a path is, for comparing trees: type, mode, and contents or link target, plus
/// image xattrs.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    kind: &'static str,
    mode: u32,
    body: Vec<u8>,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// Every path under `root` (but the sandbox's mount points), and the groups of paths that
/// share an inode.
fn snapshot(root: &Path) -> (BTreeMap<PathBuf, Seen>, BTreeSet<Vec<PathBuf>>) {
    let mut seen = BTreeMap::new();
    let mut inodes: BTreeMap<u64, Vec<PathBuf>> = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in fs::read_dir(root.join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let child = rel.join(entry.file_name());
            let full = root.join(&child);
            let stat = fs::symlink_metadata(&full).unwrap();
            let file_type = stat.file_type();
            let (kind, body) = if file_type.is_dir() {
                stack.push(child.clone());
                ("dir", Vec::new())
            } else if file_type.is_file() {
                ("file", fs::read(&full).unwrap())
            } else if file_type.is_symlink() {
                let target = fs::read_link(&full).unwrap();
                ("symlink", target.into_os_string().into_encoded_bytes())
            } else if file_type.is_fifo() {
                ("fifo", Vec::new())
            } else {
                ("other", Vec::new())
            };
            if !file_type.is_dir() && stat.nlink() > 1 {
                inodes.entry(stat.ino()).or_default().push(child.clone());
            }
            let mut xattrs = Vec::new();
            if !file_type.is_symlink() {
                for name in xattr::list(&full).unwrap() {
                    let name = name.to_string_lossy().into_owned();
                    if name.starts_with("user.") && name != "user.rootlesscontainers" {
                        let value = xattr::get(&full, &name).unwrap().unwrap_or_default();
                        xattrs.push((name, value));
                    }
                }
            }
            xattrs.sort();
            let mode = stat.mode() & 0o7777;
            seen.insert(
                child,
                Seen {
                    kind,
                    mode,
                    body,
                    xattrs,
                },
            );
        }
    }
    let groups = inodes
        .into_values()
        .map(|mut paths| {
            paths.sort();
            paths
        })
        .collect();
    (seen, groups)
}

/// Unpacks the base and then the diff layer into a fresh directory and checks that the
/// result is the tree the build left.
fn check_unpacked(work: &Path, base: &Path, layer: &[u8], after: &Path) {
    let unpacked = work.join("unpacked");
    fs::create_dir(&unpacked).unwrap();
    let base_layer = Shared::default();
    write_tree(base, &options(), base_layer.clone()).unwrap();
    let unpack = UnpackOptions::new(Privilege::of_this_process());
    let base_bytes = base_layer.0.lock().unwrap().clone();
    unpack_layer(base_bytes.as_slice(), None, &unpacked, &unpack).unwrap();
    let report = unpack_layer(layer, None, &unpacked, &unpack).unwrap();
    assert!(report.whiteouts >= 6, "whiteouts applied: {report:?}");
    let (want, want_links) = snapshot(after);
    let (got, got_links) = snapshot(&unpacked);
    let want_paths: Vec<&PathBuf> = want.keys().collect();
    let got_paths: Vec<&PathBuf> = got.keys().collect();
    assert_eq!(got_paths, want_paths, "paths after unpacking base + diff");
    for (path, seen) in &want {
        assert_eq!(&got[path], seen, "{}", path.display());
    }
    assert_eq!(got_links, want_links, "hard link groups");
    assert!(want_links.contains(&vec![
        PathBuf::from("data/keep.hardlink"),
        PathBuf::from("data/keep.txt")
    ]));
}

/// Compares the two diffs of one build and the layer they make.
fn check_equivalent(work: &Path, base: &Path, upper: &Path, copy: &Path) {
    let from_overlay = overlay_changes(upper).unwrap();
    let from_walk = walk_changes(base, copy).unwrap();
    assert_eq!(from_overlay, expected_changes(), "overlay_changes");
    assert_eq!(from_walk, expected_changes(), "walk_changes");
    let (overlay_layer, overlay_bytes) = layer_of(upper, from_overlay);
    let (walk_layer, walk_bytes) = layer_of(copy, from_walk);
    assert_eq!(overlay_layer.diff_id, walk_layer.diff_id);
    assert_eq!(overlay_layer.digest, walk_layer.digest);
    assert_eq!(overlay_bytes, walk_bytes);
    check_unpacked(work, base, &walk_bytes, copy);
}

/// Unmounts on drop, so that a failing test leaves no mount behind.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_root_overlay_mount_and_a_walked_copy_give_the_same_layer() {
    if euid() != 0 {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let base = t.join("base");
    make_base(&base);
    for dir in ["upper", "work", "merged"] {
        fs::create_dir(t.join(dir)).unwrap();
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        base.display(),
        t.join("upper").display(),
        t.join("work").display()
    );
    let status = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &options])
        .arg(t.join("merged"))
        .status()
        .unwrap();
    assert!(status.success(), "mount -t overlay");
    let mounted = Mounted(t.join("merged"));
    let run = |dir: &Path| {
        let out = Command::new(busybox())
            .args(["sh", "-c", SCRIPT])
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "script in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&mounted.0);
    drop(mounted);
    let copy = t.join("copy");
    copy_tree(&base, &copy, Privilege::of_this_process()).unwrap();
    run(&copy);
    check_equivalent(t, &base, &t.join("upper"), &copy);
}

fn sandbox(rootfs: runtime::RootFs) -> runtime::Outcome {
    let mut spec =
        runtime::SandboxSpec::new(rootfs, vec!["/bin/sh".into(), "-c".into(), SCRIPT.into()]);
    spec.limits.timeout = Some(Duration::from_secs(60));
    // Every file belongs to the calling user: what `WriteOptions::rootless` expects.
    spec.id_map = runtime::IdMapPolicy::Single;
    let mut stderr = String::new();
    let outcome = runtime::run(&spec, Path::new(EXE), |event| {
        if let runtime::OutputEvent::Line { line, .. } = event {
            stderr.push_str(&line);
            stderr.push('\n');
        }
    })
    .unwrap_or_else(|e| panic!("sandbox: {}", runtime::process::chain(&e)));
    assert!(outcome.success(), "build script failed: {stderr}");
    outcome
}

#[test]
fn the_sandbox_overlay_and_a_sandboxed_copy_give_the_same_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let base = t.join("base");
    make_base(&base);
    fs::create_dir(t.join("upper")).unwrap();
    fs::create_dir(t.join("work")).unwrap();
    sandbox(runtime::RootFs::Overlay {
        lowers: vec![base.clone()],
        upper: t.join("upper"),
        work: t.join("work"),
    });
    let copy = t.join("copy");
    copy_tree(&base, &copy, Privilege::of_this_process()).unwrap();
    let outcome = sandbox(runtime::RootFs::Dir(copy.clone()));
    // The base has every mount point, so the sandbox made none in the copy.
    assert!(
        outcome.created_mount_points.is_empty(),
        "{:?}",
        outcome.created_mount_points
    );
    check_equivalent(t, &base, &t.join("upper"), &copy);
}

#[test]
fn all_of_this_also_passes_as_an_unprivileged_user() {
    let Some(text) = TesterRerun::new()
        .program(EXE)
        .test_threads(1)
        .include_ignored()
        .run()
    else {
        return;
    };
    for test in [
        "the_sandbox_overlay_and_a_sandboxed_copy_give_the_same_layer",
        "unreadable_entries_of_our_own_are_copied_and_compared",
    ] {
        assert!(text.contains(&format!("{test} ... ok")), "{text}");
    }
}

#[test]
fn unreadable_entries_of_our_own_are_copied_and_compared() {
    if euid() == 0 {
        // Root reads everything; the case is an owner without read bits, reached by the
        // run as `tester`.
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    fs::create_dir_all(base.join("locked")).unwrap();
    fs::write(base.join("locked/f"), b"f").unwrap();
    xattr::set(base.join("locked/f"), "user.k", b"v").unwrap();
    fs::set_permissions(base.join("locked/f"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(base.join("locked"), fs::Permissions::from_mode(0o311)).unwrap();
    let copy = tmp.path().join("copy");
    copy_tree(&base, &copy, Privilege::of_this_process()).unwrap();
    assert_eq!(walk_changes(&base, &copy).unwrap(), Vec::<Change>::new());
    fs::set_permissions(copy.join("locked/f"), fs::Permissions::from_mode(0o400)).unwrap();
    assert_eq!(
        walk_changes(&base, &copy).unwrap(),
        vec![Change::Add("locked".into()), Change::Add("locked/f".into())]
    );
    for root in [&base, &copy] {
        let mode = fs::symlink_metadata(root.join("locked")).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o311, "the mode of {} was put back", root.display());
        fs::set_permissions(root.join("locked"), fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::set_permissions(copy.join("locked/f"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        xattr::get(copy.join("locked/f"), "user.k").unwrap(),
        Some(b"v".to_vec())
    );
}
